"""Small convolutional models for the convolution tests: torch modules exported by torch.onnx.export
and quantized by onnxruntime quantize_static (QDQ, int8, per-channel weights), seeded."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .ort_qdq import export_quantized


class Conv2dSmall(nn.Module):
    """3x3 same-padded conv, ReLU, 3x3 stride-2 conv, ReLU, 1x1 conv: a spatial output."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.c3(torch.relu(self.c2(torch.relu(self.c1(x)))))


class Conv1dSmall(nn.Module):
    """1-D: dilated conv with padding, ReLU, strided conv."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, dilation=2, padding=2)
        self.c2 = nn.Conv1d(6, 4, 2, stride=2)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


class ConvClassifier(nn.Module):
    """conv, ReLU, conv + BatchNorm (folded by the exporter), ReLU, flatten, linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, stride=2)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 2 * 2, 5)

    def forward(self, x):
        h = torch.relu(self.bn(self.c2(torch.relu(self.c1(x)))))
        return self.fc(torch.flatten(h, 1))


class SeparableBlock(nn.Module):
    """MobileNet-style: depthwise 3x3 (groups = channels) + BN + ReLU, a 2:4-sparse pointwise conv
    (two of every four consecutive input channels pruned per output), ReLU, then a Tucker-decomposed
    3x3 conv as exporters write it: 1x1 (16 -> 4), 3x3 core (4 -> 4), 1x1 (4 -> 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.bn = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 16, 1)
        with torch.no_grad():   # 2:4 along the input channels
            w = self.pw.weight.view(16, 2, 4)
            keep = w.abs().topk(2, dim=2).indices
            mask = torch.zeros_like(w).scatter_(2, keep, 1.0)
            self.pw.weight.copy_((w * mask).view(16, 8, 1, 1))
        self.tucker_in = nn.Conv2d(16, 4, 1, bias=False)
        self.tucker_core = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.tucker_out = nn.Conv2d(4, 16, 1)

    def forward(self, x):
        h = torch.relu(self.pw(torch.relu(self.bn(self.dw(x)))))
        return self.tucker_out(self.tucker_core(self.tucker_in(h)))


#: name -> (module factory, input shape)
MODELS = {
    "conv2d_small": (Conv2dSmall, (1, 3, 8, 8)),
    "conv1d_small": (Conv1dSmall, (1, 4, 16)),
    "conv_classifier": (ConvClassifier, (1, 2, 6, 6)),
    "separable_block": (SeparableBlock, (1, 8, 6, 6)),
}


def build(name: str, path: Path, seed: int = 0) -> Path:
    """Export model ``name`` (seeded weights; BatchNorm statistics made non-trivial) as QDQ ONNX."""
    factory, shape = MODELS[name]
    torch.manual_seed(seed)
    model = factory()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return export_quantized(model, path, shape=shape, seed=seed)
