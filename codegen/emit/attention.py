"""Unit parameters of the attention product (ActMatMul: Q K^T and P V) for both back ends.

Python decides every number; the Verilog unit is ``rtl_kernels/einhls_actmatmul.v`` and the HLS one
``hls_kernels/einhls_actmatmul.h`` (configured through ``templates/hls/params_actmatmul.h.j2``).
The unit reads two streams: ``a`` (s0, the rows that stream: Q or P) and ``b`` (s1, buffered for a
whole sequence: K or V), and writes one (m_axis).  The schedule gives SIMD (k per cycle, divides
``inner``), PE (n per cycle, divides ``cols``) and the lane counts; each lane count must divide the
features per token of its stream (no padding inside a sequence of tokens).

Decisions shared with the cost model (codegen/schedule/attention_cost.py) live here:
:func:`requant_lanes` (outputs requantized per cycle), :func:`fifo_depth` (groups of PE sums the
output FIFO holds), :func:`lut_products` (products from LUTs instead of DSPs).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EinhlsError
from ..ir.attention import ActMatMul
from ..schedule.packing import LUT_MULT_MAX_BITS
from ..schedule.packing import requant_lanes as _linear_requant_lanes
from .nonlinear import ConstantsUnit

if TYPE_CHECKING:
    from ..schedule.design import OpSchedule
    from .rtl import Param

RTL_MODULE = "einhls_actmatmul"
HLS_FUNCTION = "actmatmul"
HLS_HEADER = "einhls_actmatmul.h"
TREE_STAGE = 2             # adder-tree levels per pipeline register (as einhls_linear)
# Cycles from a step's issue to its sum entering the output FIFO, without the adder tree's
# registers: memory read, operands, products, accumulator, FIFO write (einhls_actmatmul stages).
ISSUE_TO_FIFO = 5
# Cycles from the FIFO write to its credit coming back at full rate: FIFO output register,
# requant lane converter, and one of slack.
FIFO_TO_CREDIT = 3


@dataclass(frozen=True)
class Folding:
    """The checked parallelism and lanes of one ActMatMul unit."""
    simd: int
    pe: int
    a_lanes: int
    b_lanes: int
    out_lanes: int


def _positive(op: ActMatMul, what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise EinhlsError(f"{what} {value!r} must be a positive integer", node=op.name)
    return int(value)


def b_features(op: ActMatMul) -> int:
    """Codes per token of ``b``: heads x inner (nt, keys) or heads x cols (nn, values)."""
    return op.in_size_b


def folding(op: ActMatMul, s: "OpSchedule", b_lanes: int | None = None) -> Folding:
    """SIMD, PE and lanes of ``op`` from its schedule, checked; ``b`` takes ``s.in_lanes`` unless
    ``b_lanes`` is given (the top level feeds both inputs at the schedule's input lanes)."""
    simd = _positive(op, "SIMD", s.simd)
    pe = _positive(op, "PE", s.pe)
    a_lanes = _positive(op, "input lane count", s.in_lanes)
    b_lanes = _positive(op, "lane count of b", s.in_lanes if b_lanes is None else b_lanes)
    out_lanes = _positive(op, "output lane count", s.out_lanes)
    if op.inner % simd:
        raise EinhlsError(f"SIMD {simd} does not divide the summed axis ({op.inner})", node=op.name)
    if op.cols % pe:
        raise EinhlsError(f"PE {pe} does not divide the output columns per head ({op.cols})", node=op.name)
    for what, lanes, size in (("a", a_lanes, op.in_size), ("b", b_lanes, op.in_size_b),
                              ("the output", out_lanes, op.out_size)):
        if size % lanes:
            raise EinhlsError(f"{lanes} lanes do not divide the {size} features per token of {what}",
                              node=op.name)
    return Folding(simd, pe, a_lanes, b_lanes, out_lanes)


def steps_per_row(op: ActMatMul, f: Folding) -> int:
    """MAC-array cycles per a token: heads x inner/SIMD x cols/PE."""
    return op.heads * (op.inner // f.simd) * (op.cols // f.pe)


def requant_lanes(op: ActMatMul, f: Folding) -> int:
    """Outputs requantized per cycle: the smallest divisor of PE that keeps up with PE sums every
    inner/SIMD cycles (the Linear unit's rule)."""
    return _linear_requant_lanes(f.pe, op.inner // f.simd)


def tree_registers(simd: int) -> int:
    """Pipeline registers of an einhls_adder_tree over ``simd`` products at TREE_STAGE."""
    levels = math.ceil(math.log2(simd)) if simd > 1 else 0
    return sum(1 for lv in range(1, levels + 1) if lv % TREE_STAGE == 0 or lv == levels)


def fifo_depth(op: ActMatMul, f: Folding) -> int:
    """Groups of PE sums the output FIFO holds: enough credits for the round trip from a group's
    first step to its credit's return at full rate (one group every inner/SIMD cycles), so the
    array never waits on the FIFO unless the output is slower than the array; a power of two."""
    kf = op.inner // f.simd
    trip = ISSUE_TO_FIFO + tree_registers(f.simd) + FIFO_TO_CREDIT + kf
    groups = math.ceil(trip / kf) + 1
    return 1 << max(1, math.ceil(math.log2(groups)))


def lut_products(op: ActMatMul) -> bool:
    """Products from LUT adders when an operand has at most LUT_MULT_MAX_BITS bits (the
    convention of schedule/packing.py: a DSP would be mostly idle)."""
    return min(op.in_type.bits, op.in_type_b.bits) <= LUT_MULT_MAX_BITS


def _acc_bits(op: ActMatMul) -> int:
    return op.acc_type.bits + (0 if op.acc_type.signed else 1)


def _check_requant(op: ActMatMul) -> None:
    rq, limit = op.requant, 1 << op.out_type.bits
    if rq.per_channel:
        raise EinhlsError("the attention product requantizes per tensor; it has "
                          f"{len(rq.multiplier)} multipliers", node=op.name)
    if not all(-limit <= v < limit for v in (rq.zero_point, rq.lo, rq.hi)) or rq.lo > rq.hi:
        raise EinhlsError(f"requant bounds {rq.lo}..{rq.hi} (zero point {rq.zero_point}) do not fit the "
                          f"{op.out_type.bits}-bit output", node=op.name)
    if rq.multiplier_bits >= 64 or rq.multiplier[0] < 0:
        raise EinhlsError(f"requant multiplier {rq.multiplier[0]} must be unsigned and below 2^63", node=op.name)


def check_sequences(op: ActMatMul, b_sequences: int) -> int:
    """Sequences of b the unit holds: 2 (ping-pong, the default) or 1 (the scheduler's choice
    when two do not fit: codegen/schedule/attention_cost.py)."""
    if b_sequences not in (1, 2):
        raise EinhlsError(f"the b buffer holds 1 or 2 sequences, not {b_sequences!r}", node=op.name)
    return b_sequences


def rtl_unit(index: int, op: ActMatMul, s: "OpSchedule",
             b_lanes: int | None = None, b_sequences: int = 2,
             b_uram: bool = False) -> tuple[str, list["Param"], list]:
    """(module, parameter overrides, ROM images) of the Verilog unit of ``op``; the unit has no
    ROMs (both operands stream), so the list is empty.  ``index`` is the op's position (unused: no
    per-op files), kept for the shape every unit builder has.  ``b_uram``: the b buffer in
    UltraRAM (the scheduler's placement, schedule/fifo_memory.py)."""
    from .rtl import Param

    del index
    f = folding(op, s, b_lanes)
    b_sequences = check_sequences(op, b_sequences)
    _check_requant(op)
    rq = op.requant
    acc_bits = _acc_bits(op)
    v_bits = max(acc_bits, rq.shift - rq.multiplier_bits + 1)   # einhls_requant: SHIFT < V_BITS + M_BITS
    a, b = op.in_type, op.in_type_b
    params = [Param("HEADS", op.heads), Param("INNER", op.inner), Param("COLS", op.cols),
              Param("TOKENS", op.tokens), Param("LAYOUT", 0 if op.layout == "nt" else 1),
              Param("SIMD", f.simd), Param("PE", f.pe), Param("A_LANES", f.a_lanes),
              Param("B_LANES", f.b_lanes), Param("OUT_LANES", f.out_lanes),
              Param("A_BITS", a.bits), Param("A_SIGNED", int(a.signed)), Param("A_ZP", a.zero_point, "s64"),
              Param("B_BITS", b.bits), Param("B_SIGNED", int(b.signed)), Param("B_ZP", b.zero_point, "s64"),
              Param("ACC_BITS", acc_bits), Param("OUT_BITS", op.out_type.bits),
              Param("MULT_BITS", rq.multiplier_bits), Param("MULT", int(rq.multiplier[0]), "u64"),
              Param("SHIFT", rq.shift), Param("OUT_ZP", rq.zero_point, "s64"), Param("LO", rq.lo, "s64"),
              Param("HI", rq.hi, "s64"), Param("V_BITS", v_bits), Param("RQ_LANES", requant_lanes(op, f)),
              Param("MUL_LUT", int(lut_products(op))), Param("TREE_STAGE", TREE_STAGE),
              Param("FIFO_DEPTH", fifo_depth(op, f)), Param("B_SEQS", b_sequences),
              Param("B_URAM", int(b_uram))]
    return RTL_MODULE, params, []


@dataclass
class ActMatMulUnit(ConstantsUnit):
    """The attention product's cfg struct and call ``einhls::actmatmul<ns::cfg>(a, b, out)``; one
    call is one sequence."""
    widths: list[int] = field(default_factory=list)   # every ap_int width the kernel builds

    def internal_widths(self) -> list[int]:
        return list(self.widths)


def _ctype(signed: bool, bits: int) -> str:
    return f"ap_{'int' if signed else 'uint'}<{bits}>"


def hls_unit(op: ActMatMul, s: "OpSchedule", ns: str, header: str,
             b_lanes: int | None = None, b_sequences: int = 2, b_uram: bool = False) -> ActMatMulUnit:
    """The C++ configuration of ``op``'s unit (hls_kernels/einhls_actmatmul.h) at schedule ``s``;
    ``b_uram``: the b buffer bound to UltraRAM."""
    if not ns.isidentifier():
        raise EinhlsError(f"namespace {ns!r} is not a C++ identifier", node=op.name)
    f = folding(op, s, b_lanes)
    b_sequences = check_sequences(op, b_sequences)
    _check_requant(op)
    rq = op.requant
    nt = op.layout == "nt"
    kf, nf = op.inner // f.simd, op.cols // f.pe
    nb, wc = (f.pe, f.simd) if nt else (f.simd, f.pe)
    ga, gb, go = math.gcd(f.a_lanes, f.simd), math.gcd(f.b_lanes, wc), math.gcd(f.pe, f.out_lanes)
    a, b, out = op.in_type, op.in_type_b, op.out_type
    acc_bits = _acc_bits(op)
    sizes = [("HEADS", op.heads), ("INNER", op.inner), ("COLS", op.cols), ("TOKENS", op.tokens),
             ("LAYOUT", 0 if nt else 1), ("SIMD", f.simd), ("PE", f.pe), ("KF", kf), ("NF", nf),
             ("D", op.heads * kf * nf), ("NB", nb), ("WC", wc), ("FA", op.in_size), ("FB", op.in_size_b),
             ("FO", op.out_size), ("A_LANES", f.a_lanes), ("B_LANES", f.b_lanes), ("OUT_LANES", f.out_lanes),
             ("GA", ga), ("GB", gb), ("GO", go),
             ("LO_N", kf if nt else nf), ("LO_STRIDE", 1 if nt else kf), ("HI_STRIDE", nf * kf),
             ("G_STRIDE", kf if nt else 1), ("GROUPS", op.tokens // nb), ("B_SEQS", b_sequences),
             ("B_URAM", int(b_uram))]
    ints = [("A_BITS", a.bits), ("B_BITS", b.bits), ("OUT_BITS", out.bits), ("SHIFT", rq.shift)]
    wide = [("A_ZP", a.zero_point), ("B_ZP", b.zero_point), ("MULT", int(rq.multiplier[0])),
            ("ZP", rq.zero_point), ("LO", rq.lo), ("HI", rq.hi)]
    types = [("a_t", _ctype(a.signed, a.bits)), ("b_t", _ctype(b.signed, b.bits)),
             ("ac_t", _ctype(True, a.bits + 1)), ("bc_t", _ctype(True, b.bits + 1)),
             ("acc_t", _ctype(True, acc_bits)), ("mult_t", _ctype(False, rq.multiplier_bits)),
             ("out_t", _ctype(out.signed, out.bits))]
    product = max(acc_bits + rq.multiplier_bits + 1, rq.shift + 1) + 2   # einhls::requantize's widest
    widths = [f.a_lanes * a.bits, f.b_lanes * b.bits, f.out_lanes * out.bits, f.simd * a.bits,
              f.pe * out.bits, a.bits + b.bits + 2, product]
    summary = (f"attention product ({op.layout}) of {op.heads} heads, {op.tokens} tokens a sequence, "
               f"SIMD {f.simd} x PE {f.pe}, {op.heads * kf * nf} cycles per token, "
               f"{b_sequences} sequence{'s' if b_sequences > 1 else ''} of b buffered"
               + (" in UltraRAM" if b_uram else ""))
    return ActMatMulUnit(kind=op.kind, op=op.name, source=op.source, ns=ns, header=header, summary=summary,
                         function=HLS_FUNCTION, unsigned_constants=sizes, int_constants=ints,
                         wide_constants=[(n, int(v)) for n, v in wide], types=types, widths=widths)
