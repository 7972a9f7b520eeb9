"""IR passes run after lowering."""
from __future__ import annotations

import dataclasses

from ..ir.butterfly import Butterfly
from ..ir.graph import Graph, Linear, Relu, Requant


def fuse_relu(graph: Graph) -> Graph:
    """Fold each Relu op into the clamp of the Linear, Requant or Butterfly (last stage) op that
    writes its input (or drop it after another Relu of the same type), when the Relu is that
    tensor's only reader.

    ``max(clamp(v, lo, hi), zp)`` equals ``clamp(v, max(lo, zp), hi)`` when ``zp <= hi``, and a
    Relu keeps its input type, so the graph's types do not change.  Returns a new graph; the
    input graph is not modified.
    """
    for op in graph.ops:
        if not isinstance(op, Relu):
            continue
        prev = graph.producer(op.inputs[0])
        if prev is None or len(graph.consumers(op.inputs[0])) != 1 or op.inputs[0] == graph.output:
            continue
        source = f"{prev.source} + {op.source}"
        if isinstance(prev, (Linear, Requant)) and op.in_type.zero_point <= prev.requant.hi:
            lo = max(prev.requant.lo, op.in_type.zero_point)
            fused = dataclasses.replace(prev, requant=dataclasses.replace(prev.requant, lo=lo), source=source)
        elif isinstance(prev, Butterfly) and op.in_type.zero_point <= prev.requants[-1].hi:
            last = prev.requants[-1]   # the clamp of the butterfly's last stage
            last = dataclasses.replace(last, lo=max(last.lo, op.in_type.zero_point))
            fused = dataclasses.replace(prev, requants=prev.requants[:-1] + (last,), source=source)
        elif isinstance(prev, Relu) and prev.out_type == op.in_type:
            fused = dataclasses.replace(prev, source=source)
        else:
            continue
        ops = [fused if o.name == prev.name else o for o in graph.ops if o.name != op.name]
        return fuse_relu(graph.with_ops(ops, {op.name: prev.name}))
    return graph
