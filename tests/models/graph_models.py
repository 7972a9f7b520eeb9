"""Graph-shaped models (skip connections, branches, Concat, token sequences) as users make them:
a float torch module, ``torch.onnx.export``, then ``onnxruntime.quantization.quantize_static``
(QDQ, per-channel weights) calibrated on random data.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .ort_qdq import export_quantized as quantize_module


class ResidualMLP(nn.Module):
    """x -> fc1 -> relu -> fc2 -> (+ x) -> relu -> head: one skip connection around two layers."""

    def __init__(self, width: int = 16, out: int = 6) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(torch.relu(self.fc1(x)))
        return self.head(torch.relu(x + y))


class TwoBranchConcat(nn.Module):
    """x -> (left: fc_a, relu) and (right: fc_b) -> Concat -> head: a fork and a join by Concat."""

    def __init__(self, width: int = 12, a: int = 8, b: int = 4, out: int = 5) -> None:
        super().__init__()
        self.fc_a, self.fc_b, self.head = nn.Linear(width, a), nn.Linear(width, b), nn.Linear(a + b, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([torch.relu(self.fc_a(x)), self.fc_b(x)], dim=-1))


class ResNetBlock(nn.Module):
    """Two residual blocks in a row (two skip connections), each fc -> relu -> fc -> + skip -> relu."""

    def __init__(self, width: int = 16, out: int = 8) -> None:
        super().__init__()
        self.stem = nn.Linear(width, width)
        self.a1, self.a2 = nn.Linear(width, width), nn.Linear(width, width)
        self.b1, self.b2 = nn.Linear(width, width), nn.Linear(width, width)
        self.head = nn.Linear(width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.a2(torch.relu(self.a1(x))))
        x = torch.relu(x + self.b2(torch.relu(self.b1(x))))
        return self.head(x)


class TokenMixer(nn.Module):
    """[1, L, C] tokens -> fc -> relu -> fc -> (+ x) -> gate (x * sigmoid-free second branch): every
    layer applies to each token with the same weights."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc1, self.fc2, self.gate = nn.Linear(width, 2 * width), nn.Linear(2 * width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.fc2(torch.relu(self.fc1(x)))
        return y * torch.relu(self.gate(x))


MODELS = {"residual_mlp": (ResidualMLP, (1, 16)), "two_branch_concat": (TwoBranchConcat, (1, 12)),
          "resnet_block": (ResNetBlock, (1, 16)), "token_mixer": (TokenMixer, (1, 4, 8))}


def export_quantized(name: str, path: Path, seed: int = 0, calibration: int = 64) -> nn.Module:
    """Export MODELS[name] with torch.onnx.export (float), then quantize_static to QDQ int8 with
    per-channel weights; the float model is written beside as ``<stem>_float.onnx``."""
    cls, shape = MODELS[name]
    torch.manual_seed(seed)
    model = cls().eval()
    quantize_module(model, path, shape=shape, seed=seed, calibration=calibration, opset=18)
    return model
