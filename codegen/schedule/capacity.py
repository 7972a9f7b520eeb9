"""Refuse, before lowering or folding, a model whose weights cannot fit the board's on-chip memory.

Two checks, both lower bounds on what the weights need (so neither refuses a design that could fit):

* :func:`check_model_capacity` reads only the ONNX file (onnx + numpy, no torch, no lowering): the
  integer weight initializers of a QDQ model, each non-zero value counted with the fewest bits that
  span the tensor's values.  einhls stores every such value at least that wide (dense layers store
  the zeros too, N:M layers an index beside each kept value), so the sum is a lower bound.  It runs
  first, so a model far too large (a 12-layer BERT-base FFN chain) is refused in seconds.
* :func:`check_graph_capacity` runs on the lowered graph, before folding: the weight bits every
  Linear op stores whatever its parallelism (N:M: kept values and their indices).

The board's offer: block RAM + UltraRAM + a share of the LUTs as distributed ROM, times --max-util.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import EinhlsError
from .boards import Board

#: share of a board's LUTs that may hold weights as distributed ROM (64 bits per LUT6); the rest is
#: the datapath's
LUTRAM_WEIGHT_SHARE = 0.25
BRAM36_BITS, URAM288_BITS = 36 * 1024, 288 * 1024

#: ONNX ops reading integer weights, and the input index of the weight
_WEIGHT_INPUTS = {"DequantizeLinear": 0, "MatMulInteger": 1, "ConvInteger": 1, "QLinearMatMul": 3,
                  "QLinearConv": 3}


def on_chip_memory_bits(board: Board) -> int:
    """Bits of weight memory a board offers: block RAM, UltraRAM and a LUTRAM share."""
    return board.bram36 * BRAM36_BITS + board.uram * URAM288_BITS + int(board.lut * LUTRAM_WEIGHT_SHARE) * 64


def _refuse(bits: int, layers: int, board: Board, max_util: float, largest: str, node: str | None) -> None:
    available = on_chip_memory_bits(board)
    raise EinhlsError(
        f"the weights do not fit on chip: {bits / 8e6:.2f} MB of weights ({bits} bits in {layers} "
        f"layers) > {max_util:.0%} of the {available / 8e6:.2f} MB {board.name} offers ({board.bram36} "
        f"BRAM36, {board.uram} URAM288, {LUTRAM_WEIGHT_SHARE:.0%} of {board.lut} LUTs as ROM); the "
        f"largest layer is {largest}; compress the model (N:M sparsity, narrower weights, "
        f"tensor-train) or choose a larger board", node=node)


def _stored_bits_lower_bound(codes: np.ndarray, zero_point: np.ndarray | None) -> int:
    """Non-zero values times the fewest bits spanning the tensor's values (0 when unknown)."""
    if codes.size == 0:
        return 0
    if zero_point is not None and zero_point.size > 1:
        return 0   # per-axis zero points: which codes are zero is not worth working out here
    zp = int(zero_point.reshape(-1)[0]) if zero_point is not None and zero_point.size else 0
    lo, hi = int(codes.min()), int(codes.max())
    span_bits = max(1, math.ceil(math.log2(hi - lo + 1))) if hi > lo else 1
    return int(np.count_nonzero(codes != zp)) * span_bits


def check_model_capacity(model_path: str | Path, board: Board, max_util: float) -> None:
    """Refuse a QDQ model whose integer weights alone exceed the board (see the module docstring).

    The file is read by the front end's reader, so a hostile file is refused here with the same
    message, before anything large is read or allocated (a plain onnx.load would read a 2 GiB file
    and external data of any size, from anywhere)."""
    from onnx import numpy_helper

    from ..frontend.load import read_model
    model = read_model(Path(model_path))
    inits = {t.name: t for t in model.graph.initializer}
    total, layers, largest = 0, 0, (0, "", None)
    seen = set()
    for node in model.graph.node:
        index = _WEIGHT_INPUTS.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in inits:
            continue
        name = node.input[index]
        if name in seen:
            continue
        seen.add(name)
        try:
            codes = numpy_helper.to_array(inits[name])
        except Exception:   # noqa: BLE001 - e.g. external data not beside the file
            return
        if codes.dtype.kind not in "iu" or codes.ndim < 2:
            continue
        zp_name = node.input[2] if node.op_type == "DequantizeLinear" and len(node.input) > 2 else ""
        zp = numpy_helper.to_array(inits[zp_name]) if zp_name in inits else None
        bits = _stored_bits_lower_bound(codes, zp)
        total += bits
        layers += 1
        if bits > largest[0]:
            largest = (bits, f"{name!r} (shape {'x'.join(map(str, codes.shape))}, {bits} bits)", node.name)
    if total > max_util * on_chip_memory_bits(board):
        _refuse(total, layers, board, max_util, largest[1], largest[2])


def check_graph_capacity(graph, board: Board, max_util: float) -> None:
    """Refuse a lowered graph whose Linear weights exceed the board (see the module docstring)."""
    from ..ir.graph import Linear
    linears = [op for op in graph.ops if isinstance(op, Linear)]

    def stored(op) -> int:
        if op.sparsity and op.sparsity[0] < op.sparsity[1]:
            n, m = op.sparsity
            index_bits = max(1, math.ceil(math.log2(m)))
            return op.out_size * math.ceil(op.in_size / m) * n * (op.weight_type.bits + index_bits)
        return op.out_size * op.in_size * op.weight_type.bits

    total = sum(stored(op) for op in linears)
    if linears and total > max_util * on_chip_memory_bits(board):
        big = max(linears, key=stored)
        _refuse(total, len(linears), board, max_util,
                f"{big.name!r} ({big.in_size} -> {big.out_size}, {big.weight_type.bits}-bit weights)", big.source)


def sequence_buffer_bits(op) -> int:
    """Bits an attention product keeps on chip at least: one sequence of its input b (keys or
    values; two when the scheduler can afford them, schedule/buffers.py)."""
    return op.tokens * op.in_size_b * (op.in_type_b.bits + 1)


def check_sequence_buffers(graph, board: Board, max_util: float) -> None:
    """Refuse a sequence length whose key / value buffers alone exceed the board's memory, naming
    the largest buffer and its size (the weights are checked by :func:`check_graph_capacity`)."""
    products = [op for op in graph.ops if op.kind == "actmatmul"]
    if not products:
        return
    total = sum(sequence_buffer_bits(op) for op in products)
    available = max_util * on_chip_memory_bits(board)
    if total > available:
        big = max(products, key=sequence_buffer_bits)
        raise EinhlsError(
            f"a sequence of {graph.tokens} tokens does not fit on chip: the attention products buffer "
            f"{total / 8e6:.2f} MB of keys and values ({len(products)} buffers; the largest, {big.name!r}, "
            f"holds at least {big.tokens} tokens x {big.in_size_b} codes = {sequence_buffer_bits(big)} bits) "
            f"and {board.name} has {available / 8e6:.2f} MB at {max_util:.0%}: use a shorter sequence",
            node=big.source)
