"""Golden tests of the Verilog butterfly unit (rtl_kernels/einhls_butterfly.v) on its own: RTL
simulation (Verilator through cocotb) must equal the PyTorch integer reference, back to back and
with random pauses, and the measured cycles per frame must match the schedule model
(codegen/schedule/butterfly.py), within 10% of the roofline L * n / (2P) for n >= 256.
The designs (tests/models/butterfly_cases.py) cover n = 8..1024, P = 1..n/2 and 4/8/16 bits.
"""
from __future__ import annotations

import json
import math
import subprocess
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.butterfly_cases import CASES, SLOW  # noqa: E402

from codegen.emit.butterfly import UNIT_RTL_KERNELS, emit_unit_rtl  # noqa: E402
from codegen.emit.rtl import LINT_WAIVERS, rtl_sources  # noqa: E402
from codegen.ir.butterfly import sylvester_hadamard  # noqa: E402
from codegen.ir.reference import random_inputs, run_reference  # noqa: E402
from codegen.resources import resource_dir  # noqa: E402
from codegen.schedule.butterfly import timing  # noqa: E402
from codegen.verify.rtlsim import run_rtlsim  # noqa: E402

pytestmark = pytest.mark.rtl

VECTORS = 48


def measured_interval(work: Path, contexts: int) -> float:
    """Mean cycles between frames in the no-pause phase, over a whole number of context rounds
    (with several frames in flight, outputs come in bursts; the median would hide that)."""
    gaps = json.loads((work / "rtlsim_run" / "results.json").read_text())["frame_gaps"]
    warm, span = 2 * contexts + 2, 4 * contexts
    window = gaps[warm:warm + span] if len(gaps) >= warm + span else gaps[len(gaps) // 3:]
    return sum(window) / len(window)


def check_case(name: str, factory, tmp_path: Path) -> None:
    design = factory()
    op = design.graph.ops[0]
    cfg = emit_unit_rtl(design, tmp_path)
    vectors = max(VECTORS, 2 * (2 * cfg.contexts + 2 + 4 * cfg.contexts))
    inputs = random_inputs(design.graph, vectors, seed=11)
    expected = run_reference(design.graph, inputs)
    if "identity" in name:
        np.testing.assert_array_equal(expected, inputs)
    if "hadamard" in name:
        np.testing.assert_array_equal(expected, inputs @ sylvester_hadamard(op.n).T)
    result = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work", seed=5)
    assert result.passed, result.line()
    np.testing.assert_array_equal(result.outputs, expected)
    tm = timing(op, cfg.units)
    s = design.schedule(op)
    stream = max(math.ceil(op.in_size / s.in_lanes), math.ceil(op.out_size / s.out_lanes))
    want = max(tm.compute, stream)
    got = measured_interval(tmp_path / "work", cfg.contexts)
    assert abs(got - want) <= max(1.0, 0.05 * want), (name, got, want, tm)
    if op.n >= 256 and tm.compute >= stream:
        assert got <= 1.10 * tm.roofline, (name, got, tm.roofline)
    if name == "n8_p4_int4":
        check_corrupted_twiddle(design, tmp_path)


def check_corrupted_twiddle(design, tmp_path: Path) -> None:
    """Flip bits of the first twiddle of stage 0 in the ROM image (read at run time: the build is
    reused): the simulation must report a mismatch."""
    mem = tmp_path / "rtl" / "layer0_twiddle.mem"
    words = mem.read_text().split()
    words[0] = f"{int(words[0], 16) ^ 0x5:0{len(words[0])}x}"
    mem.write_text("".join(w + "\n" for w in words))
    inputs = random_inputs(design.graph, 8, seed=1)
    result = run_rtlsim(tmp_path, inputs, run_reference(design.graph, inputs), tmp_path / "work")
    assert result.error is None and result.mismatch is not None, result.line()


@pytest.mark.parametrize("name", CASES)
def test_butterfly_unit(name: str, tmp_path: Path) -> None:
    check_case(name, CASES[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_butterfly_unit_slow(name: str, tmp_path: Path) -> None:
    check_case(name, SLOW[name], tmp_path)


LINT_PARAMS = [[], ["-GP=4", "-GN=8", "-GCTX=2"], ["-GSTAGES=1", "-GN=2", "-GK=2", "-GM=2", "-GCTX=8"],
               ["-GN=64", "-GP=4", "-GSTACKS=3", "-GK=50", "-GM=150", "-GSTAGES=6", "-GIN_LANES=3",
                "-GOUT_LANES=5", "-GMUL_RQ=1", "-GM_BITS=12", "-GHAS_BIAS=1", "-GSH_BITS=5", "-GIN_SIGNED=0",
                "-GCTX=4", "-GGAP_BITS=3"],
               ["-GMUL_LUT=1", "-GT_BITS=3", "-GW_BITS=4", "-GIN_BITS=4", "-GOUT_BITS=4"]]


def test_kernel_lint_clean() -> None:
    verilator = shutil.which("verilator")
    if verilator is None:
        pytest.skip("verilator not on PATH")
    kernels = resource_dir("rtl_kernels")
    files = [str(kernels / f"{m}.v") for m in UNIT_RTL_KERNELS]
    for params in LINT_PARAMS:
        proc = subprocess.run([verilator, "--lint-only", "-Wall", str(kernels / LINT_WAIVERS), *files,
                               "--top-module", "einhls_butterfly", *params], capture_output=True, text=True)
        assert proc.returncode == 0, (params, proc.stderr)


def test_generated_top_lint_clean(tmp_path: Path) -> None:
    verilator = shutil.which("verilator")
    if verilator is None:
        pytest.skip("verilator not on PATH")
    design = CASES["n64_p32_rect_stacks"]()
    emit_unit_rtl(design, tmp_path)
    proc = subprocess.run([verilator, "--lint-only", "-Wall", str(tmp_path / "rtl" / LINT_WAIVERS),
                           *map(str, rtl_sources(tmp_path)), "--top-module", design.top_name],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
