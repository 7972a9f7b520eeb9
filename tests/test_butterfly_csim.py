"""Golden tests of the HLS C++ butterfly unit (hls_kernels/einhls_butterfly.h) on its own:
C-simulation with g++ and the ap_types headers must equal the PyTorch integer reference on many
vectors (first all-minimum, then all-maximum inputs), for the same designs as the RTL tests
(tests/models/butterfly_cases.py) plus the slow ones, which are cheap in C-sim.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.butterfly_cases import CASES, SLOW  # noqa: E402

from codegen.emit.butterfly import StageGroup, emit_unit_csim  # noqa: E402
from codegen.ir.butterfly import sylvester_hadamard  # noqa: E402
from codegen.ir.reference import random_inputs, run_reference  # noqa: E402
from codegen.schedule.butterfly import stage_gaps, timing  # noqa: E402
from codegen.verify.csim import (CSIM_DEFINES, CXX, CXXFLAGS, CYCLES_ENV, ap_types_dir, read_cycles,  # noqa: E402
                                 read_vectors, write_vectors)

pytestmark = [pytest.mark.csim,
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
              pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")]

VECTORS = 200
# CSIM_DEFINES: cycle counting and the hardware rules C-sim cannot see alone (einhls_csim.h): a
# working-buffer read closer to its write than the DEPENDENCE distance stops the binary.


def _build(directory: Path) -> Path:
    binary = directory / "butterfly_unit"
    proc = subprocess.run([CXX, *CXXFLAGS, *CSIM_DEFINES, "-isystem", str(ap_types_dir()), "-I", str(directory),
                           str(directory / "butterfly_unit.cpp"), "-o", str(binary)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return binary


def one_group_at_the_rtl_units(design) -> tuple[int, list[StageGroup]]:
    """The Verilog's P and every stage in one process: one frame in flight (gaps idle)."""
    op = design.graph.ops[0]
    s = design.schedule(op)
    tm = timing(op, s.pe)
    return s.pe, [StageGroup(0, op.stages, op.stages * tm.stage_cycles + sum(tm.gaps))]


def _run_unit(name: str, tmp_path: Path, vectors: int, seed: int, one_group: bool = False):
    """(design, unit, inputs, outputs, cycles) of the unit C-sim on random vectors."""
    design = (CASES.get(name) or SLOW[name])()
    op = design.graph.ops[0]
    unit = emit_unit_csim(design, tmp_path, one_group_at_the_rtl_units(design) if one_group else None)
    binary = _build(tmp_path)
    inputs = random_inputs(design.graph, vectors, seed=seed)
    write_vectors(tmp_path / "inputs.txt", inputs)
    cycles = tmp_path / "cycles.tsv"
    proc = subprocess.run([str(binary), str(tmp_path / "inputs.txt"), str(tmp_path / "outputs.txt")],
                          capture_output=True, text=True, env={**os.environ, CYCLES_ENV: str(cycles)})
    assert proc.returncode == 0, proc.stderr
    return design, unit, inputs, read_vectors(tmp_path / "outputs.txt", op.out_size), read_cycles(cycles, vectors)


def _group_cycles(measured: dict, unit) -> list[dict]:
    """The compute processes, group 0 first."""
    found = {}
    for p in measured["processes"]:
        m = re.match(r"butterfly_compute<C = \w+::group(\d+)>", p["process"])
        if m:
            found[int(m.group(1))] = p
    assert sorted(found) == list(range(len(unit.groups))), measured["processes"]
    return [found[i] for i in sorted(found)]


@pytest.mark.parametrize("name,one_group", [*[(name, False) for name in [*CASES, *SLOW]], ("n8_p4_int4", True),
                                            ("n64_p32_rect_stacks", True)])
def test_butterfly_unit_csim(name: str, one_group: bool, tmp_path: Path) -> None:
    design, unit, inputs, outputs, measured = _run_unit(name, tmp_path, VECTORS, 12, one_group)
    op = design.graph.ops[0]
    expected = run_reference(design.graph, inputs)
    if "identity" in name:
        np.testing.assert_array_equal(expected, inputs)
    if "hadamard" in name:
        np.testing.assert_array_equal(expected, inputs @ sylvester_hadamard(op.n).T)
    np.testing.assert_array_equal(outputs, expected)
    # each group's issue loop: its stages' cycles plus the gaps between them, each frame
    ct = op.total // (2 * unit.c.units)
    gaps = stage_gaps(op.n, op.stacks, op.strides, unit.c.units)
    for group, process in zip(unit.groups, _group_cycles(measured, unit)):
        g = group.group
        assert process["calls"] == VECTORS
        assert process["cycles_per_frame"] == g.stages * ct + sum(gaps[g.first:g.last - 1])


# The Verilog keeps several frames in flight (contexts > 1) to hide the stage gaps; the HLS unit
# keeps them in flight as stage groups in a dataflow pipeline (codegen/emit/butterfly.py).  Its
# slowest process must meet the schedule's cycles per frame within 10% for every design, the
# ones with gaps (short stages) included.
def _one_frame_is_too_slow(design) -> bool:
    op = design.graph.ops[0]
    s = design.schedule(op)
    tm = timing(op, s.pe)
    beats = max(-(-op.in_size // s.in_lanes), -(-op.out_size // s.out_lanes))
    return tm.contexts > 1 and op.stages * tm.stage_cycles + sum(tm.gaps) > 1.1 * max(tm.compute, beats)


ONE_FRAME_IN_FLIGHT = {name for name, make in {**CASES, **SLOW}.items() if _one_frame_is_too_slow(make())}
FAST_CYCLE_CASES = ("n8_p4_int4", "n64_p32_rect_stacks", "n1024_p64_int8")   # gaps, stacks, wide


def _cycle_case(name: str):
    return pytest.param(name, marks=[] if name in FAST_CYCLE_CASES else [pytest.mark.slow])


def test_the_cycle_cases_include_designs_one_frame_cannot_meet() -> None:
    """Without frames in flight (one group at the Verilog's P) 8 of the 10 designs miss the estimate."""
    assert len(ONE_FRAME_IN_FLIGHT) == 8 and set(FAST_CYCLE_CASES[:2]) <= ONE_FRAME_IN_FLIGHT


@pytest.mark.parametrize("name", [_cycle_case(name) for name in [*CASES, *SLOW]])
def test_butterfly_hls_cycles_meet_the_estimate(name: str, tmp_path: Path) -> None:
    """The unit's slowest process (C-sim count at II = 1) against the schedule's cycles per frame,
    max(compute, input beats, output beats), within 10%."""
    design, unit, _, _, measured = _run_unit(name, tmp_path, 4, 3)
    op = design.graph.ops[0]
    tm = timing(op, design.schedule(op).pe)
    estimate = max(tm.compute, unit.in_beats, unit.out_beats)
    hls = measured["interval_cycles_ii1"]
    assert hls <= 1.1 * estimate, (hls, estimate, measured["slowest_process"])


def test_one_frame_in_flight_misses_the_estimate(tmp_path: Path) -> None:
    """The same unit as one process at the Verilog's P (bit-exact, above) takes the stages and every
    gap per frame: the cycle check must fail it, as it did before the stage groups."""
    design, unit, _, _, measured = _run_unit("n8_p4_int4", tmp_path, 4, 3, one_group=True)
    op = design.graph.ops[0]
    tm = timing(op, design.schedule(op).pe)
    estimate = max(tm.compute, unit.in_beats, unit.out_beats)
    assert measured["interval_cycles_ii1"] == op.stages * tm.stage_cycles + sum(tm.gaps) > 1.1 * estimate


@pytest.mark.parametrize("name", ["n8_p4_int4", "n64_p32_rect_stacks"])
def test_stages_without_their_gaps_break_the_read_after_write_distance(name: str, tmp_path: Path) -> None:
    """One cycle per stage (CT = 1) or two: stage s + 1 would read what stage s wrote a cycle
    earlier.  With the gaps the schedule computes, C-sim passes (above); with the gaps removed the
    C-sim check must stop the binary, because the hardware pipeline could not deliver the value."""
    design = CASES[name]()
    unit = emit_unit_csim(design, tmp_path, one_group_at_the_rtl_units(design))
    assert unit.c.stage_cycles <= 2 and any(unit.c.gaps)
    header = tmp_path / unit.header
    text = header.read_text()
    text, swapped = re.subn(r"gap_g0\[group0::STAGES\] = \{[^}]*\}",
                            "gap_g0[group0::STAGES] = { " + ", ".join(["0"] * unit.c.stages) + " }", text)
    text, swapped_issue = re.subn(r"ISSUE = \d+,", f"ISSUE = {unit.c.stages * unit.c.stage_cycles},", text)
    assert swapped == 1 and swapped_issue == 1
    header.write_text(text)
    binary = _build(tmp_path)
    inputs = random_inputs(design.graph, 4, seed=1)
    write_vectors(tmp_path / "inputs.txt", inputs)
    proc = subprocess.run([str(binary), str(tmp_path / "inputs.txt"), str(tmp_path / "outputs.txt")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "einhls C-sim check: butterfly wk read" in proc.stderr, proc.stderr


def test_butterfly_kernel_declares_no_false_dependence() -> None:
    """A false DEPENDENCE on a buffer that carries stage-to-stage data gives wrong hardware (UG1399)."""
    from codegen.resources import resource_dir

    text = (resource_dir("hls_kernels") / "einhls_butterfly.h").read_text()
    pragmas = [line for line in text.splitlines() if "DEPENDENCE" in line and line.strip().startswith("#pragma")]
    assert pragmas and all(line.rstrip().endswith(" true") for line in pragmas), pragmas
