"""Compressed layers inside a real encoder layer: all-MiniLM-L6-v2's layer 0 at 16 tokens with its
FFN as tensor trains (codegen.nn TTLinear, TT-SVD of the trained weights), its FFN 2:4-pruned, or
its query / key / value / output projections as butterflies (codegen.nn ButterflyLinear fitted to
the trained weights); quantized by quantize_static (tests/models/minilm.py), compiled and checked
bit-exact against the integer reference.  The default run checks the TT and butterfly layers'
lowering against onnxruntime; C-sim and RTL sim (minutes each for a 16-token layer) are slow."""
from __future__ import annotations

import numpy as np
import pytest

from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models import minilm
from onnx_oracle import onnx_session

QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("minilm_compressed")   # one worker builds each variant once
LENGTH = 16


@pytest.fixture(scope="session")
def minilm_variant(tmp_path_factory):
    """variant name -> the exported, quantized layer 0 at 16 tokens (built once per session)."""
    built: dict[str, object] = {}

    def get(variant: str):
        if variant not in built:
            built[variant] = minilm.export_variant(tmp_path_factory.mktemp(variant) / "layer.onnx", variant, LENGTH)
        return built[variant]
    return get


@SHARED
def test_tt_ffn_layer_reference_follows_onnxruntime(minilm_variant):
    """The TT Einsums apply to each of the 16 tokens (the token axis is a batch index of the
    contraction): the integer reference of the lowered layer against onnxruntime running the same
    QDQ model, as for the dense layer (tests/test_attention.py)."""

    from codegen.frontend import load_graph
    from codegen.ir.reference import quantize, run_reference

    path = minilm_variant("ffn_tt")
    graph = load_graph(path)
    assert graph.tokens == LENGTH
    stages = [op for op in graph.ops if op.kind == "contraction"]
    assert len(stages) == 2 and all(op.in_size * op.out_size == 384 * 1536 for op in stages), \
        [(op.kind, op.in_size, op.out_size) for op in graph.ops]
    session = onnx_session(str(path))
    t = graph.output_type
    for x in minilm.hidden_states(minilm.sentences()[:3], LENGTH):
        theirs = session.run(None, {"x": x})[0].reshape(-1)
        ours = (run_reference(graph, quantize(x.reshape(1, -1), graph.input_type)).reshape(-1)
                - t.zero_point) * t.scale
        steps = np.abs(ours - theirs) / t.scale
        assert steps.mean() < 1.5, steps.mean()
        cosine = float(minilm.sentence_embedding(ours) @ minilm.sentence_embedding(theirs))
        assert cosine > 0.97, cosine


@pytest.mark.slow
def test_tt_ffn_layer_is_bit_exact_in_csim_on_zcu104(minilm_variant, tmp_path):
    project = compile_model(minilm_variant("ffn_tt"), tmp_path / "out", CompileOptions(board="zcu104"), **QUIET)
    assert project.graph.tokens == LENGTH
    # both FFN Linears became a 3-stage contraction each, the attention is unchanged
    kinds = [op.kind for op in project.graph.ops]
    assert kinds.count("linear") == 4 and kinds.count("actmatmul") == 2, kinds
    tt_macs = [op.macs for op in project.graph.ops if op.kind == "contract"]
    assert tt_macs and sum(tt_macs) < 2 * 384 * 1536, tt_macs       # cheaper than the dense FFN
    (result,) = verify(project, ("csim",), vectors=0, stored=2, **QUIET)
    assert result.passed, result.line()


@pytest.mark.slow
def test_tt_ffn_layer_is_bit_exact_in_rtlsim_on_zcu104(minilm_variant, tmp_path):
    """The two 3-stage contraction units inside the attention layer in Verilog, 2 stored sequences
    back to back and with random pauses; the interval between sequences is at most the schedule's
    (verify prints both: run with -s).  Measured: bit-exact, 14,336 cycles between sequences (the
    schedule's 896 x 16 exactly), latency 36,668 cycles (estimate 33,306); 1,058 s with the
    Verilator build on a shared 2-core machine."""
    project = compile_model(minilm_variant("ffn_tt"), tmp_path / "out", CompileOptions(board="zcu104"), **QUIET)
    (result,) = verify(project, ("rtlsim",), vectors=0, stored=2, progress=print)
    assert result.passed, result.line()
    totals = project.report["totals"]
    print("schedule:", {k: totals[k] for k in ("ii", "frame_interval", "latency")}, "measured:", result.measured)
    assert result.measured["interval_cycles"] <= totals["frame_interval"], (result.measured, totals)


@pytest.mark.slow
def test_ffn_2_4_layer_is_bit_exact_in_csim_and_rtlsim_on_zcu104(minilm_variant, tmp_path):
    project = compile_model(minilm_variant("ffn_2_4"), tmp_path / "out", CompileOptions(board="zcu104"), **QUIET)
    ffn = [op for op in project.graph.ops if op.kind == "linear" and op.in_size * op.out_size == 384 * 1536]
    assert len(ffn) == 2 and all(op.sparsity == (2, 4) for op in ffn), [(op.name, op.sparsity) for op in ffn]
    (csim,) = verify(project, ("csim",), vectors=0, stored=2, **QUIET)
    assert csim.passed, csim.line()
    (rtl,) = verify(project, ("rtlsim",), vectors=0, stored=2, **QUIET)
    assert rtl.passed, rtl.line()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["ffn_tt", "ffn_2_4", "attention_butterfly"])
def test_variant_compiles_for_kv260(minilm_variant, variant, tmp_path):
    project = compile_model(minilm_variant(variant), tmp_path / "out", CompileOptions(board="kv260"), **QUIET)
    assert project.graph.tokens == LENGTH and project.report["totals"]["frame_interval"] > 0


def test_butterfly_layer_reference_follows_onnxruntime(tmp_path):
    """Butterfly Q/K/V/O over the 16 tokens: one Butterfly unit per projection (the exporter's shared
    Pad / Reshape of query, key and value copied per butterfly), the integer reference against
    onnxruntime on the same QDQ model.  A short fit (20 steps) keeps this fast: the lowering does
    not depend on how well the twiddles fit."""

    from codegen.frontend import load_graph
    from codegen.ir.reference import quantize, run_reference

    path = minilm.export_variant(tmp_path / "layer.onnx", "attention_butterfly", LENGTH, butterfly_steps=20)
    graph = load_graph(path)
    kinds = [op.kind for op in graph.ops]
    assert graph.tokens == LENGTH and kinds.count("butterfly") == 4 and kinds.count("linear") == 2, kinds
    session = onnx_session(str(path))
    t = graph.output_type
    for x in minilm.hidden_states(minilm.sentences()[:3], LENGTH):
        theirs = session.run(None, {"x": x})[0].reshape(-1)
        ours = (run_reference(graph, quantize(x.reshape(1, -1), graph.input_type)).reshape(-1)
                - t.zero_point) * t.scale
        steps = np.abs(ours - theirs) / t.scale
        assert steps.mean() < 1.5, steps.mean()
        cosine = float(minilm.sentence_embedding(ours) @ minilm.sentence_embedding(theirs))
        assert cosine > 0.97, cosine


@pytest.mark.slow
def test_butterfly_layer_is_bit_exact_in_csim_and_rtlsim_on_zcu104(minilm_variant, tmp_path):
    project = compile_model(minilm_variant("attention_butterfly"), tmp_path / "out", CompileOptions(board="zcu104"),
                            **QUIET)
    kinds = [op.kind for op in project.graph.ops]
    assert kinds.count("butterfly") == 4 and kinds.count("linear") == 2, kinds
    (csim,) = verify(project, ("csim",), vectors=0, stored=2, **QUIET)
    assert csim.passed, csim.line()
    (rtl,) = verify(project, ("rtlsim",), vectors=0, stored=2, **QUIET)
    assert rtl.passed, rtl.line()


def test_tt_cores_are_tt_svd_of_the_dense_weights():
    """The TT FFN starts from the trained matrix, not at random: its cores are TT-SVD truncations (at
    full rank the same TT-SVD reproduces the matrix), and rank 8 stays below the dense MACs."""
    from torch import nn
    import torch

    torch.manual_seed(0)
    dense = nn.Linear(16, 24)
    full = minilm.TokenwiseTT(dense, (4, 4), (4, 6), rank=16)
    with torch.no_grad():
        exact = full.tt.full_weight()
    # 8-bit cores: the product is the dense weight up to the cores' rounding
    weight = dense.weight.detach()
    assert float(torch.linalg.norm(exact - weight) / torch.linalg.norm(weight)) < 0.05
    x = torch.randn(1, 3, 16)
    y = full(x)
    assert y.shape == (1, 3, 24)
    assert np.allclose(y.detach().numpy(), (x @ exact.T + dense.bias).detach().numpy(), atol=1e-5)


def export_small_tt_layer(path, length: int = 4, hidden: int = 32, inner: int = 64):
    """A BERT layer of transformers at a size that simulates in seconds (2 heads of 16, random
    weights) with its FFN as tensor trains, quantized like the MiniLM variants."""
    import torch
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertModel

    from models.ort_qdq import export_quantized

    torch.manual_seed(0)
    config = BertConfig(hidden_size=hidden, num_attention_heads=2, intermediate_size=inner, num_hidden_layers=1,
                        vocab_size=16, max_position_embeddings=8, attn_implementation="eager")
    model = BertModel(config).eval()
    layer = model.encoder.layer[0]
    layer.intermediate.dense = minilm.TokenwiseTT(layer.intermediate.dense, (4, 8), (8, 8), 4)
    layer.output.dense = minilm.TokenwiseTT(layer.output.dense, (8, 8), (4, 8), 4)
    return export_quantized(minilm.Layers(model, 0, 1), path, shape=(1, length, hidden))


@pytest.mark.xdist_group("small_tt_layer")
@pytest.mark.csim
def test_tt_ffn_in_a_small_encoder_layer_runs_each_unit_once_per_token(tmp_path):
    """Regression: the HLS top (one sequence per call) called each contraction's permutation unit
    once per row of its memory (256 times a 4-token frame), reading empty streams over a million
    times, and C-sim still compared equal; the testbench now fails on an empty read, and every
    token-by-token unit of this layer runs once per token."""
    import re

    project = compile_model(export_small_tt_layer(tmp_path / "layer.onnx"), tmp_path / "out",
                            CompileOptions(board="zcu104"), **QUIET)
    assert [op.kind for op in project.graph.ops].count("contract") >= 4
    top = (tmp_path / "out" / "hls" / "einhls_top.cpp").read_text()
    permutes = re.findall(r"permutation buffer.*?, (\d+) call\(s\) a frame", top)
    assert permutes and set(permutes) == {"4"}, permutes
    (result,) = verify(project, ("csim",), vectors=4, **QUIET)
    assert result.passed, result.line()
