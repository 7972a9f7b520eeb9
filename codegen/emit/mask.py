"""Unit parameters of the padding mask over attention scores (MaskScores) for both back ends.

Python decides every number; the Verilog unit is ``rtl_kernels/einhls_mask.v``, the HLS one
``hls_kernels/einhls_mask.h`` (configured through ``templates/hls/params_nonlinear.h.j2``, the
constants-only header).  The unit reads the scores (s0) and the mask (s1: one code a token, in lane
0 of a beat of the schedule's lanes) and writes the scores widened, padding keys replaced.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EinhlsError
from ..ir.mask import MaskScores
from .nonlinear import ConstantsUnit

if TYPE_CHECKING:
    from ..schedule.design import OpSchedule
    from .rtl import Param

RTL_MODULE = "einhls_mask"
HLS_FUNCTION = "mask_scores"
HLS_HEADER = "einhls_mask.h"


def checked_lanes(op: MaskScores, lanes: int) -> int:
    if lanes < 1 or op.tokens % lanes:
        raise EinhlsError(f"{lanes} lanes do not divide a row of {op.tokens} keys", node=op.name)
    return lanes


def rtl_unit(op: MaskScores, s: "OpSchedule") -> tuple[str, list["Param"]]:
    """(module, parameter overrides) of the Verilog unit of ``op``."""
    from .rtl import Param
    lanes = checked_lanes(op, s.in_lanes)
    params = [Param("TOKENS", op.tokens), Param("HEADS", op.heads), Param("LANES", lanes),
              Param("IN_BITS", op.in_type.bits), Param("IN_SIGNED", int(op.in_type.signed)),
              Param("M_LANES", lanes), Param("M_BITS", op.in_type_b.bits), Param("OUT_BITS", op.out_type.bits),
              Param("MASKED", op.masked_code, "s64")]
    return RTL_MODULE, params


@dataclass
class MaskUnit(ConstantsUnit):
    """The cfg struct and call ``einhls::mask_scores<ns::cfg>(scores, mask, out)``; one call is one
    sequence."""
    widths: list[int] = field(default_factory=list)

    def internal_widths(self) -> list[int]:
        return list(self.widths)


def _ctype(signed: bool, bits: int) -> str:
    return f"ap_{'int' if signed else 'uint'}<{bits}>"


def hls_unit(op: MaskScores, s: "OpSchedule", ns: str, header: str) -> MaskUnit:
    """The C++ configuration of ``op``'s unit at schedule ``s``."""
    if not ns.isidentifier():
        raise EinhlsError(f"namespace {ns!r} is not a C++ identifier", node=op.name)
    lanes = checked_lanes(op, s.in_lanes)
    sizes = [("TOKENS", op.tokens), ("HEADS", op.heads), ("LANES", lanes), ("ROW_BEATS", op.tokens // lanes),
             ("M_LANES", lanes)]
    ints = [("IN_BITS", op.in_type.bits), ("M_BITS", op.in_type_b.bits), ("OUT_BITS", op.out_type.bits)]
    types = [("in_t", _ctype(op.in_type.signed, op.in_type.bits)), ("out_t", _ctype(True, op.out_type.bits))]
    summary = (f"padding mask over {op.heads} heads x {op.tokens} keys, {lanes} per beat, padding keys -> "
               f"code {op.masked_code}")
    return MaskUnit(kind=op.kind, op=op.name, source=op.source, ns=ns, header=header, summary=summary,
                    function=HLS_FUNCTION, unsigned_constants=sizes, int_constants=ints,
                    wide_constants=[("MASKED", op.masked_code)], types=types,
                    widths=[lanes * op.in_type.bits, lanes * op.in_type_b.bits, lanes * op.out_type.bits])
