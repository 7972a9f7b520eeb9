"""Graph shape checks: one activation input, one output, every activation reaching the output.

Constants (initializers, Constant nodes, anything computed only from constants, and the static
``Shape`` of a tensor) are folded; the activation path may branch and merge (skip connections,
Concat, Split): the accelerator is a dataflow graph of streams.
"""
from __future__ import annotations

import onnx

from ..errors import EinhlsError
from .names import node_label

#: Nodes whose output does not depend on the values of their input, only on its (static) shape.
SHAPE_ONLY_OPS = frozenset({"Shape", "Size"})


def constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Names of every tensor known at compile time."""
    known = {init.name for init in graph.initializer} | {init.name for init in graph.sparse_initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type in SHAPE_ONLY_OPS or all(name in known for name in inputs):
            known.update(name for name in node.output if name)
    return known


def activation_input(graph: onnx.GraphProto) -> onnx.ValueInfoProto:
    """The one graph input that is not a constant (besides an attention mask, frontend/mask.py)."""
    from .mask import split_inputs
    constants = {init.name for init in graph.initializer}
    inputs, _ = split_inputs([vi for vi in graph.input if vi.name not in constants])   # an attention mask aside
    if len(inputs) != 1:
        names = ", ".join(repr(vi.name) for vi in inputs) or "none"
        raise EinhlsError(f"the model must have exactly one (non-constant) input, it has {len(inputs)}: "
                          f"{names}", inputs[1].name if len(inputs) > 1 else None, "graph input")
    if len(graph.output) != 1:
        raise EinhlsError(f"the model must have exactly one output, it has {len(graph.output)}",
                          graph.output[1].name if len(graph.output) > 1 else None, "graph output")
    return inputs[0]


def check_graph_shape(graph: onnx.GraphProto) -> None:
    """One activation input, one output, and no dead ends: every activation a node computes is read
    by another node or is the output (a stream nobody reads would stall the hardware)."""
    constants = constant_tensors(graph)
    activation_input(graph)
    read = {name for node in graph.node if node.op_type not in SHAPE_ONLY_OPS for name in node.input if name}
    read.add(graph.output[0].name)
    for node in graph.node:
        if node.op_type in SHAPE_ONLY_OPS or all(name in constants for name in node.input if name):
            continue
        for index, name in enumerate(node.output):
            if name and name not in read and (index == 0 or node.op_type == "Split"):
                raise EinhlsError(f"output {name!r} is never used (a dead-end branch): every activation must "
                                  "reach the graph output", node_label(node), node.op_type)
