"""The sequence length as a compile-time parameter: the same graph at another number of tokens.

Every op of an encoder works token by token with the same constants except attention: the
:class:`~codegen.ir.attention.ActMatMul` units buffer a whole sequence, and the scores between them
(and the softmax over them, and any elementwise op on the way) carry heads x L codes per token.
``with_tokens`` rebuilds those for another L; the quantization (every scale and zero point) stays
that of the model as exported, so a model calibrated once can be evaluated, or compiled, at the
length of each input without a new export.  Without an attention mask, this is how sentences of
different lengths are run exactly (no padding tokens to attend to).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..ir.attention import ActMatMul
from ..ir.graph import GRAPH_INPUT, Graph, Op, Requant
from ..ir.mask import MaskScores
from ..ir.nonlinear import IntSoftmax, graph_op, make_softmax
from ..ir.pooling import MaskedTokenMean, TokenMean, make_token_mean
from ..ir.types import QType, bits_for_range

#: op kinds that keep their constants when the features per token change (one value per tensor)
PER_TENSOR_KINDS = frozenset({"requant", "relu", "fork"})


def _resized(op: Op, size: int, tokens: int) -> Op:
    """An elementwise op on streams of ``size`` features instead of ``op.in_size``."""
    if op.kind == "softmax" and isinstance(op.unit, IntSoftmax):
        heads = op.rows
        if size % heads:
            raise ValueError(f"op {op.name!r}: {size} features are not {heads} rows")
        unit = make_softmax(size // heads, op.unit.in_type, op.unit.out_type)
        return dataclasses.replace(graph_op(op.name, op.source, unit, size), inputs=op.inputs)
    if op.kind not in PER_TENSOR_KINDS:
        raise ValueError(f"op {op.name!r} ({op.kind}) has per-feature constants and cannot change its "
                         f"{op.in_size} features per token to {size}")
    changes = dict(in_size=size, out_size=size)
    if isinstance(op, Requant):
        offset = np.broadcast_to(op.offset, (op.in_size,))
        if np.any(offset != offset[0]) or op.requant.per_channel:
            raise ValueError(f"op {op.name!r}: per-feature requantization of attention scores")
        changes["offset"] = np.full(size, offset[0], dtype=np.int64)
    return dataclasses.replace(op, **changes)


def _actmatmul(op: ActMatMul, tokens: int) -> ActMatMul:
    if op.layout == "nt":
        changes = dict(cols=tokens, out_size=op.heads * tokens)
    else:
        changes = dict(inner=tokens, in_size=op.heads * tokens)
    draft = dataclasses.replace(op, tokens=tokens, **changes)
    lo, hi = draft.acc_range
    return dataclasses.replace(draft, acc_type=QType(True, max(bits_for_range(min(lo, -1), hi), 2)))


def _masked_mean(op: MaskedTokenMean, tokens: int) -> MaskedTokenMean:
    """The table of multipliers (one per count of real tokens) continued or cut at the exported
    shift: a sentence padded to the exported length and the same sentence alone at its own length
    pool to the same codes (the multiplier of its count is the same constant)."""
    scale = op.in_type.scale / op.out_type.scale
    multipliers = op.multipliers[:tokens] + tuple(max(1, round(scale / n * 2.0 ** op.shift))
                                                  for n in range(len(op.multipliers) + 1, tokens + 1))
    lo, hi = tokens * (op.in_type.min - op.in_type.zero_point), tokens * (op.in_type.max - op.in_type.zero_point)
    acc_type = QType(True, max(bits_for_range(min(lo, -1), max(hi, 1)), 2))
    return dataclasses.replace(op, tokens=tokens, multipliers=multipliers, acc_type=acc_type)


def _mask_scores(op: MaskScores, tokens: int) -> MaskScores:
    """The masked code depends on the scale only."""
    return dataclasses.replace(op, tokens=tokens, in_size=op.heads * tokens, out_size=op.heads * tokens)


def _token_mean(op: TokenMean, tokens: int) -> TokenMean:
    """The mean over all the tokens: its requantization follows L."""
    return make_token_mean(op.name, op.source, op.in_type, op.in_size, tokens, op.out_type, op.inputs)


#: the op kinds whose constants depend on the sequence length, each rebuilt for another length
AT_LENGTH: dict[str, Callable[[Op, int], Op]] = {
    ActMatMul.kind: _actmatmul,
    MaskScores.kind: _mask_scores,
    MaskedTokenMean.kind: _masked_mean,
    TokenMean.kind: _token_mean,
}


def with_tokens(graph: Graph, tokens: int) -> Graph:
    """``graph`` for sequences of ``tokens`` tokens (see module docstring)."""
    if tokens < 1:
        raise ValueError(f"sequence length must be positive, got {tokens}")
    if tokens == graph.tokens:
        return graph
    sizes = {GRAPH_INPUT: graph.input_size}
    ops: list[Op] = []
    for op in graph.ops:
        at_length = AT_LENGTH.get(op.kind)
        if at_length is not None:
            op = at_length(op, tokens)
        elif sizes[op.inputs[0]] != op.in_size:
            op = _resized(op, sizes[op.inputs[0]], tokens)
        for tensor, want in zip(op.inputs, op.input_sizes):
            if sizes[tensor] != want:
                raise ValueError(f"op {op.name!r} reads {sizes[tensor]} features of {tensor!r}, wants {want}")
        for tensor in op.outputs:
            sizes[tensor] = op.out_size
        ops.append(op)
    parts = tuple(dataclasses.replace(p, shape=(p.shape[0], tokens) + tuple(p.shape[2:])) for p in graph.input_parts)
    return dataclasses.replace(graph, ops=ops, tokens=tokens, input_shape=_at_length(graph.input_shape, tokens),
                               input_parts=parts,
                               output_shape=_at_length(graph.output_shape, tokens))


def _at_length(shape: tuple[int, ...], tokens: int) -> tuple[int, ...]:
    """[1, L, C] -> [1, tokens, C]."""
    return (shape[0], tokens) + tuple(shape[2:]) if len(shape) == 3 else tuple(shape)
