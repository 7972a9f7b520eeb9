"""IR passes run after lowering."""
from __future__ import annotations

import dataclasses

from ..ir.butterfly import Butterfly
from ..ir.graph import Graph, Linear, Op, Relu, Requant


def fuse_relu(graph: Graph) -> Graph:
    """Fold each Relu op into the clamp of the Linear, Requant or Butterfly (last stage) op before
    it (or drop it after another Relu of the same type).

    ``max(clamp(v, lo, hi), zp)`` equals ``clamp(v, max(lo, zp), hi)`` when ``zp <= hi``, and a
    Relu keeps its input type, so the chain's types do not change.  Returns a new graph; the
    input graph is not modified.
    """
    ops: list[Op] = []
    for op in graph.ops:
        prev = ops[-1] if ops else None
        if isinstance(op, Relu) and isinstance(prev, (Linear, Requant)) \
                and op.in_type.zero_point <= prev.requant.hi:
            lo = max(prev.requant.lo, op.in_type.zero_point)
            ops[-1] = dataclasses.replace(prev, requant=dataclasses.replace(prev.requant, lo=lo),
                                          source=f"{prev.source} + {op.source}")
        elif isinstance(op, Relu) and isinstance(prev, Butterfly) and op.in_type.zero_point <= prev.requants[-1].hi:
            last = prev.requants[-1]   # the clamp of the butterfly's last stage
            last = dataclasses.replace(last, lo=max(last.lo, op.in_type.zero_point))
            ops[-1] = dataclasses.replace(prev, requants=prev.requants[:-1] + (last,),
                                          source=f"{prev.source} + {op.source}")
        elif isinstance(op, Relu) and isinstance(prev, Relu) and prev.out_type == op.in_type:
            ops[-1] = dataclasses.replace(prev, source=f"{prev.source} + {op.source}")
        else:
            ops.append(op)
    return dataclasses.replace(graph, ops=ops)
