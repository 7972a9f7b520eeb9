"""Unit parameters of the mean over a sequence's tokens (TokenMean) for both back ends.

Python decides every number; the Verilog unit is ``rtl_kernels/einhls_tokenmean.v`` (its
requantization an einhls_requant), the HLS one ``hls_kernels/einhls_tokenmean.h`` (configured
through ``templates/hls/params_nonlinear.h.j2``, the constants-only header).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EinhlsError
from ..ir.pooling import MaskedTokenMean, TokenMean
from .nonlinear import ConstantsUnit

if TYPE_CHECKING:
    from ..schedule.design import OpSchedule
    from .rtl import Param

RTL_MODULE = "einhls_tokenmean"
HLS_FUNCTION = "tokenmean_stream"
HLS_OVERLAP_FUNCTION = "tokenmean_overlap_stream"   # where the schedule's overlap is 1
HLS_HEADER = "einhls_tokenmean.h"


def _check(op: TokenMean) -> None:
    rq = op.requant
    if rq.per_channel or rq.multiplier[0] < 0 or rq.multiplier_bits >= 64:
        raise EinhlsError("the token mean requantizes with one unsigned multiplier below 2^63", node=op.name)


def _overlap(op: TokenMean | MaskedTokenMean, s: "OpSchedule") -> list["Param"]:
    """OVERLAP = 1 (two banks of sums) where the scheduler asked for it; nothing otherwise, so a
    design without it has the instance it always had."""
    from .rtl import Param
    if s.overlap not in (0, 1):
        raise EinhlsError(f"overlap {s.overlap} is not 0 or 1", node=op.name)
    return [Param("OVERLAP", 1)] if s.overlap else []


def v_bits(op: TokenMean) -> int:
    """Width einhls_requant adds in: the accumulator, widened so that SHIFT < V_BITS + M_BITS."""
    return max(op.acc_type.bits, op.requant.shift - op.requant.multiplier_bits + 1)


def rtl_unit(op: TokenMean, s: "OpSchedule") -> tuple[str, list["Param"]]:
    from .rtl import Param
    _check(op)
    rq = op.requant
    params = [Param("SIZE", op.in_size), Param("LANES", s.in_lanes), Param("TOKENS", op.tokens),
              Param("IN_BITS", op.in_type.bits), Param("IN_SIGNED", int(op.in_type.signed)),
              Param("IN_ZP", op.in_type.zero_point, "s64"), Param("ACC_BITS", op.acc_type.bits),
              Param("V_BITS", v_bits(op)), Param("M_BITS", rq.multiplier_bits),
              Param("MULT", int(rq.multiplier[0]), "u64"), Param("SHIFT", rq.shift),
              Param("ZP", rq.zero_point, "s64"), Param("LO", rq.lo, "s64"), Param("HI", rq.hi, "s64"),
              Param("OUT_BITS", op.out_type.bits), *_overlap(op, s)]
    return RTL_MODULE, params


@dataclass
class TokenMeanUnit(ConstantsUnit):
    """The cfg struct and call ``einhls::tokenmean_stream<ns::cfg>(in, out)`` (or
    ``maskedmean_stream<ns::cfg>(in, mask, out, ns::mults)``); one call a sequence."""
    widths: list[int] = field(default_factory=list)
    tables: list[tuple[str, str, list[int]]] = field(default_factory=list)   # 1-D constant arrays

    def internal_widths(self) -> list[int]:
        return list(self.widths)


def _ctype(signed: bool, bits: int) -> str:
    return f"ap_{'int' if signed else 'uint'}<{bits}>"


def hls_unit(op: TokenMean, s: "OpSchedule", ns: str, header: str) -> TokenMeanUnit:
    if not ns.isidentifier():
        raise EinhlsError(f"namespace {ns!r} is not a C++ identifier", node=op.name)
    _check(op)
    overlap = bool(_overlap(op, s))
    rq, lanes = op.requant, s.in_lanes
    sizes = [("SIZE", op.in_size), ("LANES", lanes), ("BEATS", math.ceil(op.in_size / lanes)), ("TOKENS", op.tokens)]
    ints = [("IN_BITS", op.in_type.bits), ("OUT_BITS", op.out_type.bits), ("SHIFT", rq.shift)]
    wide = [("IN_ZP", op.in_type.zero_point), ("MULT", int(rq.multiplier[0])), ("ZP", rq.zero_point),
            ("LO", rq.lo), ("HI", rq.hi)]
    types = [("in_t", _ctype(op.in_type.signed, op.in_type.bits)), ("acc_t", _ctype(True, op.acc_type.bits)),
             ("mult_t", _ctype(False, rq.multiplier_bits)), ("out_t", _ctype(op.out_type.signed, op.out_type.bits))]
    product = max(op.acc_type.bits + rq.multiplier_bits + 1, rq.shift + 1) + 2
    summary = f"mean of {op.in_size} features over {op.tokens} tokens, {lanes} per beat" \
        + (", the means written with the last token" if overlap else "")
    return TokenMeanUnit(kind=op.kind, op=op.name, source=op.source, ns=ns, header=header, summary=summary,
                         function=HLS_OVERLAP_FUNCTION if overlap else HLS_FUNCTION,
                         unsigned_constants=sizes, int_constants=ints, wide_constants=wide,
                         types=types, widths=[lanes * op.in_type.bits, lanes * op.out_type.bits, product])


# --- the mean over the real tokens (MaskedTokenMean) ----------------------------------------------

MASKED_RTL_MODULE = "einhls_maskedmean"
MASKED_HLS_FUNCTION = "maskedmean_stream"
MASKED_HLS_OVERLAP_FUNCTION = "maskedmean_overlap_stream"
MASKED_HLS_HEADER = "einhls_maskedmean.h"


def masked_product_bits(op: "MaskedTokenMean") -> int:
    """Bits of acc * multiplier (signed)."""
    return op.acc_type.bits + op.multiplier_bits + 1


def masked_rtl_unit(op: "MaskedTokenMean", s: "OpSchedule") -> tuple[str, list["Param"]]:
    from .rtl import Param
    bits = op.multiplier_bits
    packed = 0
    for n, mult in enumerate(op.multipliers):   # n = 1 in the low bits
        packed |= int(mult) << (n * bits)
    product = masked_product_bits(op)
    params = [Param("SIZE", op.in_size), Param("LANES", s.in_lanes), Param("TOKENS", op.tokens),
              Param("IN_BITS", op.in_type.bits), Param("IN_SIGNED", int(op.in_type.signed)),
              Param("IN_ZP", op.in_type.zero_point, "s64"), Param("M_LANES", s.in_lanes),
              Param("MASK_BITS", op.in_type_b.bits), Param("ACC_BITS", op.acc_type.bits), Param("M_BITS", bits),
              Param("MULTS", packed, f"b{op.tokens * bits}"), Param("V_BITS", max(product, op.shift)),
              Param("SHIFT", op.shift), Param("ZP", op.out_type.zero_point, "s64"),
              Param("LO", op.out_type.min, "s64"), Param("HI", op.out_type.max, "s64"),
              Param("OUT_BITS", op.out_type.bits), *_overlap(op, s)]
    return MASKED_RTL_MODULE, params


def masked_hls_unit(op: "MaskedTokenMean", s: "OpSchedule", ns: str, header: str) -> TokenMeanUnit:
    if not ns.isidentifier():
        raise EinhlsError(f"namespace {ns!r} is not a C++ identifier", node=op.name)
    overlap = bool(_overlap(op, s))
    lanes = s.in_lanes
    product = masked_product_bits(op)
    sizes = [("SIZE", op.in_size), ("LANES", lanes), ("BEATS", math.ceil(op.in_size / lanes)), ("TOKENS", op.tokens),
             ("M_LANES", lanes)]
    ints = [("IN_BITS", op.in_type.bits), ("MASK_BITS", op.in_type_b.bits), ("OUT_BITS", op.out_type.bits),
            ("SHIFT", op.shift)]
    wide = [("IN_ZP", op.in_type.zero_point), ("ZP", op.out_type.zero_point), ("LO", op.out_type.min),
            ("HI", op.out_type.max)]
    mult_t = _ctype(False, op.multiplier_bits)
    types = [("in_t", _ctype(op.in_type.signed, op.in_type.bits)), ("acc_t", _ctype(True, op.acc_type.bits)),
             ("mult_t", mult_t), ("prod_t", _ctype(True, product)),
             ("out_t", _ctype(op.out_type.signed, op.out_type.bits))]
    summary = f"mean of {op.in_size} features over the real tokens of {op.tokens}, {lanes} per beat" \
        + (", the means written with the last token" if overlap else "")
    return TokenMeanUnit(kind=op.kind, op=op.name, source=op.source, ns=ns, header=header, summary=summary,
                         function=MASKED_HLS_OVERLAP_FUNCTION if overlap else MASKED_HLS_FUNCTION,
                         unsigned_constants=sizes, int_constants=ints,
                         wide_constants=wide, types=types,
                         tables=[("mults", mult_t, [int(m) for m in op.multipliers])],
                         widths=[lanes * op.in_type.bits, lanes * op.in_type_b.bits, lanes * op.out_type.bits,
                                 max(product + 2, op.shift + 1) + 2])
