"""Transformer nonlinearities as onnxruntime's quantize_static leaves them: a float torch module
with a Linear before each of LayerNorm, GELU (erf form) and Softmax over the last axis, exported
with ``torch.onnx.export`` (opset 17: LayerNormalization is one node) and quantized to QDQ int8
with per-channel weights.  The quantizer leaves each nonlinearity as float nodes between a
DequantizeLinear and a QuantizeLinear; einhls replaces every such island by its integer unit.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


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


def calibration_samples(shape: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, size=shape).astype(np.float32) for _ in range(count)]


def export_quantized(model: nn.Module, path: Path, shape: tuple[int, ...] = (1, 4, 16), seed: int = 0,
                     calibration: int = 32, opset: int = 17) -> Path:
    """torch.onnx.export (opset 17 unless told, float) then quantize_static (QDQ, int8, per-channel weights);
    the float model is written beside as ``<stem>_float.onnx``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = model.eval()
    float_path = path.with_name(path.stem + "_float.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(*shape),), str(float_path), input_names=["x"],
                          output_names=["y"], opset_version=opset, dynamo=False)
    samples = calibration_samples(shape, calibration, seed)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"x": s} for s in samples)

        def get_next(self):
            return next(self.items, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return path


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
