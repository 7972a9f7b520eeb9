"""Front end unit tests: each ONNX form, pass and refusal, on small onnx.helper models.

Numerical checks compare the PyTorch integer reference (``run_reference`` on ``quantize_input``,
then ``dequantize_output``) with onnxruntime on the same file: exactly, since every scale here is a
power of two.
"""
from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.qdq_helper import QdqBuilder, float_mlp, save  # noqa: E402

from codegen.errors import EinhlsError  # noqa: E402
from codegen.frontend import fuse_relu, load_graph, lower_model  # noqa: E402
from codegen.frontend.names import op_name, safe_hint  # noqa: E402
from codegen.ir.build import make_linear, make_relu, make_requant  # noqa: E402
from codegen.ir.graph import Graph, Linear, Relu, Requant  # noqa: E402
from codegen.ir.reference import dequantize_output, quantize_input, random_inputs, run_reference  # noqa: E402
from codegen.ir.types import QType, parse_fixed  # noqa: E402
from onnx_oracle import onnx_session

RNG_SEED = 7


def run_both(path: Path, x: np.ndarray, graph: Graph | None = None) -> tuple[np.ndarray, np.ndarray, Graph]:
    """(reference output, onnxruntime output, graph) for float inputs x [B, in]."""
    graph = graph or load_graph(path)
    sess = onnx_session(path, basic=True)
    shape = (1,) + tuple(graph.input_shape[1:])
    expected = np.concatenate([sess.run(None, {"x": row.reshape(shape)})[0].reshape(1, -1) for row in x])
    got = dequantize_output(graph, run_reference(graph, quantize_input(graph, x)))
    return got, expected, graph


def assert_exact(path: Path, x: np.ndarray) -> Graph:
    got, expected, graph = run_both(path, x)
    np.testing.assert_array_equal(got, expected)
    return graph


def inputs(count: int, size: int, sigma: float = 2.0) -> np.ndarray:
    return np.random.default_rng(RNG_SEED).normal(0, sigma, size=(count, size)).astype(np.float32)


def one_layer(codes_kn: np.ndarray, metadata: dict | None = None, name: str = "fc") -> onnx.ModelProto:
    """x -> int8 QDQ -> MatMul(int8 weight [K, N]) -> QuantizeLinear int8 (codes out)."""
    b = QdqBuilder([1, codes_kn.shape[0]])
    x = b.qdq("x", 2**-4)
    x = b.node("MatMul", [x, b.weight(codes_kn, 2**-6)], name)
    x = b.qdq(x, 2**-3, dequantize=False)
    return b.model(x, metadata)


# ----- names -----
def test_safe_hint_keeps_only_identifier_characters():
    assert safe_hint("/fc1/Gemm") == "fc1_gemm"
    assert safe_hint('{{ op.name }}"\n../../etc/passwd') == "op_name_etc_passwd"
    assert safe_hint("x" * 40) == "x" * 24
    assert op_name(3, "") == "n3" and op_name(0, "class") == "n0_class"


def test_hostile_node_names_give_safe_unique_op_names(tmp_path):
    hostile = ['fc"1\n', "../../x", "class", "{{ evil }}{% raw %}", "", "int", "__init__", "a;b//c"]
    rng = np.random.default_rng(0)
    b = QdqBuilder([1, 8])
    x = b.qdq("x", 2**-4)
    for name in hostile[:4]:
        x = b.node("MatMul", [x, b.weight(rng.integers(-100, 100, size=(8, 8)), 2**-7)], name)
        x = b.qdq(x, 2**-3)
    x = b.node("Mul", [x, b.tensor(np.array(0.5))], hostile[6])
    model = b.model(b.qdq(x, 2**-3, name=hostile[5]))
    model.graph.name = '"; system("rm -rf /"); //'
    graph = assert_exact(save(model, tmp_path / "names.onnx"), inputs(20, 8))
    names = [op.name for op in graph.ops]
    assert len(set(names)) == len(names) == 5
    for name in names + [graph.name]:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name) and not keyword.iskeyword(name), name
    assert names[0] == "n0_fc_1" and names[1] == "n1_x" and names[3].startswith("n3_evil")
    assert names[4] == "n4_int" and graph.ops[4].source.endswith("__init__ + int")
    assert 'fc"1\n' in graph.ops[0].source  # originals only in source


# ----- QDQ forms -----
def test_per_tensor_axis_quirk_and_exact_accumulator_output(tmp_path):
    """Per-tensor Q/DQ with axis=1 (dynamo style); no quantizer at the end keeps the exact sum."""
    rng = np.random.default_rng(1)
    b = QdqBuilder([1, 12], opset=18)
    x = b.qdq("x", 2**-5, axis=1)
    x = b.node("MatMul", [x, b.weight(rng.integers(-128, 128, size=(12, 6)), 2**-7)])
    x = b.node("Add", [x, b.tensor(rng.integers(-99, 99, size=6) * 2**-12)])
    graph = assert_exact(save(b.model(x), tmp_path / "m.onnx"), inputs(50, 12))
    (op,) = graph.ops
    assert op.out_type.scale == 2**-12 and op.requant.shift == 0 and graph.output_is_float


def test_per_channel_accumulators_without_quantizer_stay_exact(tmp_path):
    """Per-channel power-of-two accumulators: rescaled exactly by integer ratios between layers and
    at the output, with no quantizer in between."""
    rng = np.random.default_rng(14)
    b = QdqBuilder([1, 12])
    x = b.qdq("x", 2**-4)
    x = b.node("MatMul", [x, b.weight(rng.integers(-20, 20, size=(12, 6)), 2.0 ** rng.integers(-6, -3, size=6),
                                      axis=1)])
    x = b.node("Relu", [x])
    x = b.node("MatMul", [x, b.weight(rng.integers(-20, 20, size=(6, 4)), 2.0 ** -np.arange(4), axis=1)])
    graph = assert_exact(save(b.model(x), tmp_path / "m.onnx"), inputs(50, 12))
    assert [op.kind for op in graph.ops] == ["linear", "requant", "linear", "requant"]
    assert graph.ops[1].requant.lo == 0 and graph.ops[1].requant.shift == 0


def test_qonnx_domains_and_activation_bit_limit(tmp_path):
    from models.qonnx_mlp import DOMAIN, build_qonnx_mlp

    model = build_qonnx_mlp(tmp_path / "q.onnx")
    for node in model.graph.node:
        node.domain = node.domain.replace(DOMAIN, "finn.custom_op.general")
    model.opset_import[1].domain = "finn.custom_op.general"
    assert [op.kind for op in lower_model(model).ops] == ["linear", "linear"]
    bits = next(i for i in model.graph.initializer if i.name == "q3_bitwidth")
    bits.CopyFrom(onnx.numpy_helper.from_array(np.array(17.0, np.float32), "q3_bitwidth"))
    err = error_of(model)
    assert err.node == "Quant_3" and "bit width 17" in err.reason


def test_int4_uint4_per_channel_and_weight_zero_point(tmp_path):
    rng = np.random.default_rng(2)
    b = QdqBuilder([1, 16], opset=21)
    x = b.qdq("x", 2**-4, 3, TensorProto.UINT8)  # input zero point: folded into the bias
    w = b.weight(rng.integers(-8, 8, size=(16, 8)), 2.0 ** rng.integers(-4, -1, size=8), 0,
                 TensorProto.INT4, axis=1)
    x = b.node("Relu", [b.node("MatMul", [x, w])])
    x = b.qdq(x, 2**-2, 0, TensorProto.UINT4)
    w2 = b.weight(rng.integers(0, 256, size=(8, 4)), 2**-6, 128, TensorProto.UINT8)  # weight zp 128
    x = b.qdq(b.node("MatMul", [x, w2]), 2**-3, 0, TensorProto.INT16)
    graph = assert_exact(save(b.model(x), tmp_path / "m.onnx"), inputs(60, 16, 3.0))
    assert [op.kind for op in graph.ops] == ["linear", "linear"]
    assert (graph.input_type.bits, graph.input_type.zero_point, graph.input_type.signed) == (8, 3, False)
    assert (graph.ops[0].out_type.bits, graph.ops[0].out_type.signed) == (4, False)
    assert graph.ops[0].weight_type.bits == 4 and graph.ops[1].weight.min() >= -128
    assert (graph.ops[1].out_type.bits, graph.ops[1].out_type.signed) == (16, True)


def test_gemm_alpha_beta_and_mul_on_accumulator(tmp_path):
    rng = np.random.default_rng(3)
    b = QdqBuilder([1, 10])
    x = b.qdq("x", 2**-4)
    w = b.weight(rng.integers(-128, 128, size=(6, 10)), 2**-6)
    c = b.tensor(rng.integers(-50, 50, size=6) * 2**-9)
    x = b.node("Gemm", [x, w, c], transB=1, alpha=0.5, beta=2.0)
    x = b.node("Mul", [x, b.tensor(np.array([1, 2, 0.5, -1, 4, 0.25]))])  # one negative: rows flip
    x = b.node("Relu", [x])
    graph = assert_exact(save(b.model(b.qdq(x, 2**-4, 0, TensorProto.UINT8)), tmp_path / "m.onnx"), inputs(60, 10))
    assert len(graph.ops) == 1 and graph.ops[0].requant.per_channel


def test_integer_input_and_integer_output(tmp_path):
    rng = np.random.default_rng(4)
    b = QdqBuilder([1, 8])
    s, z = b.tensor(np.array(2**-4)), b.tensor(np.array(-5), TensorProto.INT8)
    x = b.node("DequantizeLinear", ["x", s, z])
    x = b.node("MatMul", [x, b.weight(rng.integers(-128, 128, size=(8, 4)), 2**-6)])
    model = b.model(b.qdq(x, 2**-2, 0, TensorProto.INT8, dequantize=False))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT8
    path = save(model, tmp_path / "m.onnx")
    graph = load_graph(path)
    assert graph.input_type == QType(True, 8, 2**-4, -5) and not graph.output_is_float
    codes = random_inputs(graph, 40, seed=1)
    sess = onnx_session(path, basic=True)
    expected = np.concatenate([sess.run(None, {"x": row.reshape(1, -1).astype(np.int8)})[0] for row in codes])
    np.testing.assert_array_equal(run_reference(graph, codes), expected)


def test_elementwise_mul_add_relu_become_one_requant(tmp_path):
    b = QdqBuilder([1, 8], opset=21)
    x = b.qdq("x", 2**-8, 0, TensorProto.INT16)
    x = b.node("Mul", [x, b.tensor(np.array(0.5))])
    x = b.node("Add", [x, b.tensor(np.arange(-4, 4) * 2**-6)])
    x = b.node("Relu", [x])
    graph = assert_exact(save(b.model(b.qdq(x, 2**-5)), tmp_path / "m.onnx"), inputs(50, 8))
    (op,) = graph.ops
    assert isinstance(op, Requant) and op.requant.lo == 0
    assert list(op.offset) == [int(v) for v in np.arange(-4, 4) * 2**3]


def test_standalone_relu_and_exact_elementwise_output(tmp_path):
    b = QdqBuilder([1, 8])
    x = b.node("Relu", [b.qdq("x", 2**-4)])
    x = b.node("Add", [x, b.tensor(np.full(8, 0.25))])
    graph = assert_exact(save(b.model(x), tmp_path / "m.onnx"), inputs(50, 8))
    assert [op.kind for op in graph.ops] == ["relu", "requant"]


def test_layout_ops_and_folded_weight_transpose(tmp_path):
    """Reshape/Flatten/Squeeze/Unsqueeze on the activation; DQ -> Transpose -> Identity on the weight."""
    rng = np.random.default_rng(5)
    b = QdqBuilder([1, 2, 8], opset=13)
    x = b.qdq("x", 2**-4)
    x = b.node("Reshape", [x, b.tensor(np.array([1, 1, 16]), TensorProto.INT64)])
    x = b.node("Squeeze", [x, b.tensor(np.array([0]), TensorProto.INT64)])
    x = b.node("Unsqueeze", [x, b.tensor(np.array([0]), TensorProto.INT64)])
    x = b.node("Flatten", [x], axis=1)
    w = b.weight(rng.integers(-128, 128, size=(6, 16)), 2.0 ** rng.integers(-8, -5, size=6), axis=0)
    w = b.node("Identity", [b.node("Transpose", [w], perm=[1, 0])])
    x = b.node("MatMul", [x, w])
    graph = assert_exact(save(b.model(b.qdq(x, 2**-3)), tmp_path / "m.onnx"), inputs(40, 16))
    assert graph.input_shape == (1, 2, 8) and graph.output_shape == (1, 6) and len(graph.ops) == 1


def test_float_weight_on_a_fixed_point_grid_is_taken_exactly(tmp_path):
    rng = np.random.default_rng(15)
    b = QdqBuilder([1, 8])
    x = b.node("MatMul", [b.qdq("x", 2**-4), b.tensor(rng.integers(-7, 8, size=(8, 4)) * 0.125)], "grid")
    graph = assert_exact(save(b.model(b.qdq(x, 2**-4)), tmp_path / "m.onnx"), inputs(40, 8))
    assert graph.ops[0].weight_type.bits == 4
    b = QdqBuilder([1, 8])
    x = b.node("MatMul", [b.qdq("x", 2**-4), b.tensor(rng.normal(0, 1, size=(8, 4)))], "off_grid")
    err = error_of(b.model(b.qdq(x, 2**-4)))
    assert err.node == "off_grid" and "not quantized" in err.reason


def test_initializers_listed_as_inputs_are_constants(tmp_path):
    model = one_layer(np.random.default_rng(6).integers(-128, 128, size=(8, 4)))
    inits = [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in model.graph.initializer]
    model.graph.input.extend(inits)
    graph = lower_model(model)
    assert len(graph.ops) == 1 and graph.input_size == 8


def test_external_data_loads(tmp_path):
    model = one_layer(np.random.default_rng(8).integers(-128, 128, size=(64, 32)))
    inline = lower_model(model)  # before saving: save_model moves the model's tensors out
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.weights", size_threshold=0)
    assert (tmp_path / "ext.weights").stat().st_size >= 64 * 32
    graph = load_graph(path)
    np.testing.assert_array_equal(graph.ops[0].weight, inline.ops[0].weight)
    (tmp_path / "ext.weights").unlink()
    with pytest.raises(EinhlsError, match="external data"):
        load_graph(path)


def test_dynamic_batch_is_fixed_to_one(tmp_path):
    model = one_layer(np.random.default_rng(9).integers(-128, 128, size=(8, 4)))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    graph = lower_model(model)
    assert graph.input_shape == (1, 8) and graph.output_shape == (1, 4)


# ----- N:M sparsity -----
def pattern_weight(n: int, m: int, rows: int = 16, k: int = 32, spread: bool = True) -> np.ndarray:
    """[out, in] weight with exactly n non-zeros per group of m (at fixed or random places)."""
    rng = np.random.default_rng(n * 100 + m)
    w = np.zeros((rows, k), dtype=np.int64)
    for r in range(rows):
        for g in range(0, k, m):
            places = rng.choice(m, size=n, replace=False) if spread else np.arange(n)
            w[r, g + places] = rng.integers(1, 100, size=n) * rng.choice([-1, 1], size=n)
    return w


@pytest.mark.parametrize("n, m, spread", [(1, 4, True), (2, 4, True), (2, 8, False), (4, 8, False),
                                          (4, 16, False)])
def test_nm_sparsity_detected(n, m, spread):
    graph = lower_model(one_layer(pattern_weight(n, m, spread=spread).T))
    assert graph.ops[0].sparsity == (n, m)


def test_dense_weight_is_dense():
    w = np.random.default_rng(10).integers(1, 100, size=(16, 32))
    assert lower_model(one_layer(w.T)).ops[0].sparsity is None


def test_declared_sparsity_is_verified():
    w = pattern_weight(1, 4).T
    assert lower_model(one_layer(w, {"einhls.sparsity.fc": "2:4"})).ops[0].sparsity == (2, 4)
    assert lower_model(one_layer(w, {"einhls.sparsity.fc": "dense"})).ops[0].sparsity is None
    with pytest.raises(EinhlsError, match="does not hold") as err:
        lower_model(one_layer(pattern_weight(4, 8, spread=False).T, {"einhls.sparsity.fc": "2:4"}))
    assert err.value.node == "fc"


# ----- passes -----
def test_fuse_relu_folds_into_linear_and_requant():
    rng = np.random.default_rng(11)
    t_in, t_mid = QType(True, 8, 2**-4), QType(True, 8, 2**-3, 5)
    lin = make_linear("l", "l", rng.integers(-50, 50, size=(6, 10)), None, t_in, 2**-10, t_mid)
    rq = make_requant("r", "r", t_mid, QType(True, 6, 2**-2, -3), 6)
    graph = Graph("g", t_in, 10, [lin, make_relu("a", "a", t_mid, 6), rq, make_relu("b", "b", rq.out_type, 6)])
    fused = fuse_relu(graph)
    assert [type(op) for op in fused.ops] == [Linear, Requant] and len(graph.ops) == 4
    assert fused.ops[0].requant.lo == 5 and fused.ops[1].requant.lo == -3
    codes = random_inputs(graph, 64, seed=3)
    np.testing.assert_array_equal(run_reference(graph, codes), run_reference(fused, codes))
    lone = Graph("g", t_in, 10, [make_relu("a", "a", t_in, 10), make_relu("b", "b", t_in, 10)])
    (kept,) = fuse_relu(lone).ops
    assert isinstance(kept, Relu) and kept.source == "a + b"


# ----- float models and default type -----
def test_float_model_refused_with_how_to_quantize(tmp_path):
    with pytest.raises(EinhlsError) as err:
        load_graph(float_mlp(tmp_path / "f.onnx"))
    assert err.value.node == "dense_1" and err.value.op_type == "Gemm"
    assert "quantize_static" in str(err.value) and "QONNX" in str(err.value)
    assert "--default-type fixed<16,6>" in str(err.value)


def test_float_model_with_default_type(tmp_path):
    fixed = parse_fixed("fixed<16,6>")
    got, expected, graph = run_both(float_mlp(tmp_path / "f.onnx"), inputs(50, 8),
                                    load_graph(tmp_path / "f.onnx", default_type=fixed))
    assert graph.input_type == fixed and all(op.out_type == fixed for op in graph.ops)
    assert [op.kind for op in graph.ops] == ["linear", "linear"] and graph.ops[0].requant.lo == 0
    np.testing.assert_allclose(got, expected, atol=16 * fixed.scale)


# ----- refusals: each names the node -----
def error_of(model_or_path) -> EinhlsError:
    with pytest.raises(EinhlsError) as err:
        if isinstance(model_or_path, Path):
            load_graph(model_or_path)
        else:
            lower_model(model_or_path)
    return err.value


def test_truncated_file(tmp_path):
    data = one_layer(np.ones((64, 64), dtype=np.int64)).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert "cut.onnx" in str(error_of(path))


def test_unsupported_operator():
    b = QdqBuilder([1, 8])
    x = b.node("Sigmoid", [b.qdq("x", 2**-4)], "squash")
    err = error_of(b.model(b.qdq(x, 2**-7)))
    assert (err.node, err.op_type) == ("squash", "Sigmoid")


def test_missing_initializer():
    b = QdqBuilder([1, 8])
    x = b.node("MatMul", [b.qdq("x", 2**-4), "W_gone"], "fc_missing")
    model = b.model(b.qdq(x, 2**-3))
    err = error_of(model)
    assert err.node == "fc_missing" and "W_gone" in err.reason and "initializer" in err.reason


def test_dynamic_non_batch_dimension():
    model = one_layer(np.ones((8, 4), dtype=np.int64))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    err = error_of(model)
    assert err.node == "x" and "features" in err.reason


def test_residual_add_without_a_quantizer_refused():
    """A residual Add needs a type for its result: the quantizer after it (or --default-type)."""
    rng = np.random.default_rng(13)
    b = QdqBuilder([1, 8])
    x = b.qdq("x", 2**-4)
    y = b.node("MatMul", [x, b.weight(rng.integers(-9, 9, size=(8, 8)), 2**-6)])
    err = error_of(b.model(b.node("Add", [x, y], "skip")))
    assert err.node == "skip" and "needs a quantizer after it" in err.reason


def test_dead_end_branch_refused():
    b = QdqBuilder([1, 8])
    x = b.qdq("x", 2**-4)
    b.node("Relu", [x], "left")
    b.node("Relu", [x], "right")
    err = error_of(b.model("right_out"))
    assert err.node == "left" and "dead-end branch" in err.reason


def test_old_opset_refused():
    model = one_layer(np.ones((8, 4), dtype=np.int64))
    model.opset_import[0].version = 12
    assert "opset 12" in str(error_of(model))


@pytest.mark.parametrize("case", ["reorder", "weight_scale_along_k", "per_channel_activation"])
def test_unsupported_forms_name_the_node(case):
    b = QdqBuilder([1, 2, 4])
    x = b.qdq("x", 2**-4)
    if case == "reorder":
        x = b.node("Transpose", [x], "swap", perm=[0, 2, 1])
        expected = ("swap", "order")
    elif case == "weight_scale_along_k":
        x = b.node("Reshape", [x, b.tensor(np.array([1, 8]), TensorProto.INT64)])
        w = b.weight(np.ones((8, 3), dtype=np.int64), 2.0 ** -np.arange(8), axis=0)
        x = b.node("MatMul", [x, w], "fc_k")
        expected = ("fc_k", "reduction axis")
    elif case == "per_channel_activation":
        s = b.tensor(np.array([0.5, 0.25, 0.125, 1.0]))
        z = b.tensor(np.zeros(4), TensorProto.INT8)
        x = b.node("DequantizeLinear", [b.node("QuantizeLinear", [x, s, z], "q_axis", axis=2), s, z], axis=2)
        expected = ("q_axis", "per-channel")
    err = error_of(b.model(b.qdq(x, 2**-3)))
    assert err.node == expected[0] and expected[1] in err.reason


def test_constant_off_the_activation_grid_is_added_on_a_finer_grid(tmp_path):
    """A bias added after a requantized MatMul (quantize_static writes this): the codes move exactly to
    a grid 256 times finer, the constant is added there, and the next quantizer rounds once."""
    b = QdqBuilder([1, 8])
    x = b.node("Add", [b.qdq("x", 2**-4), b.tensor(np.linspace(-0.3, 0.4, 8) + 0.0123)], "add_off_grid")
    path = save(b.model(b.qdq(x, 2**-3)), tmp_path / "m.onnx")
    ref, got, graph = run_both(path, inputs(200, 8))
    assert np.abs(ref - got).max() <= 2**-3 * 1.0001
    assert [op.kind for op in graph.ops] == ["requant", "requant"]
