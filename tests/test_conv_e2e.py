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
from onnx_oracle import onnx_session

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
    model, project = conv_projects[name]
    shape = MODELS[name][1]
    x = np.random.default_rng(3).normal(0, 1, size=(16,) + shape[1:]).astype(np.float32)
    session = onnx_session(str(model))
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    got = project.predict(x)
    assert got.shape == expected.shape
    steps = np.abs(got - expected) / project.graph.output_type.scale
    assert steps.max() <= 1 + 1e-4, steps.max()   # float32 rounding of the step
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
def test_separable_block_is_compressed(conv_projects):
    """Depthwise 3x3 = window + a Linear whose kernel is zero outside each channel: found 1:8 sparse
    (one multiplier slot per 8 input channels); the pruned pointwise conv 2:4 along its input
    channels; the Tucker chain three convs of their own sizes (4 channels in the 3x3 core)."""
    _, project = conv_projects["separable_block"]
    linears = [op for op in project.graph.ops if op.kind == "linear"]
    assert [op.sparsity for op in linears[:2]] == [(1, 8), (2, 4)]
    assert [(op.in_size, op.out_size) for op in linears[2:]] == [(16, 4), (36, 4), (4, 16)]


@SHARED
@pytest.mark.csim
@pytest.mark.parametrize("name", ["conv1d_small", "conv_classifier", "separable_block"])
def test_conv_models_csim(conv_projects, name):
    _, project = conv_projects[name]
    result, = verify(project, ("csim",), vectors=8, **QUIET)
    assert result.passed, result.line()


@SHARED
@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.parametrize("name", ["conv1d_small", "conv_classifier", "separable_block"])
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
    ("group_mismatch", [1, 4, 6, 6], [3, 2, 3, 3], {"group": 3}, "group=3 does not fit"),
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
    project = Project(tmp_path / "out")
    window = next(op for op in project.graph.ops if op.kind == "window")
    assert window.pads == (0, 0, 1, 1)
    x = (np.random.default_rng(1).integers(-64, 64, size=(4, 2, 5, 5)) / 16).astype(np.float32)
    expected = np.concatenate([onnx_session(str(path)).run(None, {"x": x[i:i + 1]})[0] for i in range(4)])
    got = project.predict(x)
    assert np.abs(got - expected).max() <= project.graph.output_type.scale, np.abs(got - expected).max()


# --- the residual digits CNN (scikit-learn 8x8 digits), QDQ and Brevitas QONNX ---------------------

@pytest.fixture(scope="module")
def digits_projects(tmp_path_factory):
    """Both exports trained here (a few CPU seconds each), compiled; with the float / Brevitas
    accuracies to compare with."""
    pytest.importorskip("sklearn")
    pytest.importorskip("brevitas")
    from models.digits_cnn import export_brevitas, export_qdq
    folder = tmp_path_factory.mktemp("digits")
    qdq, float_acc = export_qdq(folder / "digits_qdq.onnx")
    brevitas, brevitas_acc, _ = export_brevitas(folder / "digits_brevitas.onnx")
    options = CompileOptions(board="pynq-z2")
    return {"qdq": (qdq, float_acc, compile_model(qdq, folder / "out_qdq", options, **QUIET)),
            "brevitas": (brevitas, brevitas_acc, compile_model(brevitas, folder / "out_brevitas", options, **QUIET))}


@pytest.mark.xdist_group("conv_digits")
@pytest.mark.parametrize("kind", ["qdq", "brevitas"])
def test_digits_accuracy_of_the_reference(digits_projects, kind):
    """Test-set accuracy of the integer reference against the model it came from (the float torch
    model for QDQ, the Brevitas model in torch for QONNX): within 1.5 points; the graph has the
    residual add, the windows and the pooling."""
    from models.digits_cnn import accuracy, load_digits_split
    _, _, x_test, y_test = load_digits_split()
    _, source_acc, project = digits_projects[kind]
    ours = accuracy(project.predict(x_test), y_test)
    assert ours >= 0.9 and abs(ours - source_acc) <= 0.015, (ours, source_acc)
    kinds = [op.kind for op in project.graph.ops]
    assert {"window", "linear", "add", "fork"} <= set(kinds)


@pytest.mark.xdist_group("conv_digits")
def test_digits_qdq_reference_matches_onnxruntime(digits_projects):
    from models.digits_cnn import load_digits_split
    _, _, x_test, _ = load_digits_split()
    model, _, project = digits_projects["qdq"]
    session = onnx_session(str(model))
    x = x_test[:64]
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    steps = np.abs(project.predict(x) - expected) / project.graph.output_type.scale
    assert steps.max() <= 1 + 1e-4, steps.max()   # float32 rounding of the step


@pytest.mark.xdist_group("conv_digits")
@pytest.mark.csim
@pytest.mark.parametrize("kind", ["qdq", "brevitas"])
def test_digits_csim(digits_projects, kind):
    result, = verify(digits_projects[kind][2], ("csim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.mark.xdist_group("conv_digits")
@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.parametrize("kind", ["qdq", "brevitas"])
def test_digits_rtlsim_at_the_scheduled_interval(digits_projects, kind):
    project = digits_projects[kind][2]
    result, = verify(project, ("rtlsim",), vectors=4, **QUIET)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] <= project.report["totals"]["frame_interval"]


# --- the float CNNs shipped inside the qonnx package, with --default-type -------------------------

def _qonnx_model(name: str):
    qonnx = pytest.importorskip("qonnx")
    from pathlib import Path
    return Path(qonnx.__file__).parent / "data" / "onnx" / name


def _mnist_conv_opset13(path):
    """mnist-conv/model.onnx is opset 8 (einhls reads 13+): converted by onnx.version_converter, IR
    version raised so initializers need not be graph inputs; nothing else changes."""
    from onnx import version_converter
    model = version_converter.convert_version(onnx.load(_qonnx_model("mnist-conv/model.onnx")), 13)
    model.ir_version = 7
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def qonnx_projects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qonnx_cnns")
    mnist = _mnist_conv_opset13(folder / "mnist_conv.onnx")
    residual = _qonnx_model("residual_block_clean.onnx")
    return {
        # 28x28 digits: conv 5x5 SAME_UPPER, bias, ReLU, MaxPool 2x2, again with MaxPool 3x3, Reshape, MatMul
        "mnist_conv": (mnist, compile_model(mnist, folder / "out_mnist", CompileOptions(default_type="fixed<16,6>"),
                                            **QUIET)),
        # 200x200: conv 8x8 stride 4, two 3x3 convs with ReLU, a skip Add, MaxPool 4x4 stride 4
        "residual_block": (residual, compile_model(residual, folder / "out_residual",
                                                   CompileOptions(default_type="fixed<24,9>"), **QUIET)),
    }


@pytest.mark.xdist_group("conv_qonnx")
@pytest.mark.parametrize("name, scale, tolerance", [("mnist_conv", 4.0, 0.1), ("residual_block", 1.0, 0.05)])
def test_qonnx_float_cnns_match_onnxruntime(qonnx_projects, name, scale, tolerance):
    """The reference in fixed point against onnxruntime in float: the difference is the fixed-point
    rounding of weights and activations (absolute tolerance, outputs of magnitude ~10 and ~100)."""
    model, project = qonnx_projects[name]
    session = onnx_session(str(model))
    feed = session.get_inputs()[0]
    shape = [int(d) for d in project.graph.input_shape]
    x = (np.random.default_rng(2).uniform(0 if name == "mnist_conv" else -1, 1, size=[2] + shape[1:]) * scale
         ).astype(np.float32)
    expected = np.concatenate([session.run(None, {feed.name: x[i:i + 1]})[0] for i in range(len(x))])
    got = project.predict(x)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= tolerance, np.abs(got - expected).max()
    assert "tapmax" in {op.kind for op in project.graph.ops}


@pytest.mark.xdist_group("conv_qonnx")
@pytest.mark.csim
def test_mnist_conv_csim(qonnx_projects):
    result, = verify(qonnx_projects["mnist_conv"][1], ("csim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.mark.xdist_group("conv_qonnx")
@pytest.mark.slow
@pytest.mark.csim
@pytest.mark.rtl
@pytest.mark.parametrize("name, checks", [("mnist_conv", ("csim", "rtlsim")), ("residual_block", ("csim",))])
def test_qonnx_float_cnns_csim_rtlsim(qonnx_projects, name, checks):
    project = qonnx_projects[name][1]
    for result in verify(project, checks, vectors=2, **QUIET):
        assert result.passed, result.line()


@pytest.mark.xdist_group("conv_qonnx")
@pytest.mark.slow
@pytest.mark.rtl
def test_residual_block_rtlsim_two_frames(qonnx_projects):
    """residual_block_clean in RTL sim on two of its stored frames (40000 pixels each: 153664 cycles a
    frame; every stored and random vector would take tens of minutes): bit-exact, back to back at
    the scheduled interval (two frames give one interval). About 2.5 minutes here with the Verilator
    build, run twice by verify (back to back, then with random pauses)."""
    project = qonnx_projects["residual_block"][1]
    result, = verify(project, ("rtlsim",), vectors=0, stored=2, **QUIET)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] <= project.report["totals"]["frame_interval"]


@SHARED
def test_pynq_driver_predict_takes_channels_first_frames(conv_projects, tmp_path, monkeypatch):
    """The generated PYNQ driver (against the fake DMA of tests/test_driver.py, a model of the
    accelerator from the integer reference) takes [B, C, H, W] like Project.predict and returns
    [B, C', H', W']: it transposes to and from the pixel stream."""
    from codegen.emit.driver import emit_driver
    from test_driver import fake_pynq, load_driver
    _, project = conv_projects["conv2d_small"]
    emit_driver(project.design, tmp_path / "out")
    driver = load_driver(tmp_path / "out", monkeypatch, fake_pynq(project.design))
    accel = driver.EinhlsOverlay("/nowhere/einhls_top.bit", max_batch=4)
    x = np.random.default_rng(6).normal(0, 1, size=(5, 3, 8, 8))
    want = project.predict(x)
    got = accel.predict(x)
    assert np.array_equal(got.reshape(want.shape), want)
