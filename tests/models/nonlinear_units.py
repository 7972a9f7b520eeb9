"""Stand-alone harness of the nonlinear units (tests/test_nonlinear_units.py): writes a C-sim project
(hls/ + tb/csim/) or an RTL project (rtl/ + tb/cocotb/) for one IntSoftmax / IntLayerNorm / IntGelu
with LANES elements per beat, runnable with codegen.verify.csim.run_csim and
codegen.verify.rtlsim.run_rtlsim.  This module decides the unit's constants on its own (the
compiler's codegen/emit/nonlinear.py must agree: tests/test_xformer_islands.py checks it); the
generated text comes from the templates in testbench/nonlinear/.
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
HLS_SUPPORT = ("einhls_requant.h", "einhls_stream.h", "einhls_csim.h")
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
                 ("E_BITS", op.exp_max.bit_length()), ("SUM_BITS", op.sum_bits), ("RECIP_BITS", op.recip_bits),
                 ("NUM_BITS", op.numerator.bit_length())]
        wide = [("EXP_MULT", op.exp_mult), ("POLY_A", op.poly_a), ("POLY_B", op.poly_b), ("POLY_C", op.poly_c),
                ("NUM", op.numerator), ("ZP", op.out_type.zero_point), ("LO", op.out_type.min),
                ("HI", op.out_type.max)]
    elif isinstance(op, IntLayerNorm):
        rq = op.requant
        ints += [("RB", op.recip_shift), ("NF", op.norm_frac), ("SQ", op.sqrt_frac), ("VAR_BITS", op.var_bits),
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


# --- RTL -------------------------------------------------------------------------------------

RTL_MODULES = {"softmax": "einhls_softmax", "layernorm": "einhls_layernorm", "gelu": "einhls_gelu"}
RTL_SUPPORT = ("einhls_requant.v",)
TOP = "nonlinear_top"


def _mem_words(values: list[int], lanes: int, bits: int) -> list[str]:
    """$readmemh words: one per beat, LANES values of BITS bits, lane 0 in the low bits."""
    mask = (1 << bits) - 1
    nb = math.ceil(len(values) / lanes)
    words = []
    for b in range(nb):
        word = 0
        for lane in range(lanes):
            e = b * lanes + lane
            if e < len(values):
                word |= (int(values[e]) & mask) << (lane * bits)
        words.append(f"{word:0{math.ceil(lanes * bits / 4)}x}")
    return words


def _v64(value: int) -> str:
    return f"64'sd{value}" if value >= 0 else f"-64'sd{-value}"


def rtl_params(op: NonlinearOp, lanes: int) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Verilog parameters of the unit and its ROM images (file name -> words)."""
    common = [("SIZE", str(op.size)), ("LANES", str(lanes)), ("IN_BITS", str(op.in_type.bits)),
              ("IN_SIGNED", str(int(op.in_type.signed)))]
    mems: dict[str, list[str]] = {}
    if isinstance(op, IntSoftmax):
        params = common + [
            ("F", str(op.frac_bits)), ("EXP_MULT", _v64(op.exp_mult)), ("EXP_SHIFT", str(op.exp_shift)),
            ("POLY_A", _v64(op.poly_a)), ("POLY_B", _v64(op.poly_b)), ("POLY_C", _v64(op.poly_c)),
            ("E_BITS", str(op.exp_max.bit_length())), ("SUM_BITS", str(op.sum_bits)),
            ("NUM", _v64(op.numerator)), ("NUM_BITS", str(op.numerator.bit_length())),
            ("RECIP_BITS", str(op.recip_bits)), ("K", str(op.div_shift)),
            ("ZP", _v64(op.out_type.zero_point)), ("LO", _v64(op.out_type.min)), ("HI", _v64(op.out_type.max)),
            ("OUT_BITS", str(op.out_type.bits))]
    elif isinstance(op, IntLayerNorm):
        rq = op.requant
        mems = {"ln_gamma.mem": _mem_words(list(op.gamma), lanes, op.gamma_bits),
                "ln_beta.mem": _mem_words(list(op.beta), lanes, op.beta_bits)}
        params = common + [
            ("EPS_Q", _v64(op.eps_q)), ("RB", str(op.recip_shift)), ("NF", str(op.norm_frac)),
            ("SQ", str(op.sqrt_frac)), ("ROOT_BITS", str(op.root_bits)),
            ("G_BITS", str(op.gamma_bits)), ("B_BITS", str(op.beta_bits)),
            ("GAMMA_FILE", '"ln_gamma.mem"'), ("BETA_FILE", '"ln_beta.mem"'),
            ("N_BITS", str(op.norm_bits)), ("V_BITS", str(op.value_bits)), ("M_BITS", str(rq.multiplier_bits)),
            ("MULT", _v64(rq.multiplier[0])), ("SHIFT", str(rq.shift)), ("ZP", _v64(rq.zero_point)),
            ("LO", _v64(rq.lo)), ("HI", _v64(rq.hi)), ("OUT_BITS", str(op.out_type.bits))]
    elif isinstance(op, IntGelu):
        rq = op.requant
        params = common + [
            ("ZP_IN", _v64(op.in_type.zero_point)), ("Q_MULT", _v64(op.q_mult)), ("Q_SHIFT", str(op.q_shift)),
            ("F", str(op.frac_bits)), ("POLY_A", _v64(op.poly_a)), ("POLY_B", _v64(op.poly_b)),
            ("V_BITS", str(op.value_bits)), ("M_BITS", str(rq.multiplier_bits)), ("MULT", _v64(rq.multiplier[0])),
            ("SHIFT", str(rq.shift)), ("ZP", _v64(rq.zero_point)), ("LO", _v64(rq.lo)), ("HI", _v64(rq.hi)),
            ("OUT_BITS", str(op.out_type.bits))]
    else:
        raise TypeError(f"not a nonlinear unit: {type(op).__name__}")
    return params, mems


def rtl_cycles_bound(op: NonlinearOp, lanes: int) -> int:
    """A generous bound of one token's cycles in the unit (for the test bench's time-outs)."""
    nb = beats(op, lanes)
    return 3 * nb + 160


def _format(t: QType, size: int, lanes: int) -> dict:
    width = lanes * t.bits
    return {"size": size, "bits": t.bits, "signed": t.signed, "lanes": lanes, "beats": math.ceil(size / lanes),
            "tdata_bits": 8 * math.ceil(width / 8)}


def emit_rtl_project(op: NonlinearOp, lanes: int, out: Path) -> None:
    """OUT/rtl (the unit, einhls_requant, the top, ROM images, filelist) and OUT/tb/cocotb."""
    out = Path(out)
    rtl = out / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    rtl.mkdir(parents=True)
    module = RTL_MODULES[op.kind]
    kernels = resource_dir("rtl_kernels")
    for name in (*RTL_SUPPORT, f"{module}.v", LINT_WAIVERS):
        shutil.copyfile(kernels / name, rtl / name)
    params, mems = rtl_params(op, lanes)
    for name, words in mems.items():
        (rtl / name).write_text("".join(w + "\n" for w in words))
    in_fmt, out_fmt = _format(op.in_type, op.size, lanes), _format(op.out_type, op.size, lanes)
    nb = beats(op, lanes)
    (rtl / f"{TOP}.v").write_text(_env().get_template("top.v.j2").render(
        top=TOP, module=module, params=params, in_width=lanes * op.in_type.bits,
        out_width=lanes * op.out_type.bits, in_tdata=in_fmt["tdata_bits"], out_tdata=out_fmt["tdata_bits"],
        beats=nb, beat_bits=max(1, (nb - 1).bit_length())))
    (rtl / FILELIST).write_text("".join(f"{name}\n" for name in (*RTL_SUPPORT, f"{module}.v", f"{TOP}.v")))
    tb = out / TB_DIR
    tb.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resource_dir("testbench") / "cocotb" / f"{TEST_MODULE}.py", tb / f"{TEST_MODULE}.py")
    bound = rtl_cycles_bound(op, lanes)
    (tb / CONFIG).write_text(json.dumps({"top": TOP, "input": in_fmt, "output": out_fmt,
                                         "cycles_per_frame_bound": bound, "timeout_cycles": 1000 + 4 * bound},
                                        indent=2, sort_keys=True) + "\n")


# --- the unit-test cases ---------------------------------------------------------------------

def _s(bits: int, scale: float, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def _u(bits: int, scale: float, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def _ln(size: int, in_type: QType, out_type: QType, seed: int, positive_gamma: bool = False,
        eps: float = 1e-5) -> NonlinearOp:
    from codegen.ir.nonlinear import make_layernorm
    import numpy as np

    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.2, 2.0, size) if positive_gamma else rng.uniform(-2.0, 2.0, size)
    return make_layernorm(size, in_type, out_type, gamma, rng.uniform(-1.5, 1.5, size), eps)


def unit_cases() -> dict[str, tuple]:
    """name -> (factory of the op, lanes).  Sizes that are not multiples of the lanes, 4/8/16-bit
    inputs, signed and unsigned, zero points, output scales that are not powers of two."""
    from codegen.ir.nonlinear import make_gelu, make_softmax

    return {
        "softmax_int8_c13_l4": (lambda: make_softmax(13, _s(8, 0.1)), 4),
        "softmax_int16_c40_l8_u8_1over255": (lambda: make_softmax(40, _s(16, 2.0 ** -9), _u(8, 1 / 255)), 8),
        "softmax_uint4_zp_c5_l1_u16": (lambda: make_softmax(5, _u(4, 0.6, zp=7), _u(16, 2.0 ** -15)), 1),
        "layernorm_int8_c13_l4": (lambda: _ln(13, _s(8, 0.1), _s(8, 0.05), 1), 4),
        "layernorm_uint8_zp_c32_l8_pos_gamma": (lambda: _ln(32, _u(8, 0.02, zp=128), _u(8, 0.03, zp=120), 2,
                                                            positive_gamma=True), 8),
        "layernorm_int8_c96_l1_stream_bound": (lambda: _ln(96, _s(8, 0.05), _s(8, 1 / 32), 4), 1),
        "layernorm_int16_c24_l3_tiny_eps": (lambda: _ln(24, _s(16, 2.0 ** -8), _s(16, 2.0 ** -10), 3, eps=1e-12), 3),
        "gelu_uint8_zp_c13_l4": (lambda: make_gelu(13, _u(8, 0.05, zp=100), _s(8, 0.03)), 4),
        "gelu_int16_c32_l8": (lambda: make_gelu(32, _s(16, 2.0 ** -10), _s(16, 2.0 ** -11)), 8),
        "gelu_int4_c7_l7_u4": (lambda: make_gelu(7, _s(4, 0.5), _u(4, 0.3, zp=2)), 7),
    }


def unit_tokens(op: NonlinearOp, count: int, seed: int):
    """int64 [count, size] codes: extreme rows first (all minimum, all maximum, alternating, all
    equal to the zero point, one maximum among minima), then uniformly random rows."""
    import torch

    t = op.in_type
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(t.min, t.max + 1, (count, op.size), generator=gen, dtype=torch.int64)
    x[0] = t.min
    x[1] = t.max
    x[2, 0::2], x[2, 1::2] = t.min, t.max
    x[3] = t.zero_point
    x[4] = t.min
    x[4, op.size // 2] = t.max
    return x
