"""Constant folding: evaluate a node whose inputs are all constants.

Standard ONNX operators are evaluated with onnx's reference evaluator at the model's opset.  Layout
operators (Transpose, Reshape, ...) applied to a quantized constant move its codes, scales and zero
points along with the values, so a weight that is quantized and then transposed is still known as
integer codes when it reaches its MatMul.  Quantizer nodes on constants are folded by
:mod:`codegen.frontend.quantizers`.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from ..errors import EinhlsError
from .names import node_label
from .values import Const

#: Operators that only move or relabel elements: they keep a constant's quantization.
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


def evaluate(node: onnx.NodeProto, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    """Run one standard-domain node on NumPy arrays (None for an omitted optional input)."""
    names = [name if array is not None else "" for name, array in zip(node.input, arrays)]
    feeds = {name: array for name, array in zip(names, arrays) if name}
    graph = helper.make_graph(
        [node], "fold", [helper.make_empty_tensor_value_info(name) for name in feeds],
        [helper.make_empty_tensor_value_info(name) for name in node.output if name])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, feeds)


def fold_node(node: onnx.NodeProto, inputs: list[Const | None], opset: int) -> list[Const]:
    """Fold a standard node on constant inputs; layout ops keep the first input's quantization."""
    if node.domain not in ("", "ai.onnx"):
        raise EinhlsError(f"operator of domain {node.domain!r} is not supported",
                          node_label(node), node.op_type)
    arrays = [c.value if c is not None else None for c in inputs]
    try:
        outputs = evaluate(node, arrays, opset)
    except Exception as exc:  # the evaluator raises many types; report them as bad input
        raise EinhlsError(f"cannot evaluate this constant expression: {exc}",
                          node_label(node), node.op_type) from exc
    first = inputs[0] if inputs else None
    if node.op_type not in LAYOUT_OPS or first is None or not first.quantized:
        return [Const(np.asarray(out)) for out in outputs]
    moved = {}
    for key in ("codes", "scale", "zero_point"):
        moved[key] = np.asarray(evaluate(node, [getattr(first, key)] + arrays[1:], opset)[0])
    return [Const(np.asarray(outputs[0]), **moved)]


def broadcast_const(value: np.ndarray, shape: tuple[int, ...], node: onnx.NodeProto) -> np.ndarray:
    """A constant broadcast to an activation's shape, flat float64; it may not grow the shape."""
    try:
        grown = np.broadcast_shapes(value.shape, shape)
    except ValueError:
        grown = None
    if grown != tuple(shape):
        raise EinhlsError(f"constant of shape {list(value.shape)} does not broadcast to the activation's "
                          f"shape {list(shape)}", node_label(node), node.op_type)
    return np.broadcast_to(value.astype(np.float64), shape).ravel()
