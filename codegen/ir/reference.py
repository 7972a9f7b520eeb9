"""The PyTorch integer reference: the IR interpreted with int64 torch tensors.

This defines every result einhls promises; C-sim and RTL sim are compared with it element by
element.  Inputs and outputs here are integer codes; :func:`quantize_input` and
:func:`dequantize_output` convert from and to real values with the graph's quantizers.
"""
from __future__ import annotations

import numpy as np
import torch

from .graph import GRAPH_INPUT, Graph
from .types import QType


def run_reference(graph: Graph, codes: np.ndarray | torch.Tensor, trace: bool = False):
    """Run the graph on a batch of input frames; returns output frames [B, tokens * output_size].

    ``codes`` is [B, tokens * input_size] (or [B, tokens, input_size], or one frame).  Ops run in
    the graph's topological order, each on every token of every frame ([B * tokens, features]).
    With ``trace`` also returns every tensor (name -> [B, tokens * features] array), for debugging
    and for the per-unit golden tests.
    """
    x = torch.as_tensor(np.asarray(codes), dtype=torch.int64)
    frame = graph.tokens * graph.input_size
    if x.ndim == 1 or (x.ndim == 2 and graph.tokens > 1 and x.shape[-1] == graph.input_size
                       and x.shape[0] == graph.tokens):
        x = x.reshape(1, -1)
    x = x.reshape(x.shape[0], -1)
    if x.shape[-1] != frame:
        raise ValueError(f"input has {x.shape[-1]} elements per frame, the graph expects {frame} "
                         f"({graph.tokens} tokens x {graph.input_size})")
    t = graph.input_type
    if x.numel() and (int(x.min()) < t.min or int(x.max()) > t.max):
        raise ValueError(f"input codes outside the input type's range [{t.min}, {t.max}]")
    batch = x.shape[0]
    values = {GRAPH_INPUT: x.reshape(batch * graph.tokens, graph.input_size)}
    for op in graph.ops:
        result = op.reference(*(values[name] for name in op.inputs))
        results = result if isinstance(result, tuple) else (result,)
        for name, value in zip(op.outputs, results):
            values[name] = value
    out = values[graph.output].reshape(batch, -1).numpy().astype(np.int64)
    if not trace:
        return out
    steps = {name: value.reshape(batch, -1).numpy().copy() for name, value in values.items()
             if name != GRAPH_INPUT}
    return out, steps


def quantize(real: np.ndarray, qtype: QType) -> np.ndarray:
    """Real values -> codes with round-half-to-even and saturation (ONNX QuantizeLinear)."""
    q = np.round(np.asarray(real, dtype=np.float64) / qtype.scale) + qtype.zero_point
    return np.clip(q, qtype.min, qtype.max).astype(np.int64)


def dequantize(codes: np.ndarray, qtype: QType) -> np.ndarray:
    return ((np.asarray(codes, dtype=np.float64) - qtype.zero_point) * qtype.scale).astype(np.float32)


def quantize_input(graph: Graph, real) -> np.ndarray:
    """Real input frames -> codes [B, tokens * input_size] (a CNN's [B, C, H, W] to pixel order).
    A graph of several inputs (``graph.input_parts``) takes a dict of them by ONNX name."""
    if graph.input_parts:
        return pack_inputs(graph, real)
    real = np.asarray(real)
    if graph.channels_first:
        real = real.reshape(-1, graph.input_size, graph.tokens).transpose(0, 2, 1)
    return quantize(real.reshape(-1, graph.tokens * graph.input_size), graph.input_type)


def pack_inputs(graph: Graph, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The model's inputs (name -> array, batch first or one frame) packed into graph input codes
    [B, tokens * input_size]: token i carries each input's features of token i in ``input_parts``
    order; values are quantized with the input type, a padding mask passes as 0 / 1 codes."""
    if not isinstance(inputs, dict):
        raise ValueError(f"the graph has inputs {[p.name for p in graph.input_parts]}: give a dict of them")
    missing = [p.name for p in graph.input_parts if p.name not in inputs]
    if missing or set(inputs) - {p.name for p in graph.input_parts}:
        raise ValueError(f"inputs {sorted(inputs)} do not match the graph's {[p.name for p in graph.input_parts]}")
    columns = []
    batch = None
    for part in graph.input_parts:
        value = np.asarray(inputs[part.name])
        per_frame = graph.tokens * part.size
        if value.size % per_frame:
            raise ValueError(f"input {part.name!r} has {value.size} elements, not frames of {per_frame}")
        value = value.reshape(-1, graph.tokens, part.size)
        if part.kind == "mask":
            if not np.all((value == 0) | (value == 1)):
                raise ValueError(f"input {part.name!r} is a padding mask: 1 for a token, 0 for padding")
            codes = value.astype(np.int64)
        else:
            codes = quantize(value, graph.input_type)
        if batch is not None and codes.shape[0] != batch:
            raise ValueError(f"input {part.name!r} has {codes.shape[0]} frames, the others {batch}")
        batch = codes.shape[0]
        columns.append(codes)
    return np.concatenate(columns, axis=2).reshape(batch, -1)


def unpack_inputs(graph: Graph, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Graph input codes [B, tokens * input_size] -> each input part's codes [B, tokens, size]."""
    codes = np.asarray(codes).reshape(-1, graph.tokens, graph.input_size)
    return {p.name: codes[:, :, p.start:p.start + p.size] for p in graph.input_parts}


def dequantize_output(graph: Graph, codes: np.ndarray) -> np.ndarray:
    return dequantize(channels_first_output(graph, codes), graph.output_type)


def channels_first_output(graph: Graph, codes: np.ndarray) -> np.ndarray:
    """Output frames in the ONNX order: a CNN's pixel stream [B, H*W, C] back to [B, C*H*W]."""
    codes = np.asarray(codes)
    tokens = graph.output_tokens
    if not graph.channels_first or tokens == 1:
        return codes
    return codes.reshape(-1, tokens, graph.output_size).transpose(0, 2, 1).reshape(codes.shape[0], -1)


def random_inputs(graph: Graph, count: int, seed: int) -> np.ndarray:
    """Random input codes over the whole input range, with the extremes always included."""
    t = graph.input_type
    rng = np.random.default_rng(seed)
    vectors = rng.integers(t.min, t.max + 1, size=(count, graph.tokens * graph.input_size), dtype=np.int64)
    if count >= 2:
        vectors[0, :] = t.min
        vectors[1, :] = t.max
    frames = vectors.reshape(count, graph.tokens, graph.input_size)
    for part in graph.input_parts:
        if part.kind != "mask":
            continue
        # padding at the end of each sentence: the extremes get one token (all keys but one masked)
        # and no padding; the others a random length
        lengths = rng.integers(1, graph.tokens + 1, size=count)
        lengths[:2] = [1, graph.tokens][:min(count, 2)]
        keep = np.arange(graph.tokens)[None, :] < lengths[:, None]
        frames[:, :, part.start:part.start + part.size] = keep[:, :, None].astype(np.int64)
    return vectors
