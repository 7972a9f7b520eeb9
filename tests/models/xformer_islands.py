"""Transformer nonlinearities as onnxruntime's quantize_static leaves them: a float torch module
with a Linear before each of LayerNorm, GELU (erf form) and Softmax over the last axis, exported
with ``torch.onnx.export`` (opset 17: LayerNormalization is one node) and quantized to QDQ int8
with per-channel weights.  The quantizer leaves each nonlinearity as float nodes between a
DequantizeLinear and a QuantizeLinear; einhls replaces every such island by its integer unit.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .ort_qdq import export_quantized


class FloatIslands(nn.Module):
    """[1, L, C] -> Linear -> LayerNorm -> Linear -> GELU -> Linear -> softmax(last axis)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        with torch.no_grad():   # a LayerNorm that is not the identity
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.fc1(x))
        x = self.act(self.fc2(x))
        return torch.softmax(self.fc3(x), dim=-1)


class SigmoidIsland(nn.Module):
    """Linear -> Sigmoid -> Linear: the Sigmoid stays float between DQ and Q (no integer unit)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.sigmoid(self.fc1(x)))


class DecomposedNorm(nn.Module):
    """Linear -> LayerNorm -> Linear; exported at opset 16, LayerNorm becomes ReduceMean / Sub / Pow /
    ReduceMean / Add / Sqrt / Div / Mul / Add."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.fc1(x)))


class TanhGelu(nn.Module):
    """Linear -> GELU (tanh approximation) -> Linear."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def islands_model(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return export_quantized(FloatIslands(), path, seed=seed)


def sigmoid_model(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return export_quantized(SigmoidIsland(), path, seed=seed)


def decomposed_norm_model(path: Path, seed: int = 0) -> tuple[Path, DecomposedNorm]:
    torch.manual_seed(seed)
    model = DecomposedNorm()
    return export_quantized(model, path, seed=seed, opset=16), model


def tanh_gelu_model(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return export_quantized(TanhGelu(), path, seed=seed)
