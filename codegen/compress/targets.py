"""What `einhls compress` compresses: a torch module and its input samples, as one interface.

* a torch module (Python API) with a .npy array of samples (first axis = samples);
* an ONNX file with float weights: a chain of Gemm / MatMul (+ Add) / Relu nodes, turned into an
  ``nn.Sequential`` here (other node types are refused, naming the node);
* a Hugging Face model folder (config.json, weights, tokenizer) with a text file, one sample per
  line: a sentence-embedding model (mean pooling over the tokens, L2-normalised), like
  all-MiniLM-L6-v2.

The accuracy of a compressed model is the mean cosine of its outputs to the original model's on
the same samples (for a sentence-embedding model: the embedding cosine).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import EinhlsError

#: sequence length a text model is costed at (tokens per frame)
TEXT_TOKENS = 128


@dataclass
class Target:
    model: nn.Module
    samples: object           # a float tensor [N, ...] or a list of sentences
    tokens: int               # tokens per frame the hardware processes
    kind: str                 # "tensor" | "text"
    tokenizer: object = None
    source: str = ""          # how the model was given (for the reproducing command)
    #: names or regular expressions (fullmatch) of the linear layers to compress; None: all of them.
    #: The others stay as they are (float, original) and are neither searched nor costed.
    only: tuple[str, ...] | None = None

    def count(self) -> int:
        return len(self.samples)

    def subset(self, index: np.ndarray) -> object:
        return self.subset_of(self.samples, index)

    @staticmethod
    def subset_of(samples: object, index: np.ndarray) -> object:
        if isinstance(samples, list):
            return [samples[int(i)] for i in index]
        return samples[torch.as_tensor(np.asarray(index))]

    def run(self, model: nn.Module, samples: object, batch: int = 32) -> torch.Tensor:
        """Outputs [N, D] (embeddings for text models), float32."""
        outs = []
        device = next(model.parameters()).device
        for start in range(0, len(samples), batch):
            chunk = samples[start:start + batch]
            if self.kind == "text":
                enc = self.tokenizer(list(chunk), padding=True, truncation=True, max_length=TEXT_TOKENS,
                                     return_tensors="pt").to(device)
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                outs.append(nn.functional.normalize(pooled, dim=-1))
            else:
                outs.append(model(chunk.to(device)).reshape(len(chunk), -1))
        return torch.cat(outs)

    def all_linear_names(self) -> list[str]:
        """Every nn.Linear layer the search could compress (a text model's unused pooler excluded)."""
        return [name for name, m in self.model.named_modules()
                if isinstance(m, nn.Linear) and not (self.kind == "text" and "pooler" in name)]

    def linear_names(self) -> list[str]:
        """The nn.Linear layers the search compresses: all of them, or those ``only`` selects."""
        names = self.all_linear_names()
        if self.only is None:
            return names
        return [name for name in names if any(layer_matches(pattern, name) for pattern in self.only)]

    def restrict(self, patterns: Sequence[str] | None) -> None:
        """Compress only the linear layers ``patterns`` select (names or regular expressions,
        fullmatch); refuse a pattern that selects none (a typo would otherwise silently compress
        nothing of what was meant)."""
        if patterns is None:
            self.only = None
            return
        if isinstance(patterns, str):   # one pattern given bare: not its characters one by one
            patterns = [patterns]
        patterns = tuple(patterns)
        if not patterns:
            raise EinhlsError("--layers: give at least one layer name or regular expression")
        names = self.all_linear_names()
        unmatched = [p for p in patterns if not any(layer_matches(p, name) for name in names)]
        if unmatched:
            shown = ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")
            raise EinhlsError(f"--layers {' '.join(map(repr, unmatched))}: matches no linear layer of the model "
                              f"(names as in model.named_modules(), or regular expressions matching a whole "
                              f"name: {shown})")
        self.only = patterns


def layer_matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (a layer name, or a regular expression matching the whole name) selects
    ``name``; a pattern that is not a valid regular expression is taken as a literal name."""
    if pattern == name:
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def accuracy(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Mean cosine of each sample's output to the original model's."""
    return float(nn.functional.cosine_similarity(student.double(), teacher.double(), dim=-1).mean())


def load_samples(path: Path) -> object:
    if not path.exists():
        raise EinhlsError(f"--data {str(path)!r}: no such file")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:   # noqa: BLE001 - a corrupt file is bad input
            raise EinhlsError(f"--data {str(path)!r}: not a readable .npy array ({exc})") from None
        if array.ndim < 2 or array.shape[0] < 2 or array.dtype.kind not in "fiu":
            raise EinhlsError(f"--data {str(path)!r}: want a numeric array of samples on the first axis "
                              f"(at least 2), got shape {array.shape} of {array.dtype}")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise EinhlsError(f"--data {str(path)!r}: neither a .npy array nor UTF-8 text") from None
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise EinhlsError(f"--data {str(path)!r}: want at least 2 non-empty lines (one sample per line)")
    return lines


def onnx_to_torch(path: Path) -> nn.Sequential:
    """A float ONNX chain of Gemm / MatMul (+ Add bias) / Relu as an nn.Sequential."""
    import onnx
    from onnx import numpy_helper

    from ..frontend.load import read_model
    model = read_model(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers: list[nn.Module] = []
    for node in model.graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            w = inits.get(node.input[1])
            if w is None or w.ndim != 2 or w.dtype.kind != "f":
                raise EinhlsError("compress reads float weights as initializers; this input is not one",
                                  node=node.name, op_type=node.op_type)
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Gemm" and attrs.get("transA", 0):
                raise EinhlsError("Gemm with transA is not supported", node=node.name, op_type="Gemm")
            weight = w.T if node.op_type == "MatMul" or not attrs.get("transB", 0) else w
            weight = weight * float(attrs.get("alpha", 1.0))
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=True)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
                bias = inits.get(node.input[2]) if len(node.input) > 2 else None
                linear.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32) * float(attrs.get("beta", 1.0)))
                                  if bias is not None else torch.zeros(weight.shape[0]))
            layers.append(linear)
        elif node.op_type == "Add" and layers and isinstance(layers[-1], nn.Linear) \
                and any(i in inits for i in node.input):
            bias = inits[next(i for i in node.input if i in inits)]
            with torch.no_grad():
                layers[-1].bias.add_(torch.from_numpy(np.asarray(bias, dtype=np.float32).reshape(-1)))
        elif node.op_type == "Relu":
            layers.append(nn.ReLU())
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            raise EinhlsError("the model is already quantized; compress wants float weights",
                              node=node.name, op_type=node.op_type)
        else:
            raise EinhlsError("compress reads float MLPs (Gemm / MatMul / Add / Relu) from ONNX; "
                              "give other models as a torch module through the Python API",
                              node=node.name, op_type=node.op_type)
    if not any(isinstance(m, nn.Linear) for m in layers):
        raise EinhlsError(f"{path}: no linear layer to compress")
    return nn.Sequential(*layers)


def load_target(model: object, data: object) -> Target:
    """A Target from the API's or the command line's MODEL and DATA."""
    samples = load_samples(Path(data)) if isinstance(data, (str, Path)) else data
    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if isinstance(model, nn.Module):
        if isinstance(samples, list):
            raise EinhlsError("text data needs a model with a tokenizer (a Hugging Face model folder)")
        return Target(model.eval(), samples, 1, "tensor", source="<torch module>")
    path = Path(model)
    if not path.exists():
        raise EinhlsError(f"MODEL {str(path)!r}: no such file or folder")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise EinhlsError(f"MODEL {str(path)!r}: a folder must hold a Hugging Face model (config.json)")
        if not isinstance(samples, list):
            raise EinhlsError(f"MODEL {str(path)!r} is a text model: --data must be a text file, one sample a line")
        from transformers import AutoModel, AutoTokenizer
        hf = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return Target(hf, samples, TEXT_TOKENS, "text", tokenizer=tokenizer, source=str(path))
    if path.suffix != ".onnx":
        raise EinhlsError(f"MODEL {str(path)!r}: want an .onnx file or a Hugging Face model folder")
    if isinstance(samples, list):
        raise EinhlsError("text data needs a model with a tokenizer (a Hugging Face model folder)")
    seq = onnx_to_torch(path).eval()
    first = next(m for m in seq if isinstance(m, nn.Linear))
    if samples.reshape(len(samples), -1).shape[1] != first.in_features:
        raise EinhlsError(f"--data: samples have {samples.reshape(len(samples), -1).shape[1]} features, "
                          f"the model's input has {first.in_features}")
    return Target(seq, samples.reshape(len(samples), -1), 1, "tensor", source=str(path))
