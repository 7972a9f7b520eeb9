"""Lowering of self-attention: head views of a token stream and the MatMul of two activations.

Exporters write multi-head attention on [1, L, H*d] activations as

    Reshape [1, L, H, d] -> Transpose(0, 2, 1, 3) -> [1, H, L, d]           (Q, V; K with (0, 2, 3, 1)
    MatMul(Q, K^T) -> [1, H, L, L] -> scale -> Softmax -> MatMul(P, V)        -> [1, H, d, L])
    -> [1, H, L, d] -> Transpose(0, 2, 1, 3) -> Reshape [1, L, H*d]

with quantizers between (quantize_static).  None of these Transposes moves data in einhls: a
value's :class:`HeadView` says how its ONNX shape maps onto the token stream of its IR tensor, and
the MatMul of two head views becomes one :class:`~codegen.ir.attention.ActMatMul` whose addressing
does the split and the merge.  A head view is only given to values with one scale and one zero
point (per-tensor quantized activations), so the element order of per-element arrays never matters.

The view of a value is inherited by the values computed from it elementwise (quantizers, a Mul by
the 1/sqrt(d) constant, the Softmax island): see ``Lowering.lower_node``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from ..errors import EinhlsError
from ..ir.attention import make_actmatmul
from ..ir.types import QType
from .names import node_label
from .values import Codes, Real


@dataclass(frozen=True)
class HeadView:
    """How a [1, H, L, d] ("heads") or [1, H, d, L] ("heads_t") value lies in a token stream whose
    token i carries the H x d codes of row i, head-major (h * d + k)."""
    kind: str       # "heads" or "heads_t"
    heads: int
    depth: int      # d: codes of one head in one token

    def shape(self, tokens: int) -> tuple[int, ...]:
        if self.kind == "heads":
            return (1, self.heads, tokens, self.depth)
        return (1, self.heads, self.depth, tokens)


@dataclass
class ActAcc:
    """A pending product of two head views, waiting for the quantizer that gives its type."""
    a: Real
    b: Real
    shape: tuple[int, ...]
    heads: int
    inner: int
    cols: int
    layout: str
    node: str
    view: HeadView
    sources: list[str] = field(default_factory=list)
    tensor: str | None = None
    relu: bool = False


def _perm(node: onnx.NodeProto, rank: int) -> tuple[int, ...]:
    perm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
    return tuple(perm) if perm is not None else tuple(reversed(range(rank)))


def _uniform(low, value, node: onnx.NodeProto) -> None:
    if isinstance(value, Real) and (value.uniform_scale is None or np.any(value.offset != value.offset[0])):
        raise EinhlsError("splitting an activation into heads needs one scale and one zero point for all "
                          "of it (per-tensor quantization)", node_label(node), node.op_type)


def view_transpose(low, node: onnx.NodeProto, value) -> object | None:
    """The value after a Transpose that splits, transposes or merges heads, or None when the
    Transpose is not one of those (the caller then applies its usual rule)."""
    view = getattr(value, "view", None)
    shape = tuple(value.shape)
    perm = _perm(node, len(shape))
    tokens = low.stream.tokens
    if len(shape) != 4:
        return None
    if view is None:
        if shape[:2] != (1, tokens):
            return None
        if tokens == 1 and perm not in ((0, 2, 1, 3), (0, 2, 3, 1)):
            # one token: [1, 1, a, b] is a head split only when a head Transpose says so (bench.fuzz
            # found attention over one token refused; tests/test_fuzz.py)
            return None
        if perm not in ((0, 2, 1, 3), (0, 2, 3, 1)):
            raise EinhlsError(f"Transpose {list(perm)} of shape {list(shape)}: of a sequence einhls moves only "
                              "heads, the head split (0, 2, 1, 3) and the key transpose (0, 2, 3, 1)",
                              node_label(node), node.op_type)
        if not isinstance(value, (Real, Codes)):   # a pending accumulator: its layer is complete here
            from .joins import _plain
            value = _plain(low, value, node)
        heads, depth = shape[2], shape[3]
        if heads * depth != low.stream.size_of(value.tensor or low.stream.focus):
            return None
        new = HeadView("heads" if perm == (0, 2, 1, 3) else "heads_t", heads, depth)
    elif view.kind == "heads" and perm == (0, 2, 1, 3):
        _uniform(low, value, node)
        return dataclasses.replace(value, shape=(1, tokens, view.heads, view.depth), view=None)
    elif perm == (0, 1, 3, 2):
        new = HeadView("heads_t" if view.kind == "heads" else "heads", view.heads, view.depth)
    else:
        raise EinhlsError(f"Transpose {list(perm)} of a value split into {view.heads} heads: only the head "
                          "split / merge (0, 2, 1, 3) and the key transpose (0, 1, 3, 2) are supported",
                          node_label(node), node.op_type)
    _uniform(low, value, node)
    return dataclasses.replace(value, shape=new.shape(tokens), view=new)


def lower_act_matmul(low, node: onnx.NodeProto, inputs: list) -> ActAcc:
    """MatMul(Q, K^T) or MatMul(P, V) of two head views -> a pending :class:`ActAcc`."""
    from .joins import _plain

    label, op_type = node_label(node), node.op_type
    a, b = inputs
    va, vb = getattr(a, "view", None), getattr(b, "view", None)
    if va is None or vb is None or va.kind != "heads":
        raise EinhlsError("a MatMul of two activations is supported as attention only: Q (or P) split into "
                          "heads [1, H, L, d] times K^T [1, H, d, L] or V [1, H, L, d]; got shapes "
                          f"{list(a.shape)} and {list(b.shape)}", label, op_type)
    if va.heads != vb.heads:
        raise EinhlsError(f"attention with {va.heads} query heads and {vb.heads} key/value heads (grouped "
                          "or multi-query attention) is not supported", label, op_type)
    tokens = low.stream.tokens
    if vb.kind == "heads_t":          # Q K^T: sum over d, one column per key token
        if va.depth != vb.depth:
            raise EinhlsError(f"Q has {va.depth} features per head, K {vb.depth}", label, op_type)
        layout, inner, cols = "nt", va.depth, tokens
    else:                             # P V: sum over the key tokens
        if va.depth != tokens:
            raise EinhlsError(f"P V: P has {va.depth} columns per head, the sequence {tokens} tokens",
                              label, op_type)
        layout, inner, cols = "nn", tokens, vb.depth
    term_a = _plain(low, a, node)
    term_b = _plain(low, b, node)
    view = HeadView("heads", va.heads, cols)
    return ActAcc(term_a, term_b, view.shape(tokens), va.heads, inner, cols, layout, label, view,
                  sources=[label])


def finish_act_matmul(low, acc: ActAcc, out_type: QType | None, node: onnx.NodeProto | None) -> Real:
    """Append the ActMatMul op of a pending product, requantized to ``out_type``."""
    out_type = out_type or low.default_type
    if out_type is None:
        raise EinhlsError("the MatMul of two activations needs a quantizer after it (QuantizeLinear or "
                          "Quant) to give its result a type, or --default-type", acc.node, "MatMul")
    a_type = dataclasses.replace(low.stream.type_of(acc.a.tensor), scale=acc.a.uniform_scale)
    b_type = dataclasses.replace(low.stream.type_of(acc.b.tensor), scale=acc.b.uniform_scale)
    source = " + ".join(acc.sources + ([node_label(node)] if node is not None else []))
    hint = "scores" if acc.layout == "nt" else "context"
    try:
        op = make_actmatmul(low.stream.name(hint), source, a_type, b_type, acc.heads, acc.inner, acc.cols,
                            low.stream.tokens, acc.layout, out_type,
                            a_type.scale * b_type.scale / out_type.scale, inputs=(acc.a.tensor, acc.b.tensor))
    except ValueError as exc:
        raise EinhlsError(f"cannot build the attention product: {exc}", acc.node, "MatMul") from exc
    low.stream.append(op)
    return dataclasses.replace(Real.of_stream(acc.shape, out_type.scale), view=acc.view)


#: ops that compute position angles on the fly (a rotary embedding built inside the graph)
_ANGLE_OPS = frozenset({"Sin", "Cos"})


def refuse_rotary_embedding(graph: onnx.GraphProto) -> None:
    """Rotary position embeddings (RoPE: queries and keys rotated by position, ``x * cos +
    rotate_half(x) * sin``) are refused by name before lowering.  Signs, either suffices:
    ``rotate_half``, a Concat of the negated second half of a tensor and its first half (Slice /
    Neg / Concat, through any quantizers), or Sin / Cos nodes computing the angles."""
    producers = {out: node for node in graph.node for out in node.output}

    def source(name: str) -> onnx.NodeProto | None:
        """The node behind ``name``, looking through QuantizeLinear / DequantizeLinear pairs."""
        node = producers.get(name)
        while node is not None and node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input:
            node = producers.get(node.input[0])
        return node

    def sliced_tensor(node: onnx.NodeProto | None) -> str | None:
        if node is None or node.op_type != "Slice":
            return None
        origin = source(node.input[0])
        return origin.output[0] if origin is not None else node.input[0]

    for node in graph.node:
        if node.op_type in _ANGLE_OPS:
            raise EinhlsError("rotary position embeddings (position angles computed by Sin / Cos) are not "
                              "supported: einhls compiles attention with absolute or no position embeddings",
                              node_label(node), node.op_type)
        if node.op_type != "Concat" or len(node.input) != 2:
            continue
        first, second = (source(name) for name in node.input)
        if first is None or first.op_type != "Neg":
            continue
        negated = sliced_tensor(source(first.input[0]))
        if negated is not None and negated == sliced_tensor(second):
            raise EinhlsError("rotary position embeddings (rotate_half: the negated second half of the queries "
                              "or keys concatenated with their first half) are not supported: einhls compiles "
                              "attention with absolute or no position embeddings", node_label(node), node.op_type)
