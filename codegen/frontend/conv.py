"""Lowering of convolutional layers: Conv, GlobalAveragePool, AveragePool, BatchNormalization and the
Flatten in front of a classifier.

A [1, C, H, W] (or [1, C, L]) activation is an IR tensor of H*W (L) tokens of C features, pixel by
pixel (codegen/ir/conv.py); the ONNX value keeps its NCHW shape, and its per-element scales and
offsets must be uniform (per-tensor activation quantizers, as QDQ and QONNX exports write them), so
their order does not matter.

* ``Conv`` -> a :class:`~codegen.ir.conv.Window` (padding with the code of real 0) + an accumulator
  (:class:`~codegen.frontend.values.Acc`) over the window vector, so Relu, a BatchNormalization,
  and the next quantizer fold into it exactly as into a MatMul, which then becomes a dense or N:M
  ``Linear`` (N:M groups run along the input channels of a kernel tap).
* ``GlobalAveragePool`` / ``AveragePool`` (no padding, or padding counted) -> a window + an
  accumulator summing each channel over the window, scaled by 1 / taps.
* ``BatchNormalization`` (inference) on an open accumulator -> per-channel scale and bias folded in.
* ``Flatten`` of a [1, C, H, W] activation -> a :class:`~codegen.ir.conv.Regroup` (H*W tokens
  become one); the classifier's weight columns are reordered from ONNX's (c, h, w) to the stream's
  (h, w, c) order, so nothing moves in hardware.

* ``MaxPool`` -> a window padded with the type's minimum + :class:`~codegen.ir.conv.TapMax`.
* ``ReduceMean`` over the spatial axes (the dynamo export of AdaptiveAvgPool2d(1)) -> as
  GlobalAveragePool.

Grouped and depthwise convolutions (``group`` > 1) become the same window + Linear with a kernel
that is zero outside each group, N:M sparse with one group per kernel tap
(:func:`tap_aligned_pattern`): a depthwise kxk conv then has the k*k multiplier slots per channel a
dedicated depthwise unit would have.

* ``Einsum`` on a pixel stream that mixes the channels of each pixel with one constant matrix
  (``bchw,oc->bohw``: the 1x1 factor of a CP / Tucker convolution written with ``torch.einsum``,
  which both torch exporters keep as an ONNX Einsum) -> an accumulator, as a 1x1 Conv
  (:func:`lower_pixel_einsum`); any other Einsum on a pixel stream is refused by name.

Refused by name: 3-D (and higher) convolutions, auto_pad
values other than NOTSET / VALID / SAME_UPPER / SAME_LOWER, padding as wide as the kernel,
AveragePool that excludes the padding from the count, ceil_mode, MaxPool's Indices output.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx
from onnx import helper

from ..errors import EinhlsError
from ..ir.conv import Regroup, conv_weight_matrix, make_regroup, make_tapmax, make_window
from ..ir.sparsity import detect_nm, max_nonzeros_per_group
from .bias import refinement_bits
from .names import node_label
from .sparsity import saves_multipliers
from .values import Acc, Const, Real, size_of

#: the widest N:M group the Linear unit's operand multiplexers take (as for a declared pattern)
MAX_GROUP = 64

SPATIAL_OPS = frozenset({"Conv", "GlobalAveragePool", "AveragePool", "MaxPool"})


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _refuse(node: onnx.NodeProto, why: str) -> EinhlsError:
    return EinhlsError(why, node_label(node), node.op_type)


def set_spatial_input(lowering, shape: tuple[int, ...]) -> None:
    """A [1, C, H, W] or [1, C, L] input of a model with convolutions streams pixel by pixel:
    H*W (L) tokens of C features."""
    if not any(node.op_type in SPATIAL_OPS for node in lowering.graph.node):
        return
    if len(shape) in (3, 4) and shape[0] == 1 and size_of(shape[2:]) > 1:
        lowering.stream.tokens = size_of(shape[2:])
        lowering.stream.input_size = shape[1]
        lowering.channels_first_input = True


def _spatial(lowering, value, node: onnx.NodeProto) -> tuple[int, int, int]:
    """(C, H, W) of a [1, C, H, W] / [1, C, L] activation, checked against the stream."""
    shape = tuple(value.shape)
    if len(shape) == 5:
        raise _refuse(node, f"{node.op_type} over a 3-D volume (input shape {list(shape)}) is not supported: "
                            "1-D and 2-D only")
    if len(shape) not in (3, 4) or shape[0] != 1:
        raise _refuse(node, f"{node.op_type} needs a [1, C, H, W] or [1, C, L] input, it has shape {list(shape)}")
    c, h, w = (shape[1], 1, shape[2]) if len(shape) == 3 else shape[1:]
    stream = lowering.stream
    if stream.tokens != h * w or stream.size != c:
        raise _refuse(node, f"the input {list(shape)} does not stream pixel by pixel here ({stream.tokens} "
                            f"token(s) of {stream.size} features): only a chain of convolutions from a "
                            "[1, C, H, W] input is supported")
    return c, h, w


def _uniform_real(lowering, value, node: onnx.NodeProto) -> Real:
    """The activation as one scale and one offset (what a window can pad with the code of real 0)."""
    real = lowering.linear_input(value, node)
    if np.any(real.offset != real.offset[0]):
        raise _refuse(node, "the activation has per-element offsets: quantize it per tensor before this node")
    return real


def _pads(node: onnx.NodeProto, attrs: dict, spatial: tuple[int, ...], kernel: tuple[int, ...],
          stride: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """ONNX pads (begin..., end...) from explicit pads or auto_pad."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    rank = len(spatial)
    if auto == "NOTSET":
        pads = tuple(int(p) for p in attrs.get("pads", [0] * (2 * rank)))
        if len(pads) != 2 * rank:
            raise _refuse(node, f"pads {list(pads)} do not match the {rank}-D kernel")
        return pads
    if auto == "VALID":
        return (0,) * (2 * rank)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(spatial, kernel, stride, dilation):
            out = math.ceil(size / s)
            total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return tuple(begin + end)
    raise _refuse(node, f"auto_pad {auto!r} is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")


def _window(lowering, node: onnx.NodeProto, real: Real, c: int, h: int, w: int, kernel, stride, pads,
            dilation) -> None:
    """Append the sliding window of a Conv / pool over the focus tensor (pads [t, l, b, r])."""
    stream = lowering.stream
    pad_code = stream.type.zero_point - int(real.offset[0])   # the code of real 0
    try:
        op = make_window(stream.name((node.name or node.op_type) + "_window"), node_label(node), stream.type,
                         c, h, w, kernel, stride, pads, dilation, pad_code)
    except ValueError as exc:
        raise _refuse(node, str(exc)) from exc
    stream.append(op)


def _geometry(node: onnx.NodeProto, attrs: dict, shape: tuple[int, ...], kernel: tuple[int, ...]):
    """(kernel, stride, pads [t, l, b, r], dilation) as 2-D pairs (a 1-D op gets a height of one)."""
    rank = len(shape) - 2
    spatial = tuple(shape[2:])
    stride = tuple(int(s) for s in attrs.get("strides", [1] * rank))
    dilation = tuple(int(d) for d in attrs.get("dilations", [1] * rank))
    if len(kernel) != rank or len(stride) != rank or len(dilation) != rank:
        raise _refuse(node, f"kernel {list(kernel)}, strides {list(stride)} and dilations {list(dilation)} "
                            f"do not match the {rank}-D input")
    pads = _pads(node, attrs, spatial, kernel, stride, dilation)
    if rank == 1:
        return (1, kernel[0]), (1, stride[0]), (0, pads[0], 0, pads[1]), (1, dilation[0])
    return tuple(kernel), stride, (pads[0], pads[1], pads[2], pads[3]), dilation


def _out_shape(n: int, h: int, w: int, kernel, stride, pads, dilation, rank: int) -> tuple[int, ...]:
    oh = (h + pads[0] + pads[2] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return (1, n, oh, ow) if rank == 2 else (1, n, ow)


def lower_conv(lowering, node: onnx.NodeProto, inputs: list) -> Acc:
    """Conv -> Window + accumulator (see module docstring)."""
    attrs = _attrs(node)
    x, weight = inputs[0], inputs[1]
    if not isinstance(weight, Const):
        raise _refuse(node, "the weight must be a constant")
    if len(weight.shape) == 5 or len(x.shape) == 5:
        raise _refuse(node, f"3-D convolution (weight shape {list(weight.shape)}) is not supported: 1-D and 2-D only")
    real = _uniform_real(lowering, x, node)
    c, h, w = _spatial(lowering, x, node)
    group = int(attrs.get("group", 1))
    if group < 1 or c % group or weight.shape[0] % group or weight.shape[1] * group != c:
        raise _refuse(node, f"group={group} does not fit {c} input channels and a weight of shape {list(weight.shape)}")
    if group > 1:
        weight = _block_diagonal(weight, group)
    rank = len(x.shape) - 2
    kernel, stride, pads, dilation = _geometry(node, attrs, tuple(x.shape), tuple(weight.shape[2:]))
    if (kernel, stride, pads) != ((1, 1), (1, 1), (0, 0, 0, 0)):   # a pointwise conv is a Linear per pixel
        _window(lowering, node, real, c, h, w, kernel, stride, pads, dilation)
    # the kernel as a matrix [out, (ky, kx, c)], through the MatMul weight path (codes or default type)
    as_matrix = Const(conv_weight_matrix(weight.value),
                      *(None if a is None else conv_weight_matrix(a)
                        for a in (weight.codes, weight.scale, weight.zero_point)))
    codes, w_scale = lowering.weight_codes(as_matrix, node, transposed=True)
    n = codes.shape[0]
    # recorded like a pattern declared in the model's metadata (a user's declaration wins), so the
    # Linear built from this accumulator checks it against its final weights before using it
    if group > 1 and node.name and node.name not in lowering.declared:
        pattern = tap_aligned_pattern(codes, c)
        if pattern is not None:
            lowering.declared[node.name] = f"{pattern[0]}:{pattern[1]}"
    acc = Acc(shape=_out_shape(n, h, w, kernel, stride, pads, dilation, rank), weight=codes,
              bias=codes.sum(axis=1) * int(real.offset[0]), scale=real.scale[0] * w_scale,
              node=node.name, hint=node.name or "conv", sources=real.sources + [node_label(node)])
    if len(inputs) > 2 and inputs[2] is not None:
        bias = inputs[2]
        if not isinstance(bias, Const) or bias.value.size != n:
            raise _refuse(node, "the bias must be a constant of one value per output channel")
        # a bias off the accumulator's grid: count in finer units first, as a MatMul's bias
        # (codegen/frontend/bias.py; bench.fuzz conv_qdq found it rounded here, tests/test_fuzz.py)
        steps = bias.value.astype(np.float64).ravel() / acc.scale
        refine = 1 << refinement_bits(steps)
        if refine > 1:
            acc.weight, acc.bias, acc.scale = acc.weight * refine, acc.bias * refine, acc.scale / refine
        acc.bias = acc.bias + np.rint(steps * refine).astype(np.int64)
    return acc


def _slots(pattern: tuple[int, int] | None, k: int) -> int:
    """Multiplier slots per output of a reduction of length ``k`` under ``pattern`` (None: dense)."""
    return k if pattern is None else pattern[0] * math.ceil(k / pattern[1])


def tap_aligned_pattern(codes: np.ndarray, channels: int) -> tuple[int, int] | None:
    """The N:M pattern of a grouped kernel [out, (tap, channel)] with one group per tap: M = the
    channels of a tap (or its largest divisor up to MAX_GROUP), N = the most non-zeros an output
    has among them (1 for depthwise).  Returned only when it needs fewer multiplier slots than the
    pattern detect_nm finds: the detector's groups of at most 16 split a tap, and a depthwise kernel
    then pays one slot in every group of every tap (C / 16 times the k*k products it needs: 4x on 64
    channels, bench/results/depthwise_cost.md); aligned to the taps it needs exactly k*k slots."""
    m = max(d for d in range(1, min(channels, MAX_GROUP) + 1) if channels % d == 0)
    k = codes.shape[1]
    n = max(max_nonzeros_per_group(codes, m), 1)
    aligned = saves_multipliers((n, m), k) if n < m else None
    if aligned is None:
        return None
    return aligned if _slots(aligned, k) < _slots(saves_multipliers(detect_nm(codes), k), k) else None


def _block_diagonal(weight: Const, group: int) -> Const:
    """A grouped (depthwise: group = C) kernel [out, C/group, ...] as a dense one [out, C, ...] that is
    zero outside each output's group: the window + Linear path then computes it, and the zeros make
    the N:M detection pick a sparse pattern (1 of M for depthwise) along the input channels."""
    out, per_group = weight.shape[:2]
    outs_per_group = out // group

    def expand(array: np.ndarray | None, outside) -> np.ndarray | None:
        if array is None:
            return None
        full = np.empty((out, per_group * group) + array.shape[2:], dtype=array.dtype)
        for o in range(out):
            g = o // outs_per_group
            full[o] = outside(array, o)
            full[o, g * per_group:(g + 1) * per_group] = array[o]
        return full

    first = lambda a, o: a[o].flat[0]   # noqa: E731 (a per-output value: scale, zero point)
    zero_point = weight.zero_point
    return Const(expand(weight.value, lambda a, o: 0),
                 expand(weight.codes, lambda a, o: zero_point[o].flat[0]) if weight.codes is not None else None,
                 expand(weight.scale, first), expand(zero_point, first))


def _sum_pool(lowering, node: onnx.NodeProto, x, kernel, stride, pads, dilation) -> Acc:
    """Every channel summed over the window, scaled by 1 / taps: an accumulator over the window."""
    real = _uniform_real(lowering, x, node)
    c, h, w = _spatial(lowering, x, node)
    _window(lowering, node, real, c, h, w, kernel, stride, pads, dilation)
    taps = kernel[0] * kernel[1]
    weight = np.tile(np.eye(c, dtype=np.int64), (1, taps))     # [c, (tap, c')]: 1 where c' == c
    return Acc(shape=_out_shape(c, h, w, kernel, stride, pads, dilation, len(x.shape) - 2), weight=weight,
               bias=weight.sum(axis=1) * int(real.offset[0]), scale=np.full(c, real.scale[0] / taps),
               node=node.name, hint=node.name or node.op_type, sources=real.sources + [node_label(node)])


def lower_global_average_pool(lowering, node: onnx.NodeProto, inputs: list) -> Acc:
    x = inputs[0]
    if len(x.shape) == 5:
        raise _refuse(node, "GlobalAveragePool over a 3-D volume is not supported: 1-D and 2-D only")
    _, h, w = _spatial(lowering, x, node)
    return _sum_pool(lowering, node, x, (h, w), (1, 1), (0, 0, 0, 0), (1, 1))


def lower_reduce_mean(lowering, node: onnx.NodeProto, inputs: list):
    """ReduceMean over the spatial axes of a [1, C, H, W] / [1, C, L] pixel stream (how the dynamo
    exporter writes AdaptiveAvgPool2d(1)) is a GlobalAveragePool; any other ReduceMean is refused as
    before (a float island einhls has no unit for)."""
    x = inputs[0]
    rank = len(getattr(x, "shape", ()))
    attrs = _attrs(node)
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1 and isinstance(inputs[1], Const):
        axes = inputs[1].value.ravel().tolist()
    spatial = set(range(2, rank))
    if rank in (3, 4) and axes is not None and {int(a) % rank for a in axes} == spatial \
            and lowering.stream.tokens == size_of(x.shape[2:]) > 1:
        acc = lower_global_average_pool(lowering, node, [x])
        if not int(attrs.get("keepdims", 1)):
            acc.shape = tuple(acc.shape[:2])
        return acc
    from .nonlinear import refuse_island
    if lowering.quantized_model:
        raise refuse_island(lowering, node)
    raise _refuse(node, "unsupported operator on the activation path")


def lower_average_pool(lowering, node: onnx.NodeProto, inputs: list) -> Acc:
    attrs = _attrs(node)
    x = inputs[0]
    if int(attrs.get("ceil_mode", 0)):
        raise _refuse(node, "ceil_mode=1 is not supported")
    kernel, stride, pads, dilation = _geometry(node, attrs, tuple(x.shape), tuple(attrs["kernel_shape"]))
    if any(pads) and not int(attrs.get("count_include_pad", 0)):
        raise _refuse(node, "padding excluded from the average (count_include_pad=0) is not supported: "
                            "pad without it or count the padding")
    return _sum_pool(lowering, node, x, kernel, stride, pads, dilation)


def lower_max_pool(lowering, node: onnx.NodeProto, inputs: list) -> Real:
    """MaxPool -> a window padded with the type's minimum + TapMax.  The max of codes is the code of
    the max (positive scale), and a pending ReLU or offset commutes with it, so they stay pending."""
    attrs = _attrs(node)
    if int(attrs.get("ceil_mode", 0)):
        raise _refuse(node, "ceil_mode=1 is not supported")
    if len(node.output) > 1 and node.output[1]:
        raise _refuse(node, "the Indices output of MaxPool is not supported")
    x = inputs[0]
    real = lowering.real_of(x, node)
    if real.uniform_scale is None or np.any(real.offset != real.offset[0]):
        real = lowering.materialize(real, node)
    c, h, w = _spatial(lowering, x, node)
    kernel, stride, pads, dilation = _geometry(node, attrs, tuple(x.shape), tuple(attrs["kernel_shape"]))
    stream = lowering.stream
    try:
        window = make_window(stream.name((node.name or "maxpool") + "_window"), node_label(node), stream.type,
                             c, h, w, kernel, stride, pads, dilation, stream.type.min)
    except ValueError as exc:
        raise _refuse(node, str(exc)) from exc
    stream.append(window)
    stream.append(make_tapmax(stream.name(node.name or "maxpool"), node_label(node), stream.type, c,
                              kernel[0] * kernel[1]))
    shape = _out_shape(c, h, w, kernel, stride, pads, dilation, len(x.shape) - 2)
    return dataclasses.replace(real, shape=shape, scale=np.full(size_of(shape), real.scale[0]),
                               offset=np.full(size_of(shape), real.offset[0]), tensor=stream.focus,
                               sources=real.sources + [node_label(node)])


def per_pixel(values: np.ndarray, tokens: int) -> np.ndarray | None:
    """Per-element values of a [1, C, H, W] activation in ONNX (channel-major) order -> one pixel's
    [C], or None when they vary from pixel to pixel."""
    if values.size % tokens:
        return None
    rows = values.reshape(-1, tokens)
    return rows[:, 0].copy() if np.all(rows == rows[:, :1]) else None


def lower_batch_norm(lowering, node: onnx.NodeProto, inputs: list) -> Acc:
    """Inference BatchNormalization after a Conv (an open accumulator): per-channel scale and bias."""
    x = inputs[0]
    if not isinstance(x, Acc) or x.relu:
        raise _refuse(node, "BatchNormalization is supported right after a Conv / MatMul (folded into it), "
                            "not on a quantized activation")
    if not all(isinstance(v, Const) for v in inputs[1:5]):
        raise _refuse(node, "BatchNormalization needs constant scale, bias, mean and variance")
    gamma, beta, mean, var = (v.value.astype(np.float64).ravel() for v in inputs[1:5])
    eps = float(_attrs(node).get("epsilon", 1e-5))
    factor = gamma / np.sqrt(var + eps)
    shift = beta - mean * factor
    if np.any(factor == 0):
        raise _refuse(node, "a BatchNormalization channel with zero scale is not supported")
    # y = factor * scale * (bias + W x) + shift = |factor| scale * sign (bias + shift / (factor scale) + W x):
    # the shift joins the bias (rounded to accumulator units), the factor the signs and the scale
    x.bias = x.bias + np.rint(shift / (x.scale * factor)).astype(np.int64)
    sign = np.where(factor < 0, -1, 1)
    x.weight = x.weight * sign[:, None]
    x.bias = x.bias * sign
    x.scale = x.scale * np.abs(factor)
    x.sources.append(node_label(node))
    return x


def flatten_pixels(lowering, value, node: onnx.NodeProto, new_shape: tuple[int, ...]):
    """Flatten of a pixel stream ([1, C, H, W] with H*W > 1 tokens) to [1, C*H*W]: a Regroup op; the
    classifier reading it reorders its weight columns (:func:`classifier_columns`).  None when the
    node is not that."""
    stream = lowering.stream
    shape = tuple(value.shape)
    if not (stream.tokens > 1 and len(shape) in (3, 4) and shape[0] == 1 and size_of(shape[2:]) == stream.tokens
            and shape[1] == stream.size and len(new_shape) == 2 and new_shape[1] == size_of(shape)):
        return None
    if isinstance(value, Acc):
        value = lowering.real_of(value, node)
        stream.focus_on(value.tensor or stream.focus)
    if isinstance(value, Real) and np.any(value.offset != value.offset[0]) or \
            isinstance(value, Real) and value.uniform_scale is None:
        raise _refuse(node, "flattening an activation with per-element scales or offsets is not supported")
    op = make_regroup(stream.name(node.name or "flatten"), node_label(node), stream.type, stream.size, stream.tokens)
    stream.append(op)
    return dataclasses.replace(value, shape=new_shape, tensor=stream.focus)


def classifier_columns(lowering, codes: np.ndarray) -> np.ndarray:
    """Weight columns of a layer reading a flattened pixel stream, from ONNX's (c, h, w) order to the
    stream's (h, w, c); unchanged for any other layer.  Requant / Relu ops between the Regroup and
    the layer do not move elements."""
    stream = lowering.stream
    op = stream.producer(stream.focus)
    while op is not None and op.kind in ("requant", "relu"):
        op = stream.producer(op.inputs[0])
    if not isinstance(op, Regroup):
        return codes
    tokens, channels = op.group, op.in_size
    onnx_index = (np.arange(channels)[None, :] * tokens + np.arange(tokens)[:, None]).ravel()  # [t, c] -> c*T + t
    return codes[:, onnx_index]


def lower_pixel_einsum(lowering, node: onnx.NodeProto, x, act_term: str, consts: list, out: str) -> Acc:
    """An Einsum on a [1, C, H, W] / [1, C, L] pixel stream: a channel mix of every pixel by one
    constant [O, C] (either order), with the output's channel axis where the input's was, is a 1x1
    convolution; anything else (a contraction over the pixels, a second constant) is refused."""
    from .einsum import constant_operand
    shape = tuple(x.shape)
    label = node_label(node)
    eq = f"{','.join([act_term] + [term for term, _ in consts])}->{out}"
    channel = act_term[1] if len(act_term) in (3, 4) else None
    term, const = consts[0] if len(consts) == 1 else ("", None)
    mixes = (channel is not None and len(term) == 2 and channel in term and len(set(term)) == 2
             and (other := term.replace(channel, "")) not in act_term
             and out == act_term[:1] + other + act_term[2:])
    if not mixes:
        raise EinhlsError(f"an Einsum on the pixel stream {list(shape)} is built only when it mixes the channels "
                          f"of each pixel with one constant matrix (a 1x1 convolution, e.g. 'bchw,oc->bohw'); "
                          f"{eq!r} is not that", label, node.op_type)
    real = _uniform_real(lowering, x, node)
    c, h, w = _spatial(lowering, x, node)
    codes, scale = constant_operand(lowering, const, node)
    if term[0] == channel:              # [C, O] -> [O, C]
        codes, scale = codes.T, scale.T
    if np.any(scale != scale[:, :1]):
        raise EinhlsError("the constant's scale varies along the channels it sums: only per-tensor and "
                          "per-output-channel scales are supported", label, node.op_type)
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    n = codes.shape[0]
    return Acc(shape=(1, n, h, w) if len(shape) == 4 else (1, n, w), weight=codes,
               bias=codes.sum(axis=1) * int(real.offset[0]), scale=real.scale[0] * scale[:, 0],
               node=node.name, hint=node.name or "einsum", sources=real.sources + [label])
