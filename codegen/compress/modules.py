"""Compressed replacements of one ``nn.Linear``, as fake-quantized torch modules.

Every module here computes in float what einhls computes in integers, and exports (by
``torch.onnx.export``) as the QDQ model `einhls compile` lowers as is:

* the layer's input is quantized per tensor at a *calibrated* scale (its recorded peak / the
  largest code, not rounded to a power of two; einhls requantizes with a fixed-point multiplier)
  to ``in_bits`` = 8 or 16 bits.  16-bit inputs export as ``com.microsoft`` QuantizeLinear /
  DequantizeLinear with an int16 zero point (what onnxruntime's quantizer writes for QInt16, the
  einhls MiniLM compile path's int16 configuration);
* dense and N:M weights (and both factors of a low-rank layer) per output channel at calibrated
  scales (row peak / the largest code), 8 or 4 bits; tensor-train cores and butterfly twiddles
  per tensor at power-of-two scales (one scale per core / stage, as the contraction units take);
  a butterfly's activations between stages per tensor at the input's width, calibrated scales;
* 4-bit weights are exported in int8 containers holding codes in [-8, 7] at the same scale (the
  front end derives a weight's width from its codes, so the hardware stores and multiplies 4 bits).

Masks (N:M) are buffers: distillation trains the kept weights and never revives a pruned one.
Fake quantization uses a straight-through estimator so the modules can be fine-tuned.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..nn.butterfly import ButterflyLinear
from ..nn.tt import TTLinear, factorize_linear

#: activation widths a layer input may take
ACTIVATION_BITS = (8, 16)


class _FakeQuantInt16(torch.autograd.Function):
    """Per-tensor int16 fake quantization (straight-through inside the range) that exports as the
    com.microsoft QuantizeLinear / DequantizeLinear pair with an int16 zero point (ONNX opset 17's
    own QuantizeLinear has no int16)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.limit = 32767 * scale
        return torch.fake_quantize_per_tensor_affine(x, float(scale), 0, -32768, 32767)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.limit).to(grad.dtype), None

    @staticmethod
    def symbolic(g, x, scale: float):
        s = g.op("Constant", value_t=torch.tensor(float(scale), dtype=torch.float32))
        zp = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int16))
        q = g.op("com.microsoft::QuantizeLinear", x, s, zp)
        q.setType(x.type().with_dtype(torch.int16))
        y = g.op("com.microsoft::DequantizeLinear", q, s, zp)
        y.setType(x.type())
        return y


def fake_quant(t: torch.Tensor, scale: float | torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Symmetric fake quantization; exports as QuantizeLinear/DequantizeLinear.

    ``scale`` a float: per tensor; a 1-D tensor: per output channel (axis 0 of a weight).
    ``bits`` 16: the int16 quantizer (activations).  Narrower than 8 bits: the values are first
    clamped onto the narrow grid, then the int8 fake quantizer at the same scale keeps them
    exactly (so the export stays an int8 QDQ pair)."""
    if bits == 16:
        return _FakeQuantInt16.apply(t, float(scale))
    per_channel = isinstance(scale, torch.Tensor) and scale.dim() == 1
    if bits < 8:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if per_channel:
            col = scale.to(t.dtype).reshape(-1, *([1] * (t.dim() - 1)))
            t = torch.maximum(torch.minimum(t, hi * col), lo * col)
        else:
            t = torch.clamp(t, lo * scale, hi * scale)
    if per_channel:
        return torch.fake_quantize_per_channel_affine(t, scale.float(), torch.zeros(len(scale), dtype=torch.int32,
                                                                                   device=t.device),
                                                      0, -128, 127)
    return torch.fake_quantize_per_tensor_affine(t, float(scale), 0, -128, 127)


def weight_scale(w: torch.Tensor, bits: int) -> float:
    """Power-of-two scale that spans ``w`` with ``bits``-bit signed codes (at least 2^-20): the
    per-tensor scale of tensor-train cores and butterfly twiddles."""
    qmax = (1 << (bits - 1)) - 1
    peak = float(w.detach().abs().max()) if w.numel() else 0.0
    return 2.0 ** math.ceil(math.log2(max(peak, 2.0 ** -20) / qmax))


def channel_scales(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Calibrated per-output-channel scales of a weight [out, in]: each row's peak / the largest
    ``bits``-bit code (an all-zero row gets a tiny positive scale)."""
    qmax = (1 << (bits - 1)) - 1
    peak = w.detach().abs().amax(dim=1).double()
    scales = (torch.clamp(peak, min=2.0 ** -20) / qmax).float()
    if torch.jit.is_tracing():
        # rebuilt from Python floats: under torch.onnx.export the scales are then constants of the
        # graph (a QuantizeLinear's scale input), not ops on the weight.  Not while training: on a
        # GPU that round trip would wait for the device in every layer of every step.
        return torch.tensor(scales.tolist(), dtype=torch.float32, device=w.device)
    return scales


def act_scale(peak: float, bits: int = 8) -> float:
    """Calibrated scale of an activation: its recorded magnitude / the largest ``bits``-bit code
    (rounded to float32, the precision ONNX stores it in)."""
    qmax = (1 << (bits - 1)) - 1
    return float(np.float32(max(float(peak), 2.0 ** -12) / qmax))


def nm_mask(weight: torch.Tensor, n: int, m: int, row_pairs: bool = False) -> torch.Tensor:
    """Keep the ``n`` largest-magnitude weights of every group of ``m`` consecutive inputs.

    ``row_pairs``: rows 2r and 2r+1 keep the same positions, those where their magnitudes summed
    are largest (an odd last row alone), so one index pattern serves the pair and the compiler
    packs the pair's two products into one DSP for a single vector (N:M PE pairs)."""
    out_f, in_f = weight.shape
    pad = (-in_f) % m
    w = torch.nn.functional.pad(weight.detach().abs(), (0, pad)).reshape(out_f, -1, m)
    if row_pairs:
        pairs = out_f // 2 * 2
        both = w[0:pairs:2] + w[1:pairs:2]
        w = w.clone()
        w[0:pairs:2], w[1:pairs:2] = both, both
    keep = torch.zeros_like(w, dtype=torch.bool)
    idx = torch.topk(w, n, dim=2).indices
    keep.scatter_(2, idx, True)
    return keep.reshape(out_f, -1)[:, :in_f].to(weight.dtype)


@dataclass(frozen=True)
class Spec:
    """One candidate form of a linear layer.

    kind: ``dense`` | ``nm`` (n:m magnitude sparsity) | ``lowrank`` (rank) | ``tt`` (in/out
    factors, rank) | ``butterfly`` (square layers); ``bits``: weight bits (4 or 8); ``pairs``: an
    n:m mask shared by rows 2r and 2r+1 (nm_mask row_pairs)."""
    kind: str
    bits: int = 8
    n: int = 0
    m: int = 0
    rank: int = 0
    in_factors: tuple[int, ...] = field(default_factory=tuple)
    out_factors: tuple[int, ...] = field(default_factory=tuple)
    pairs: bool = False

    @property
    def label(self) -> str:
        if self.kind == "nm":
            return f"{self.n}:{self.m}{' pairs' if self.pairs else ''} w{self.bits}"
        if self.kind == "lowrank":
            return f"lowrank r{self.rank} w{self.bits}"
        if self.kind == "tt":
            return (f"tt {'x'.join(map(str, self.in_factors))}->{'x'.join(map(str, self.out_factors))} "
                    f"r{self.rank} w{self.bits}")
        return f"{self.kind} w{self.bits}"

    def to_json(self) -> dict:
        d = asdict(self)
        d["in_factors"], d["out_factors"] = list(self.in_factors), list(self.out_factors)
        if not self.pairs:
            del d["pairs"]   # (the form as written before row-pair masks existed)
        return d

    @staticmethod
    def from_json(d: dict) -> "Spec":
        return Spec(kind=d["kind"], bits=int(d["bits"]), n=int(d.get("n", 0)), m=int(d.get("m", 0)),
                    rank=int(d.get("rank", 0)), in_factors=tuple(d.get("in_factors", ())),
                    out_factors=tuple(d.get("out_factors", ())), pairs=bool(d.get("pairs", False)))


class QuantLinear(nn.Module):
    """Dense or N:M-masked linear layer: input fake-quantized per tensor to ``in_bits``, weights
    per output channel to ``bits``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, bits: int, in_scale: float,
                 mask: torch.Tensor | None = None, in_bits: int = 8) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.bias = nn.Parameter(bias.detach().clone().float()) if bias is not None else None
        self.register_buffer("mask", mask.float() if mask is not None else torch.ones_like(self.weight))
        self.bits, self.in_scale, self.in_bits = bits, float(in_scale), in_bits
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    def effective_weight(self) -> torch.Tensor:
        w = self.weight * self.mask
        return fake_quant(w, channel_scales(w, self.bits), self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.mask
        scales = channel_scales(w, self.bits)
        bias = None if self.bias is None else accumulator_bias(self.bias, self.in_scale * scales)
        return nn.functional.linear(fake_quant(x, self.in_scale, self.in_bits), fake_quant(w, scales, self.bits), bias)


def accumulator_bias(bias: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The bias rounded (half to even) to whole accumulator units (input scale x the channel's
    weight scale), as einhls adds a float bias to the integer accumulator; straight-through for
    training, a constant of the graph under torch.onnx.export."""
    rounded = torch.round(bias.detach().double() / step.double()) * step.double()
    if torch.jit.is_tracing():
        return torch.tensor(rounded.float().tolist(), dtype=torch.float32, device=bias.device)
    return bias + (rounded.to(bias.dtype) - bias).detach()


class LowRank(nn.Module):
    """y = U (V x) + b: two quantized linear layers; the rank-r activation is requantized (at the
    layer input's width)."""

    def __init__(self, first: QuantLinear, second: QuantLinear) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.in_features, self.out_features = first.in_features, second.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class QuantTT(nn.Module):
    """A TTLinear with fake-quantized input (``in_bits``) and cores (``bits``, one scale per core)."""

    def __init__(self, tt: TTLinear, bits: int, in_scale: float, in_bits: int = 8) -> None:
        super().__init__()
        self.tt, self.bits, self.in_scale, self.in_bits = tt, bits, float(in_scale), in_bits
        self.in_features, self.out_features = tt.in_features, tt.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cores = [fake_quant(c, weight_scale(c, self.bits), self.bits) for c in self.tt.cores]
        lead = x.shape[:-1]
        y = torch.einsum(self.tt.equation, fake_quant(x, self.in_scale, self.in_bits).reshape(-1, *self.tt.in_factors), *cores)
        y = y.reshape(*lead, self.out_features)
        return y + self.tt.bias if self.tt.bias is not None else y


class QuantButterfly(nn.Module):
    """A ButterflyLinear (square layer) fitted to the dense layer: input and the activations
    between stages fake-quantized per tensor to ``in_bits`` at calibrated scales (``stage_scales``,
    one per stage boundary), twiddles per stage to ``bits``.  Without the quantizers between
    stages the exact accumulator grows by a twiddle's width and a bit every stage: nine stages of
    a 384-wide layer (padded to 512) would need 53 bits from 8-bit inputs, more than the unit
    holds."""

    def __init__(self, bfly: ButterflyLinear, bits: int, in_scale: float, in_bits: int = 8) -> None:
        super().__init__()
        self.bfly, self.bits, self.in_scale, self.in_bits = bfly, bits, float(in_scale), in_bits
        self.in_features, self.out_features = bfly.in_features, bfly.out_features
        self.stage_scales: list[float] | None = None   # set by calibrated_butterfly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = fake_quant(x, self.in_scale, self.in_bits).reshape(-1, self.in_features)
        y = self.stages(x)
        return y.reshape(*lead, self.out_features)

    def stages(self, x: torch.Tensor, calibrate: bool = False) -> torch.Tensor:
        """The stages on ``x`` [batch, in] (quantized); ``calibrate``: set each stage boundary's
        scale from its peak on ``x`` first (the boundaries before it already quantized at theirs:
        each scale sees the rounding the hardware does before it)."""
        b = self.bfly
        batch, total = x.shape[0], b.stacks * b.n
        if self.in_features < b.n:
            x = nn.functional.pad(x, (0, b.n - self.in_features))
        if calibrate:
            self.stage_scales = []
        last = len(b.strides) - 1
        for s, st in enumerate(b.strides):
            t = b.twiddles[s]
            t = fake_quant(t, weight_scale(t, self.bits), self.bits)
            x = torch.einsum("...aib,aijb->...ajb", x.reshape(batch, total // (2 * st), 2, st), t).reshape(batch, total)
            if s < last and calibrate:
                self.stage_scales.append(act_scale(float(x.detach().abs().max()), self.in_bits))
            if s < last and self.stage_scales is not None:
                x = fake_quant(x, self.stage_scales[s], self.in_bits)
        x = x[:, :self.out_features]
        return x + b.bias if b.bias is not None else x


def calibrated_butterfly(bfly: ButterflyLinear, bits: int, in_scale: float, in_bits: int,
                         calib_x: torch.Tensor) -> QuantButterfly:
    """A QuantButterfly whose stage quantizers span the activations ``calib_x`` produces (each
    boundary's peak / the largest ``in_bits`` code)."""
    module = QuantButterfly(bfly, bits, in_scale, in_bits)
    with torch.no_grad():
        module.stages(fake_quant(calib_x.reshape(-1, bfly.in_features).float(), in_scale, in_bits), calibrate=True)
    return module


def build(spec: Spec, linear: nn.Linear, in_scale: float, calib_x: torch.Tensor | None = None,
          seed: int = 0, in_bits: int = 8) -> nn.Module:
    """The compressed module of ``spec`` initialised from a trained ``linear`` (magnitude masks,
    SVD, TT-SVD; a butterfly is fitted by least squares on ``calib_x``), its input quantized to
    ``in_bits`` at ``in_scale``."""
    if in_bits not in ACTIVATION_BITS:
        raise ValueError(f"input width {in_bits}: one of {ACTIVATION_BITS}")
    w = linear.weight.detach().float()
    b = linear.bias.detach().float() if linear.bias is not None else None
    if spec.kind == "dense":
        return QuantLinear(w, b, spec.bits, in_scale, in_bits=in_bits)
    if spec.kind == "nm":
        return QuantLinear(w, b, spec.bits, in_scale, mask=nm_mask(w, spec.n, spec.m, row_pairs=spec.pairs),
                           in_bits=in_bits)
    if spec.kind == "lowrank":
        u, s, vt = torch.linalg.svd(w.double(), full_matrices=False)
        root = s[:spec.rank].sqrt()
        v_w = (vt[:spec.rank] * root[:, None]).float()
        u_w = (u[:, :spec.rank] * root).float()
        first = QuantLinear(v_w, None, spec.bits, in_scale, in_bits=in_bits)
        mid = calib_x @ v_w.T if calib_x is not None else None
        mid_scale = act_scale(float(mid.abs().max()), in_bits) if mid is not None else in_scale
        return LowRank(first, QuantLinear(u_w, b, spec.bits, mid_scale, in_bits=in_bits))
    if spec.kind == "tt":
        tt = factorize_linear(linear, spec.in_factors, spec.out_factors, max_rank=spec.rank)
        return QuantTT(tt, spec.bits, in_scale, in_bits)
    if spec.kind == "butterfly":
        calib = calib_x if calib_x is not None else butterfly_fit_inputs(linear.in_features, seed)
        return calibrated_butterfly(fit_butterfly(linear, calib, seed), spec.bits, in_scale, in_bits, calib)
    raise ValueError(f"unknown candidate kind {spec.kind!r}")


def butterfly_fit_inputs(features: int, seed: int) -> torch.Tensor:
    """The random inputs a butterfly is fitted to and calibrated on when no recorded ones are given."""
    torch.manual_seed(seed)
    return torch.randn(256, features)


def fit_butterfly(linear: nn.Linear, calib_x: torch.Tensor | None, seed: int, steps: int = 150) -> ButterflyLinear:
    """A butterfly matrix fitted to a square dense layer by Adam on its outputs (calibration inputs,
    or random ones without them); deterministic for a seed."""
    n = linear.in_features
    x = calib_x if calib_x is not None else butterfly_fit_inputs(n, seed)
    torch.manual_seed(seed)
    bfly = ButterflyLinear(n, linear.out_features, bias=linear.bias is not None, init="ortho", seed=seed)
    x = x.reshape(-1, n)[:512]
    with torch.no_grad():
        target = nn.functional.linear(x, linear.weight.detach(), None)
        if bfly.bias is not None:
            bfly.bias.copy_(linear.bias.detach())
    opt = torch.optim.Adam([p for name, p in bfly.named_parameters() if name != "bias"], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        pred = bfly(x) - (bfly.bias if bfly.bias is not None else 0)
        loss = ((pred - target) ** 2).mean()
        loss.backward()
        opt.step()
    return bfly

