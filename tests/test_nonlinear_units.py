"""Golden tests of the nonlinear units alone: the HLS C++ (hls_kernels/einhls_{softmax,layernorm,
gelu}.h, C-sim with g++) and the Verilog (rtl_kernels/einhls_{softmax,layernorm,gelu}.v, RTL sim
with Verilator through cocotb, back to back and with random pauses) must equal the PyTorch integer
reference (codegen/ir/nonlinear.py) element by element, extreme rows included
(tests/models/nonlinear_units.py: cases and harness).  Each RTL case takes about 25 s; one case per
unit runs only with -m slow.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.nonlinear_units import (emit_csim_project, emit_rtl_project, beats, unit_tokens,  # noqa: E402
                                    unit_cases)

from codegen.emit.rtl import LINT_WAIVERS, rtl_sources  # noqa: E402
from codegen.schedule.nonlinear_cost import nonlinear_cost  # noqa: E402
from codegen.verify.csim import ap_types_dir, run_csim  # noqa: E402
from codegen.verify.rtlsim import run_rtlsim  # noqa: E402

CASES = unit_cases()
SLOW_RTL = {"softmax_uint4_zp_c5_l1_u16", "layernorm_uint8_zp_c32_l8_pos_gamma", "layernorm_int16_c24_l3_tiny_eps",
            "gelu_int4_c7_l7_u4"}
CSIM_TOKENS = 400
RTL_TOKENS = 40

needs_csim = [pytest.mark.csim,
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
              pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")]


def expected_for(op, tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = unit_tokens(op, tokens, seed)
    return x.numpy(), op.reference(x).numpy()


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_csim) for n in CASES])
def test_csim_matches_reference(name: str, tmp_path: Path) -> None:
    factory, lanes = CASES[name]
    op = factory()
    emit_csim_project(op, lanes, tmp_path)
    inputs, expected = expected_for(op, CSIM_TOKENS, seed=7)
    result = run_csim(tmp_path, inputs, expected, tmp_path / "work")
    assert result.passed, result.line()
    np.testing.assert_array_equal(result.outputs, expected)
    # the cases must exercise the output range, not only one corner of it
    assert len(np.unique(expected)) > 2
    # the cycle check (hls_kernels/einhls_csim.h): every process once per token, and the slowest
    # one's loop iterations per token (the interval at II = 1) within 10% of the Verilog's interval
    # (codegen/schedule/nonlinear_cost.py, which RTL simulation measures below): the stages work
    # on consecutive tokens as the Verilog's do
    measured = result.measured
    assert measured["processes"] and all(p["calls"] == CSIM_TOKENS for p in measured["processes"]), measured
    cost = nonlinear_cost(op, lanes, "DSP48E2")
    assert measured["interval_cycles_ii1"] <= 1.1 * cost.ii, (measured["slowest_process"],
                                                             measured["interval_cycles_ii1"], cost.ii)


def _rtl_params():
    return [pytest.param(n, marks=[pytest.mark.rtl] + ([pytest.mark.slow] if n in SLOW_RTL else []))
            for n in CASES]


def lint(project: Path) -> str:
    """verilator --lint-only -Wall of the generated project: '' when clean."""
    from codegen.verify.tools import verilator_bin

    sources = rtl_sources(project)
    waivers = sources[-1].parent / LINT_WAIVERS
    done = subprocess.run([str(verilator_bin() / "verilator"), "--lint-only", "-Wall", str(waivers),
                           *map(str, sources), "--top-module", sources[-1].stem],
                          capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stderr[-3000:]


@pytest.mark.parametrize("name", _rtl_params())
def test_rtl_matches_reference(name: str, tmp_path: Path) -> None:
    factory, lanes = CASES[name]
    op = factory()
    emit_rtl_project(op, lanes, tmp_path)
    assert lint(tmp_path) == ""
    inputs, expected = expected_for(op, RTL_TOKENS, seed=9)
    result = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work", seed=3)
    assert result.passed, result.line()
    np.testing.assert_array_equal(result.outputs, expected)
    # the cycle model of codegen/schedule/nonlinear_cost.py is the state machines' count
    cost = nonlinear_cost(op, lanes, "DSP48E2")
    assert result.measured["interval_cycles"] == cost.ii, (result.measured, cost.ii)
    assert result.measured["latency_cycles"] == cost.latency, (result.measured, cost.latency)
    if op.kind == "gelu" or name.endswith("stream_bound"):
        assert cost.ii == beats(op, lanes)      # one beat per cycle


@pytest.mark.rtl
def test_rtl_corrupted_gamma_is_caught(tmp_path: Path) -> None:
    """Flip the bits of gamma[0] in the ROM image (read at run time): RTL sim must report a
    mismatch, at feature 0."""
    factory, lanes = CASES["layernorm_int8_c13_l4"]
    op = factory()
    emit_rtl_project(op, lanes, tmp_path)
    mem = tmp_path / "rtl" / "ln_gamma.mem"
    words = mem.read_text().split()
    words[0] = f"{int(words[0], 16) ^ 0x7F00:0{len(words[0])}x}"
    mem.write_text("".join(w + "\n" for w in words))
    inputs, expected = expected_for(op, 12, seed=1)
    result = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work")
    assert result.error is None, result.error
    assert result.mismatch is not None and result.mismatch.element == 0, result.line()
