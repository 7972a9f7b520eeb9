"""Attention in the IR and the front end: ActMatMul's reference against a float einsum, head views
(the Reshape / Transpose pairs exporters write become addressing), a real MiniLM encoder layer
exported by torch.onnx.export and quantized by onnxruntime quantize_static, lowered and compared
with onnxruntime, the sequence-length pass, and the attention variants einhls refuses by name."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from codegen.errors import EinhlsError
from codegen.frontend import load_graph
from codegen.ir.attention import ActMatMul, make_actmatmul
from codegen.ir.reference import quantize, run_reference
from codegen.ir.types import QType
from codegen.passes.sequence import with_tokens

from models import minilm
from onnx_oracle import onnx_session

LENGTH = 16   # the conftest fixture minilm_layer's


@pytest.mark.parametrize("layout", ["nt", "nn"])
def test_actmatmul_reference_is_the_rounded_float_product(layout):
    rng = np.random.default_rng(1)
    a_type, b_type, out = QType(True, 8, 0.05, 3), QType(False, 8, 0.02, 128), QType(True, 8, 0.4, -5)
    heads, tokens = 3, 5
    inner, cols = (7, tokens) if layout == "nt" else (tokens, 4)
    op = make_actmatmul("p", "test", a_type, b_type, heads, inner, cols, tokens, layout, out,
                        a_type.scale * b_type.scale / out.scale)
    a = torch.as_tensor(rng.integers(-128, 128, (2 * tokens, heads * inner)))
    b = torch.as_tensor(rng.integers(0, 256, (2 * tokens, op.in_size_b)))
    y = op.reference(a, b).numpy().reshape(2, tokens, heads, cols)
    fa = (a.double() - 3).reshape(2, tokens, heads, inner) * a_type.scale
    fb = (b.double() - 128).reshape(2, tokens, heads, -1) * b_type.scale
    if layout == "nt":
        real = torch.einsum("sihk,sjhk->sihj", fa, fb)
    else:
        real = torch.einsum("sihj,sjhn->sihn", fa, fb)
    want = torch.clamp(torch.round(real / out.scale) + out.zero_point, out.min, out.max).numpy()
    # one rounding of the exact integer accumulator: equal up to the multiplier's 2^-24 relative error
    assert np.abs(y - want).max() <= 1
    assert np.mean(y == want) > 0.99


def test_actmatmul_json_round_trip():
    op = make_actmatmul("scores", "t", QType(True, 8, 0.1), QType(True, 8, 0.1), 2, 4, 6, 6, "nt",
                        QType(True, 8, 0.5), 0.02, inputs=("q", "k"))
    again = ActMatMul.from_json_fields(dict(name=op.name, source=op.source, in_type=op.in_type,
                                            out_type=op.out_type, in_size=op.in_size, out_size=op.out_size,
                                            inputs=op.inputs), op.to_json(), {})
    assert again == op


def test_actmatmul_refuses_inconsistent_shapes():
    with pytest.raises(ValueError, match="sequence"):
        make_actmatmul("s", "t", QType(True, 8, 1.0), QType(True, 8, 1.0), 2, 4, 5, 6, "nt", QType(True, 8, 1.0), 1.0)


# --- a real MiniLM layer -------------------------------------------------------------------------

def _session(path):
    return onnx_session(str(path))


def test_minilm_layer_lowers_to_attention_units(minilm_layer):
    graph = load_graph(minilm_layer)
    graph.check()
    kinds = [op.kind for op in graph.ops]
    assert kinds.count("actmatmul") == 2 and kinds.count("softmax") == 1, kinds
    assert kinds.count("layernorm") == 2 and kinds.count("gelu") == 1 and kinds.count("linear") == 6, kinds
    scores, context = (op for op in graph.ops if op.kind == "actmatmul")
    assert (scores.layout, scores.heads, scores.inner, scores.cols) == ("nt", 12, 32, LENGTH)
    assert (context.layout, context.heads, context.inner, context.cols) == ("nn", 12, LENGTH, 32)
    softmax = next(op for op in graph.ops if op.kind == "softmax")
    assert softmax.unit.size == LENGTH and softmax.in_size == 12 * LENGTH and softmax.rows == 12
    # no op copies or reorders data for the head split / merge: the Transposes are in no op's source
    assert not any("Transpose" in op.source for op in graph.ops)
    assert graph.tokens == LENGTH


def test_minilm_layer_reference_follows_onnxruntime(minilm_layer):
    """The integer reference on the QDQ model against onnxruntime running the same model: the
    units round once where onnxruntime rounds several times (measured: mean 0.8 output steps,
    embedding cosine 0.985)."""
    graph = load_graph(minilm_layer)
    session = _session(minilm_layer)
    t = graph.output_type
    for x in minilm.hidden_states(minilm.sentences()[:4], LENGTH):
        theirs = session.run(None, {"x": x})[0].reshape(-1)
        ours = (run_reference(graph, quantize(x.reshape(1, -1), graph.input_type)).reshape(-1)
                - t.zero_point) * t.scale
        steps = np.abs(ours - theirs) / t.scale
        assert steps.mean() < 1.5, steps.mean()
        cosine = float(minilm.sentence_embedding(ours) @ minilm.sentence_embedding(theirs))
        assert cosine > 0.97, cosine


def test_sequence_length_pass(minilm_layer):
    graph = load_graph(minilm_layer)
    short = with_tokens(graph, 5)
    short.check()
    scores = next(op for op in short.ops if op.kind == "actmatmul")
    assert short.tokens == 5 and scores.cols == 5 and short.input_shape == (1, 5, 384)
    assert next(op for op in short.ops if op.kind == "softmax").unit.size == 5
    back = with_tokens(short, LENGTH)
    assert back.to_json() == graph.to_json()
    # a sentence at its own length: the layer's reference on 5 tokens is close to the float layer
    _, model = minilm.load()
    x = minilm.hidden_states(["The cat sat."])[0]
    n = x.shape[1]
    at_n = with_tokens(graph, n)
    t = at_n.output_type
    ours = (run_reference(at_n, quantize(x.reshape(1, -1), at_n.input_type)) - t.zero_point) * t.scale
    with torch.no_grad():
        real = minilm.Layers(model, 0, 1)(torch.as_tensor(x)).numpy()
    assert float(minilm.sentence_embedding(ours) @ minilm.sentence_embedding(real)) > 0.9


# --- refusals --------------------------------------------------------------------------------------

def _attention_model(kv_heads: int = 2, perm_k=(0, 2, 3, 1), causal: bool = False) -> onnx.ModelProto:
    """A float attention block on [1, 4, 8] with 2 query heads of 4 (grouped when kv_heads = 1)."""
    L, C, H = 4, 8, 2
    d = C // H
    rng = np.random.default_rng(0)
    inits = [helper.make_tensor(n, TensorProto.FLOAT, dims, rng.normal(0, 0.3, dims).astype(np.float32).ravel())
             for n, dims in (("wq", [C, C]), ("wk", [C, kv_heads * d]), ("wv", [C, kv_heads * d]))]
    inits += [helper.make_tensor("sq", TensorProto.INT64, [4], [1, L, H, d]),
              helper.make_tensor("skv", TensorProto.INT64, [4], [1, L, kv_heads, d]),
              helper.make_tensor("so", TensorProto.INT64, [3], [1, L, C]),
              helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / math.sqrt(d)])]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q0"]), helper.make_node("MatMul", ["x", "wk"], ["k0"]),
             helper.make_node("MatMul", ["x", "wv"], ["v0"]),
             helper.make_node("Reshape", ["q0", "sq"], ["q1"]), helper.make_node("Reshape", ["k0", "skv"], ["k1"]),
             helper.make_node("Reshape", ["v0", "skv"], ["v1"]),
             helper.make_node("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["k1"], ["kt"], perm=list(perm_k)),
             helper.make_node("Transpose", ["v1"], ["v"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["q", "kt"], ["s0"], name="scores"),
             helper.make_node("Mul", ["s0", "scale"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["c0"], name="context"),
             helper.make_node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["c1", "so"], ["y"])]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, L, C])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, L, C])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float_attention_compiles_with_a_default_type(tmp_path):
    path = tmp_path / "attention.onnx"
    onnx.save(_attention_model(), path)
    graph = load_graph(path, default_type=QType(True, 8, 2.0 ** -5))
    assert [op.kind for op in graph.ops].count("actmatmul") == 2


@pytest.mark.parametrize("model, match", [
    (dict(kv_heads=1), "grouped or multi-query"),
    (dict(perm_k=(0, 3, 2, 1)), r"Transpose \[0, 3, 2, 1\].*head split"),
])
def test_unsupported_attention_is_refused_by_name(tmp_path, model, match):
    path = tmp_path / "bad.onnx"
    onnx.save(_attention_model(**model), path)
    with pytest.raises(EinhlsError, match=match):
        load_graph(path, default_type=QType(True, 8, 2.0 ** -5))


class _RotaryAttention(torch.nn.Module):
    """Self-attention with rotary position embeddings on queries and keys, written as the
    Llama / GPT-NeoX code writes them (rotate_half: the negated second half concatenated with the
    first half; cos / sin tables per position)."""

    def __init__(self, hidden: int = 16, heads: int = 2, tokens: int = 4) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(hidden, hidden) for _ in range(4))
        self.heads, self.d = heads, hidden // heads
        angles = torch.arange(tokens).float()[:, None] / 10000 ** (torch.arange(0, self.d, 2).float() / self.d)
        self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()], -1))
        self.register_buffer("sin", torch.cat([angles.sin(), angles.sin()], -1))

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x[..., : self.d // 2], x[..., self.d // 2:]
        return x * self.cos + torch.cat([-second, first], -1) * self.sin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (p(x).view(1, -1, self.heads, self.d).transpose(1, 2) for p in (self.q, self.k, self.v))
        scores = self.rotate(q) @ self.rotate(k).transpose(-1, -2) / self.d ** 0.5
        context = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(1, -1, self.heads * self.d)
        return self.o(context)


def test_rotary_position_embeddings_are_refused_by_name(tmp_path):
    """A rotary attention block exported by torch.onnx.export and quantized by onnxruntime: one
    line naming the rotate_half Concat and the reason; the CLI exits 2 and writes no folder."""
    from codegen.cli import main
    from models.ort_qdq import export_quantized

    torch.manual_seed(0)
    path = export_quantized(_RotaryAttention(), tmp_path / "rotary.onnx", shape=(1, 4, 16))
    with pytest.raises(EinhlsError, match=r"'/Concat' \(Concat\): rotary position embeddings \(rotate_half"):
        load_graph(path)
    assert main(["compile", str(path), "--board", "zcu104", "-o", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_angles_computed_in_the_graph_are_refused_as_rotary(tmp_path):
    """Sin / Cos nodes (position angles computed on the fly) are refused by name, not as an
    unknown op."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])
    graph = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], name="angles")], "sin", [x], [y])
    path = tmp_path / "sin.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(EinhlsError, match=r"'angles' \(Sin\): rotary position embeddings"):
        load_graph(path)
