"""Graph passes for the hardware: every stream gets exactly one reader.

A hardware stream is point to point, so a tensor read by several ops (or read by an op and also
leaving the graph) gets a :class:`~codegen.ir.joins.Fork` that copies it, and each reader reads its
own copy.
"""
from __future__ import annotations

import dataclasses

from ..ir.graph import GRAPH_INPUT, Graph, Op
from ..ir.joins import make_fork


def insert_forks(graph: Graph) -> Graph:
    """A Fork after every tensor with more than one reader (the graph output counts as one)."""
    ops: list[Op] = []
    readers: dict[str, list[tuple[str, int]]] = {}
    for op in graph.ops:
        for index, tensor in enumerate(op.inputs):
            readers.setdefault(tensor, []).append((op.name, index))
    redirect: dict[tuple[str, int], str] = {}
    output = graph.output
    forks: dict[str, Op] = {}
    for tensor in graph.tensors():
        users = readers.get(tensor, [])
        copies = len(users) + (1 if tensor == graph.output else 0)
        if copies < 2:
            continue
        fork = make_fork(f"fork_{tensor.replace(':', '_')}", f"copies of {tensor}", graph.tensor_type(tensor),
                         graph.tensor_size(tensor), copies)
        fork = dataclasses.replace(fork, inputs=(tensor,))
        forks[tensor] = fork
        for i, user in enumerate(users):
            redirect[user] = fork.outputs[i]
        if tensor == graph.output:
            output = fork.outputs[-1]
    if not forks:
        return graph
    if GRAPH_INPUT in forks:
        ops.append(forks[GRAPH_INPUT])
    for op in graph.ops:
        inputs = tuple(redirect.get((op.name, i), t) for i, t in enumerate(op.inputs))
        ops.append(dataclasses.replace(op, inputs=inputs))
        for tensor in op.outputs:
            if tensor in forks:
                ops.append(forks[tensor])
    return dataclasses.replace(graph, ops=ops, output=output)
