"""Front end against real exporters: torch.onnx.export (dynamo and legacy) QDQ models compared with
onnxruntime, Brevitas-style QONNX models and the built-in demo compared with qonnx's execute_onnx.

Power-of-two scales must agree exactly; other scales within one step of the output quantizer.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.qdq_helper import float_mlp  # noqa: E402
from models.qonnx_mlp import build_qonnx_mlp, run_qonnx  # noqa: E402

from codegen.demo_model import SIZES, build_demo_model  # noqa: E402
from codegen.frontend import load_graph  # noqa: E402
from codegen.ir.graph import Linear  # noqa: E402
from codegen.ir.reference import dequantize_output, quantize_input, run_reference  # noqa: E402
from onnx_oracle import onnx_session


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime, one vector at a time, basic optimizations only (onnx_oracle.onnx_session)."""
    sess = onnx_session(path, basic=True)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: row[None, :]})[0] for row in x])


def reference(graph, x: np.ndarray) -> np.ndarray:
    return dequantize_output(graph, run_reference(graph, quantize_input(graph, x)))


def check_agreement(graph, got: np.ndarray, expected: np.ndarray, exact: bool) -> None:
    expected = expected.reshape(got.shape)
    if exact:
        np.testing.assert_array_equal(got, expected)
    else:
        steps = np.abs(got - expected) / graph.output_type.scale
        assert steps.max() <= 1 + 1e-4, f"off by {steps.max():.3f} output steps"


@pytest.mark.parametrize("dynamo, pow2, per_channel", [
    (True, True, False), (True, False, True), (False, True, True), (False, False, False)])
def test_torch_export_qdq_matches_onnxruntime(tmp_path, dynamo, pow2, per_channel):
    pytest.importorskip("torch")
    from models.torch_qdq import export_mlp

    path = tmp_path / "mlp.onnx"
    export_mlp(path, pow2=pow2, per_channel=per_channel, dynamo=dynamo, seed=3)
    graph = load_graph(path)
    assert [type(op) for op in graph.ops] == [Linear, Linear]
    assert graph.ops[0].requant.lo == 0  # the Relu is fused into the first layer's clamp
    assert graph.ops[0].requant.per_channel == per_channel
    assert graph.input_shape == (1, 16) and graph.output_shape == (1, 6) and graph.output_is_float
    x = np.random.default_rng(5).normal(0, 2, size=(100, 16)).astype(np.float32)
    check_agreement(graph, reference(graph, x), ort_outputs(path, x), exact=pow2)


@pytest.mark.parametrize("per_channel, activation", [(False, "QUInt8"), (True, "QInt8")])
def test_onnxruntime_quantize_static_qdq(tmp_path, per_channel, activation):
    """The QDQ form onnxruntime's own quantizer writes (int8 weights + DequantizeLinear, int32 bias,
    activation zero points), with calibrated scales that are not powers of two."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rows = np.random.default_rng(0).normal(0, 2, size=(32, 8)).astype(np.float32)
            self.rows = iter([{"x": row[None, :]} for row in rows])

        def get_next(self):
            return next(self.rows, None)

    path = tmp_path / "static.onnx"
    quantize_static(str(float_mlp(tmp_path / "float.onnx")), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=getattr(QuantType, activation),
                    weight_type=QuantType.QInt8)
    graph = load_graph(path)
    assert [op.kind for op in graph.ops] == ["linear", "linear"]
    x = np.random.default_rng(1).normal(0, 2, size=(200, 8)).astype(np.float32)
    check_agreement(graph, reference(graph, x), ort_outputs(path, x), exact=False)


@pytest.mark.parametrize("pow2", [True, False])
def test_qonnx_model_matches_execute_onnx(tmp_path, pow2):
    pytest.importorskip("qonnx")
    path = tmp_path / "qonnx.onnx"
    build_qonnx_mlp(path, pow2=pow2, seed=1)
    graph = load_graph(path)
    first, second = graph.ops
    assert first.weight_type.bits <= 4 and first.out_type.bits == 6 and not first.out_type.signed
    assert graph.input_shape == (1, 1, 4, 4) and graph.input_size == 16
    x = np.random.default_rng(6).normal(0, 2, size=(24, 16)).astype(np.float32)
    check_agreement(graph, reference(graph, x), run_qonnx(path, x), exact=pow2)


@pytest.mark.parametrize("int32_bias", [True, False])
def test_brevitas_export_matches_execute_onnx(tmp_path, int32_bias):
    pytest.importorskip("brevitas")
    pytest.importorskip("onnxoptimizer")
    pytest.importorskip("qonnx")
    from models.brevitas_mlp import export_brevitas_mlp

    path = tmp_path / "brevitas.onnx"
    export_brevitas_mlp(path, int32_bias=int32_bias)
    graph = load_graph(path)
    assert [op.kind for op in graph.ops] == ["linear", "linear"]
    assert graph.ops[0].weight_type.bits <= 4 and graph.ops[0].out_type.bits == 6
    x = np.random.default_rng(8).normal(0, 2, size=(24, 16)).astype(np.float32)
    got, expected = reference(graph, x), run_qonnx(path, x)
    if int32_bias:
        check_agreement(graph, got, expected, exact=False)
    else:
        # a float bias is rounded to accumulator units (1/25 of a hidden step here): a hidden value
        # near a tie may round the other way, and the next layer turns that into up to 2 steps
        steps = np.abs(got - expected.reshape(got.shape)) / graph.output_type.scale
        assert steps.max() <= 2 + 1e-4 and (steps > 1e-6).mean() < 0.1


def test_demo_model_is_deterministic_and_lowers(tmp_path):
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    build_demo_model(first)
    build_demo_model(second)
    assert first.read_bytes() == second.read_bytes()
    graph = load_graph(first)
    fc1, fc2, fc3 = graph.ops
    assert (graph.input_type.bits, graph.input_type.signed, graph.input_size) == (8, True, SIZES[0])
    assert fc1.weight_type.bits == 4 and (fc1.out_type.bits, fc1.out_type.signed) == (6, False)
    assert fc2.sparsity == (2, 4) and fc1.sparsity is None and fc3.sparsity is None
    assert [op.out_size for op in graph.ops] == list(SIZES[1:])
    assert all(op.requant.lo == op.out_type.zero_point for op in (fc1, fc2))  # fused ReLUs


def test_demo_model_matches_qonnx_exactly(tmp_path):
    pytest.importorskip("qonnx")
    path = tmp_path / "demo.onnx"
    build_demo_model(path)
    graph = load_graph(path)
    x = np.random.default_rng(7).normal(0, 1, size=(12, SIZES[0])).astype(np.float32)
    check_agreement(graph, reference(graph, x), run_qonnx(path, x), exact=True)
