"""The attention mask as a second model input (padding), end to end.

A BERT encoder layer of transformers (random weights, 2 heads of 16, 8 tokens: the graph form of
a MiniLM layer at a size that simulates quickly) exported with ``forward(x, attention_mask)``,
the mask extended as BERT does it ((1 - mask) * finfo.min added to the scores), quantized by
onnxruntime with the mask path left float: lowered (the mask becomes the last feature of each
input token and a MaskScores op before the softmax), the integer reference against onnxruntime
on padded inputs, C-sim and RTL sim bit-exact on vectors with padding.  The same for
all-MiniLM-L6-v2's layer 0 at 16 tokens (C-sim; RTL sim marked slow).  The mask forms einhls
refuses are refused by name with exit code 2.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

from codegen.errors import EinhlsError
from codegen.frontend import load_graph
from codegen.ir.graph import Graph
from codegen.ir.reference import pack_inputs, quantize_input, random_inputs, run_reference, unpack_inputs
from codegen.passes.sequence import with_tokens
from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models import minilm_mask
from onnx_oracle import onnx_session

QUIET = dict(progress=lambda *_: None)
LENGTH, HIDDEN = 8, 32
SMALL = pytest.mark.xdist_group("mask_small")


@pytest.fixture(scope="module")
def small_layer(tmp_path_factory):
    return minilm_mask.export_small_masked_layer(tmp_path_factory.mktemp("mask") / "small.onnx", LENGTH, HIDDEN)


def _ort(path):
    return onnx_session(str(path))


def test_mask_input_lowers_to_a_slice_of_the_packed_input(small_layer):
    graph = load_graph(small_layer)
    graph.check()
    assert graph.input_size == HIDDEN + 1 and graph.tokens == LENGTH
    names = [(p.name, p.start, p.size, p.kind) for p in graph.input_parts]
    assert names == [("x", 0, HIDDEN, "values"), ("attention_mask", HIDDEN, 1, "mask")]
    mask = next(op for op in graph.ops if op.kind == "maskscores")
    softmax = next(op for op in graph.ops if op.kind == "softmax")
    assert mask.inputs[1] == "input_attention_mask" and softmax.inputs == (mask.name,)
    assert softmax.unit.in_type == mask.out_type and mask.masked_code < mask.in_type.min
    assert (mask.heads, mask.tokens) == (2, LENGTH)
    # the JSON round trip keeps the packing
    again = Graph.from_json(graph.to_json(), graph.arrays())
    assert again.input_parts == graph.input_parts


def test_reference_follows_onnxruntime_on_padded_sentences(small_layer):
    """On the real tokens the integer reference is within one output step of onnxruntime running
    the same QDQ model (measured: at most 1 step, mean below 0.15); the padding tokens' own rows
    are computed too but are not compared (onnxruntime's depend on float rounding of finfo.min)."""
    graph = load_graph(small_layer)
    session = _ort(small_layer)
    t = graph.output_type
    rng = np.random.default_rng(7)
    for mask in minilm_mask.padding_masks(6, LENGTH, 9):
        x = rng.normal(0, 1, size=(1, LENGTH, HIDDEN)).astype(np.float32)
        theirs = session.run(None, {"x": x, "attention_mask": mask})[0].reshape(LENGTH, HIDDEN)
        codes = pack_inputs(graph, {"x": x, "attention_mask": mask})
        ours = (run_reference(graph, codes).reshape(LENGTH, HIDDEN) - t.zero_point) * t.scale
        n = int(mask.sum())
        steps = np.abs(ours - theirs)[:n] / t.scale
        assert steps.max() <= 1.0 + 1e-3 and steps.mean() < 0.15, (n, steps.max(), steps.mean())


def test_padding_changes_the_real_tokens_only_through_the_mask(small_layer):
    """The reference with a mask equals the reference of the same layer on the sentence alone
    (the sequence pass at its own length): padding keys are left out exactly."""
    graph = load_graph(small_layer)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, size=(1, LENGTH, HIDDEN)).astype(np.float32)
    n = 5
    mask = (np.arange(LENGTH) < n).astype(np.int64)[None]
    padded = run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": mask})).reshape(LENGTH, -1)
    short = with_tokens(graph, n)
    assert short.input_parts[1].shape == (1, n)
    alone = run_reference(short, pack_inputs(short, {"x": x[:, :n], "attention_mask": mask[:, :n]})).reshape(n, -1)
    np.testing.assert_array_equal(padded[:n], alone)


def test_packing_helpers(small_layer):
    graph = load_graph(small_layer)
    vectors = random_inputs(graph, 5, seed=3)
    parts = unpack_inputs(graph, vectors)
    masks = parts["attention_mask"][:, :, 0]
    assert set(np.unique(masks)) <= {0, 1}
    assert masks[0].tolist() == [1] + [0] * (LENGTH - 1) and masks[1].tolist() == [1] * LENGTH
    with pytest.raises(ValueError, match="padding mask"):
        quantize_input(graph, {"x": np.zeros((1, LENGTH, HIDDEN)), "attention_mask": np.full((1, LENGTH), 2)})
    with pytest.raises(ValueError, match="give a dict"):
        quantize_input(graph, np.zeros((1, LENGTH, HIDDEN)))


@pytest.fixture(scope="module")
def small_project(small_layer, tmp_path_factory):
    return compile_model(small_layer, tmp_path_factory.mktemp("mask_kv260") / "out", CompileOptions(board="kv260"),
                         **QUIET)


@SMALL
def test_small_masked_layer_is_bit_exact_in_csim(small_project):
    (result,) = verify(small_project, ("csim",), vectors=8, **QUIET)
    assert result.passed, result.line()


@SMALL
def test_small_masked_layer_is_bit_exact_in_rtlsim(small_project):
    """16 stored and 4 random sequences with padding (the first all padding but one token, the
    second none) through the Verilog, back to back and with random pauses."""
    (result,) = verify(small_project, ("rtlsim",), vectors=4, **QUIET)
    assert result.passed, result.line()
    totals = small_project.report["totals"]
    assert result.measured["interval_cycles"] <= totals["frame_interval"], (result.measured, totals)


# --- refused by name -----------------------------------------------------------------------------

@pytest.mark.parametrize("form, quantized_mask, message", [
    ("causal", False, "causal mask"),
    ("causal_only", False, "causal mask"),
    ("query", False, r"a mask per query"),
    ("padding", True, "exclude the mask's nodes"),
])
def test_unsupported_masks_are_refused_by_name(tmp_path, form, quantized_mask, message):
    path = minilm_mask.export_small_masked_layer(tmp_path / f"{form}.onnx", 4, 16, 2, 32, form=form,
                                                 float_mask_path=not quantized_mask)
    with pytest.raises(EinhlsError, match=message):
        load_graph(path)
    proc = subprocess.run([sys.executable, "-m", "codegen.cli", "compile", str(path), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("einhls: error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_mask_not_added_to_scores_is_refused(tmp_path):
    """attention_mask [1, L] used to zero the hidden states (not the scores): refused, naming the node."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    m = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])
    nodes = [helper.make_node("Unsqueeze", ["attention_mask", "axis"], ["m3"], name="unsq"),
             helper.make_node("Cast", ["m3"], ["mf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["x", "mf"], ["y"], name="zero_padding")]
    graph = helper.make_graph(nodes, "g", [x, m], [y],
                              [helper.make_tensor("axis", TensorProto.INT64, [1], [2])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(EinhlsError, match="zero_padding.*attention mask"):
        load_graph(path, default_type=None)


# --- all-MiniLM-L6-v2 -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_masked(tmp_path_factory):
    return minilm_mask.export_masked_layers(tmp_path_factory.mktemp("minilm_mask") / "layer0.onnx", 16)


@pytest.fixture(scope="module")
def minilm_masked_kv260(minilm_masked, tmp_path_factory):
    return compile_model(minilm_masked, tmp_path_factory.mktemp("minilm_mask_kv260") / "out",
                         CompileOptions(board="kv260"), **QUIET)


def test_minilm_masked_layer_follows_onnxruntime(minilm_masked):
    """Padded real sentences: within the unmasked layer's agreement with onnxruntime (mean below
    1.5 output steps over the real tokens; measured about 0.8)."""
    graph = load_graph(minilm_masked)
    session = _ort(minilm_masked)
    t = graph.output_type
    texts = ["A short one.", "Padding must not change what the real tokens see."]
    for x, mask in minilm_mask.padded_inputs(texts, 16):
        theirs = session.run(None, {"x": x, "attention_mask": mask})[0].reshape(16, -1)
        ours = (run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": mask})).reshape(16, -1)
                - t.zero_point) * t.scale
        n = int(mask.sum())
        assert n < 16
        steps = np.abs(ours - theirs)[:n] / t.scale
        assert steps.mean() < 1.5, steps.mean()


@pytest.mark.slow
def test_minilm_masked_layer_is_bit_exact_in_csim(minilm_masked_kv260):
    (result,) = verify(minilm_masked_kv260, ("csim",), vectors=1, stored=2, **QUIET)
    assert result.passed, result.line()


@pytest.mark.slow
def test_minilm_masked_layer_is_bit_exact_in_rtlsim_on_zcu104(minilm_masked, tmp_path):
    """Measured: bit-exact on 3 sequences (all keys but one masked, none masked, a random length),
    23,408 cycles between sequences (the schedule: 1,463 x 16), latency 52,506 cycles (estimate
    43,108); about 20 minutes on a loaded 2-core machine."""
    project = compile_model(minilm_masked, tmp_path / "out", CompileOptions(board="zcu104"), **QUIET)
    (result,) = verify(project, ("rtlsim",), vectors=1, stored=2, **QUIET)
    assert result.passed, result.line()


def test_pynq_driver_takes_the_mask_by_name(small_project, tmp_path, monkeypatch):
    """The generated PYNQ driver (against test_driver's fake DMA, which runs the reference on the
    frames it receives): predict(x, attention_mask=mask) packs what pack_inputs packs."""
    import test_driver
    from codegen.emit.driver import emit_driver
    from codegen.ir.reference import dequantize_output

    design = small_project.design
    emit_driver(design, tmp_path / "out")
    driver = test_driver.load_driver(tmp_path / "out", monkeypatch, test_driver.fake_pynq(design))
    accel = driver.EinhlsOverlay("/nowhere/einhls_top.bit", max_batch=4)
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, size=(5, LENGTH, HIDDEN))
    mask = np.concatenate(minilm_mask.padding_masks(5, LENGTH, 8))
    want = dequantize_output(design.graph, run_reference(design.graph, pack_inputs(design.graph,
                                                                                   {"x": x, "attention_mask": mask})))
    got = accel.predict(x, attention_mask=mask)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with pytest.raises(TypeError, match="attention_mask"):
        accel.predict(x)
    with pytest.raises(ValueError, match="padding mask"):
        accel.predict(x, attention_mask=mask * 2)


# --- mean pooling over the tokens -----------------------------------------------------------------

@pytest.fixture(scope="module")
def pooled_project(tmp_path_factory):
    path = minilm_mask.export_small_masked_layer(tmp_path_factory.mktemp("pool") / "pooled.onnx", LENGTH, HIDDEN,
                                                 pooling="mean")
    return path, compile_model(path, tmp_path_factory.mktemp("pool_kv260") / "out", CompileOptions(board="kv260"),
                               **QUIET)


def test_mean_pooling_is_one_token_mean_op(pooled_project):
    """x.mean(dim=1) after the layer: a ReduceMean over the tokens becomes one TokenMean op (L tokens
    in, one out), within one output step of onnxruntime on unpadded sequences."""
    path, project = pooled_project
    graph = project.graph
    assert graph.ops[-1].kind == "tokenmean" and graph.ops[-1].tokens == LENGTH
    assert graph.tokens == LENGTH and graph.output_tokens == 1 and graph.output_shape == (1, HIDDEN)
    session = _ort(path)
    rng = np.random.default_rng(11)
    t = graph.output_type
    for _ in range(4):
        x = rng.normal(0, 1, size=(1, LENGTH, HIDDEN)).astype(np.float32)
        mask = np.ones((1, LENGTH), dtype=np.int64)
        theirs = session.run(None, {"x": x, "attention_mask": mask})[0].reshape(-1)
        ours = (run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": mask})).reshape(-1)
                - t.zero_point) * t.scale
        assert np.abs(ours - theirs).max() / t.scale <= 1.0 + 1e-3


@SMALL
def test_pooled_layer_is_bit_exact_in_csim(pooled_project):
    _, project = pooled_project
    (result,) = verify(project, ("csim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.mark.slow
def test_pooled_layer_is_bit_exact_in_rtlsim(pooled_project):
    """About 100 s (the Verilator build); the unit alone runs in RTL sim in the default run
    (tests/test_pooling_units.py)."""
    _, project = pooled_project
    (result,) = verify(project, ("rtlsim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.fixture(scope="module")
def masked_pool_project(tmp_path_factory):
    path = minilm_mask.export_small_masked_layer(tmp_path_factory.mktemp("mpool") / "masked_pool.onnx", LENGTH,
                                                 HIDDEN, pooling="masked_mean")
    return path, compile_model(path, tmp_path_factory.mktemp("mpool_kv260") / "out", CompileOptions(board="kv260"),
                               **QUIET)


def test_masked_mean_pooling_is_one_op_and_follows_onnxruntime(masked_pool_project):
    """sum(x * mask) / clamp(sum(mask), 1e-9) (sentence-transformers with padding): one
    MaskedTokenMean op reading the layer's output and the mask; within one output step of
    onnxruntime (measured: at most 0.67) on padded sequences."""
    path, project = masked_pool_project
    graph = project.graph
    last = graph.ops[-1]
    # the mask stream, forked to the scores' mask unit and this one
    assert last.kind == "maskedmean" and graph.output_tokens == 1
    fork = graph.producer(last.inputs[1])
    assert fork.kind == "fork" and fork.inputs == ("input_attention_mask",)
    session = _ort(path)
    t = graph.output_type
    rng = np.random.default_rng(12)
    for mask in minilm_mask.padding_masks(6, LENGTH, 13):
        x = rng.normal(0, 1, size=(1, LENGTH, HIDDEN)).astype(np.float32)
        theirs = session.run(None, {"x": x, "attention_mask": mask})[0].reshape(-1)
        ours = (run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": mask})).reshape(-1)
                - t.zero_point) * t.scale
        assert np.abs(ours - theirs).max() / t.scale <= 1.0 + 1e-3


@SMALL
def test_masked_pooled_layer_is_bit_exact_in_csim(masked_pool_project):
    _, project = masked_pool_project
    (result,) = verify(project, ("csim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.mark.slow
def test_masked_pooled_layer_is_bit_exact_in_rtlsim(masked_pool_project):
    """Measured: bit-exact on 20 padded sequences, 720 cycles between sequences (the schedule)."""
    _, project = masked_pool_project
    (result,) = verify(project, ("rtlsim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.mark.slow
def test_two_layers_share_the_mask_and_pool_it(tmp_path):
    """Two encoder layers and masked mean pooling: one mask stream forked to both layers' mask units
    and the pooling unit; bit-exact in C-sim (measured, with RTL sim: see the README)."""
    path = minilm_mask.export_small_masked_layer(tmp_path / "two.onnx", LENGTH, HIDDEN, pooling="masked_mean",
                                                 layers=2)
    project = compile_model(path, tmp_path / "out", CompileOptions(board="kv260"), **QUIET)
    kinds = [op.kind for op in project.graph.ops]
    assert kinds.count("maskscores") == 2 and kinds[-1] == "maskedmean"
    (result,) = verify(project, ("csim",), vectors=4, **QUIET)
    assert result.passed, result.line()


@pytest.mark.rtl
def test_scores_and_mask_from_one_fork_do_not_stall(tmp_path):
    """The score mask reads a whole sequence of mask codes before its first row of scores: where
    both come from one fork, the FIFO in front of the scores must hold what arrives meanwhile
    (folding.input_ready through MaskScores.sequence_input).  It used to be sized as for a unit
    that reads both together, and the design stalled in RTL simulation."""
    from codegen.emit.cocotb_tb import emit_cocotb_tb
    from codegen.emit.rtl import emit_rtl
    from codegen.verify.rtlsim import run_rtlsim

    from bench.calibrate_units import graph_unit_design

    design = graph_unit_design("maskscores", 8)
    graph = design.graph
    masked = next(op for op in graph.ops if op.kind == "maskscores")
    scores_beats = graph.tokens * -(-masked.in_size // design.schedule(masked).in_lanes)
    assert design.fifo_depths[(masked.name, 0)] >= scores_beats   # a sequence of scores waits for the mask
    emit_rtl(design, tmp_path)
    emit_cocotb_tb(design, tmp_path)
    inputs = random_inputs(graph, 4, seed=3)
    result = run_rtlsim(tmp_path, inputs, run_reference(graph, inputs), tmp_path / "work", seed=3)
    assert result.passed, result.line()
