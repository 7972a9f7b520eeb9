"""What a new user hits (issue 16): the README's API, option checking, messages, the report.

Each test here failed on the behaviour the issue describes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from onnx_oracle import onnx_session
from test_cli import _qdq_linear


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codegen.cli", *args], capture_output=True, text=True)


def assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("einhls: error:"), r.stderr
    for word in words:
        assert word in last, last


# ---------------------------------------------------------------------------------- item 1

def test_readme_verify_is_the_function_after_the_submodule_is_imported(tmp_path):
    """`einhls.verify(project)` works in a fresh process, before and after codegen.verify is imported."""
    model = _qdq_linear(tmp_path / "m.onnx")
    script = f"""
import codegen as einhls
first = einhls.verify
project = einhls.compile_model({str(model)!r}, {str(tmp_path / 'out')!r}, einhls.CompileOptions(board="kv260"),
                               progress=lambda *_: None)
import codegen.verify.result, codegen.verify.runner
assert callable(einhls.verify), type(einhls.verify)
assert einhls.verify is first
from codegen import verify
assert verify is first
import inspect
assert list(inspect.signature(einhls.verify).parameters)[:4] == ["project", "checks", "vectors", "seed"]
print(einhls.verify(project, (), vectors=2, progress=print))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("[]")


def test_verify_package_stays_importable():
    """The package codegen.verify is still reachable under its own name."""
    r = subprocess.run([sys.executable, "-c", "import codegen.verify.tools as t, sys; "
                        "print(sys.modules['codegen.verify'].__name__, t.__name__)"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["codegen.verify", "codegen.verify.tools"]


# ---------------------------------------------------------------------------------- items 2, 4

@pytest.mark.parametrize("option, value, words", [
    ("--seed", "-1", ("--seed",)),
    ("--max-util", "1.5", ("--max-util", "1.5")),
    ("--max-util", "0", ("--max-util",)),
    ("--max-util", "nan", ("--max-util",)),
    ("--clock-mhz", "-5", ("--clock-mhz", "-5")),
    ("--clock-mhz", "0", ("--clock-mhz",)),
    ("--clock-mhz", "5000", ("--clock-mhz",)),
    ("--target-ii", "0", ("--target-ii",)),
    ("--target-ii", "-3", ("--target-ii",)),
])
def test_compile_options_are_checked(tmp_path, option, value, words):
    model = _qdq_linear(tmp_path / "m.onnx")
    out = tmp_path / "out"
    r = run("compile", str(model), "-o", str(out), f"{option}={value}")
    assert_one_line_error(r, *words)
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (("--seed=-1",), ("--seed",)),
    (("--vectors=-2",), ("--vectors",)),
])
def test_verify_options_are_checked(tmp_path, args, words):
    r = run("verify", str(tmp_path), *args)
    assert_one_line_error(r, *words)


def test_demo_options_are_checked(tmp_path):
    r = run("demo", "-o", str(tmp_path / "d"), "--vectors=-1")
    assert_one_line_error(r, "--vectors")
    assert not (tmp_path / "d").exists()


def test_api_options_are_checked(tmp_path):
    from codegen import CompileOptions, EinhlsError, compile_model
    model = _qdq_linear(tmp_path / "m.onnx")
    with pytest.raises(EinhlsError, match="max_util"):
        compile_model(model, tmp_path / "out", CompileOptions(max_util=1.5), progress=lambda *_: None)
    assert not (tmp_path / "out").exists()


def _tltorch_blocktt(path: Path) -> Path:
    """The issue's model: a tensorly-torch block-TT layer + ReLU, exported float."""
    torch = pytest.importorskip("torch")
    tltorch = pytest.importorskip("tltorch")
    torch.manual_seed(0)
    layer = tltorch.FactorizedLinear(in_tensorized_features=(4, 4, 4), out_tensorized_features=(4, 4, 2),
                                     factorization="blocktt", rank=4, implementation="factorized")
    model = torch.nn.Sequential(layer, torch.nn.ReLU()).eval()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 64),), str(path), dynamo=False)
    return path


def test_too_wide_contraction_stage_names_the_stage_and_the_remedy(tmp_path):
    model = _tltorch_blocktt(tmp_path / "tl.onnx")
    out = tmp_path / "out"
    r = run("compile", str(model), "-o", str(out), "--default-type", "fixed<16,6>")
    assert_one_line_error(r, "stage", "49 bits", "48", "--default-type")
    assert not out.exists()
    # a narrower type fits, as the message suggests
    assert run("compile", str(model), "-o", str(out), "--default-type", "fixed<12,4>").returncode == 0


# ---------------------------------------------------------------------------------- item 3

def _tltorch_blocktt_qdq(path: Path, force_input: bool, factorization: str = "blocktt") -> Path:
    """The issue's layer + ReLU, exported float and quantized by onnxruntime quantize_static (QDQ,
    int8, per-channel weights, as tests/models/ort_qdq.py); ``force_input`` adds
    ForceQuantizeNoInputCheck."""
    import warnings

    torch = pytest.importorskip("torch")
    tltorch = pytest.importorskip("tltorch")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from models.ort_qdq import calibration_samples

    torch.manual_seed(0)
    layer = tltorch.FactorizedLinear(in_tensorized_features=(4, 4, 4), out_tensorized_features=(4, 4, 2),
                                     factorization=factorization, rank=4 if factorization == "blocktt" else 0.5,
                                     implementation="factorized")
    float_path = path.with_name(path.stem + "_float.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Sequential(layer, torch.nn.ReLU()).eval(), (torch.zeros(1, 64),), str(float_path),
                          input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    samples = iter({"x": s} for s in calibration_samples((1, 64), 32, 0))

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(samples, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"ForceQuantizeNoInputCheck": True} if force_input else {})
    return path


@pytest.fixture(scope="module")
def tltorch_qdq(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tltorch_qdq")
    model = _tltorch_blocktt_qdq(folder / "tl.onnx", force_input=True)
    from codegen import CompileOptions, compile_model
    project = compile_model(model, folder / "out", CompileOptions(), progress=lambda *_: None)
    return model, project


def test_tltorch_quantize_static_without_input_quantizer_gets_the_recipe(tmp_path):
    """By default quantize_static quantizes nothing before the float Einsum, so the input has no
    scale: refused, naming the quantize_static option that quantizes it."""
    model = _tltorch_blocktt_qdq(tmp_path / "tl.onnx", force_input=False)
    r = run("compile", str(model), "-o", str(tmp_path / "out"))
    assert_one_line_error(r, "/0/Einsum", "ForceQuantizeNoInputCheck")
    assert not (tmp_path / "out").exists()


def test_tltorch_quantize_static_float_einsum_compiles_and_matches_onnxruntime(tltorch_qdq):
    """The Einsum's float factors are quantized by einhls (symmetric per tensor, ISLAND_WEIGHT_BITS);
    the reference then equals onnxruntime's run of the QDQ model on most outputs and is never more
    than 2 output steps off (measured: 97.8% exact, max 2 steps, on 256 vectors)."""
    from codegen.frontend import load_graph
    from codegen.frontend.einsum import ISLAND_WEIGHT_BITS
    from codegen.ir.reference import dequantize, dequantize_output, random_inputs, run_reference

    model, _ = tltorch_qdq
    assert ISLAND_WEIGHT_BITS == 12
    graph = load_graph(model)
    codes = random_inputs(graph, 128, seed=1)
    session = onnx_session(str(model))
    real = dequantize(codes, graph.input_type).reshape(128, 64)
    got = np.concatenate([session.run(None, {"x": real[i:i + 1]})[0] for i in range(128)])
    want = dequantize_output(graph, run_reference(graph, codes)).reshape(128, -1)
    steps = np.abs(got.astype(np.float64) - want) / graph.output_type.scale
    assert steps.max() <= 2 + 1e-3, steps.max()
    assert (steps < 1e-3).mean() >= 0.95, (steps < 1e-3).mean()
    assert np.ptp(got) > 50 * graph.output_type.scale   # the outputs are not all clamped to one value


def test_tltorch_quantize_static_float_einsum_csim_is_bit_exact(tltorch_qdq):
    from codegen import verify
    _, project = tltorch_qdq
    results = verify(project, ("csim",), vectors=16, progress=lambda *_: None)
    assert [r.passed for r in results] == [True], [r.line() for r in results]


def test_tltorch_quantize_static_tucker_is_refused_naming_what_works(tmp_path):
    """A Tucker layer's 7 float factors at 12 bits would need an 89-bit exact accumulator (the
    range in Python integers; int64 sums once wrapped it and the message said 64)."""
    model = _tltorch_blocktt_qdq(tmp_path / "tucker.onnx", force_input=True, factorization="tucker")
    r = run("compile", str(model), "-o", str(tmp_path / "out"))
    assert_one_line_error(r, "needs 89 bits (more than 48)", "tucker or cp", "blocktt layer is supported")
    assert not (tmp_path / "out").exists()


@pytest.mark.rtl
def test_tltorch_quantize_static_float_einsum_rtlsim_is_bit_exact(tltorch_qdq):
    from codegen import verify
    _, project = tltorch_qdq
    results = verify(project, ("rtlsim",), vectors=16, progress=lambda *_: None)
    assert [r.passed for r in results] == [True], [r.line() for r in results]


# ---------------------------------------------------------------------------------- item 7

def test_mismatch_line_says_how_many_vectors_differ():
    from codegen.verify.result import compare
    expected = np.zeros((20, 3), dtype=np.int64)
    got = expected.copy()
    got[4, 1] = 7
    got[9, 0] = -1
    got[9, 2] = 5
    result = compare("csim", expected, got)
    assert not result.passed
    line = result.line()
    assert "MISMATCH on 2 of 20 vectors" in line, line
    assert "vector 4, element 1: expected 0 (reference), got 7" in line
    assert compare("csim", expected, expected.copy()).line() == "csim: bit-exact on 20 vectors"


def _export_softsign(path: Path, dynamo: bool) -> Path:
    import warnings

    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Softsign()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 8),), str(path), dynamo=dynamo)
    return path


@pytest.mark.parametrize("dynamo", [False, True])
def test_softsign_written_as_abs_add_div_is_named(tmp_path, dynamo):
    import onnx
    model = _export_softsign(tmp_path / "ss.onnx", dynamo)
    assert {"Abs", "Add", "Div"} <= {n.op_type for n in onnx.load(str(model)).graph.node}
    r = run("compile", str(model), "-o", str(tmp_path / "out"), "--default-type", "fixed<16,6>")
    assert_one_line_error(r, "Softsign", "x / (1 + |x|)")
    assert not (tmp_path / "out").exists()


def test_brevitas_model_without_input_quantizer_is_told_to_add_quant_identity(tmp_path):
    pytest.importorskip("brevitas")
    import warnings

    import brevitas.nn as qnn
    import torch
    from brevitas.export import export_qonnx
    torch.manual_seed(0)
    model = torch.nn.Sequential(qnn.QuantLinear(16, 12, bias=True, weight_bit_width=4),
                                qnn.QuantReLU(bit_width=6, return_quant_tensor=True),
                                qnn.QuantLinear(12, 5, bias=True, weight_bit_width=8),
                                qnn.QuantIdentity(bit_width=8)).eval()
    path = tmp_path / "brevitas.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, 16), export_path=str(path))
    r = run("compile", str(path), "-o", str(tmp_path / "out"))
    assert_one_line_error(r, "QuantIdentity", "before the first layer")


# ---------------------------------------------------------------------------------- item 6

def _fake_build(calls: list, fail: bool = False, interrupt: bool = False):
    def build(scratch: Path) -> str | None:
        calls.append(scratch)
        (scratch / "big.gch").write_bytes(b"x" * 300_000)     # what Verilator leaves around
        (scratch / "top").write_bytes(b"y" * 100_000)         # the executable
        if interrupt:
            raise KeyboardInterrupt
        return "Verilator build failed: boom" if fail else None
    return build


def test_simulator_cache_keeps_only_the_executable_and_reuses_it(tmp_path, monkeypatch):
    from codegen.verify import tools
    monkeypatch.setenv("EINHLS_CACHE", str(tmp_path / "cache"))
    calls: list = []
    with tools.cached_simulator("rtlsim", "a" * 64, "top", _fake_build(calls)) as (folder, error, reused):
        assert error is None and not reused
        assert sorted(p.name for p in folder.iterdir()) == ["einhls_build.sha256", "top"]
    with tools.cached_simulator("rtlsim", "a" * 64, "top", _fake_build(calls)) as (again, error, reused):
        assert again == folder and reused and error is None
    assert len(calls) == 1
    builds = tmp_path / "cache" / "verilator"
    assert not [p for p in builds.iterdir() if ".building." in p.name]


def test_simulator_cache_failed_or_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    from codegen.verify import tools
    monkeypatch.setenv("EINHLS_CACHE", str(tmp_path / "cache"))
    with tools.cached_simulator("rtlsim", "b" * 64, "top", _fake_build([], fail=True)) as (folder, error, _):
        assert folder is None and "boom" in error
    with pytest.raises(KeyboardInterrupt):
        with tools.cached_simulator("rtlsim", "c" * 64, "top", _fake_build([], interrupt=True)):
            pass
    builds = tmp_path / "cache" / "verilator"
    assert [p.name for p in builds.iterdir() if not p.name.endswith(".lock")] == []
    # a scratch folder of a process that died outright is removed by the next build
    dead = builds / ".rtlsim-x.building.999999999"
    dead.mkdir()
    with tools.cached_simulator("rtlsim", "d" * 64, "top", _fake_build([])):
        pass
    assert not dead.exists()


def test_simulator_cache_builds_once_for_concurrent_users(tmp_path, monkeypatch):
    import threading
    from codegen.verify import tools
    monkeypatch.setenv("EINHLS_CACHE", str(tmp_path / "cache"))
    calls: list = []
    started = threading.Event()
    results = []

    def build(scratch: Path) -> None:
        started.set()
        calls.append(scratch)
        (scratch / "top").write_bytes(b"y")

    def use() -> None:
        with tools.cached_simulator("rtlsim", "e" * 64, "top", build) as (folder, error, reused):
            results.append((folder, error, reused, (folder / "top").read_bytes()))

    first = threading.Thread(target=use)
    first.start()
    started.wait(10)
    second = threading.Thread(target=use)
    second.start()
    first.join(30)
    second.join(30)
    assert len(calls) == 1
    assert sorted(r[2] for r in results) == [False, True]
    assert all(r[1] is None and r[3] == b"y" for r in results)


def test_simulator_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    import os
    from codegen.verify import tools
    monkeypatch.setenv("EINHLS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EINHLS_CACHE_MB", str(250_000 / 2 ** 20))   # room for two 100 kB builds
    folders = {}
    for i, digest in enumerate(("1" * 64, "2" * 64)):
        with tools.cached_simulator("rtlsim", digest, "top", _fake_build([])) as (folder, _, _):
            folders[digest] = folder
        os.utime(folder / "einhls_build.sha256", (1000 + i, 1000 + i))
    with tools.cached_simulator("rtlsim", "1" * 64, "top", _fake_build([])) as (_, _, reused):
        assert reused                                    # "1" is now the most recently used
    with tools.cached_simulator("rtlsim", "3" * 64, "top", _fake_build([])) as (folder, _, _):
        assert folder.is_dir()
    assert folders["1" * 64].is_dir() and not folders["2" * 64].exists()


@pytest.mark.slow   # two RTL simulations, ~60 s; the cache itself is tested above without Verilator
def test_rtlsim_leaves_no_build_in_the_output_folder_and_shares_it(tmp_path, monkeypatch):
    """Two output folders of the same model: one Verilator build, in the cache, a few MB."""
    monkeypatch.setenv("EINHLS_CACHE", str(tmp_path / "cache"))
    model = _qdq_linear(tmp_path / "m.onnx")
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert run("compile", str(model), "-o", str(out)).returncode == 0
        r = subprocess.run([sys.executable, "-m", "codegen.cli", "verify", str(out), "--rtlsim", "--vectors", "2"],
                           capture_output=True, text=True, env={**os.environ})
        assert r.returncode == 0, r.stdout + r.stderr
        outputs.append(r.stdout)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        assert size < 2 * 2 ** 20, size
        assert not list(out.rglob("*.gch")) and not list(out.rglob("*.o"))
    assert "building" in outputs[0] and "reusing" in outputs[1]
    entries = [p for p in (tmp_path / "cache" / "verilator").iterdir() if p.is_dir()]
    assert len(entries) == 1


# ---------------------------------------------------------------------------------- item 5

@pytest.fixture(scope="module")
def tt_kv260(tmp_path_factory):
    """The issue's case: a TTLinear whose first and last stages cannot go below 16 cycles."""
    import warnings

    import torch
    from codegen.nn.tt import TTLinear
    from codegen.project import CompileOptions, compile_model
    folder = tmp_path_factory.mktemp("tt_kv260")
    torch.manual_seed(0)
    tt = TTLinear([4, 4, 4], [4, 8, 2], [3, 5], quantize=(2.0 ** -5, 2.0 ** -6, 2.0 ** -4)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tt, (torch.randn(1, 64),), str(folder / "tt.onnx"), dynamo=False, opset_version=17)
    return compile_model(folder / "tt.onnx", folder / "out", CompileOptions(board="kv260"), progress=lambda *_: None)


def _mac_options(op):
    from codegen.ir.contraction import ContractStage
    from codegen.ir.graph import Linear
    from codegen.schedule.contraction import stage_options
    from codegen.schedule.folding import linear_options
    if isinstance(op, ContractStage):
        return stage_options(op)
    return linear_options(op) if isinstance(op, Linear) else None


def test_schedule_and_report_agree_on_the_interval(tt_kv260):
    from codegen.report import format_report
    report = tt_kv260.report
    interval = report["totals"]["ii"]
    assert max(layer["ii"] for layer in report["layers"]) == interval
    # the schedule's own statement of the interval is the design's interval
    assert any(f": {interval} cycles" in note for note in report["notes"]), report["notes"]
    text = format_report(tt_kv260)
    assert f"interval {interval} cycles" in text
    # no stage is folded for a faster interval than the pipeline runs at: each MAC unit takes the
    # cheapest parallelism (fewest multipliers) that meets the interval, as for any balanced design
    for op in tt_kv260.graph.ops:
        options = _mac_options(op)
        if options is None:
            continue
        s = tt_kv260.design.schedules[op.name]
        cheapest = next(o for o in options if o[0] <= interval)
        assert (s.simd, s.pe) == cheapest[1:], (op.name, (s.simd, s.pe), cheapest)


def test_target_below_a_stage_floor_is_refused(tt_kv260, tmp_path):
    model = tt_kv260.path.parent / "tt.onnx"
    r = run("compile", str(model), "--board", "kv260", "-o", str(tmp_path / "o"), "--target-ii", "8")
    assert_one_line_error(r, "target interval 8", "16 cycles", "n0_einsum_st1")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow   # RTL simulation, about a minute
def test_tt_interval_measured_equals_the_estimate(tt_kv260):
    from codegen.verify.runner import verify
    (result,) = verify(tt_kv260, ("rtlsim",), vectors=4, progress=lambda *_: None)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] == tt_kv260.report["totals"]["ii"]


# ---------------------------------------------------------------------------------- item 10

def _dense_twin(op):
    import dataclasses
    return dataclasses.replace(op, sparsity=None)


def test_report_says_when_sparsity_saves_no_dsp(demo_project):
    """The demo's 2:4 int8 layer has half the multipliers of its dense twin but, at int8, as many
    DSPs (a dense layer packs two products per DSP48): the report must say so."""
    from codegen.report import format_report
    from codegen.schedule.cost import op_cost
    from codegen.schedule.folding import linear_options
    from codegen.schedule.design import OpSchedule

    sparse = next(op for op in demo_project.graph.ops if getattr(op, "sparsity", None))
    s = demo_project.design.schedules[sparse.name]
    kind = demo_project.design.board.dsp_kind
    mine = op_cost(sparse, s, kind)
    dense = _dense_twin(sparse)
    _, simd, pe = next(o for o in linear_options(dense) if o[0] <= mine.cycles)
    twin = op_cost(dense, OpSchedule(sparse.name, simd, pe, s.in_lanes, s.out_lanes), kind)
    assert twin.dsp <= mine.dsp   # the premise, from the cost model itself
    text = format_report(demo_project)
    line = next(ln for ln in text.splitlines() if ln.startswith("sparsity:") and sparse.name in ln)
    assert "no DSP" in line and f"{mine.dsp} DSP" in line and f"{twin.dsp}" in line, line


def test_report_compares_the_whole_design_with_its_dense_twin(demo_project):
    import dataclasses

    from codegen.report import format_report
    from codegen.schedule.folding import fold
    meta = demo_project.meta["options"]
    graph = demo_project.graph
    dense_graph = dataclasses.replace(graph, ops=[_dense_twin(op) if getattr(op, "sparsity", None) else op
                                                  for op in graph.ops])
    twin = fold(dense_graph, demo_project.design.board, None, meta["max_util"], meta["target_ii"]).totals
    text = format_report(demo_project)
    line = next(ln for ln in text.splitlines() if ln.startswith("sparsity:") and "dense" in ln and "model" in ln)
    assert f"interval {twin['ii']} cycles with {twin['dsp']} DSP" in line, line


def test_report_macs_column_counts_the_macs_performed(demo_project):
    from codegen.report import COLUMNS, format_report
    text = format_report(demo_project).splitlines()
    end = text[1].index(" MACs") + len(" MACs")   # the column is right-aligned under its title
    total_performed = 0
    for op in demo_project.graph.ops:
        row = next(ln for ln in text if ln.startswith(op.name + " "))
        n, m = op.sparsity if getattr(op, "sparsity", None) else (1, 1)
        performed = op.in_size * op.out_size * n // m   # an N:M unit multiplies N of every M inputs
        assert int(row[:end].split()[-1]) == performed, (op.name, row)
        total_performed += performed
    total = next(ln for ln in text if ln.startswith("total"))
    assert int(total[:end].split()[-1]) == total_performed
    assert any(title == "MACs" for title, _, _ in COLUMNS)


# ---------------------------------------------------------------------------------- item 8

def test_plot_shows_resources_against_the_board(demo_project):
    from codegen.report import plot_data
    data = plot_data(demo_project)
    board, report = demo_project.design.board, demo_project.report
    for key, capacity in (("dsp", board.dsp), ("bram36", board.bram36), ("lut", board.lut), ("ff", board.ff)):
        shares = data["resources"][key]["layers"]
        assert shares == pytest.approx([100.0 * layer[key] / capacity for layer in report["layers"]])
        assert data["resources"][key]["total"] == pytest.approx(100.0 * report["totals"][key] / capacity)
    assert data["budget"] == pytest.approx(100.0 * demo_project.meta["options"]["max_util"])


def test_plot_names_the_resource_that_binds(demo_project):
    """The demo stops at its interval because a faster one would not fit; the plot names what
    would be over budget, and the scheduler, asked for that faster interval, refuses on it."""
    from codegen.errors import EinhlsError
    from codegen.report import plot_data
    from codegen.schedule.folding import fold
    data = plot_data(demo_project)
    faster = int(data["binds"].split(" at ")[1].split()[0])
    resource = data["binds"].split()[0].rstrip(",")
    assert faster < demo_project.report["totals"]["ii"]
    with pytest.raises(EinhlsError, match=resource):
        fold(demo_project.graph, demo_project.design.board, None, demo_project.meta["options"]["max_util"], faster)


def test_plot_shows_stage_cycles_and_macs_per_cycle(demo_project):
    from codegen.report import plot_data
    data = plot_data(demo_project)
    report = demo_project.report
    interval = report["totals"]["ii"]
    assert data["stages"]["interval"] == interval
    assert data["stages"]["cycles"] == [layer["ii"] for layer in report["layers"]]
    for entry, op in zip(data["macs"], [op for op in demo_project.graph.ops]):
        n, m = op.sparsity if getattr(op, "sparsity", None) else (1, 1)
        assert entry["achieved"] == pytest.approx(op.in_size * op.out_size * n / m / interval)
        layer = next(layer for layer in report["layers"] if layer["name"] == op.name)
        assert entry["peak"] == layer["multipliers"]
        assert entry["achieved"] <= entry["peak"]


def test_plot_legends_do_not_cover_bars(demo_project, tmp_path):
    from codegen.report import draw_report, plot_report
    fig = draw_report(demo_project)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    bars = [patch.get_window_extent(renderer) for ax in fig.axes for patch in ax.patches
            if patch.get_width() > 0 and patch.get_height() > 0]
    assert bars
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(bar) for bar in bars), legend.get_texts()[0].get_text()
    png = tmp_path / "r.png"
    plot_report(demo_project, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------- item 9

ROOT = Path(__file__).resolve().parents[1]


def test_docs_stand_on_their_own():
    """README and docs/ never send a user to files the repository does not carry."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for missing in ("CONTRACT.md", "BACKGROUND.md", "../shared", "TOOLCHAIN.md", "STYLE.md"):
            assert missing not in text, (path.name, missing)
    interface = (ROOT / "docs" / "interface.md").read_text()
    for promise in ("Exit codes", "einhls verify", "AXI4-Stream", "integer reference", "OUT/", "EINHLS_CACHE"):
        assert promise in interface, promise
    assert "docs/interface.md" in (ROOT / "README.md").read_text()


def test_readme_usage_block_lists_every_option():
    import argparse

    from codegen.cli import _parser
    readme = (ROOT / "README.md").read_text()
    usage = readme.split("## Using it", 1)[1].split("```", 2)[1]
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            flags = [f for f in action.option_strings if f not in ("-h", "--help")]
            if flags:
                assert any(f"{flag} " in usage or f"{flag}]" in usage for flag in flags), (name, flags)
    assert "--board pynq-z2" in usage


def test_help_and_readme_say_what_verify_runs_and_the_default_board():
    verify_help = run("verify", "--help").stdout
    assert "C-sim and RTL sim" in " ".join(verify_help.split())
    compile_help = " ".join(run("compile", "--help").stdout.split())
    assert "(default: pynq-z2)" in compile_help and "(default: 0.8)" in compile_help
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`verify` without a check flag runs C-sim and RTL sim" in readme
    assert "`--board` is `pynq-z2`" in readme
