"""A quantized MLP exported by ``torch.onnx.export`` as QuantizeLinear/DequantizeLinear.

torch 2.13 exports ``torch.fake_quantize_per_tensor_affine`` / ``..._per_channel_affine`` as Q/DQ
pairs only for the 8-bit ranges ONNX has ((-128, 127), (0, 255), (0, 127)), and the dynamo exporter
only with static shapes and under ``torch.no_grad()``; the legacy exporter also takes a dynamic
batch axis.  The weights stay float in the file with a Q/DQ pair on them (folded by the front end).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch


class FakeQuant(torch.nn.Module):
    """Per-tensor fake quantization of an activation."""

    def __init__(self, scale: float, zero_point: int, lo: int, hi: int) -> None:
        super().__init__()
        self.scale, self.zero_point, self.lo, self.hi = scale, zero_point, lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, self.lo, self.hi)


class QuantLinear(torch.nn.Module):
    """A Linear layer whose weight is fake-quantized to int8 (per tensor or per output channel)."""

    def __init__(self, k: int, n: int, w_scales: np.ndarray, rng: np.random.Generator,
                 bias_step: np.ndarray | None) -> None:
        super().__init__()
        self.w_scales = torch.tensor(w_scales, dtype=torch.float32)
        self.w_scale = float(w_scales[0])  # a Python float: torch.export cannot read a tensor's value
        codes = rng.integers(-128, 128, size=(n, k))
        weight = codes * w_scales.reshape(-1, 1) if w_scales.size > 1 else codes * float(w_scales[0])
        self.weight = torch.nn.Parameter(torch.tensor(weight, dtype=torch.float32))
        bias = rng.normal(0, 0.5, size=n)
        if bias_step is not None:  # a bias on the accumulator grid s_in * s_w (exact comparison)
            bias = np.round(bias / bias_step) * bias_step
        self.bias = torch.nn.Parameter(torch.tensor(bias, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.w_scales.numel() > 1:
            zeros = torch.zeros(self.w_scales.numel(), dtype=torch.int32)
            w = torch.fake_quantize_per_channel_affine(self.weight, self.w_scales, zeros, 0, -128, 127)
        else:
            w = torch.fake_quantize_per_tensor_affine(self.weight, self.w_scale, 0, -128, 127)
        return torch.nn.functional.linear(x, w, self.bias)


def build_mlp(pow2: bool, per_channel: bool, seed: int = 0, sizes=(16, 12, 6)) -> torch.nn.Sequential:
    """in(int8) -> QuantLinear -> ReLU -> uint8 -> QuantLinear -> int8 out."""
    rng = np.random.default_rng(seed)
    k, h, n = sizes
    s_in, s_mid, s_out = (2.0**-5, 2.0**-4, 2.0**-3) if pow2 else (0.0371, 0.0593, 0.1177)

    def w_scales(count: int) -> np.ndarray:
        if pow2:
            return 2.0 ** rng.integers(-9, -6, size=count if per_channel else 1)
        return rng.uniform(0.002, 0.006, size=count if per_channel else 1)

    sc1, sc2 = w_scales(h), w_scales(n)
    return torch.nn.Sequential(
        FakeQuant(s_in, 0, -128, 127),
        QuantLinear(k, h, sc1, rng, s_in * sc1 if pow2 else None),
        torch.nn.ReLU(),
        FakeQuant(s_mid, 0, 0, 255),
        QuantLinear(h, n, sc2, rng, s_mid * sc2 if pow2 else None),
        FakeQuant(s_out, 3, -128, 127),
    ).eval()


def export_mlp(path: Path, pow2: bool = True, per_channel: bool = False, dynamo: bool = True,
               seed: int = 0) -> torch.nn.Sequential:
    """Write the MLP to ``path``; dynamo: opset 18, static shape; legacy: opset 17, dynamic batch."""
    model = build_mlp(pow2, per_channel, seed)
    x = torch.zeros(1, model[1].weight.shape[1])
    kwargs = {"dynamo": dynamo, "input_names": ["x"], "output_names": ["y"]}
    if dynamo:
        kwargs["opset_version"] = 18
    else:
        kwargs.update(opset_version=17, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), **kwargs)
    return model
