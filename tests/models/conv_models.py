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


#: name -> (module factory, input shape)
MODELS = {
    "conv2d_small": (Conv2dSmall, (1, 3, 8, 8)),
    "conv1d_small": (Conv1dSmall, (1, 4, 16)),
    "conv_classifier": (ConvClassifier, (1, 2, 6, 6)),
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
