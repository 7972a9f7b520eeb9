"""The calibrated cost model against its stored measurements (bench/calibrate.py), and the shape
search that uses it (codegen/schedule/choice.py).

The default tests read bench/results/calibration.json (Yosys counts of the sweep, stored with the
command that made it) and run no tool: they rebuild every point's design, ask the scheduler's cost
model for its estimate, and compare.  The slow test synthesizes the chosen design with Yosys.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import calibrate
from codegen.examples import linear_graph
from codegen.ir.types import QType
from codegen.schedule.boards import get_board
from codegen.schedule.calibration import CALIBRATED_PATH
from codegen.schedule.folding import fold

TOLERANCE = 0.15
#: FINN's RTL MVU on the same dense 64x64 int8 layer, same Yosys (README, the dense-unit yardstick)
FINN_MVU_INT8 = {"LUT": 2176, "DSP": 32}


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads((calibrate.RESULTS / "calibration.json").read_text())


@pytest.fixture(scope="module")
def summary(data) -> dict:
    return calibrate.compare(data)


def test_sweep_covers_every_unit_kind_on_both_families(data) -> None:
    assert data["command"] == calibrate.COMMAND
    kinds = {p["kind"] for p in data["points"] if set(p.get("yosys", {})) == set(calibrate.FAMILIES)}
    assert kinds >= {"linear", "linear_nm", "requant", "add", "butterfly", "contract", "softmax",
                     "layernorm", "gelu"}, kinds
    back = calibrate.held_back(data)
    assert {p["kind"] for p in data["points"] if p["key"] in back} == kinds


#: held-back estimates known to miss 15%, with what they miss by at most (README, "Calibrated cost
#: model"): the butterfly's LUTs between P = 2 and 16 (Yosys moves its banks from block RAM to LUT
#: RAM at P = 4, and the two fitted points of that regime cannot place P = 4 and 8), and the FFs of
#: one Linear with a block-RAM ROM (15.6%).  Listed exactly: a new miss, or one that grows past its
#: bound, fails the test.
KNOWN_MISSES = {
    ("butterfly:n=64,units=4", "xc7", "lut"): 0.30, ("butterfly:n=64,units=4", "xcup", "lut"): 0.30,
    ("butterfly:n=64,units=8", "xc7", "lut"): 0.30, ("butterfly:n=64,units=8", "xcup", "lut"): 0.30,
    ("linear:a=8,k=64,n=64,pe=8,rom=bram,simd=8,w=8", "xc7", "ff"): 0.17,
}


@pytest.mark.parametrize("target", ["lut", "ff", "dsp", "bram36"])
def test_held_back_estimates_within_15_percent(summary, target: str) -> None:
    """Every point kept out of the fit: the scheduler's estimate within 15% of Yosys (the
    KNOWN_MISSES within their stated bound)."""
    rows = [r for r in summary["rows"] if r["held_back"]]
    assert len(rows) >= 20
    off = []
    for r in rows:
        est, meas = r["estimate"][target], r["measured"][target]
        bound = KNOWN_MISSES.get((r["key"], r["family"], target), TOLERANCE)
        if abs(est - meas) > bound * max(meas, 1):
            off.append((r["key"], r["family"], est, meas))
    assert not off, off
    misses = sum(1 for r in rows if abs(r["estimate"][target] - r["measured"][target])
                 > TOLERANCE * max(r["measured"][target], 1))
    assert misses == sum(1 for key in KNOWN_MISSES if key[2] == target), "update KNOWN_MISSES"


def test_cycles_within_15_percent_of_rtl_simulation(summary) -> None:
    """Interval and latency estimates against Verilator (bench/calibrate.py --cycles)."""
    rows = [r for r in summary["rows"] if "cycles" in r]
    assert len(rows) >= 4
    for r in rows:
        c = r["cycles"]
        assert abs(c["interval_est"] - c["interval_meas"]) <= TOLERANCE * c["interval_meas"], (r["key"], c)
        assert abs(c["latency_est"] - c["latency_meas"]) <= TOLERANCE * c["latency_meas"], (r["key"], c)


def test_stored_coefficients_are_the_fit_of_the_stored_sweep(data) -> None:
    stored = json.loads(CALIBRATED_PATH.read_text())
    refit = calibrate.fit_model(data)
    assert stored["held_back"] == refit["held_back"]
    for family, groups in refit["families"].items():
        for group, targets in groups.items():
            for target, coef in targets.items():
                for name, value in coef.items():
                    assert stored["families"][family][group][target][name] == pytest.approx(value, abs=1e-5)


def dense_64x64(w_bits: int = 8, a_bits: int = 8):
    return linear_graph(64, 64, QType(True, a_bits, 2.0 ** -4), w_bits, QType(True, a_bits, 2.0 ** -3), seed=1)


def test_choice_dense_64x64_int8_at_interval_64(data) -> None:
    """The shape search picks, among the shapes that reach 64 cycles, one whose measured cost is at
    FINN's MVU or below and within 15% of the cheapest measured shape of the sweep."""
    result = fold(dense_64x64(), get_board("pynq-z2"), target_ii=64)
    s = result.design.schedules["layer0"]
    rom = result.design.rom_kinds["layer0"]
    cost = result.costs["layer0"]
    assert cost.ii <= 64 and cost.dsp <= FINN_MVU_INT8["DSP"]
    assert (s.simd, s.pe) != (1, 64)          # the old choice: fewest multipliers, first in order
    swept = {}
    for p in data["points"]:
        q = p["params"]
        if p["kind"] == "linear" and (q["k"], q["n"], q["a"], q["w"]) == (64, 64, 8, 8) \
                and q["simd"] * q["pe"] == 64:
            y = p["yosys"]["xc7"]
            swept[(q["simd"], q["pe"], q.get("rom", "lutram"))] = y["LUT"] + y["LUT_MEM"]
    assert (s.simd, s.pe, rom) in swept, ((s.simd, s.pe, rom), sorted(swept))
    measured = swept[(s.simd, s.pe, rom)]
    assert measured <= FINN_MVU_INT8["LUT"], measured
    assert measured <= (1 + TOLERANCE) * min(swept.values()), (measured, swept)


def test_choice_takes_no_more_dsps_than_the_fewest_multipliers_shape() -> None:
    """At every interval the chosen shape reaches the interval with no more DSPs than the shape
    of fewest multipliers (the old choice) needs."""
    from codegen.schedule.cost import op_cost
    from codegen.schedule.folding import fold_for_target, linear_options

    board, graph = get_board("pynq-z2"), dense_64x64()
    options = {"layer0": linear_options(graph.ops[0])}
    for target in (16, 32, 64, 128, 256, 512):
        result = fold(graph, board, target_ii=target)
        old = fold_for_target(graph, target, options)["layer0"]
        assert result.costs["layer0"].ii <= target
        assert result.costs["layer0"].dsp <= op_cost(graph.ops[0], old, board.dsp_kind).dsp


@pytest.mark.slow
@pytest.mark.rtl
def test_chosen_dense_64x64_measured_at_or_below_finn(tmp_path: Path) -> None:
    """einhls compile's choice for the dense 64x64 int8 layer at interval 64 on pynq-z2, synthesized
    by Yosys (synth_xilinx -family xc7): at or below FINN's MVU (2,176 LUT, 32 DSP)."""
    from codegen.emit.rtl import emit_rtl
    from codegen.verify.yosys import synth_counts

    result = fold(dense_64x64(), get_board("pynq-z2"), target_ii=64)
    emit_rtl(result.design, tmp_path)
    counts = synth_counts(tmp_path / "rtl", result.design.top_name, "xc7", tmp_path / "yosys")
    assert counts["LUT"] + counts["LUT_MEM"] <= FINN_MVU_INT8["LUT"], counts
    assert counts["DSP"] <= FINN_MVU_INT8["DSP"], counts


# --- --target-fps and the report's balance lines (issue 11, item 5) -----------------------------

@pytest.fixture(scope="module")
def mlp_model(tmp_path_factory) -> Path:
    from models.torch_qdq import export_mlp
    path = tmp_path_factory.mktemp("mlp") / "mlp.onnx"
    export_mlp(path)
    return path


def _run_cli(*args: str):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "codegen.cli", *args], capture_output=True, text=True)


def test_target_fps_folds_for_the_slowest_interval_that_meets_it(mlp_model, tmp_path) -> None:
    from codegen.project import CompileOptions, compile_model

    quiet = {"progress": lambda *_: None}
    fps = 100e6 / 40.5          # pynq-z2 at 100 MHz: at most 40 cycles per frame
    by_fps = compile_model(mlp_model, tmp_path / "fps", CompileOptions(target_fps=fps), **quiet)
    by_ii = compile_model(mlp_model, tmp_path / "ii", CompileOptions(target_ii=40), **quiet)
    totals = by_fps.report["totals"]
    assert totals["ii"] <= 40 and by_fps.report["throughput_fps"] >= fps
    assert by_fps.design.schedules == by_ii.design.schedules     # the same fold as --target-ii 40
    assert any("frames/s asked" in note and "40 cycles" in note for note in by_fps.report["notes"])
    fastest = compile_model(mlp_model, tmp_path / "fast", CompileOptions(), **quiet).report["totals"]
    assert totals["ii"] >= fastest["ii"] and totals["dsp"] + totals["lut"] <= fastest["dsp"] + fastest["lut"]


@pytest.mark.parametrize("args, words", [
    (("--target-fps", "1e9"), ["--target-fps", "out of reach"]),
    (("--target-fps", "1000", "--target-ii", "8"), ["--target-ii", "--target-fps"]),
    (("--target-fps", "-5"), ["--target-fps", "out of range"]),
])
def test_target_fps_refusals_are_one_line(mlp_model, tmp_path, args, words) -> None:
    r = _run_cli("compile", str(mlp_model), "-o", str(tmp_path / "o"), *args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("einhls: error:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_report_names_binding_stage_shares_and_board_roofline(mlp_model, tmp_path) -> None:
    from codegen.project import CompileOptions, compile_model
    from codegen.report import format_report

    project = compile_model(mlp_model, tmp_path / "o", CompileOptions(), progress=lambda *_: None)
    text = format_report(project).splitlines()
    interval = project.report["totals"]["ii"]
    from codegen.report import plot_data
    assert f"binding: {plot_data(project)['binds']}" in text
    stages = next(ln for ln in text if ln.startswith("stages "))
    for layer in project.report["layers"]:
        assert f"{layer['name']} {layer['ii']} ({100.0 * layer['ii'] / interval:.0f}%)" in stages
    roof = next(ln for ln in text if ln.startswith("roofline: "))
    board = project.design.board
    # an int8 MLP: two products per DSP48 at the board's peak, no LUT multipliers
    assert f"{board.dsp * 2} the board's peak ({board.dsp} DSPs x 2 products)" in roof, roof
