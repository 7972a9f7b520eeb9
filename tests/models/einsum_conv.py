"""A CP-decomposed 3x3 convolution written with ``torch.einsum`` for its 1x1 factors (``bchw,rc->brhw``
and ``brhw,or->bohw``) and a depthwise Conv for the spatial factor (the mobilenet form of a CP conv),
8 -> 16 channels at rank 6 on 6x6 pixels, seeded.  Both torch exporters keep the einsums as ONNX
``Einsum`` nodes.  ``spatial_einsum`` contracts over a pixel axis instead (refused by einhls)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

SHAPE = (1, 8, 6, 6)


class EinsumCP(nn.Module):
    def __init__(self, c_in: int = 8, c_out: int = 16, rank: int = 6, spatial_einsum: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.first = nn.Parameter(torch.randn(rank, c_in, generator=g) / 3)
        self.core = nn.Conv2d(rank, rank, 3, padding=1, groups=rank)
        self.last = nn.Parameter(torch.randn(c_out, rank, generator=g) / 3)
        self.mix_rows = nn.Parameter(torch.randn(6, 6, generator=g) / 3) if spatial_einsum else None

    def forward(self, x):
        h = torch.einsum("bchw,rc->brhw", x, self.first)
        if self.mix_rows is not None:
            h = torch.einsum("brhw,hk->brkw", h, self.mix_rows)
        h = self.core(h)
        return torch.einsum("brhw,or->bohw", h, self.last)


def export_float(path: Path, spatial_einsum: bool = False, dynamo: bool = True) -> Path:
    torch.manual_seed(0)
    model = EinsumCP(spatial_einsum=spatial_einsum).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(*SHAPE),), str(path), input_names=["x"], output_names=["y"],
                          dynamo=dynamo, **({} if dynamo else {"opset_version": 17}))
    return path


def export_qdq(path: Path) -> Path:
    """quantize_static (QDQ int8): it quantizes the Conv and leaves the Einsum constants float."""
    from .ort_qdq import export_quantized
    torch.manual_seed(0)
    return export_quantized(EinsumCP().eval(), path, shape=SHAPE)
