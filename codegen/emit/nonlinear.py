"""Unit parameters of the Softmax, LayerNorm and GELU graph ops for both back ends.

Python decides every number; the Verilog units are ``rtl_kernels/einhls_{softmax,layernorm,gelu}.v``
and the HLS ones ``hls_kernels/einhls_{softmax,layernorm,gelu}.h`` (configured through
``templates/hls/params_nonlinear.h.j2``).  Each unit handles one token per call with one lane
count on its input and output; LayerNorm's gamma and beta are ROMs of one word per beat (lane 0
lowest, the layout of every einhls ROM).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import EinhlsError
from ..ir.nonlinear import IntGelu, IntLayerNorm, IntSoftmax, NonlinearGraphOp
from ..ir.types import QType
from .widths import requant_product_bits

if TYPE_CHECKING:
    from .rtl import MemFile, Param

RTL_MODULES = {"softmax": "einhls_softmax", "layernorm": "einhls_layernorm", "gelu": "einhls_gelu"}
HLS_FUNCTIONS = {"softmax": "softmax_stream", "layernorm": "layernorm_stream", "gelu": "gelu_stream"}
HLS_HEADERS = {"softmax": "einhls_softmax.h", "layernorm": "einhls_layernorm.h", "gelu": "einhls_gelu.h"}


def _check_lanes(op: NonlinearGraphOp, lanes: int) -> int:
    if isinstance(lanes, bool) or not isinstance(lanes, numbers.Integral) or lanes < 1:
        raise EinhlsError(f"lane count {lanes!r} must be a positive integer", node=op.name)
    return int(lanes)


def rtl_unit(index: int, op: NonlinearGraphOp, lanes: int) -> tuple[str, list["Param"], list["MemFile"]]:
    """(module, parameter overrides, ROM images) of the Verilog unit of ``op`` at ``lanes`` per beat."""
    from .rtl import Param, _lane_words

    lanes = _check_lanes(op, lanes)
    unit = op.unit
    params = [Param("SIZE", unit.size), Param("LANES", lanes), Param("IN_BITS", unit.in_type.bits),
              Param("IN_SIGNED", int(unit.in_type.signed))]
    mems = []
    if isinstance(unit, IntSoftmax):
        params += [Param("F", unit.frac_bits), Param("EXP_MULT", unit.exp_mult, "u64"),
                   Param("EXP_SHIFT", unit.exp_shift), Param("POLY_A", unit.poly_a, "u64"),
                   Param("POLY_B", unit.poly_b, "u64"), Param("POLY_C", unit.poly_c, "u64"),
                   Param("E_BITS", unit.exp_max.bit_length()), Param("SUM_BITS", unit.sum_bits),
                   Param("NUM", unit.numerator, "u64"), Param("NUM_BITS", unit.numerator.bit_length()),
                   Param("RECIP_BITS", unit.recip_bits), Param("K", unit.div_shift),
                   Param("ZP", unit.out_type.zero_point, "s64"), Param("LO", unit.out_type.min, "s64"),
                   Param("HI", unit.out_type.max, "s64"), Param("OUT_BITS", unit.out_type.bits)]
    elif isinstance(unit, IntLayerNorm):
        rq = unit.requant
        gamma = _lane_words(f"layer{index}_gamma.mem", _array(unit.gamma), lanes, unit.gamma_bits)
        beta = _lane_words(f"layer{index}_beta.mem", _array(unit.beta), lanes, unit.beta_bits)
        mems = [gamma, beta]
        params += [Param("EPS_Q", unit.eps_q, "s64"), Param("RB", unit.recip_shift), Param("NF", unit.norm_frac),
                   Param("SQ", unit.sqrt_frac), Param("ROOT_BITS", unit.root_bits),
                   Param("G_BITS", unit.gamma_bits), Param("B_BITS", unit.beta_bits),
                   Param("GAMMA_FILE", gamma.name, "str"), Param("BETA_FILE", beta.name, "str"),
                   Param("N_BITS", unit.norm_bits), Param("V_BITS", unit.value_bits),
                   Param("M_BITS", rq.multiplier_bits), Param("MULT", int(rq.multiplier[0]), "u64"),
                   Param("SHIFT", rq.shift), Param("ZP", rq.zero_point, "s64"), Param("LO", rq.lo, "s64"),
                   Param("HI", rq.hi, "s64"), Param("OUT_BITS", unit.out_type.bits)]
    elif isinstance(unit, IntGelu):
        rq = unit.requant
        params += [Param("ZP_IN", unit.in_type.zero_point, "s64"), Param("Q_MULT", unit.q_mult, "u64"),
                   Param("Q_SHIFT", unit.q_shift), Param("F", unit.frac_bits),
                   Param("POLY_A", unit.poly_a, "u64"), Param("POLY_B", unit.poly_b, "u64"),
                   Param("V_BITS", unit.value_bits), Param("M_BITS", rq.multiplier_bits),
                   Param("MULT", int(rq.multiplier[0]), "u64"), Param("SHIFT", rq.shift),
                   Param("ZP", rq.zero_point, "s64"), Param("LO", rq.lo, "s64"), Param("HI", rq.hi, "s64"),
                   Param("OUT_BITS", unit.out_type.bits)]
    else:
        raise EinhlsError(f"no nonlinear unit for IR op kind {op.kind!r}", node=op.name)
    return RTL_MODULES[op.kind], params, mems


def _array(values: tuple[int, ...]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _ctype(t: QType) -> str:
    return f"ap_{'int' if t.signed else 'uint'}<{t.bits}>"


def _lane_rows(values: tuple[int, ...], lanes: int) -> list[list[int]]:
    """[lane][beat] rows of a per-feature constant (padding features get 0)."""
    beats = math.ceil(len(values) / lanes)
    return [[values[b * lanes + lane] if b * lanes + lane < len(values) else 0 for b in range(beats)]
            for lane in range(lanes)]


@dataclass
class ConstantsUnit:
    """A unit configured by a cfg struct of constants and types (templates/hls/params_nonlinear.h.j2)
    and called as ``einhls::function<ns::cfg>(...)`` in the top."""
    kind: str
    op: str
    source: str
    ns: str
    header: str
    summary: str
    function: str
    unsigned_constants: list[tuple[str, int]]
    int_constants: list[tuple[str, int]]
    wide_constants: list[tuple[str, int]]
    types: list[tuple[str, str]]
    arrays: list[tuple[str, str, list[list[int]]]] = field(default_factory=list)

    @property
    def array_names(self) -> list[str]:
        return [name for name, _, _ in self.arrays]


@dataclass
class NonlinearUnit(ConstantsUnit):
    """Softmax, LayerNorm or GELU at ``lanes`` codes per beat."""
    lanes: int = field(default=1, kw_only=True)
    calls_per_token: int = 1   # a softmax over attention heads handles one row of L per call

    def internal_widths(self) -> list[int]:
        """The lane words, 64-bit intermediates, each kind's widest product and requantization."""
        c = dict(self.int_constants)
        widths = [self.lanes * c["IN_BITS"], self.lanes * c["OUT_BITS"], 65]
        if self.kind == "softmax":
            return widths + [2 * c["F"] + 8, requant_product_bits(c["E_BITS"] + 1, c["RECIP_BITS"], c["K"])]
        if self.kind == "layernorm":
            return widths + [2 * c["ROOT_BITS"] + 1, requant_product_bits(c["V_BITS"], c["M_BITS"], c["SHIFT"])]
        return widths + [2 * c["F"] + 8, requant_product_bits(c["V_BITS"], c["M_BITS"], c["SHIFT"])]


def hls_unit(op: NonlinearGraphOp, lanes: int, ns: str, header: str) -> NonlinearUnit:
    """The C++ configuration of ``op``'s unit at ``lanes`` elements per beat."""
    lanes = _check_lanes(op, lanes)
    if not ns.isidentifier():
        raise EinhlsError(f"namespace {ns!r} is not a C++ identifier", node=op.name)
    unit = op.unit
    base = [("SIZE", unit.size), ("LANES", lanes), ("BEATS", math.ceil(unit.size / lanes))]
    ints = [("IN_BITS", unit.in_type.bits), ("OUT_BITS", unit.out_type.bits)]
    types = [("in_t", _ctype(unit.in_type)), ("out_t", _ctype(unit.out_type))]
    arrays: list[tuple[str, str, list[list[int]]]] = []
    if isinstance(unit, IntSoftmax):
        ints += [("F", unit.frac_bits), ("EXP_SHIFT", unit.exp_shift), ("K", unit.div_shift),
                 ("E_BITS", unit.exp_max.bit_length()), ("SUM_BITS", unit.sum_bits),
                 ("RECIP_BITS", unit.recip_bits), ("NUM_BITS", unit.numerator.bit_length())]
        wide = [("EXP_MULT", unit.exp_mult), ("POLY_A", unit.poly_a), ("POLY_B", unit.poly_b),
                ("POLY_C", unit.poly_c), ("NUM", unit.numerator), ("ZP", unit.out_type.zero_point),
                ("LO", unit.out_type.min), ("HI", unit.out_type.max)]
        summary = f"Softmax over {unit.size} elements, {lanes} per beat"
    elif isinstance(unit, IntLayerNorm):
        rq = unit.requant
        ints += [("RB", unit.recip_shift), ("NF", unit.norm_frac), ("SQ", unit.sqrt_frac),
                 ("VAR_BITS", unit.var_bits), ("ROOT_BITS", unit.root_bits), ("V_BITS", unit.value_bits),
                 ("M_BITS", rq.multiplier_bits), ("SHIFT", rq.shift)]
        wide = [("EPS_Q", unit.eps_q), ("MULT", int(rq.multiplier[0])), ("ZP", rq.zero_point), ("LO", rq.lo),
                ("HI", rq.hi)]
        types += [("g_t", f"ap_int<{unit.gamma_bits}>"), ("b_t", f"ap_int<{unit.beta_bits}>")]
        arrays = [("gamma", "cfg::g_t", _lane_rows(unit.gamma, lanes)),
                  ("beta", "cfg::b_t", _lane_rows(unit.beta, lanes))]
        summary = f"LayerNorm over {unit.size} features, {lanes} per beat"
    elif isinstance(unit, IntGelu):
        rq = unit.requant
        ints += [("F", unit.frac_bits), ("Q_SHIFT", unit.q_shift), ("V_BITS", unit.value_bits),
                 ("M_BITS", rq.multiplier_bits), ("SHIFT", rq.shift)]
        wide = [("ZP_IN", unit.in_type.zero_point), ("Q_MULT", unit.q_mult), ("POLY_A", unit.poly_a),
                ("POLY_B", unit.poly_b), ("MULT", int(rq.multiplier[0])), ("ZP", rq.zero_point), ("LO", rq.lo),
                ("HI", rq.hi)]
        summary = f"GELU of {unit.size} elements, {lanes} per beat"
    else:
        raise EinhlsError(f"no nonlinear unit for IR op kind {op.kind!r}", node=op.name)
    for name, value in wide:
        if not -(1 << 63) <= int(value) < (1 << 63):
            raise EinhlsError(f"constant {name}={value} does not fit a long long", node=op.name)
    return NonlinearUnit(kind=op.kind, op=op.name, source=op.source, ns=ns, header=header, summary=summary,
                         function=HLS_FUNCTIONS[op.kind], lanes=lanes, unsigned_constants=base,
                         int_constants=ints, wide_constants=[(n, int(v)) for n, v in wide], types=types,
                         arrays=arrays)
