"""Known functions that exporters write as several elementary nodes, named in refusals.

torch.onnx.export (both exporters) writes ``nn.Softsign`` as ``Div(x, Add(Abs(x), 1))``.  einhls has
no unit for it, and the node the lowering stops at (the ``Div`` combining two activations, or the
``Abs``) says nothing of Softsign; :func:`explain_refusal` puts the function's name into the
message when the refused node belongs to such a pattern.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import EinhlsError
from .names import node_label

# Nodes that do not change which activation a tensor is (only its encoding).
PASS_THROUGH = frozenset({"Identity", "QuantizeLinear", "DequantizeLinear", "Quant", "Clip", "Cast"})


@dataclass(frozen=True)
class Decomposed:
    function: str          # e.g. "Softsign"
    formula: str           # how the exporter wrote it
    nodes: tuple[str, ...]  # node labels, in graph order
    at: str                # the node that produces the function's result


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
                elif attr.name in ("value_float", "value_int"):
                    values[node.output[0]] = np.asarray(attr.f if attr.name == "value_float" else attr.i)
    return values


def find_decomposed(graph: onnx.GraphProto) -> list[Decomposed]:
    """Every Softsign written as x / (1 + |x|) in ``graph`` (quantizers in between allowed)."""
    producer = {out: node for node in graph.node for out in node.output if out}
    constants = _constants(graph)

    def source(tensor: str) -> tuple[str, list[onnx.NodeProto]]:
        """The tensor behind pass-through nodes, and those nodes."""
        seen = []
        while tensor in producer and producer[tensor].op_type in PASS_THROUGH and producer[tensor].input:
            seen.append(producer[tensor])
            tensor = producer[tensor].input[0]
        return tensor, seen

    def is_one(tensor: str) -> bool:
        tensor, _ = source(tensor)
        value = constants.get(tensor)
        return value is not None and value.size >= 1 and bool(np.all(np.asarray(value, dtype=np.float64) == 1.0))

    found = []
    for div in graph.node:
        if div.op_type != "Div" or len(div.input) != 2:
            continue
        x, x_via = source(div.input[0])
        denominator, den_via = source(div.input[1])
        add = producer.get(denominator)
        if add is None or add.op_type != "Add" or len(add.input) != 2:
            continue
        for abs_side, one_side in ((0, 1), (1, 0)):
            abs_out, abs_via = source(add.input[abs_side])
            absolute = producer.get(abs_out)
            if absolute is None or absolute.op_type != "Abs" or not is_one(add.input[one_side]):
                continue
            if source(absolute.input[0])[0] != x:
                continue
            members = [absolute, *abs_via, add, *den_via, *x_via, div]
            found.append(Decomposed("Softsign", "x / (1 + |x|)", tuple(node_label(n) for n in members),
                                    node_label(div)))
            break
    return found


def explain_refusal(model: onnx.ModelProto, error: EinhlsError) -> EinhlsError:
    """``error`` again, naming the function when the refused node is part of a known pattern."""
    if error.node is None:
        return error
    for pattern in find_decomposed(model.graph):
        if error.node in pattern.nodes:
            names = ", ".join(repr(n) for n in dict.fromkeys(pattern.nodes))
            return EinhlsError(
                f"nodes {names} compute {pattern.function}, written by the exporter as {pattern.formula}; "
                f"einhls has no {pattern.function} unit (the lowering stopped at {error.node!r}: "
                f"{error.reason.split(';')[0]}); use an activation einhls builds (ReLU, GELU) in its place",
                pattern.at, pattern.function)
    return error
