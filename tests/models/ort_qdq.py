"""torch module -> torch.onnx.export (float) -> onnxruntime quantize_static (QDQ, int8, per-channel
weights), as users quantize models; calibrated on seeded normal samples."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def calibration_samples(shape: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, size=shape).astype(np.float32) for _ in range(count)]


def export_quantized(model: nn.Module, path: Path, shape: tuple[int, ...] = (1, 4, 16), seed: int = 0,
                     calibration: int = 32, opset: int = 17, samples: list[np.ndarray] | None = None,
                     activation_bits: int = 8, nodes_to_exclude: list[str] | None = None,
                     weight_bits: int = 8, extra_options: dict | None = None) -> Path:
    """torch.onnx.export (opset 17 unless told, float) then quantize_static (QDQ, int8, per-channel weights)
    calibrated on ``samples`` (default: seeded normal ones); the float model is written beside as
    ``<stem>_float.onnx``; ``weight_bits`` 4 writes int4 weights; ``extra_options`` go to quantize_static.  ``nodes_to_exclude``: node-name prefixes (module scopes) that
    quantize_static leaves alone."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = model.eval()
    float_path = path.with_name(path.stem + "_float.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(*shape),), str(float_path), input_names=["x"],
                          output_names=["y"], opset_version=opset, dynamo=False)
    excluded = []
    if nodes_to_exclude:
        import onnx
        excluded = [node.name for node in onnx.load(str(float_path)).graph.node
                    if node.name.startswith(tuple(nodes_to_exclude))]
    if samples is None:
        samples = calibration_samples(shape, calibration, seed)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"x": s} for s in samples)

        def get_next(self):
            return next(self.items, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True,
                        weight_type=QuantType.QInt4 if weight_bits == 4 else QuantType.QInt8, nodes_to_exclude=excluded,
                        activation_type=QuantType.QInt16 if activation_bits == 16 else QuantType.QInt8,
                        extra_options=extra_options or {})
    return path
