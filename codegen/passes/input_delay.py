"""One delayed copy of an attention layer's input for the queries and the residual.

An encoder layer forks its input x four ways: the key, value and query projections and the
residual Add after attention.  The attention product Q K^T reads a row of queries only once the
whole sequence of keys is in its buffer, so without this pass two streams wait a sequence each: the
queries in a FIFO in front of Q K^T, and x in a FIFO in front of the residual Add (which waits for
the whole attention path).  Both are copies of the same x, a sequence later.

:func:`share_input_delay` rewrites

    x -> Fork -> {K path, V path, Q path, residual}

into

    x -> Fork -> {K path, V path, x'}     x' -> Fork(holds_sequence) -> {Q path, residual}

The second fork's input waits in one FIFO of a sequence (folding.fifo_depths sizes it from the
schedule: the cycles of a sequence at the design's rate, as the queries waited before), and the
FIFOs in front of Q K^T and of the Add shrink to the difference of the paths' latencies.

Deadlock: the first fork delivers a token only when all its readers take it.  The key and value
projections must run a whole sequence ahead of the queries; they can, because the third reader is
the FIFO of a sequence (plus one token and slack), which takes every token of the sequence while
the queries wait.  The queries and the residual leave together from the second fork; the residual
then waits in front of the Add for the attention path's latency only (a small FIFO, sized the same
way).  Numerically nothing changes: forks copy.

Applied where a fork feeds an attention product's queries (its input a, through units of one input
each) and that product's keys (input b) and an Add; the paths to keys and values stay on the first
fork.
"""
from __future__ import annotations

import dataclasses

from ..ir.graph import Graph, Op
from ..ir.joins import make_fork


def _path_end(graph: Graph, readers: dict[str, tuple[Op, int]], tensor: str) -> tuple[Op, int] | None:
    """The first op of more than one input (or a fork) that ``tensor`` reaches through ops of one
    input, with the input index it arrives at; None when the path leaves the graph."""
    while tensor in readers:
        op, index = readers[tensor]
        if len(op.inputs) > 1 or op.kind == "fork":
            return op, index
        tensor = op.outputs[0]
    return None


def share_input_delay(graph: Graph) -> Graph:
    """The graph with one delayed copy of each attention layer's input (the module docstring)."""
    readers: dict[str, tuple[Op, int]] = {}
    for op in graph.ops:
        for index, tensor in enumerate(op.inputs):
            readers[tensor] = (op, index)
    replace: dict[str, tuple[Op, Op]] = {}      # fork name -> (new first fork, held fork)
    rename: dict[str, str] = {}                  # old fork output -> new tensor
    for fork in graph.ops:
        if fork.kind != "fork" or getattr(fork, "holds_sequence", False):
            continue
        ends = {t: _path_end(graph, readers, t) for t in fork.outputs if t != graph.output}
        queries = [t for t, end in ends.items() if end and end[0].kind == "actmatmul"
                   and end[0].layout == "nt" and end[1] == 0]
        scores = {ends[t][0].name for t in queries}
        keys = [t for t, end in ends.items() if end and end[0].name in scores and end[1] == 1]
        residual = [t for t, end in ends.items() if end and end[0].kind == "add"]
        if not (queries and keys and residual):
            continue
        held = [t for t in fork.outputs if t in queries or t in residual]
        kept = [t for t in fork.outputs if t not in held]
        first = dataclasses.replace(make_fork(fork.name, fork.source, fork.in_type, fork.in_size, len(kept) + 1),
                                    inputs=fork.inputs)
        second = make_fork(f"{fork.name}_held", f"{fork.source} (queries and residual, a sequence later)",
                           fork.in_type, fork.in_size, len(held))
        second = dataclasses.replace(second, inputs=(first.outputs[-1],), holds_sequence=True)
        rename.update(zip(kept, first.outputs[:-1]))
        rename.update(zip(held, second.outputs))
        replace[fork.name] = (first, second)
    if not replace:
        return graph
    ops: list[Op] = []
    for op in graph.ops:
        if op.name in replace:
            ops.extend(replace[op.name])
            continue
        inputs = tuple(rename.get(t, t) for t in op.inputs)
        ops.append(dataclasses.replace(op, inputs=inputs) if inputs != op.inputs else op)
    return dataclasses.replace(graph, ops=ops, output=rename.get(graph.output, graph.output))
