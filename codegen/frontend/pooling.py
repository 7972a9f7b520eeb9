"""Mean pooling over the tokens of a sequence: ``ReduceMean(x [1, L, C], axes=[1])`` (how
``x.mean(dim=1)`` exports; sentence-transformers' pooling of an unpadded sentence) becomes one
:class:`~codegen.ir.pooling.TokenMean` op, L tokens in, one out.  Any other ReduceMean goes on to
the convolutional rule (codegen/frontend/conv.py: the spatial axes of a pixel stream)."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EinhlsError
from ..ir.pooling import make_token_mean
from .names import node_label
from .values import Const, Real


def _axes(node: onnx.NodeProto, inputs: list) -> list[int] | None:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(inputs) > 1 and isinstance(inputs[1], Const):
        return [int(a) for a in inputs[1].value.ravel()]
    return None


def pools_tokens(graph: onnx.GraphProto) -> bool:
    """Whether the model averages its [1, L, C] activations over the tokens (a ReduceMean over axis
    1 with constant axes): the frame then has L tokens although the output is one vector."""
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attr.t)
    for node in graph.node:
        if node.op_type not in ("ReduceMean", "ReduceSum"):   # a mean, or the sum of a masked mean
            continue
        given = [Const(constants[node.input[1]])] if len(node.input) > 1 and node.input[1] in constants else []
        axes = _axes(node, [None, *given])
        if axes is not None and [a % 3 for a in axes] == [1]:
            return True
    return False


def lower_reduce_mean(low, node: onnx.NodeProto, inputs: list):
    """ReduceMean over the token axis of a [1, L, C] sequence -> TokenMean; otherwise the
    convolutional rule."""
    from . import conv as conv_fe
    from .joins import _plain

    x = inputs[0]
    shape = tuple(getattr(x, "shape", ()))
    axes = _axes(node, inputs)
    tokens = low.stream.tokens
    over_tokens = (len(shape) == 3 and axes is not None and [a % 3 for a in axes] == [1]
                   and not low.channels_first_input and shape[1] == tokens > 1)
    if not over_tokens:
        return conv_fe.lower_reduce_mean(low, node, inputs)
    if getattr(x, "view", None) is not None:
        raise EinhlsError("the mean over the tokens of a value split into heads is not supported",
                          node_label(node), node.op_type)
    term = _plain(low, x, node)
    in_type = dataclasses.replace(low.stream.type_of(term.tensor), scale=term.uniform_scale)
    size = low.stream.size_of(term.tensor)
    try:
        op = make_token_mean(low.stream.name("tokenmean"), " + ".join(term.sources + [node_label(node)]), in_type,
                             size, tokens, inputs=(term.tensor,))
    except ValueError as exc:
        raise EinhlsError(f"cannot build the token mean: {exc}", node_label(node), node.op_type) from exc
    low.stream.append(op)
    keepdims = int({a.name: helper.get_attribute_value(a) for a in node.attribute}.get("keepdims", 1))
    out_shape = (1, 1, size) if keepdims else (1, size)
    return Real.of_stream(out_shape, in_type.scale)


def lower_masked_mean_node(low, node: onnx.NodeProto, inputs: list):
    """sentence-transformers' pooling with padding, ``sum(x * m) / clamp(sum(m), eps)`` with m the
    mask as [1, L, 1] weights: Mul -> ReduceSum over the tokens, ReduceSum of the weights -> Clip
    (or Max) -> Div; the Div becomes one MaskedTokenMean op (frontend/mask.py follows the mask)."""
    from ..ir.graph import GRAPH_INPUT
    from ..ir.pooling import make_masked_token_mean
    from .joins import _plain
    from .mask import MaskedTokens, MaskValue

    op = node.op_type
    label = node_label(node)
    tokens = low.stream.tokens

    def refuse(why: str) -> EinhlsError:
        return EinhlsError(f"{op} in mean pooling with the attention mask: {why}; einhls supports "
                           "sum(x * mask) / clamp(sum(mask), eps) over the tokens", label, op)

    mask = next((v for v in inputs if isinstance(v, MaskValue)), None)
    pooled = next((v for v in inputs if isinstance(v, MaskedTokens)), None)
    if op == "Mul" and pooled is None:
        x = next(v for v in inputs if isinstance(v, Real))
        if getattr(x, "view", None) is not None or tuple(x.shape)[:2] != (1, tokens) or len(x.shape) != 3:
            raise refuse(f"the mask weighs a value of shape {list(x.shape)}, not the tokens [1, {tokens}, C]")
        return MaskedTokens(x, mask, tuple(x.shape), nodes=[label], tensor=x.tensor)
    if op == "ReduceSum":
        axes = _axes(node, inputs)
        if axes is None or [a % 3 for a in axes] != [1]:
            raise refuse(f"a sum over axes {axes}, not the tokens (axis 1)")
        keepdims = int({a.name: helper.get_attribute_value(a) for a in node.attribute}.get("keepdims", 1))
        if pooled is not None and not pooled.summed:
            shape = (1, 1, pooled.shape[2]) if keepdims else (1, pooled.shape[2])
            return dataclasses.replace(pooled, summed=True, shape=shape, nodes=pooled.nodes + [label])
        if mask is not None and mask.form == "mask":
            return dataclasses.replace(mask, form="count", shape=(1, 1, 1) if keepdims else (1, 1),
                                       nodes=mask.nodes + [label])
        raise refuse("a sum of something else")
    if op in ("Clip", "Max") and mask is not None and mask.form == "count":
        floor = next((float(np.asarray(v.value).ravel()[0]) for v in inputs[1:2] if isinstance(v, Const)), None)
        if floor is None or not 0 < floor <= 1:
            raise refuse("the count must be clamped below by a small positive constant")
        return dataclasses.replace(mask, nodes=mask.nodes + [label])
    if op == "Div" and pooled is not None and pooled.summed and isinstance(inputs[1], MaskValue) \
            and inputs[1].form == "count":
        term = _plain(low, pooled.real, node)
        in_type = dataclasses.replace(low.stream.type_of(term.tensor), scale=term.uniform_scale)
        size = low.stream.size_of(term.tensor)
        try:
            mean = make_masked_token_mean(low.stream.name("maskedmean"), " + ".join(pooled.nodes + [label]), in_type,
                                          low.stream.type_of(GRAPH_INPUT), size, tokens,
                                          inputs=(term.tensor, pooled.mask.tensor))
        except ValueError as exc:
            raise EinhlsError(f"cannot build the masked mean: {exc}", label, op) from exc
        low.stream.append(mean)
        return Real.of_stream(pooled.shape, in_type.scale)
    raise refuse("not this pattern")
