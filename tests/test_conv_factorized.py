"""Decomposed convolutions as tensorly-torch exports them (``tltorch.FactorizedConv``: CP separable,
CP "mobilenet", Tucker), QDQ-quantized by onnxruntime: the integer reference against onnxruntime,
the factors lowered to windows + Linear units of their own sizes (never the reconstructed kernel),
C-sim and RTL sim bit-exact at the scheduled interval."""
from __future__ import annotations

import numpy as np
import pytest

from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models.factorized_conv import MODELS, build
from onnx_oracle import onnx_session

QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("conv_factorized")


@pytest.fixture(scope="module")
def factorized_projects(tmp_path_factory):
    pytest.importorskip("tltorch")
    folder = tmp_path_factory.mktemp("conv_factorized")
    projects = {}
    for name in MODELS:
        model = build(name, folder / f"{name}.onnx")
        projects[name] = (model, compile_model(model, folder / f"out_{name}", CompileOptions(board="pynq-z2"),
                                               **QUIET))
    return projects


@SHARED
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_matches_onnxruntime(factorized_projects, name):
    """Within one output step of onnxruntime on the QDQ model (every factor's output has its own
    quantizer; the scales are not powers of two, so a requantization may round the other way)."""
    model, project = factorized_projects[name]
    shape = MODELS[name][1]
    x = np.random.default_rng(3).normal(0, 1, size=(16,) + shape[1:]).astype(np.float32)
    session = onnx_session(str(model))
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    got = project.predict(x)
    assert got.shape == expected.shape
    steps = np.abs(got - expected) / project.graph.output_type.scale
    assert steps.max() <= 1 + 1e-4, steps.max()
    assert (steps < 0.5).mean() > 0.99   # nearly every element equal


def _layers(project):
    return [(op.kind, op.in_size, op.out_size) for op in project.graph.ops if op.kind in ("window", "linear")]


@SHARED
def test_factors_keep_their_sizes(factorized_projects):
    """Each factor is its own unit of its own size; the 8 x 16 x 3 x 3 kernel is never rebuilt
    (that would be a 72 -> 16 Linear, 1152 weights where the factors hold 48 + 18 + 18 + 96)."""
    cp = factorized_projects["cp_separable_stride2"][1]
    windows = [op for op in cp.graph.ops if op.kind == "window"]
    assert [(w.kernel, w.stride) for w in windows] == [((3, 1), (2, 1)), ((1, 3), (1, 2))]
    assert _layers(cp) == [("linear", 8, 6), ("window", 6, 18), ("linear", 18, 6), ("window", 6, 18),
                           ("linear", 18, 6), ("linear", 6, 16)]
    # the depthwise factors: one N:M group per tap (6 channels), one slot per tap and output
    depthwise = [op.sparsity for op in cp.graph.ops if op.kind == "linear" and op.in_size == 18]
    assert depthwise == [(1, 6), (1, 6)]
    mobilenet = factorized_projects["cp_mobilenet"][1]
    assert [op.sparsity for op in mobilenet.graph.ops if op.kind == "linear"] == [None, (1, 6), None]
    assert _layers(mobilenet) == [("linear", 8, 6), ("window", 6, 54), ("linear", 54, 6), ("linear", 6, 16)]
    tucker = factorized_projects["tucker"][1]
    assert _layers(tucker) == [("linear", 8, 4), ("window", 4, 36), ("linear", 36, 6), ("linear", 6, 16)]
    for _, project in factorized_projects.values():
        assert max(op.in_size * op.out_size for op in project.graph.ops if op.kind == "linear") < 8 * 9 * 16


@SHARED
@pytest.mark.csim
@pytest.mark.rtl
def test_cp_separable_bit_exact_at_the_scheduled_interval(factorized_projects):
    _, project = factorized_projects["cp_separable_stride2"]
    results = verify(project, ("csim", "rtlsim"), vectors=8, **QUIET)
    for result in results:
        assert result.passed, result.line()
    assert results[1].measured["interval_cycles"] <= project.report["totals"]["frame_interval"]


@SHARED
@pytest.mark.csim
@pytest.mark.parametrize("name", ["cp_mobilenet", "tucker"])
def test_factorized_csim(factorized_projects, name):
    result, = verify(factorized_projects[name][1], ("csim",), vectors=8, **QUIET)
    assert result.passed, result.line()


@SHARED
@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.parametrize("name", ["cp_mobilenet", "tucker"])
def test_factorized_rtlsim(factorized_projects, name):
    _, project = factorized_projects[name]
    result, = verify(project, ("rtlsim",), vectors=8, **QUIET)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] <= project.report["totals"]["frame_interval"]
