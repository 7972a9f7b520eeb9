"""A small residual CNN trained here on scikit-learn's 8x8 digits, exported two ways:

* float torch -> ``torch.onnx.export`` -> onnxruntime ``quantize_static`` (QDQ, int8, per-channel
  weights, calibrated on training images): BatchNorm folded into the convs by the exporter;
* Brevitas (``QuantConv2d`` 4/8-bit weights, ``QuantReLU``, ``QuantIdentity`` on both branches of
  the skip and after the pooling) -> ``export_qonnx``: BatchNormalization nodes stay in the graph
  and einhls folds them into the convs.

conv 3x3 (1 -> 8) + BN + ReLU, a residual block (two 3x3 convs, BN, skip), a 3x3 stride-2 conv
(8 -> 16, 4x4 pixels), global average pooling, flatten, a linear classifier (16 -> 10).
Training: Adam, fixed seed, a few epochs on 1437 images (a few seconds on a CPU).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

TRAIN = 1437          # the first images train, the rest (360) test


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): images [N, 1, 8, 8] scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.stem(x)
        h = torch.relu(h + self.block(h))
        return self.fc(torch.flatten(self.pool(self.down(h)), 1))


def brevitas_digits_cnn() -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Int32Bias

    class QuantDigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=False)
            self.c1 = qnn.QuantConv2d(1, 8, 3, padding=1, weight_bit_width=8, bias=False)
            self.b1 = nn.BatchNorm2d(8)
            self.r1 = qnn.QuantReLU(bit_width=8)
            self.c2 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_bit_width=4, bias=False)
            self.b2 = nn.BatchNorm2d(8)
            self.r2 = qnn.QuantReLU(bit_width=8)
            self.c3 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_bit_width=4, bias=False)
            self.b3 = nn.BatchNorm2d(8)
            self.q3 = qnn.QuantIdentity(bit_width=8)
            self.r_sum = qnn.QuantReLU(bit_width=8)
            self.c4 = qnn.QuantConv2d(8, 16, 3, stride=2, padding=1, weight_bit_width=8, bias=False)
            self.r4 = qnn.QuantReLU(bit_width=8)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.q_pool = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(16, 10, bias=True, weight_bit_width=8, bias_quant=Int32Bias)

        def forward(self, x):
            h = self.r1(self.b1(self.c1(self.inp(x))))
            y = self.q3(self.b3(self.c3(self.r2(self.b2(self.c2(h))))))
            h = self.r_sum(h + y)
            h = self.q_pool(self.pool(self.r4(self.c4(h))))
            return self.fc(torch.flatten(h, 1))

    return QuantDigitsCNN()


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 30, seed: int = 0) -> nn.Module:
    """Adam with a cosine learning rate, one thread (deterministic, and no oversubscription of a
    shared machine: a few CPU seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(xt), 64):
                batch = order[start:start + 64]
                optimiser.zero_grad()
                nn.functional.cross_entropy(model(xt[batch]), yt[batch]).backward()
                optimiser.step()
            schedule.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits.reshape(len(y), -1), axis=1) == y))


def export_qdq(path: Path, seed: int = 0) -> tuple[Path, float]:
    """Train the float CNN, export it, quantize_static it (QDQ); returns (path, float test accuracy)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    x_train, y_train, x_test, y_test = load_digits_split()
    torch.manual_seed(seed)
    model = train(DigitsCNN(), x_train, y_train, seed=seed)
    with torch.no_grad():
        float_acc = accuracy(model(torch.as_tensor(x_test)).numpy(), y_test)
    float_path = path.with_name(path.stem + "_float.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(float_path), input_names=["x"],
                          output_names=["y"], opset_version=17, dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"x": x_train[i:i + 1]} for i in range(0, 256, 2))

        def get_next(self):
            return next(self.items, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return path, float_acc


def export_brevitas(path: Path, seed: int = 0) -> tuple[Path, float, nn.Module]:
    """Train the Brevitas CNN (quantization-aware), export QONNX; returns (path, test accuracy of
    the Brevitas model in torch, the model)."""
    from brevitas.export import export_qonnx

    x_train, y_train, x_test, y_test = load_digits_split()
    torch.manual_seed(seed)
    model = train(brevitas_digits_cnn(), x_train, y_train, seed=seed)
    with torch.no_grad():
        acc = accuracy(model(torch.as_tensor(x_test)).numpy(), y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.as_tensor(x_train[:1]), export_path=str(path))
    return path, acc, model
