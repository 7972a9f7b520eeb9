"""onnxruntime as the oracle of a QDQ model: the graph as written, not onnxruntime's fused integer
kernels.

With its default optimizations onnxruntime fuses DequantizeLinear -> Conv / MatMul -> QuantizeLinear
into QLinearConv / MatMulInteger kernels whose results depend on the CPU: on x86 without VNNI
(AVX2 only, e.g. an AMD EPYC of this project's CI) the u8 x s8 kernels sum pairs of products in
saturating 16-bit lanes (vpmaddubsw), and outputs moved by up to 60 steps.  With optimizations off
it runs each node as ONNX defines it (dequantize, float op, quantize), the same on every machine.
"""
from __future__ import annotations

from pathlib import Path

import onnx


def onnx_session(model: str | Path | onnx.ModelProto, basic: bool = False):
    """An onnxruntime CPU session of ``model`` (a file or a ModelProto) with graph optimizations off,
    or with ``basic`` ones only (constant folding, redundant nodes: no QDQ fusion; the extended ones
    rewrite a float activation times a DequantizeLinear weight into a dynamically quantized MatMul)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if basic
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
