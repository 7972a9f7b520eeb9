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
        if node.op_type != "ReduceMean":
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
