"""Tensor-train (TT-matrix) and low-rank linear layers, and their factorization of a trained Linear.

``TTLinear`` computes y = W x with W of shape (prod m_k) x (prod n_k) stored as d cores
G_k of shape (r_{k-1}, m_k, n_k, r_k), r_0 = r_d = 1, through one ``torch.einsum``; it exports to a
single ONNX ``Einsum`` node with the cores as constant operands (see BACKGROUND.md).
"""
from __future__ import annotations

import math
import string
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def tt_equation(d: int) -> str:
    """Einsum equation of a d-core TT-matrix product: x[b, n1..nd] x cores -> y[b, m1..md]."""
    letters = iter(string.ascii_letters.replace("z", ""))
    ns = [next(letters) for _ in range(d)]
    ms = [next(letters) for _ in range(d)]
    rs = [next(letters) for _ in range(d + 1)]
    cores = [rs[k] + ms[k] + ns[k] + rs[k + 1] for k in range(d)]
    return "z" + "".join(ns) + "," + ",".join(cores) + "->z" + "".join(ms)


def fake_quant(t: torch.Tensor, scale: float, bits: int = 8, signed: bool = True) -> torch.Tensor:
    """Per-tensor fake quantization that torch.onnx.export writes as QuantizeLinear/DequantizeLinear."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return torch.fake_quantize_per_tensor_affine(t, scale, 0, lo, hi)


class TTLinear(nn.Module):
    """Linear layer in tensor-train matrix format.

    in_features = prod(in_factors), out_features = prod(out_factors); ``ranks`` are the d-1 inner
    ranks (or one int for all).  With ``quantize`` set to (activation scale, weight scale, output
    scale) the forward pass fake-quantizes input, cores and output to int8 so the export is a QDQ
    model einhls compiles as is.
    """

    def __init__(self, in_factors: Sequence[int], out_factors: Sequence[int], ranks: int | Sequence[int],
                 bias: bool = True, quantize: tuple[float, float, float] | None = None) -> None:
        super().__init__()
        if len(in_factors) != len(out_factors) or len(in_factors) < 2:
            raise ValueError("TTLinear needs the same number (>= 2) of input and output factors")
        d = len(in_factors)
        ranks = [ranks] * (d - 1) if isinstance(ranks, int) else list(ranks)
        if len(ranks) != d - 1:
            raise ValueError(f"{d} cores need {d - 1} inner ranks, got {len(ranks)}")
        self.in_factors, self.out_factors = list(in_factors), list(out_factors)
        self.ranks = [1] + ranks + [1]
        self.in_features, self.out_features = math.prod(in_factors), math.prod(out_factors)
        self.cores = nn.ParameterList()
        for k in range(d):
            shape = (self.ranks[k], out_factors[k], in_factors[k], self.ranks[k + 1])
            std = (1.0 / math.sqrt(in_factors[k] * self.ranks[k]))
            self.cores.append(nn.Parameter(torch.randn(shape) * std))
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None
        self.quantize = quantize
        self.equation = tt_equation(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cores = list(self.cores)
        if self.quantize:
            x = fake_quant(x, self.quantize[0])
            cores = [fake_quant(c, self.quantize[1]) for c in cores]
        y = torch.einsum(self.equation, x.reshape(-1, *self.in_factors), *cores)
        y = y.reshape(-1, self.out_features)
        if self.bias is not None:
            y = y + self.bias
        return fake_quant(y, self.quantize[2]) if self.quantize else y

    def full_weight(self) -> torch.Tensor:
        """The dense out x in matrix the cores represent."""
        eye = torch.eye(self.in_features)
        with torch.no_grad():
            y = torch.einsum(self.equation, eye.reshape(-1, *self.in_factors), *self.cores)
        return y.reshape(self.in_features, self.out_features).T

    def parameter_count(self) -> int:
        return sum(c.numel() for c in self.cores)


class LowRankLinear(nn.Module):
    """y = U (V x) + b with U out x r and V r x in: exported as two MatMuls with a small inner size.

    ``quantize`` = (activation scale, weight scale, output scale) fake-quantizes input, both factors
    and output to int8 (as in TTLinear); the inner product V x stays unquantized, so einhls keeps it
    exact and sees one contraction.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 quantize: tuple[float, float, float] | None = None) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(in_features, rank) / math.sqrt(in_features))
        self.u = nn.Parameter(torch.randn(rank, out_features) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.quantize = quantize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, u = self.v, self.u
        if self.quantize:
            x = fake_quant(x, self.quantize[0])
            v, u = fake_quant(v, self.quantize[1]), fake_quant(u, self.quantize[1])
        y = (x @ v) @ u
        y = y + self.bias if self.bias is not None else y
        return fake_quant(y, self.quantize[2]) if self.quantize else y

    def full_weight(self) -> torch.Tensor:
        """The dense out x in matrix U V."""
        return (self.v @ self.u).T.detach()


def tt_svd(tensor: np.ndarray, max_rank: int | None = None, rel_error: float | None = None) -> list[np.ndarray]:
    """TT-SVD (Oseledets 2011): cores [r_{k-1}, n_k, r_k] of a d-way tensor.

    Truncates each unfolding's SVD to ``max_rank`` and/or so that the total relative Frobenius error
    stays below ``rel_error`` (each of the d-1 truncations gets rel_error / sqrt(d-1)).
    """
    shape = tensor.shape
    d = len(shape)
    norm = np.linalg.norm(tensor)
    delta = (rel_error or 0.0) * norm / math.sqrt(max(d - 1, 1))
    cores, rank = [], 1
    rest = tensor.reshape(1, -1)
    for k in range(d - 1):
        rest = rest.reshape(rank * shape[k], -1)
        u, s, vt = np.linalg.svd(rest, full_matrices=False)
        keep = len(s)
        if rel_error is not None:
            tail = np.sqrt(np.cumsum(s[::-1] ** 2))[::-1]  # tail[i] = error when keeping i values
            ok = np.flatnonzero(np.append(tail[1:], 0.0) <= delta)
            keep = int(ok[0]) + 1 if ok.size else len(s)
        if max_rank is not None:
            keep = min(keep, max_rank)
        cores.append(u[:, :keep].reshape(rank, shape[k], keep))
        rest = s[:keep, None] * vt[:keep]
        rank = keep
    cores.append(rest.reshape(rank, shape[-1], 1))
    return cores


def factorize_linear(linear: nn.Linear, in_factors: Sequence[int], out_factors: Sequence[int],
                     max_rank: int | None = None, rel_error: float | None = None) -> TTLinear:
    """A TTLinear approximating a trained nn.Linear by TT-SVD at a rank cap or an error bound."""
    d = len(in_factors)
    if math.prod(in_factors) != linear.in_features or math.prod(out_factors) != linear.out_features:
        raise ValueError("factors must multiply to the layer's in/out features")
    w = linear.weight.detach().double().numpy()                  # [M, N]
    t = w.reshape(*out_factors, *in_factors)                    # m1..md, n1..nd
    t = t.transpose([i for k in range(d) for i in (k, d + k)])  # m1 n1 m2 n2 ...
    t = t.reshape([out_factors[k] * in_factors[k] for k in range(d)])
    cores = tt_svd(t, max_rank, rel_error)
    ranks = [c.shape[2] for c in cores[:-1]]
    tt = TTLinear(in_factors, out_factors, ranks, bias=linear.bias is not None)
    with torch.no_grad():
        for k, core in enumerate(cores):
            r0, _, r1 = core.shape
            tt.cores[k].copy_(torch.from_numpy(core.reshape(r0, out_factors[k], in_factors[k], r1)).float())
        if linear.bias is not None:
            tt.bias.copy_(linear.bias)
    return tt


def factorize_low_rank(linear: nn.Linear, rank: int) -> LowRankLinear:
    """Truncated SVD of a trained nn.Linear: the best rank-r approximation (Eckart-Young)."""
    w = linear.weight.detach().double()
    u, s, vt = torch.linalg.svd(w, full_matrices=False)
    lr = LowRankLinear(linear.in_features, linear.out_features, rank, bias=linear.bias is not None)
    with torch.no_grad():
        root = s[:rank].sqrt()
        lr.u.copy_((u[:, :rank] * root).T.float())
        lr.v.copy_((vt[:rank].T * root).float())
        if linear.bias is not None:
            lr.bias.copy_(linear.bias)
    return lr
