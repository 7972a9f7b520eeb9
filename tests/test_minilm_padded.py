"""all-MiniLM-L6-v2's whole 6-layer encoder with the attention mask and masked mean pooling as one
design: compressed to the configuration that fits a KV260 (4-bit weights, 2:8 attention
projections, 1:8 FFN, no retraining; tests/test_minilm_e2e.py compiles the same encoder without
the mask), exported with ``forward(x, attention_mask)`` and ``sum(mask * h) / sum(mask)`` at the
end (tests/models/minilm_mask.py).  The default run lowers and schedules it (no tools) and checks
on the integer reference that padding changes nothing; C-sim of the compiled design on padded
vectors is slow (the accuracy with padding: bench/minilm_padded.py)."""
from __future__ import annotations

import numpy as np
import pytest

from codegen.ir.reference import pack_inputs, run_reference
from codegen.passes.sequence import with_tokens
from codegen.project import CompileOptions, compile_model, lower
from codegen.schedule.boards import get_board
from codegen.schedule.folding import fold

from models import minilm, minilm_mask

QUIET = dict(progress=lambda *_: None)
LENGTH, LAYERS = 16, 6
KV260 = CompileOptions(board="kv260", max_util=0.85)
SHARED = pytest.mark.xdist_group("minilm_padded")   # one worker exports the encoder once


@pytest.fixture(scope="module")
def masked_encoder(tmp_path_factory):
    """Calibrated on 8 sentences: the lowering and the schedule do not depend on how well the
    quantizers fit (the slow test calibrates on all of them)."""
    return minilm_mask.export_masked_compressed(tmp_path_factory.mktemp("masked_encoder") / "encoder.onnx", LENGTH,
                                                LAYERS, calibration=minilm.sentences()[:8])


def _check_encoder_graph(graph) -> None:
    kinds = [op.kind for op in graph.ops]
    # one mask stream (the last input feature) forked to the 6 layers' mask units and the pooling unit
    assert kinds.count("maskscores") == LAYERS and kinds.count("actmatmul") == 2 * LAYERS, kinds
    assert kinds[-1] == "maskedmean" and graph.output_tokens == 1 and graph.output_shape == (1, minilm.HIDDEN)
    assert [(p.name, p.kind) for p in graph.input_parts] == [("x", "values"), ("attention_mask", "mask")]
    assert graph.input_size == minilm.HIDDEN + 1 and graph.tokens == LENGTH
    linear = [op for op in graph.ops if op.kind == "linear"]
    assert len(linear) == 6 * LAYERS and all(op.sparsity in ((2, 8), (1, 8)) for op in linear), \
        [(op.name, op.sparsity) for op in linear]


@SHARED
def test_masked_encoder_lowers_and_schedules_on_kv260(masked_encoder):
    graph = lower(masked_encoder, KV260)
    _check_encoder_graph(graph)
    board = get_board("kv260")
    result = fold(graph, board, max_util=KV260.max_util)
    totals = result.totals
    assert totals["ii"] > 0
    assert totals["uram"] <= 0.85 * board.uram and totals["bram36"] <= 0.85 * board.bram36, totals
    assert totals["dsp"] <= 0.85 * board.dsp and totals["lut"] <= 0.85 * board.lut, totals


@SHARED
def test_padding_changes_nothing_in_the_encoder_reference(masked_encoder):
    """A sentence padded to 16 tokens: the pooled codes equal, element by element, those of the same
    graph moved to the sentence's own length on the sentence alone (its own embeddings)."""
    import torch

    from codegen.frontend import load_graph

    graph = load_graph(masked_encoder)
    tokenizer, model = minilm.load()
    text = "Padding must not change the sentence."
    ((x, mask),) = minilm_mask.padded_inputs([text], LENGTH)
    n = int(mask.sum())
    assert 1 < n < LENGTH
    with torch.no_grad():
        own = model.embeddings(input_ids=tokenizer(text, return_tensors="pt")["input_ids"]).numpy()
    padded = run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": mask}))
    short = with_tokens(graph, n)
    alone = run_reference(short, pack_inputs(short, {"x": own.astype(np.float32),
                                                     "attention_mask": np.ones((1, n), np.int64)}))
    assert padded.shape == alone.shape == (1, minilm.HIDDEN)
    np.testing.assert_array_equal(padded, alone)
    # and the padding's own values do reach the pooling's input: a wrong mask would show
    flipped = mask.copy()
    flipped[0, n] = 1
    other = run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": flipped}))
    assert not np.array_equal(padded, other)


@pytest.mark.parametrize("pooling", ["masked_mean", "mean"])
def test_sequence_pass_moves_the_pooling_units(tmp_path, pooling):
    """The sequence-length pass on a small masked layer with pooling (2 heads of 16, exported at 8
    tokens): masked mean pooling keeps its multiplier per count at the exported shift, so a
    sentence padded to 8 pools to the codes of the sentence alone at its length, and at a longer
    length too; the plain mean becomes the mean over the new length."""
    from codegen.frontend import load_graph
    from codegen.ir.pooling import make_token_mean

    graph = load_graph(minilm_mask.export_small_masked_layer(tmp_path / "pooled.onnx", 8, 32, pooling=pooling))
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, size=(1, 12, 32)).astype(np.float32)
    if pooling == "mean":
        short = with_tokens(graph, 5)
        pool = short.ops[-1]
        rebuilt = make_token_mean(pool.name, pool.source, pool.in_type, pool.in_size, 5, pool.out_type, pool.inputs)
        assert pool.tokens == 5 and pool.requant == rebuilt.requant and graph.ops[-1].tokens == 8
        run_reference(short, pack_inputs(short, {"x": x[:, :5], "attention_mask": np.ones((1, 5), np.int64)}))
        return
    for n in (1, 5, 8):
        mask = (np.arange(8) < n).astype(np.int64)[None]
        padded = run_reference(graph, pack_inputs(graph, {"x": x[:, :8], "attention_mask": mask}))
        short = with_tokens(graph, n)
        alone = run_reference(short, pack_inputs(short, {"x": x[:, :n], "attention_mask": np.ones((1, n), np.int64)}))
        np.testing.assert_array_equal(padded, alone)
        longer = with_tokens(graph, 12)
        mask12 = (np.arange(12) < n).astype(np.int64)[None]
        padded12 = run_reference(longer, pack_inputs(longer, {"x": x, "attention_mask": mask12}))
        np.testing.assert_array_equal(padded12, alone)
    assert with_tokens(graph, 12).ops[-1].multipliers[:8] == graph.ops[-1].multipliers


@pytest.mark.slow
def test_masked_encoder_is_bit_exact_in_csim_on_kv260(tmp_path, monkeypatch):
    """The whole encoder with the mask and masked mean pooling, calibrated on all the project's
    sentences padded to 16, compiled for kv260 (--max-util 0.85) and bit-exact in C-sim on 3
    padded sequences (all keys but one masked, none masked, a random length), at the scheduled
    interval.  Measured: 24,576 cycles per token (the LUT estimate binds at 85%), 804 s in all on
    a shared 2-core machine."""
    path = minilm_mask.export_masked_compressed(tmp_path / "encoder.onnx", LENGTH, LAYERS)
    project = compile_model(path, tmp_path / "out", KV260, **QUIET)
    _check_encoder_graph(project.graph)
    from codegen.verify import csim
    monkeypatch.setattr(csim, "COMPILE_TIMEOUT_S", 3600)   # one g++ build of the whole encoder
    (result,) = verify_csim(project)
    assert result.passed, result.line()
    assert result.measured["interval_cycles_ii1"] == project.report["totals"]["ii"]


def verify_csim(project):
    from codegen.verify.runner import verify
    return verify(project, ("csim",), vectors=1, stored=2, **QUIET)
