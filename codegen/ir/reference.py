"""The PyTorch integer reference: the IR interpreted with int64 torch tensors.

This defines every result einhls promises; C-sim and RTL sim are compared with it element by
element.  Inputs and outputs here are integer codes; :func:`quantize_input` and
:func:`dequantize_output` convert from and to real values with the graph's quantizers.
"""
from __future__ import annotations

import numpy as np
import torch

from .graph import Graph
from .types import QType


def run_reference(graph: Graph, codes: np.ndarray | torch.Tensor, trace: bool = False):
    """Run the graph on a batch of input codes [B, input_size]; returns output codes [B, output_size].

    With ``trace`` also returns the codes after every op (name -> array), for debugging and for the
    per-unit golden tests.
    """
    x = torch.as_tensor(np.asarray(codes), dtype=torch.int64)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[-1] != graph.input_size:
        raise ValueError(f"input has {x.shape[-1]} elements, the graph expects {graph.input_size}")
    t = graph.input_type
    if int(x.min()) < t.min or int(x.max()) > t.max:
        raise ValueError(f"input codes outside the input type's range [{t.min}, {t.max}]")
    steps = {}
    for op in graph.ops:
        x = op.reference(x)
        steps[op.name] = x.numpy().copy()
    out = x.numpy().astype(np.int64)
    return (out, steps) if trace else out


def quantize(real: np.ndarray, qtype: QType) -> np.ndarray:
    """Real values -> codes with round-half-to-even and saturation (ONNX QuantizeLinear)."""
    q = np.round(np.asarray(real, dtype=np.float64) / qtype.scale) + qtype.zero_point
    return np.clip(q, qtype.min, qtype.max).astype(np.int64)


def dequantize(codes: np.ndarray, qtype: QType) -> np.ndarray:
    return ((np.asarray(codes, dtype=np.float64) - qtype.zero_point) * qtype.scale).astype(np.float32)


def quantize_input(graph: Graph, real: np.ndarray) -> np.ndarray:
    return quantize(np.asarray(real).reshape(-1, graph.input_size), graph.input_type)


def dequantize_output(graph: Graph, codes: np.ndarray) -> np.ndarray:
    return dequantize(codes, graph.output_type)


def random_inputs(graph: Graph, count: int, seed: int) -> np.ndarray:
    """Random input codes over the whole input range, with the extremes always included."""
    t = graph.input_type
    rng = np.random.default_rng(seed)
    vectors = rng.integers(t.min, t.max + 1, size=(count, graph.input_size), dtype=np.int64)
    if count >= 2:
        vectors[0, :] = t.min
        vectors[1, :] = t.max
    return vectors
