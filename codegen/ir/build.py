"""Constructors that derive every integer type of an op from its values (bit growth, requant).

Front end, tests and examples build ops through these, so accumulator widths and requantization
parameters are computed in one place.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .graph import Linear, Relu, Requant
from .requant import PRODUCT_BITS_MAX, RequantParams, multiplier_and_shift, multiplier_bits_for
from .types import QType, bits_for_range, dot_product_range

#: at most this many finer bits for a Linear's accumulator so that an odd QONNX zero point is whole
ZERO_POINT_REFINE_BITS = 8
QTYPE_MAX_BITS = 48   # the widest QType (codegen/ir/types.py)


def output_requant(real_multiplier: np.ndarray | float, out_type: QType, relu: bool,
                   value_bits: int = 32) -> RequantParams:
    """Requantization to out_type of a value of ``value_bits`` bits (the accumulator)."""
    mults, shift = multiplier_and_shift(real_multiplier, multiplier_bits_for(out_type.bits, value_bits))
    lo = max(out_type.min, out_type.zero_point) if relu else out_type.min
    return RequantParams(mults, shift, out_type.zero_point, lo, out_type.max)


def make_linear(name: str, source: str, weight: np.ndarray, bias: np.ndarray | None,
                in_type: QType, acc_scale: np.ndarray | float, out_type: QType | None,
                relu: bool = False, sparsity: tuple[int, int] | None = None) -> Linear:
    """A Linear op from integer weight codes [out, in] (zero point removed) and bias in acc units.

    ``acc_scale`` is s_in * s_w (per output channel or scalar).  The input zero point is folded into
    the bias.  ``out_type`` None keeps the exact accumulator as output (no rounding, no clamp).
    """
    weight = np.asarray(weight, dtype=np.int64)
    n_out, n_in = weight.shape
    bias = np.zeros(n_out, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(n_out)
    bias = bias - in_type.zero_point * weight.sum(axis=1)
    w_lo, w_hi = int(min(weight.min(), 0)), int(max(weight.max(), 0))
    weight_type = QType(signed=w_lo < 0, bits=bits_for_range(w_lo, w_hi))
    lo, hi = dot_product_range(weight, bias, in_type.min, in_type.max)
    acc_scales = np.broadcast_to(np.asarray(acc_scale, dtype=np.float64), (n_out,))
    # signed, so its bits are counted as signed even when every dot product is >= 0 (an unsigned
    # count would be one short: found by bench/fuzz)
    acc_type = QType(signed=True, bits=max(bits_for_range(min(lo, -1), hi), 2), scale=float(acc_scales[0]))
    if out_type is None:
        if not np.all(acc_scales == acc_scales[0]):
            raise ValueError("an unrequantized output needs one accumulator scale for all channels")
        if relu:
            lo, hi = max(lo, 0), max(hi, 0)
        out_type = QType(signed=lo < 0, bits=bits_for_range(lo, hi), scale=float(acc_scales[0]))
        requant = RequantParams((1,), 0, 0, max(lo, 0) if relu else lo, hi)
    else:
        requant = output_requant(acc_scales / out_type.scale, out_type, relu, acc_type.bits)
    return Linear(name=name, source=source, in_type=in_type, out_type=out_type, in_size=n_in,
                  out_size=n_out, weight=weight, bias=bias, weight_type=weight_type,
                  acc_type=acc_type, requant=requant, sparsity=sparsity)


def make_requant(name: str, source: str, in_type: QType, out_type: QType, size: int,
                 offset: np.ndarray | int = 0, real_multiplier: np.ndarray | float | None = None,
                 relu: bool = False) -> Requant:
    """Elementwise change of type: y = requant((x - zp_in + offset) * s_in / s_out)."""
    if real_multiplier is None:
        real_multiplier = in_type.scale / out_type.scale
    offset = np.broadcast_to(np.asarray(offset, dtype=np.int64) - in_type.zero_point, (size,)).copy()
    value_bits = bits_for_range(in_type.min + int(offset.min()), in_type.max + int(offset.max()))
    return Requant(name=name, source=source, in_type=in_type, out_type=out_type, in_size=size,
                   out_size=size, offset=offset,
                   requant=output_requant(real_multiplier, out_type, relu, value_bits))


def make_relu(name: str, source: str, in_type: QType, size: int) -> Relu:
    return Relu(name=name, source=source, in_type=in_type, out_type=in_type, in_size=size, out_size=size)


def round_with_zero_point(op: Linear | Requant) -> Linear | Requant:
    """``op`` rounding as a QONNX ``Quant`` does: y = clamp(rne(v * M / 2**shift + zp), lo, hi).

    The einhls rule adds the output zero point after rounding (ONNX QuantizeLinear:
    round(x / s) + zp); QONNX rounds x / s + zp.  With an odd zero point the two differ at ties
    (found by bench/fuzz, tests/test_fuzz.py).  When zp * 2**shift is a whole multiple of every
    multiplier M (a power-of-two scale ratio: the only case where the real value lands exactly on a
    tie), the zero point moves into the rounding as an addend of the accumulator (Linear: its bias;
    Requant: its offset) and the requant's own zero point becomes 0 - the hardware rule is
    unchanged.  A Linear with a channel whose ratio is above 1 (M > 2**shift: zp is a fraction of
    an accumulator unit there) first counts in 2**k times finer units (weights and bias times 2**k,
    shift + k; bench.fuzz conv_qonnx found the whole op left as it was).  Otherwise (an
    approximated multiplier, or no tie possible) ``op`` is returned as is.
    """
    rq = op.requant
    if rq.zero_point % 2 == 0 or rq.shift == 0:
        return op
    channels = op.out_size if isinstance(op, Linear) else op.in_size
    mults = rq.multiplier_for(channels)
    refine = next((k for k in range(ZERO_POINT_REFINE_BITS + 1 if isinstance(op, Linear) else 1)
                   if np.all((rq.zero_point << (rq.shift + k)) % mults == 0)), None)
    if refine is None:
        return op
    addend = (rq.zero_point << (rq.shift + refine)) // mults
    requant = RequantParams(rq.multiplier, rq.shift + refine, 0, rq.lo, rq.hi)
    if isinstance(op, Linear):
        weight = op.weight << refine
        bias = (op.bias << refine) + addend
        lo, hi = dot_product_range(weight, bias, op.in_type.min, op.in_type.max)
        bits = max(bits_for_range(min(lo, -1), hi), 2)
        if bits + rq.multiplier_bits > PRODUCT_BITS_MAX or bits > QTYPE_MAX_BITS:
            return op
        w_lo, w_hi = int(min(weight.min(), 0)), int(max(weight.max(), 0))
        weight_type = QType(signed=w_lo < 0, bits=bits_for_range(w_lo, w_hi)) if refine else op.weight_type
        acc_type = QType(signed=True, bits=bits, scale=op.acc_type.scale / (1 << refine))
        return dataclasses.replace(op, weight=weight, bias=bias, weight_type=weight_type, acc_type=acc_type,
                                   requant=requant)
    offset = np.broadcast_to(op.offset, (channels,)) + addend
    value_bits = bits_for_range(op.in_type.min + int(offset.min()), op.in_type.max + int(offset.max()))
    if value_bits + rq.multiplier_bits > PRODUCT_BITS_MAX:
        return op
    return dataclasses.replace(op, offset=offset.astype(np.int64), requant=requant)
