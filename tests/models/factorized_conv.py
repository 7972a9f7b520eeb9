"""Decomposed convolutions as tensorly-torch writes them: ``tltorch.FactorizedConv`` in CP form
(``implementation='factorized'``: 1x1, a depthwise kx1, a depthwise 1xk, a per-rank scale, 1x1;
``'mobilenet'``: 1x1, one depthwise kxk, scale, 1x1) and in Tucker form (1x1, a dense kxk core,
1x1), each with Reshapes between the factors (the 1x1 steps are ``conv1d`` over [1, C, H*W]) and
the reconstructed core computed by MatMuls of constants; exported by torch.onnx.export and
quantized by onnxruntime quantize_static (QDQ, int8), seeded."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .ort_qdq import export_quantized


class FactorizedConvModel(nn.Module):
    """One tltorch FactorizedConv (8 -> 16 channels, 3x3, padding 1)."""

    def __init__(self, factorization: str, implementation: str, rank, stride: int = 1) -> None:
        super().__init__()
        import tltorch
        self.conv = tltorch.FactorizedConv(8, 16, 3, order=2, factorization=factorization, rank=rank,
                                           implementation=implementation, padding=1, stride=stride)
        self.conv.weight.normal_(0, 0.25)   # tltorch initialises with std 0.02: every code near 0

    def forward(self, x):
        return self.conv(x)


#: name -> (module factory, input shape); the CP rank 6 and the Tucker ranks (out 6, in 4, 3, 3)
MODELS = {
    "cp_separable_stride2": (lambda: FactorizedConvModel("cp", "factorized", 6, stride=2), (1, 8, 6, 6)),
    "cp_mobilenet": (lambda: FactorizedConvModel("cp", "mobilenet", 6), (1, 8, 6, 6)),
    "tucker": (lambda: FactorizedConvModel("tucker", "factorized", (6, 4, 3, 3)), (1, 8, 6, 6)),
}


def build(name: str, path: Path, seed: int = 0) -> Path:
    """Export model ``name`` (seeded factors) as QDQ ONNX; the float model lies beside it."""
    factory, shape = MODELS[name]
    torch.manual_seed(seed)
    return export_quantized(factory(), path, shape=shape, seed=seed)
