"""End to end: ONNX models -> compile -> C-sim and RTL sim bit-exact against the reference.

Expected values always come from the PyTorch integer reference (and, for the float model, from
onnxruntime / qonnx); never from the design under test.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.qdq_helper import QdqBuilder, save  # noqa: E402
from models.qonnx_mlp import build_qonnx_mlp, run_qonnx  # noqa: E402
from models.torch_qdq import export_mlp  # noqa: E402

from codegen.cli import main  # noqa: E402
from codegen.project import CompileOptions, Project, compile_model  # noqa: E402
from codegen.verify.runner import verify  # noqa: E402

pytestmark = [pytest.mark.rtl, pytest.mark.csim]
QUIET = dict(progress=lambda *_: None)


def assert_all_bit_exact(project, checks=("csim", "rtlsim"), vectors=24):
    results = verify(project, checks, vectors=vectors, seed=5, **QUIET)
    for r in results:
        assert r.passed, r.line()
        assert r.vectors == 16 + vectors
    return results


def test_demo_is_bit_exact_and_equals_the_float_model(demo_model, demo_project):
    results = assert_all_bit_exact(demo_project)
    rtl = results[1].measured
    assert rtl["interval_cycles"] <= demo_project.report["totals"]["ii"] + 2
    # every scale of the demo is a power of two: the reference equals the float model exactly
    x = np.random.default_rng(3).normal(0, 1.5, size=(12, 64)).astype(np.float32)
    got = demo_project.predict(x)
    want = np.concatenate([run_qonnx(demo_model, row[None, :]).reshape(1, -1) for row in x])
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_demo_report_shows_sparse_layer_at_half_the_multipliers(demo_project):
    layers = {layer["sparsity"]: layer for layer in demo_project.report["layers"]}
    sparse = layers["2:4"]
    assert sparse["multipliers"] * 2 == sparse["dense_multipliers"]
    assert sparse["ii"] <= demo_project.report["totals"]["ii"]


def test_torch_exported_qdq_model(tmp_path):
    model = tmp_path / "torch_qdq.onnx"
    export_mlp(model, pow2=True, per_channel=True, dynamo=True)
    project = compile_model(model, tmp_path / "out", CompileOptions(board="ultra96-v2"), **QUIET)
    assert_all_bit_exact(project)


def test_qonnx_model_with_non_power_of_two_scales(tmp_path):
    model = tmp_path / "qonnx.onnx"
    build_qonnx_mlp(model, pow2=False)
    project = compile_model(model, tmp_path / "out", CompileOptions(board="kv260"), **QUIET)
    assert_all_bit_exact(project)
    # within one output step of the float model (qonnx executes the Quant nodes)
    x = np.random.default_rng(4).normal(0, 1.0, size=(10, 1, 1, 4, 4)).astype(np.float32)
    want = np.concatenate([run_qonnx(model, row).reshape(1, -1) for row in x])
    got = project.predict(x.reshape(10, 16)).reshape(want.shape)
    step = project.graph.output_type.scale
    assert np.max(np.abs(got - want)) <= step * 1.0001


def test_hostile_names_compile_and_verify(tmp_path):
    """Quotes, newlines, ../, C++ keywords and Jinja syntax in every name the model has."""
    rng = np.random.default_rng(1)
    b = QdqBuilder([1, 12])
    x = b.qdq("x", 2**-4)
    for name in ['fc"1\n', "../../etc/passwd", "class", "{{ evil }}{% raw %}"]:
        x = b.node("MatMul", [x, b.weight(rng.integers(-100, 100, size=(12, 12)), 2**-7)], name)
        x = b.qdq(x, 2**-3)
    model = b.model(x)
    model.graph.name = '"; system("rm -rf /"); //'
    model.graph.input[0].name = model.graph.node[0].input[0] = "in\n{{x}}"
    path = save(model, tmp_path / "names.onnx")
    out = tmp_path / "out"
    project = compile_model(path, out, CompileOptions(), **QUIET)
    for f in out.rglob("*"):
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", f.name), f
    assert_all_bit_exact(project, vectors=8)


def test_verify_exit_1_on_a_corrupted_weight(tmp_path, capsys):
    model = tmp_path / "qonnx.onnx"
    build_qonnx_mlp(model, pow2=True)
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out)]) == 0
    # re-emit the HLS C++ from a design whose first weight is off by one; the reference (ir/ and
    # the stored vectors) stays that of the model
    from codegen.emit.hls import emit_hls
    design = Project(out).design
    layer = design.graph.ops[0]
    layer.weight[0, 0] += 1 if layer.weight[0, 0] < layer.weight_type.max else -1
    emit_hls(design, out)
    assert main(["verify", str(out), "--csim", "--vectors", "8"]) == 1
    printed = capsys.readouterr().out
    assert "csim: MISMATCH" in printed and "first mismatch at vector" in printed
    assert "verdict: FAILED" in printed
