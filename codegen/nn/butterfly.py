"""Butterfly linear layers (FabNet / Dao et al.), written so that they export to ONNX as einhls reads them.

A butterfly matrix of size n = 2^L is a product of sparse factors ("stages").  Stage s with stride
st mixes the pairs (j, j + st) inside every block of 2*st elements with its own 2x2 twiddle:

    [y_j; y_{j+st}] = T [x_j; x_{j+st}]

As an einsum one stage is ``"...aib,aijb->...ajb"`` on x reshaped to (..., n/(2 st), 2, st) with
the twiddles shaped (n/(2 st), 2, 2, st) (BACKGROUND.md): ``T[a, i, j, b]`` is the coefficient of
input i of pair (a, b) in its output j.  :class:`ButterflyLinear` exports exactly that: one ONNX
``Einsum`` per stage with ``Reshape`` nodes between stages, the twiddles of each stage one
constant.

Rectangular layers (``in_features`` != ``out_features``) use n = the power of two >= in_features,
zero padding of the input to n (ONNX ``Pad``) and, when out_features > n, several butterfly
*stacks* side by side on copies of the padded input (``Tile``); the output keeps the first
``out_features`` elements (``Slice``).  ``nblocks`` butterfly matrices can be chained (L stages
each).  With ``quantize`` the forward pass fake-quantizes (torch.fake_quantize_per_tensor_affine,
exported as QuantizeLinear/DequantizeLinear) the input, every stage's twiddles (one scale per
stage), the activations between stages (or not: ``stage_scale=None`` keeps them exact) and the
output, so the exported file is a QDQ model ``einhls compile`` reads as it is.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EQUATION = "...aib,aijb->...ajb"


def next_pow2(value: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(value, 1))))


def fake_quant(t: torch.Tensor, scale: float, bits: int = 8, signed: bool = True, zero_point: int = 0) -> torch.Tensor:
    """Per-tensor fake quantization (exported as QuantizeLinear/DequantizeLinear for 8-bit ranges)."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return torch.fake_quantize_per_tensor_affine(t, float(scale), int(zero_point), lo, hi)


@dataclass(frozen=True)
class ButterflyQuant:
    """Fake-quantization of a :class:`ButterflyLinear` (per-tensor scales; 8-bit for torch export).

    ``input_scale`` None: no input quantizer (the layer before quantizes).  ``twiddle_scale``: one
    scale or one per stage.  ``stage_scale``: the activations between stages, one scale or one per
    stage boundary (L-1 of them), or None for no quantizer between stages (exact integer growth in
    einhls).  ``output_scale``: the layer output (after the bias).
    """
    input_scale: float | None = 2.0 ** -5
    twiddle_scale: float | Sequence[float] = 2.0 ** -6
    stage_scale: float | Sequence[float] | None = 2.0 ** -4
    output_scale: float = 2.0 ** -4
    bits: int = 8
    output_zero_point: int = 0


class ButterflyLinear(nn.Module):
    """y = B x + bias with B a (stacked, padded) butterfly matrix; see the module docstring.

    Parameters are one tensor per stage, ``twiddles[s]`` of shape (stacks*n/(2 st), 2, 2, st) in
    the einsum layout, initialised as random rotations (``init="ortho"``, norm preserving and in
    [-1, 1], friendly to 8-bit quantization), the identity or the Walsh-Hadamard butterfly
    (entries +-1; with ``increasing_stride`` the product is the Sylvester Hadamard matrix).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, nblocks: int = 1,
                 increasing_stride: bool = True, init: str = "ortho",
                 quantize: ButterflyQuant | None = None, seed: int | None = None) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1 or nblocks < 1:
            raise ValueError("in_features, out_features and nblocks must be positive")
        self.in_features, self.out_features = in_features, out_features
        self.n = max(2, next_pow2(in_features))
        self.log_n = int(math.log2(self.n))
        self.stacks = math.ceil(out_features / self.n)
        strides = [1 << s for s in range(self.log_n)]
        if not increasing_stride:
            strides = strides[::-1]
        self.strides = strides * nblocks
        self.quantize = quantize
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        total = self.stacks * self.n
        self.twiddles = nn.ParameterList()
        for st in self.strides:
            shape = (total // (2 * st), 2, 2, st)
            self.twiddles.append(nn.Parameter(self._init_twiddle(shape, init, generator)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        if quantize is not None:
            stages = len(self.strides)
            self.twiddle_scales = self._per(quantize.twiddle_scale, stages, "twiddle_scale")
            self.stage_scales = (None if quantize.stage_scale is None
                                 else self._per(quantize.stage_scale, stages - 1, "stage_scale"))

    @staticmethod
    def _per(value, count: int, what: str) -> list[float]:
        values = [float(value)] * count if np.isscalar(value) else [float(v) for v in value]
        if len(values) != count:
            raise ValueError(f"{what} needs {count} values, got {len(values)}")
        return values

    @staticmethod
    def _init_twiddle(shape: tuple[int, ...], init: str, generator) -> torch.Tensor:
        a, _, _, st = shape
        if init == "identity":
            t = torch.zeros(shape)
            t[:, 0, 0, :] = 1.0
            t[:, 1, 1, :] = 1.0
            return t
        if init == "hadamard":
            t = torch.ones(shape)
            t[:, 1, 1, :] = -1.0
            return t
        if init == "ortho":
            theta = torch.rand(a, st, generator=generator) * 2 * math.pi
            c, s = torch.cos(theta), torch.sin(theta)
            t = torch.empty(shape)
            t[:, 0, 0, :], t[:, 1, 0, :] = c, -s       # y0 = c x0 - s x1
            t[:, 0, 1, :], t[:, 1, 1, :] = s, c        # y1 = s x0 + c x1
            return t
        if init == "randn":
            return torch.randn(shape, generator=generator) / math.sqrt(2.0)
        raise ValueError(f"unknown init {init!r}: ortho, randn, identity or hadamard")

    # ----- forward -----
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quantize
        if q is not None and q.input_scale is not None:
            x = fake_quant(x, q.input_scale, q.bits)
        batch = x.shape[0]
        if self.in_features < self.n:
            x = F.pad(x, (0, self.n - self.in_features))
        if self.stacks > 1:
            x = x.repeat(1, self.stacks)
        total = self.stacks * self.n
        for s, st in enumerate(self.strides):
            t = self.twiddles[s]
            if q is not None:
                t = fake_quant(t, self.twiddle_scales[s], q.bits)
            x = torch.einsum(EQUATION, x.reshape(batch, total // (2 * st), 2, st), t)
            x = x.reshape(batch, total)
            if q is not None and self.stage_scales is not None and s + 1 < len(self.strides):
                x = fake_quant(x, self.stage_scales[s], q.bits)
        if self.out_features < total:
            x = x[:, :self.out_features]
        if self.bias is not None:
            x = x + self.bias
        if q is not None:
            x = fake_quant(x, q.output_scale, q.bits, zero_point=q.output_zero_point)
        return x

    # ----- the matrix it represents -----
    def stage_matrices(self) -> list[np.ndarray]:
        """Each stage as a dense (stacks*n) x (stacks*n) matrix (float64, unquantized twiddles)."""
        total = self.stacks * self.n
        mats = []
        for s, st in enumerate(self.strides):
            t = self.twiddles[s].detach().double().numpy()        # (A, 2, 2, st): [a, i, j, b]
            m = np.zeros((total, total))
            for a in range(total // (2 * st)):
                for b in range(st):
                    for i in range(2):
                        for j in range(2):
                            m[a * 2 * st + j * st + b, a * 2 * st + i * st + b] = t[a, i, j, b]
            mats.append(m)
        return mats

    def full_weight(self) -> np.ndarray:
        """The out_features x in_features matrix of the layer (float64, unquantized twiddles)."""
        total = self.stacks * self.n
        embed = np.zeros((total, self.in_features))
        for stack in range(self.stacks):
            embed[stack * self.n:stack * self.n + self.in_features] = np.eye(self.in_features)
        w = embed
        for m in self.stage_matrices():
            w = m @ w
        return w[:self.out_features]


def export_butterfly(model: nn.Module, path, dynamo: bool = True, opset: int = 18) -> None:
    """torch.onnx.export with a static [1, in_features] input named x (the form einhls reads)."""
    import warnings

    layer = model if isinstance(model, ButterflyLinear) else next(
        m for m in model.modules() if isinstance(m, ButterflyLinear))
    x = torch.zeros(1, layer.in_features)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=dynamo, opset_version=opset,
                          input_names=["x"], output_names=["y"])
