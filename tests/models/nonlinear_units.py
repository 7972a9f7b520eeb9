"""Stand-alone harness of the nonlinear units (tests/test_nonlinear_units.py): writes a C-sim project
(hls/ + tb/csim/) or an RTL project (rtl/ + tb/cocotb/) for one IntSoftmax / IntLayerNorm / IntGelu
with LANES elements per beat, runnable with codegen.verify.csim.run_csim and
codegen.verify.rtlsim.run_rtlsim.  The unit is not yet a graph op, so this module decides its
constants; the generated text comes from the templates in testbench/nonlinear/.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import jinja2

from codegen.emit.cocotb_tb import CONFIG, TB_DIR, TEST_MODULE
from codegen.emit.rtl import FILELIST, LINT_WAIVERS
from codegen.ir.nonlinear import IntGelu, IntLayerNorm, IntSoftmax, NonlinearOp
from codegen.ir.types import QType
from codegen.resources import resource_dir

KERNELS = {"softmax": ("einhls_softmax.h", "softmax_stream"),
           "layernorm": ("einhls_layernorm.h", "layernorm_stream"),
           "gelu": ("einhls_gelu.h", "gelu_stream")}
HLS_SUPPORT = ("einhls_requant.h", "einhls_stream.h")
PARAMS_HEADER = "nonlinear_params.h"


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("testbench") / "nonlinear")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, autoescape=False)


def _ctype(t: QType) -> str:
    return f"ap_{'int' if t.signed else 'uint'}<{t.bits}>"


def beats(op: NonlinearOp, lanes: int) -> int:
    return math.ceil(op.size / lanes)


def _lane_rows(values: tuple[int, ...], lanes: int) -> list[list[int]]:
    """[lane][beat] rows of a per-feature constant (padding features get 0)."""
    nb = math.ceil(len(values) / lanes)
    return [[values[b * lanes + lane] if b * lanes + lane < len(values) else 0 for b in range(nb)]
            for lane in range(lanes)]


def hls_params(op: NonlinearOp, lanes: int) -> dict:
    """Constants of the unit's C++ configuration struct (template testbench/nonlinear/params.h.j2)."""
    base_u = [("SIZE", op.size), ("LANES", lanes), ("BEATS", beats(op, lanes))]
    ints = [("IN_BITS", op.in_type.bits), ("OUT_BITS", op.out_type.bits)]
    types = [("in_t", _ctype(op.in_type)), ("out_t", _ctype(op.out_type))]
    arrays: list[tuple[str, str, list[list[int]]]] = []
    if isinstance(op, IntSoftmax):
        ints += [("F", op.frac_bits), ("EXP_SHIFT", op.exp_shift), ("K", op.div_shift),
                 ("E_BITS", op.exp_max.bit_length()), ("SUM_BITS", op.sum_bits), ("RECIP_BITS", op.recip_bits)]
        wide = [("EXP_MULT", op.exp_mult), ("POLY_A", op.poly_a), ("POLY_B", op.poly_b), ("POLY_C", op.poly_c),
                ("NUM", op.numerator), ("ZP", op.out_type.zero_point), ("LO", op.out_type.min),
                ("HI", op.out_type.max)]
    elif isinstance(op, IntLayerNorm):
        rq = op.requant
        ints += [("RB", op.recip_shift), ("NF", op.norm_frac), ("VAR_BITS", op.var_bits),
                 ("ROOT_BITS", op.root_bits), ("V_BITS", op.value_bits),
                 ("M_BITS", rq.multiplier_bits), ("SHIFT", rq.shift)]
        wide = [("EPS_Q", op.eps_q), ("MULT", rq.multiplier[0]), ("ZP", rq.zero_point), ("LO", rq.lo),
                ("HI", rq.hi)]
        types += [("g_t", f"ap_int<{op.gamma_bits}>"), ("b_t", f"ap_int<{op.beta_bits}>")]
        arrays = [("gamma", "cfg::g_t", _lane_rows(op.gamma, lanes)), ("beta", "cfg::b_t", _lane_rows(op.beta, lanes))]
    elif isinstance(op, IntGelu):
        rq = op.requant
        ints += [("F", op.frac_bits), ("Q_SHIFT", op.q_shift), ("V_BITS", op.value_bits),
                 ("M_BITS", rq.multiplier_bits), ("SHIFT", rq.shift)]
        wide = [("ZP_IN", op.in_type.zero_point), ("Q_MULT", op.q_mult), ("POLY_A", op.poly_a),
                ("POLY_B", op.poly_b), ("MULT", rq.multiplier[0]), ("ZP", rq.zero_point), ("LO", rq.lo),
                ("HI", rq.hi)]
    else:
        raise TypeError(f"not a nonlinear unit: {type(op).__name__}")
    return {"kind": op.kind, "header": PARAMS_HEADER, "unsigned_constants": base_u, "int_constants": ints,
            "wide_constants": wide, "types": types, "arrays": arrays}


def emit_csim_project(op: NonlinearOp, lanes: int, out: Path) -> None:
    """OUT/hls (kernel headers, the unit's constants) and OUT/tb/csim (the testbench main)."""
    out = Path(out)
    hls, tb = out / "hls", out / "tb" / "csim"
    for folder in (hls, tb):
        folder.mkdir(parents=True, exist_ok=True)
    kernel, function = KERNELS[op.kind]
    for header in (kernel, *HLS_SUPPORT):
        shutil.copyfile(resource_dir("hls_kernels") / header, hls / header)
    params = hls_params(op, lanes)
    env = _env()
    (hls / PARAMS_HEADER).write_text(env.get_template("params.h.j2").render(**params))
    (tb / "nonlinear_unit.cpp").write_text(env.get_template("nonlinear_unit.cpp.j2").render(
        kind=op.kind, kernel=kernel, header=PARAMS_HEADER, function=function,
        array_args=[name for name, _, _ in params["arrays"]]))
