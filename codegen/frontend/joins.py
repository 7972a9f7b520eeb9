"""Lowering of the nodes that join and split activations: Add / Mul of two activations, Concat,
Split and Slice along the features.

A join of two real values becomes a :class:`Join` (like a MatMul's accumulator, it waits for the
quantizer that follows to know its output type), then one IR op: ``Add`` (the residual
connection), ``Mul`` (a gate) or ``Concat``.  Each input is first brought to a *plain* value (its
tensor's codes times one scale, no pending offset or ReLU), materializing an op on that input's
branch when it is not.  ``Split`` and a feature ``Slice`` become one IR ``Slice`` op per output.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from ..errors import EinhlsError
from ..ir.joins import make_add, make_concat, make_mul, make_slice
from ..ir.types import QType
from .names import node_label
from .values import Const, Real, size_of

JOIN_OPS = {"Add": "add", "Sum": "add", "Mul": "mul", "Concat": "concat"}


@dataclass
class Join:
    """A pending Add / Mul / Concat of plain real values (``terms``), not yet given a type."""
    kind: str
    terms: list[Real]
    shape: tuple[int, ...]
    node: str
    sources: list[str] = field(default_factory=list)
    relu: bool = False
    tensor: str | None = None


def _features_axis(shape: tuple[int, ...], axis: int, label: str, op_type: str) -> None:
    if axis % len(shape) != len(shape) - 1:
        raise EinhlsError(f"{op_type} along axis {axis} of shape {list(shape)} is not supported: only "
                          "along the last axis (the features of a token)", label, op_type)


def _plain(low, value, node: onnx.NodeProto) -> Real:
    """``value`` as a plain real value of its own tensor (materialized on its branch if needed)."""
    if getattr(value, "tensor", None) is not None:
        low.stream.focus_on(value.tensor)
    real = low.real_of(value, node)
    if not real.plain or real.uniform_scale is None:
        real = low.materialize(real, node)   # always plain, one scale
    if real.tensor is None:
        real = dataclasses.replace(real, tensor=low.stream.focus)
    return real


def lower_join(low, node: onnx.NodeProto, inputs: list) -> Join:
    """Add / Sum / Mul / Concat of two or more activations."""
    label, op_type = node_label(node), node.op_type
    kind = JOIN_OPS.get(op_type)
    if kind is None:
        what = {"Sub": "subtracting one activation from another", "Div": "dividing two activations",
                "MatMul": "a MatMul of two activations (attention)"}.get(op_type, f"{op_type} of several activations")
        raise EinhlsError(f"{what} is not supported", label, op_type)
    if any(isinstance(v, Const) for v in inputs if v is not None):
        raise EinhlsError(f"{op_type} of activations and constants together is not supported", label, op_type)
    values = [v for v in inputs if v is not None]
    if kind == "concat":
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), None)
        if axis is None:
            raise EinhlsError("Concat without an axis", label, op_type)
        for v in values:
            _features_axis(v.shape, axis, label, op_type)
        shape = values[0].shape[:-1] + (sum(v.shape[-1] for v in values),)
    else:
        if len({tuple(v.shape) for v in values}) != 1:
            raise EinhlsError(f"{op_type} of activations of different shapes "
                              f"{[list(v.shape) for v in values]} (broadcasting) is not supported",
                              label, op_type)
        if kind == "mul" and len(values) != 2:
            raise EinhlsError("Mul of more than two activations", label, op_type)
        shape = values[0].shape
    terms = [_plain(low, v, node) for v in values]
    return Join(kind, terms, tuple(shape), label, sources=[label])


def finish_join(low, join: Join, out_type: QType | None, node: onnx.NodeProto | None) -> Real:
    """Append the IR op of a join, requantized to ``out_type`` (the default type when None)."""
    label = node_label(node) if node is not None else join.node
    out_type = out_type or low.default_type
    source = " + ".join(join.sources + ([label] if node is not None else []))
    if join.kind == "concat":
        return _finish_concat(low, join, out_type, source, label)
    if out_type is None:
        raise EinhlsError(f"the {join.kind} of two activations needs a quantizer after it (QuantizeLinear "
                          "or Quant) to give its result a type, or --default-type", join.node, join.kind)
    a, b = join.terms[0], join.terms[1]
    a_type = dataclasses.replace(low.stream.type_of(a.tensor), scale=a.uniform_scale)
    b_type = dataclasses.replace(low.stream.type_of(b.tensor), scale=b.uniform_scale)
    make = make_add if join.kind == "add" else make_mul
    size = low.stream.size_of(a.tensor)
    try:
        op = make(low.stream.name(join.kind), source, a_type, b_type, out_type, size, relu=join.relu)
    except ValueError as exc:
        raise EinhlsError(f"cannot build the {join.kind}: {exc}", join.node, join.kind) from exc
    op = dataclasses.replace(op, inputs=(a.tensor, b.tensor))
    low.stream.append(op)
    for extra in join.terms[2:]:   # Sum of more than two: a chain of adds
        c_type = dataclasses.replace(low.stream.type_of(extra.tensor), scale=extra.uniform_scale)
        prev = low.stream.focus
        op = make_add(low.stream.name("add"), source, out_type, c_type, out_type, size, relu=join.relu)
        low.stream.append(dataclasses.replace(op, inputs=(prev, extra.tensor)))
    return Real.of_stream(join.shape, out_type.scale)


def _finish_concat(low, join: Join, out_type: QType | None, source: str, label: str) -> Real:
    types = [dataclasses.replace(low.stream.type_of(t.tensor), scale=t.uniform_scale) for t in join.terms]
    if out_type is None:
        if any(t != types[0] for t in types):
            raise EinhlsError("Concat of activations of different types needs a quantizer after it "
                              "(QuantizeLinear or Quant) or --default-type", join.node, "Concat")
        out_type = types[0]
    tensors = []
    for term, have in zip(join.terms, types):
        low.stream.focus_on(term.tensor)
        if have != out_type:
            low.append_requant(Real.of_stream(term.shape, term.uniform_scale), out_type,
                               term.uniform_scale / out_type.scale, None, label=label)
        tensors.append(low.stream.focus)
    sizes = [low.stream.size_of(t) for t in tensors]
    op = make_concat(low.stream.name("concat"), source, out_type, sizes)
    low.stream.append(dataclasses.replace(op, inputs=tuple(tensors)))
    if join.relu:
        from ..ir.build import make_relu
        low.stream.append(make_relu(low.stream.name("relu"), source, out_type, sum(sizes)))
    return Real.of_stream(join.shape, out_type.scale)


def lower_split(low, node: onnx.NodeProto, inputs: list) -> list[Real]:
    """Split (or a Slice along the features) -> one IR Slice op per output."""
    label, op_type = node_label(node), node.op_type
    value = inputs[0]
    real = _plain(low, value, node)
    shape = real.shape
    features = shape[-1]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if op_type == "Split":
        axis = attrs.get("axis", 0)
        _features_axis(shape, axis, label, op_type)
        if len(inputs) > 1 and inputs[1] is not None:
            sizes = [int(s) for s in np.asarray(inputs[1].value).ravel()]
        elif "split" in attrs:
            sizes = [int(s) for s in attrs["split"]]
        else:
            parts = len(node.output)
            if features % parts:
                raise EinhlsError(f"Split of {features} features into {parts} equal parts", label, op_type)
            sizes = [features // parts] * parts
        bounds = np.cumsum([0] + sizes)
        ranges = list(zip(bounds[:-1], bounds[1:]))
    else:   # Slice
        starts, ends = (np.asarray(inputs[i].value).ravel() for i in (1, 2))
        axes = np.asarray(inputs[3].value).ravel() if len(inputs) > 3 and inputs[3] is not None else \
            np.arange(len(starts))
        steps = np.asarray(inputs[4].value).ravel() if len(inputs) > 4 and inputs[4] is not None else \
            np.ones(len(starts), dtype=np.int64)
        ranges = None
        for start, end, axis, step in zip(starts, ends, axes, steps):
            dim = shape[int(axis) % len(shape)]
            lo, hi, _ = slice(int(start), int(end), int(step)).indices(dim)
            if int(axis) % len(shape) != len(shape) - 1:
                if (lo, hi) != (0, dim) or step != 1:
                    raise EinhlsError(f"Slice along axis {int(axis)} is not supported: only along the last "
                                      "axis (the features of a token)", label, op_type)
                continue
            if step != 1:
                raise EinhlsError(f"Slice with step {int(step)} is not supported", label, op_type)
            ranges = [(lo, hi)]
        if ranges is None:
            return [real]
    tokens = size_of(shape) // features
    outputs = []
    for lo, hi in ranges:
        low.stream.focus_on(real.tensor)
        try:
            op = make_slice(low.stream.name("slice"), label, low.stream.type, low.stream.size, int(lo), int(hi))
        except ValueError as exc:
            raise EinhlsError(str(exc), label, op_type) from exc
        tensor = low.stream.append(op)
        cols = slice(int(lo), int(hi))
        scale = real.scale.reshape(tokens, features)[:, cols].ravel()
        offset = real.offset.reshape(tokens, features)[:, cols].ravel()
        outputs.append(Real(shape[:-1] + (int(hi - lo),), scale, offset, sources=[label], tensor=tensor))
    return outputs
