"""A tensor-train layer as someone else would write it: not einhls' TTLinear.

Cores are stored as (n_k, r_{k-1}, m_k, r_k), the einsum uses upper-case letters, puts the
activation last and walks the cores in reverse; input, cores and output are fake-quantized with
power-of-two scales (exported as QuantizeLinear/DequantizeLinear by both torch exporters).

    python -m tests.models.foreign_tt OUT.onnx [--legacy]
"""
from __future__ import annotations

import math
import sys

import torch
from torch import nn


def fq(t: torch.Tensor, scale: float, bits: int = 8) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(t, scale, 0, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


class ForeignTT(nn.Module):
    def __init__(self, n=(4, 2, 4), m=(2, 4, 4), r=(3, 2), seed: int = 11) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        rk = [1, *r, 1]
        self.n, self.m = list(n), list(m)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(n[k], rk[k], m[k], rk[k + 1], generator=g) * 0.4) for k in range(len(n)))
        self.bias = nn.Parameter(torch.randn(math.prod(m), generator=g) * 0.1)
        d = len(n)
        N = "PQRSTU"[:d]       # input indices
        M = "ABCDEF"[:d]       # output indices
        R = "GHIJKLM"[:d + 1]  # ranks
        cores = [f"{N[k]}{R[k]}{M[k]}{R[k + 1]}" for k in range(d)]
        self.equation = ",".join(reversed(cores)) + ",Z" + "".join(N) + "->Z" + "".join(M)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fq(x, 2.0 ** -4).reshape(-1, *self.n)
        cores = [fq(c, 2.0 ** -6) for c in self.cores]
        y = torch.einsum(self.equation, *reversed(cores), x).reshape(-1, math.prod(self.m))
        return fq(y + self.bias, 2.0 ** -3)


def export(path: str, dynamo: bool = True, **kwargs) -> ForeignTT:
    model = ForeignTT(**kwargs).eval()
    x = torch.randn(1, math.prod(model.n))
    torch.onnx.export(model, (x,), path, dynamo=dynamo, opset_version=18 if dynamo else 17)
    return model


if __name__ == "__main__":
    export(sys.argv[1], dynamo="--legacy" not in sys.argv)
