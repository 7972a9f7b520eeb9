"""Convolutional models end to end: torch export + onnxruntime quantize_static (QDQ), `einhls compile`,
the reference against onnxruntime, C-sim and RTL sim bit-exact (random input gaps and output
back-pressure), the measured interval against the schedule; bad convolutions refused by name."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models.conv_models import MODELS, build

QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("conv_e2e")   # the tests that share the compiled models: one worker


@pytest.fixture(scope="module")
def conv_projects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv_e2e")
    projects = {}
    for name in MODELS:
        model = build(name, folder / f"{name}.onnx")
        projects[name] = (model, compile_model(model, folder / f"out_{name}", CompileOptions(board="pynq-z2"),
                                               **QUIET))
    return projects


@SHARED
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_matches_onnxruntime(conv_projects, name):
    """The integer reference against onnxruntime running the QDQ model (real-valued, NCHW in and out):
    within one output step (the scales are not powers of two, so each requantization may differ by
    one rounding; on these models every element is equal)."""
    import onnxruntime as ort
    model, project = conv_projects[name]
    shape = MODELS[name][1]
    x = np.random.default_rng(3).normal(0, 1, size=(16,) + shape[1:]).astype(np.float32)
    session = ort.InferenceSession(str(model))
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    got = project.predict(x)
    assert got.shape == expected.shape
    steps = np.abs(got - expected) / project.graph.output_type.scale
    assert steps.max() <= 1 + 1e-6, steps.max()
    kinds = {op.kind for op in project.graph.ops}
    assert {"window", "linear"} <= kinds


@SHARED
@pytest.mark.csim
@pytest.mark.rtl
def test_conv2d_model_bit_exact_at_the_scheduled_interval(conv_projects):
    _, project = conv_projects["conv2d_small"]
    results = verify(project, ("csim", "rtlsim"), vectors=8, **QUIET)
    for result in results:
        assert result.passed, result.line()
    measured, totals = results[1].measured, project.report["totals"]
    # the pipeline runs at its slowest stage: here the first window (64 pixels x 9 taps x 1 lane)
    assert measured["interval_cycles"] <= totals["frame_interval"], (measured, totals)


@SHARED
@pytest.mark.csim
@pytest.mark.parametrize("name", ["conv1d_small", "conv_classifier"])
def test_conv_models_csim(conv_projects, name):
    _, project = conv_projects[name]
    result, = verify(project, ("csim",), vectors=8, **QUIET)
    assert result.passed, result.line()


@SHARED
@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.parametrize("name", ["conv1d_small", "conv_classifier"])
def test_conv_models_rtlsim(conv_projects, name):
    _, project = conv_projects[name]
    result, = verify(project, ("rtlsim",), vectors=8, **QUIET)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] <= project.report["totals"]["frame_interval"]


# --- refusals ---------------------------------------------------------------------------------

def _float_conv(path, x_shape, w_shape, **attrs) -> None:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array((rng.integers(-4, 5, size=w_shape) / 8).astype(np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv_bad", **attrs)
    graph = helper.make_graph([node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"d{i}" for i in range(len(x_shape))])],
                              [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _compile(path, out):
    return subprocess.run([sys.executable, "-m", "codegen.cli", "compile", str(path), "-o", str(out),
                           "--default-type", "fixed<8,4>"], capture_output=True, text=True)


@pytest.mark.parametrize("case, x_shape, w_shape, attrs, message", [
    ("conv3d", [1, 2, 4, 4, 4], [3, 2, 3, 3, 3], {}, "3-D convolution"),
    ("grouped", [1, 4, 6, 6], [4, 2, 3, 3], {"group": 2}, "grouped convolution"),
    ("auto_pad", [1, 2, 6, 6], [3, 2, 3, 3], {"auto_pad": "SAME_SIDEWAYS"}, "auto_pad 'SAME_SIDEWAYS'"),
    ("pads_too_wide", [1, 2, 6, 6], [3, 2, 3, 3], {"pads": [3, 0, 0, 0]}, "padding"),
])
def test_bad_convolutions_refused_by_name(tmp_path, case, x_shape, w_shape, attrs, message):
    path = tmp_path / f"{case}.onnx"
    _float_conv(path, x_shape, w_shape, **attrs)
    proc = _compile(path, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("einhls: error:") and "conv_bad" in lines[0], proc.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_same_upper_float_conv_compiles(tmp_path):
    """auto_pad SAME_UPPER with an even kernel (the extra row and column at the end) on a float model
    with --default-type: compiles, and the reference equals a float conv to within the fixed-point steps."""
    path = tmp_path / "same.onnx"
    _float_conv(path, [1, 2, 5, 5], [3, 2, 2, 2], auto_pad="SAME_UPPER")
    proc = _compile(path, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    from codegen.project import Project
    import onnxruntime as ort
    project = Project(tmp_path / "out")
    window = next(op for op in project.graph.ops if op.kind == "window")
    assert window.pads == (0, 0, 1, 1)
    x = (np.random.default_rng(1).integers(-64, 64, size=(4, 2, 5, 5)) / 16).astype(np.float32)
    expected = np.concatenate([ort.InferenceSession(str(path)).run(None, {"x": x[i:i + 1]})[0] for i in range(4)])
    got = project.predict(x)
    assert np.abs(got - expected).max() <= project.graph.output_type.scale, np.abs(got - expected).max()
