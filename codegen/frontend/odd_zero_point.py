"""QONNX ``Quant`` with an odd zero point after an op whose unit adds the zero point after rounding.

QONNX rounds x / s + z; ONNX QuantizeLinear, and with it the units of the Add, Mul and attention
product (MatMul of two activations), round x / s and add z.  With z odd the two differ at every
tie, and with power-of-two scales ties are common (found by bench.fuzz; tests/test_fuzz.py).  A
Linear or Requant takes the zero point into its rounding itself
(:func:`codegen.ir.build.round_with_zero_point`); for the others the op is computed into an exact
intermediate type (zero point 0, no rounding) and a Requant to the Quant's type follows, which then
does the same.  This costs one Requant unit, only for these models.  Where no exact intermediate
type exists (an Add of scales without a whole ratio; wider than EXACT_MAX_BITS), the op stays as it
was: no tie is then exact in the real arithmetic either, except by the multiplier's approximation.
"""
from __future__ import annotations

import dataclasses

import onnx

from ..ir.build import round_with_zero_point
from ..ir.types import QType, bits_for_range
from .attention import ActAcc, finish_act_matmul
from .joins import Join, finish_join
from .values import Real

#: widest exact intermediate type
EXACT_MAX_BITS = 32


def _centered(t: QType) -> tuple[int, int]:
    return t.min - t.zero_point, t.max - t.zero_point


def exact_type(low, value) -> QType | None:
    """A type that holds the Add / Mul of two terms or an attention product exactly, or None."""
    if isinstance(value, Join) and value.kind in ("add", "mul") and len(value.terms) == 2:
        scales = [t.uniform_scale for t in value.terms]
        if any(s is None for s in scales):
            return None
        ranges = [_centered(low.stream.type_of(t.tensor)) for t in value.terms]
        if value.kind == "mul":
            scale = scales[0] * scales[1]
            products = [x * y for x in ranges[0] for y in ranges[1]]
            lo, hi = min(products), max(products)
        else:
            scale = min(scales)
            ratios = [s / scale for s in scales]
            if any(r != round(r) for r in ratios):
                return None
            lo = sum(int(round(r)) * a for r, (a, _) in zip(ratios, ranges))
            hi = sum(int(round(r)) * b for r, (_, b) in zip(ratios, ranges))
    elif isinstance(value, ActAcc):
        scale = value.a.uniform_scale * value.b.uniform_scale
        (alo, ahi), (blo, bhi) = (_centered(low.stream.type_of(t.tensor)) for t in (value.a, value.b))
        products = [x * y for x in (alo, ahi) for y in (blo, bhi)]
        lo, hi = value.inner * min(products), value.inner * max(products)
    else:
        return None
    bits = bits_for_range(min(lo, -1), hi)
    return QType(signed=True, bits=bits, scale=float(scale), zero_point=0) if bits <= EXACT_MAX_BITS else None


def quantize_rounding_zero_point(low, value, qtype: QType, node: onnx.NodeProto) -> Real | None:
    """``value`` (a pending Add / Mul / attention product) quantized to ``qtype`` as QONNX rounds,
    through an exact intermediate type and a Requant; None when this is not needed or not possible
    (the caller then quantizes as usual)."""
    if qtype.zero_point % 2 == 0:
        return None
    exact = exact_type(low, value)
    if exact is None:
        return None
    if isinstance(value, ActAcc):
        product = finish_act_matmul(low, value, exact, node)
    else:
        product = finish_join(low, value, exact, node)
    low.append_requant(Real.of_stream(product.shape, exact.scale), qtype, exact.scale / qtype.scale, node)
    low.stream.ops[-1] = round_with_zero_point(low.stream.ops[-1])
    return dataclasses.replace(Real.of_stream(product.shape, qtype.scale), view=getattr(product, "view", None))
