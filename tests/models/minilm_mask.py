"""all-MiniLM-L6-v2 encoder layers with the attention mask as a second model input, as a user
exports them: ``forward(hidden_states [1, L, 384], attention_mask [1, L] int64)`` with the mask
extended the way transformers' BERT does it, ``(1 - mask) * finfo.min`` added to the attention
scores before Softmax; optionally with sentence-transformers' mean pooling at the end (over the
tokens, weighted by the mask: ``sum(mask * h) / sum(mask)``)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from . import minilm

MASK_NAME = "attention_mask"


class MaskedLayers(nn.Module):
    """Encoder layers [start, stop) on (hidden states, attention mask); ``pooling``: "none", or
    "mean" (ReduceMean over the tokens, as for an unpadded batch) or "masked_mean" (padding excluded)."""

    def __init__(self, model: nn.Module, start: int, stop: int, pooling: str = "none", form: str = "padding") -> None:
        super().__init__()
        self.layers = nn.ModuleList(model.encoder.layer[start:stop])
        self.pooling = pooling
        # "padding"; for the refusal tests: "causal" (padding plus a constant causal mask),
        # "causal_only" (the constant alone), "query" (a mask per query)
        self.form = form

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.form == "causal":
            length = x.shape[1]
            causal = torch.triu(torch.full((length, length), -1e4), 1)[None, None]
            extended = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e4 + causal
        elif self.form == "causal_only":   # a decoder's mask: a constant, the mask input unused
            length = x.shape[1]
            extended = torch.triu(torch.full((length, length), -1e4), 1)[None, None]
        elif self.form == "query":
            extended = (1.0 - attention_mask[:, None, :, None].to(x.dtype)) * -1e4
        else:
            extended = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            out = layer(x, attention_mask=extended)
            x = out[0] if isinstance(out, tuple) else out
        if self.pooling == "mean":
            return x.mean(dim=1)
        if self.pooling == "masked_mean":
            weights = attention_mask[:, :, None].to(x.dtype)
            # sentence-transformers' recipe, the count clamped away from 0
            return (x * weights).sum(dim=1) / torch.clamp(weights.sum(dim=1), min=1e-9)
        return x


def padded_inputs(texts: list[str], length: int, start: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(hidden states [1, L, 384] of layer ``start``, attention mask [1, L] int64) of each text padded
    to ``length`` tokens (the padding's hidden states run through the layers unmasked before ``start``
    only when start > 0: the mask applies to every layer here)."""
    tokenizer, model = minilm.load()
    items = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", padding="max_length", truncation=True, max_length=length)
            x = model.embeddings(input_ids=enc["input_ids"])
            mask = enc["attention_mask"]
            if start:
                x = MaskedLayers(model, 0, start)(x, mask)
            items.append((x.numpy().astype(np.float32), mask.numpy().astype(np.int64)))
    return items


def _quantize_masked(module: nn.Module, path: Path, samples: list[tuple[np.ndarray, np.ndarray]],
                     float_mask_path: bool = True, activation_bits: int = 8, weight_bits: int = 8) -> Path:
    """torch.onnx.export of ``module(x, attention_mask)`` and quantize_static (QDQ, per-channel
    ``weight_bits`` weights, ``activation_bits`` activations) calibrated on ``samples``, the mask
    path and the masked Softmax left float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    path = Path(path)
    float_path = path.with_name(path.stem + "_float.onnx")
    x0, m0 = samples[0]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.as_tensor(x0), torch.as_tensor(m0)), str(float_path),
                          input_names=["x", MASK_NAME], output_names=["y"], opset_version=17, dynamo=False)
    # the mask path stays float (a quantized (1 - mask) * finfo.min, or scores quantized after it is
    # added, leave the scores no resolution): every node from the mask input to the Add onto the
    # scores, and the Softmax after that Add, so the island is DQ -> Add -> Softmax -> Q
    graph = onnx.load(str(float_path)).graph
    derived, masked, excluded = {MASK_NAME}, set(), []
    for node in graph.node if float_mask_path else ():
        if any(name in derived for name in node.input):
            excluded.append(node.name)
            (masked if node.op_type == "Add" else derived).update(node.output)
        elif node.op_type == "Softmax" and any(name in masked for name in node.input):
            excluded.append(node.name)

    names = {i.name for i in graph.input}   # the exporter drops an input the model does not read

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({k: v for k, v in (("x", x), (MASK_NAME, m)) if k in names} for x, m in samples)

        def get_next(self):
            return next(self.items, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt4 if weight_bits == 4 else QuantType.QInt8,
                        activation_type=QuantType.QInt16 if activation_bits == 16 else QuantType.QInt8,
                        nodes_to_exclude=excluded)
    return path


def padding_masks(count: int, length: int, seed: int) -> list[np.ndarray]:
    """[1, L] int64 masks of random sentence lengths 1..L (padding at the end)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, length + 1, size=count)
    return [(np.arange(length)[None, :] < n).astype(np.int64) for n in lengths]


def export_small_masked_layer(path: Path, length: int = 8, hidden: int = 32, heads: int = 2, inner: int = 64,
                              seed: int = 0, pooling: str = "none", form: str = "padding",
                              float_mask_path: bool = True, layers: int = 1) -> Path:
    """A BERT encoder layer of transformers (random weights, ``heads`` heads of hidden / heads) with
    the attention mask input: the graph form of a MiniLM layer at a size that simulates in seconds.
    ``form`` and ``float_mask_path`` False (quantize_static's defaults) make models einhls refuses."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertModel

    torch.manual_seed(seed)
    config = BertConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=inner,
                        num_hidden_layers=layers, vocab_size=16, max_position_embeddings=max(length, 8),
                        attn_implementation="eager")
    model = BertModel(config).eval()
    rng = np.random.default_rng(seed)
    masks = padding_masks(32, length, seed)
    samples = [(rng.normal(0, 1, size=(1, length, hidden)).astype(np.float32), m) for m in masks]
    return _quantize_masked(MaskedLayers(model, 0, layers, pooling, form), path, samples, float_mask_path)


def export_masked_layers(path: Path, length: int, start: int = 0, stop: int = 1, pooling: str = "none",
                         calibration: list[str] | None = None, activation_bits: int = 8) -> Path:
    """Encoder layers [start, stop) of all-MiniLM-L6-v2 with the attention mask input at sequence
    ``length``, quantized (QDQ, int8 per-channel weights, ``activation_bits`` activations, the mask
    path float), calibrated on padded sentences (default: the project's)."""
    _, model = minilm.load()
    texts = minilm.sentences() if calibration is None else calibration
    return _quantize_masked(MaskedLayers(model, start, stop, pooling), path, padded_inputs(texts, length, start),
                            activation_bits=activation_bits)


def export_masked_compressed(path: Path, length: int, layers: int = 6, pooling: str = "masked_mean",
                             attention: tuple[int, int] | None = (2, 8), ffn: tuple[int, int] | None = (1, 8),
                             weight_bits: int = 4, activation_bits: int = 8,
                             calibration: list[str] | None = None) -> Path:
    """The first ``layers`` encoder layers N:M-pruned by magnitude (no retraining; the
    configuration of ``minilm.export_compressed`` that fits a KV260) with the attention mask input
    and ``pooling`` at the end, quantized with ``weight_bits``-bit per-channel weights, calibrated
    on ``calibration`` texts (default: the project's sentences) padded to ``length``."""
    model = minilm.compressed_copy(attention, ffn)
    samples = padded_inputs(minilm.sentences() if calibration is None else calibration, length)
    return _quantize_masked(MaskedLayers(model, 0, layers, pooling), path, samples,
                            activation_bits=activation_bits, weight_bits=weight_bits)
