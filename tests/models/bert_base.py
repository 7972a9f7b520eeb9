"""A BERT-base-sized encoder (12 layers, 768 features, 12 heads, FFN 3072) compressed to fit one
board, for compile-time measurements (bench/compile_time.py): random weights from a seed (the
transformers BertLayer with its default initialisation; nothing is downloaded), the feed-forward
Linears as tensor trains with random cores (768 = 8 x 8 x 12, 3072 = 12 x 16 x 16, rank 4, cores on an 8-bit
power-of-two grid), the attention projections pruned 1:8 by magnitude, exported by
torch.onnx.export and quantized by onnxruntime's quantize_static (QDQ, per-channel 4-bit weights,
int8 activations) on seeded normal hidden states.  ``FITTING`` is the compression that fits a board
(zcu102): every Linear, the attention projections too, a two-core tensor train of rank 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .minilm import Layers, TokenwiseTT, prune_n_m, snap_to_grid
from .ort_qdq import export_quantized

HIDDEN, HEADS, FFN, LAYERS = 768, 12, 3072, 12
FFN_FACTORS = ((8, 8, 12), (12, 16, 16))
TT_RANK = 4
ATTENTION_NM = (1, 8)

#: compressed_bert_base's options for the encoder that fits a board (zcu102; nothing tried fits the
#: zcu104, see the README): every Linear a two-core tensor train of rank 2, 768 = 24 x 32 and
#: 3072 = 48 x 64 (fewer stages than three cores: fewer buffers, LUTs and FFs)
FITTING = {"projections": "tt", "attention_rank": 2, "ffn_rank": 2,
           "ffn_factors": ((24, 32), (48, 64)), "attention_factors": (24, 32)}


class RandomTT(TokenwiseTT):
    """A tensor-train Linear on every token with random cores (TTLinear's initialisation, seeded by
    the caller), each snapped to an 8-bit power-of-two grid: the shape of a compressed FFN without
    the TT-SVD of a random matrix, which takes a minute per layer here and means nothing more."""

    def __init__(self, in_factors: tuple[int, ...], out_factors: tuple[int, ...], rank: int) -> None:
        nn.Module.__init__(self)
        from codegen.nn.tt import TTLinear
        self.tt = TTLinear(in_factors, out_factors, rank)
        with torch.no_grad():
            for core in self.tt.cores:
                core.copy_(snap_to_grid(core))


class _Encoder(nn.Module):
    """What :class:`Layers` reads: an ``encoder.layer`` list."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(layers)


def compressed_bert_base(layers: int = LAYERS, seed: int = 0, projections: str = "nm",
                         ffn_rank: int = TT_RANK, attention_rank: int = TT_RANK,
                         attention_nm: tuple[int, int] = ATTENTION_NM,
                         ffn_factors: tuple[tuple[int, ...], tuple[int, ...]] = FFN_FACTORS,
                         attention_factors: tuple[int, ...] | None = None) -> nn.Module:
    """``projections`` "nm": the four attention projections pruned ``attention_nm``; "tt": tensor
    trains 768 -> 768 of rank ``attention_rank`` (``attention_factors`` both sides, default the FFNs'
    768 factors); ``ffn_factors``: (768's factors, 3072's) of the feed-forward tensor trains."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    config = BertConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=FFN,
                        num_hidden_layers=layers, attn_implementation="eager")
    torch.manual_seed(seed)
    blocks = []
    for _ in range(layers):
        layer = BertLayer(config).eval()
        with torch.no_grad():
            for module in layer.modules():   # BertPreTrainedModel's initialisation, without the model
                if isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, config.initializer_range)
                    module.bias.zero_()
            attention = layer.attention
            if projections == "nm":
                for linear in (attention.self.query, attention.self.key, attention.self.value,
                               attention.output.dense):
                    linear.weight.copy_(prune_n_m(linear.weight, *attention_nm))
        small, large = ffn_factors
        if projections == "tt":
            square = attention_factors or small
            for owner, name in ((layer.attention.self, "query"), (layer.attention.self, "key"),
                                (layer.attention.self, "value"), (layer.attention.output, "dense")):
                setattr(owner, name, RandomTT(square, square, attention_rank))
        layer.intermediate.dense = RandomTT(small, large, ffn_rank)
        layer.output.dense = RandomTT(large, small, ffn_rank)
        blocks.append(layer)
    return _Encoder(blocks)


def export_bert_base(path: Path, length: int = 16, layers: int = LAYERS, seed: int = 0, **compression) -> Path:
    """The compressed encoder at sequence ``length``, as QDQ ONNX at ``path`` (``compression``:
    compressed_bert_base's options)."""
    model = compressed_bert_base(layers, seed, **compression)
    rng = np.random.default_rng(seed)
    samples = [rng.normal(0, 1, size=(1, length, HIDDEN)).astype(np.float32) for _ in range(8)]
    return export_quantized(Layers(model, 0, layers), Path(path), shape=(1, length, HIDDEN), samples=samples,
                            weight_bits=4)


class _TTChain(nn.Module):
    def __init__(self, blocks: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        small, large = FFN_FACTORS
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers += [RandomTT(small, large, TT_RANK), nn.ReLU(), RandomTT(large, small, TT_RANK)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a Reshape for quantize_static to put the input quantizer on (it leaves Einsum in float)
        return self.layers(x.reshape(1, HIDDEN))


def export_tt_chain(path: Path, blocks: int = LAYERS, seed: int = 0) -> Path:
    """``blocks`` BERT-base feed-forward blocks (768 -> 3072 -> ReLU -> 768, no attention) as
    tensor trains (FFN_FACTORS, rank TT_RANK), on one vector: the 12-block chain that dense int8
    weights make too large for any board here, compressed to fit.  QDQ ONNX at ``path``."""
    rng = np.random.default_rng(seed)
    samples = [rng.normal(0, 1, size=(1, HIDDEN)).astype(np.float32) for _ in range(8)]
    return export_quantized(_TTChain(blocks, seed), Path(path), shape=(1, HIDDEN), samples=samples,
                            extra_options={"ForceQuantizeNoInputCheck": True})
