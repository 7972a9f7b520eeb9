"""Graph shape checks: the model must be one chain, graph input -> nodes -> graph output.

Constants (initializers, Constant nodes, anything computed only from constants, and the static
``Shape`` of a tensor) may branch freely; the activation path may not, since the accelerator is a
single stream of layers.
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
    """The one graph input that is not a constant."""
    constants = {init.name for init in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in constants]
    if len(inputs) != 1:
        names = ", ".join(repr(vi.name) for vi in inputs) or "none"
        raise EinhlsError(f"the model must have exactly one (non-constant) input, it has {len(inputs)}: "
                          f"{names}", inputs[1].name if len(inputs) > 1 else None, "graph input")
    if len(graph.output) != 1:
        raise EinhlsError(f"the model must have exactly one output, it has {len(graph.output)}",
                          graph.output[1].name if len(graph.output) > 1 else None, "graph output")
    return inputs[0]


def check_single_chain(graph: onnx.GraphProto) -> None:
    """Refuse branches, merges and dead ends on the activation path, naming the node at fault."""
    constants = constant_tensors(graph)
    activation_input(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        if node.op_type in SHAPE_ONLY_OPS:
            continue
        acts = [name for name in node.input if name and name not in constants]
        if len(acts) > 1:
            if node.op_type in ("Add", "Sum", "Sub"):
                reason = ("adding two activations (a residual or skip connection) is not supported yet; "
                          "only single chains input -> ... -> output are")
            else:
                reason = (f"combines {len(acts)} activations ({', '.join(map(repr, acts))}); only single "
                          "chains input -> ... -> output are supported")
            raise EinhlsError(reason, node_label(node), node.op_type)
        for name in acts:
            consumers.setdefault(name, []).append(node)
    output = graph.output[0].name
    for name, users in consumers.items():
        if len(users) > 1 or (name == output and users):
            user = users[1] if len(users) > 1 else users[0]
            raise EinhlsError(f"tensor {name!r} feeds several nodes (a branch); only single chains "
                              "input -> ... -> output are supported", node_label(user), user.op_type)
    for node in graph.node:
        if node.op_type in SHAPE_ONLY_OPS or all(name in constants for name in node.input if name):
            continue
        for index, name in enumerate(node.output):
            if not name:
                continue
            used = name in consumers or name == output
            if index == 0 and not used:
                raise EinhlsError(f"output {name!r} is never used (a dead-end branch); only single chains "
                                  "input -> ... -> output are supported", node_label(node), node.op_type)
            if index > 0 and used:
                raise EinhlsError(f"uses the extra output {name!r}; only single chains are supported",
                                  node_label(node), node.op_type)
