"""Butterfly chains in ONNX -> one ``einhls.Butterfly`` node (a qonnx-style transformation).

:func:`fuse_butterflies` takes a prepared model (:func:`codegen.frontend.load.prepare_model`:
shapes inferred, batch 1) and returns ``(model, changed)``: every chain of butterfly stages is
replaced by one node of domain ``einhls``, op ``Butterfly``, whose attributes carry the twiddles,
strides and quantizers.  :func:`lower_butterfly` (called by the lowering for that node) turns it
into one IR :class:`codegen.ir.butterfly.Butterfly` op.  It runs before the lowering, so the
einsum lowering (codegen/frontend/einsum.py) never sees butterfly stages.

Accepted forms (README, "Butterfly layers"):

* a **stage** is either
  - ``Einsum`` with equation ``...aib,aijb->...ajb`` (any letters; explicit batch letters instead of
    ``...``; the constant operand first or second, its letters in any order) on the activation
    shaped (..., NT/(2 st), 2, st) and a constant of shape (NT/(2 st), 2, 2, st) - what
    ``codegen.nn.ButterflyLinear`` and ``torch.einsum`` export;
  - ``Mul`` of the activation shaped (..., A, 1, 2, st) by a constant broadcast to
    (..., A, 2, 2, st) (axes j, i), then ``ReduceSum`` over the i axis (keepdims 0) - what
    torch_butterfly's pure-PyTorch ``butterfly_multiply_torch`` exports;
* between stages: order-keeping ``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze``/``Identity`` and
  at most one per-tensor quantizer (``QuantizeLinear`` + ``DequantizeLinear`` with the same
  parameters, or a QONNX ``Quant``) - none means an exact stage;
* before the first stage: ``Pad`` (zeros at the end), ``Tile``/``Expand``/``Concat`` copies (the
  stacks of a rectangular layer) and layout nodes, checked by running them on a probe vector:
  the input must become ``stacks`` copies of itself zero padded to n;
* after the last stage: layout nodes and a ``Slice`` keeping the first M elements, a constant
  ``Add`` (the bias), a ``Relu``, and the output quantizer (``QuantizeLinear`` [+
  ``DequantizeLinear``] or ``Quant``); without a quantizer the output is exact.

Twiddles are constants: quantized (DequantizeLinear / Quant on a constant, per-tensor per stage),
float values on a fixed-point grid, or float (then ``--default-type`` quantizes them).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EinhlsError
from ..ir.butterfly import is_pow2, make_butterfly
from ..ir.reference import quantize
from ..ir.types import QType
from .constants import evaluate
from .names import node_label
from .load import opset_version
from .quantizers import (fold_constant_node, is_linear_quantizer, is_qonnx_quant, linear_quantizer,
                         lossless_fixed_point, qonnx_quantizer)
from .values import Codes, Const, Real, size_of

DOMAIN = "einhls"
OP_TYPE = "Butterfly"
ORDER_KEEPING = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
COPY_OPS = frozenset({"Pad", "Tile", "Expand", "Concat"}) | ORDER_KEEPING
STANDARD = ("", "ai.onnx")


# --- what the graph knows ----------------------------------------------------------------------

class GraphInfo:
    """Constants (folded as the lowering folds them), static shapes, producers and consumers.

    A constant is folded when it is first asked for (with the constants it is computed from): the
    stage matchers ask for a few small operands, and folding every weight of a BERT-base-sized
    encoder up front (the lowering folds them again) took about a second."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.opset = opset_version(model)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
        self.initializers = {init.name: init for init in graph.initializer}
        self.consts: dict[str, Const] = {}   # folded so far
        self.folded: set[int] = set()        # id() of the nodes folded (or found not foldable)
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        # tensors that fold to a constant unless folding fails (_fold's cases, by structure alone):
        # asking for any other tensor folds nothing
        self.foldable: set[str] = set(self.initializers)
        for node in graph.node:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
            names = [name for name in node.input if name]
            if (node.op_type in ("Shape", "Size") and node.domain in STANDARD and node.input[0] in self.shapes) \
                    or (names and all(name in self.foldable for name in names) and (
                        node.domain in STANDARD or is_linear_quantizer(node) or is_qonnx_quant(node))) \
                    or (not names and node.domain in STANDARD):
                self.foldable.update(name for name in node.output if name)
        self.tokens = _sequence_tokens(model)

    def rows(self, shape: tuple[int, ...]) -> int:
        """How many tokens a tensor of ``shape`` holds: the sequence's when its leading axes are
        ones and then the tokens (a butterfly applies to each), else 1."""
        if self.tokens > 1:
            for extent in shape[:-1]:
                if extent == self.tokens:
                    return self.tokens
                if extent != 1:
                    break
        return 1

    def _fold_with_inputs(self, node: onnx.NodeProto) -> None:
        """Fold ``node`` after the producers of its inputs, depth first (with a stack: a chain of
        constant nodes may be longer than Python's recursion limit)."""
        stack = [node]
        while stack:
            top = stack[-1]
            if id(top) in self.folded:
                stack.pop()
                continue
            pending = [self.producer[name] for name in top.input
                       if name in self.foldable and name not in self.consts and name not in self.initializers
                       and id(self.producer[name]) not in self.folded]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            self.folded.add(id(top))
            self._fold(top)

    def _fold(self, node: onnx.NodeProto) -> None:
        for name in node.input:   # initializers become arrays when first read
            if name in self.initializers and name not in self.consts:
                self.consts[name] = Const(numpy_helper.to_array(self.initializers[name]))
        names = [name for name in node.input if name]
        try:
            if node.op_type in ("Shape", "Size") and node.domain in STANDARD and node.input[0] in self.shapes:
                zeros = Const(np.zeros(self.shapes[node.input[0]], np.float32))
                outputs = fold_constant_node(node, [zeros] + [None] * (len(node.input) - 1), self.opset)
            elif names and all(name in self.consts for name in names) and (
                    node.domain in STANDARD or is_linear_quantizer(node) or is_qonnx_quant(node)):
                outputs = fold_constant_node(node, [self.consts[n] if n else None for n in node.input], self.opset)
            elif not names and node.domain in STANDARD:   # Constant nodes
                outputs = fold_constant_node(node, [], self.opset)
            else:
                return
        except Exception:   # not foldable here: the lowering folds or reports it itself
            return
        for name, value in zip(node.output, outputs):
            if name:
                self.consts[name] = value

    def const(self, name: str) -> Const | None:
        if not name or name not in self.foldable:
            return None
        if name not in self.consts:
            if name in self.initializers:
                self.consts[name] = Const(numpy_helper.to_array(self.initializers[name]))
            elif name in self.producer and id(self.producer[name]) not in self.folded:
                self._fold_with_inputs(self.producer[name])
        return self.consts.get(name)

    def activation_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [name for name in node.input if name and self.const(name) is None]

    def next_node(self, tensor: str) -> onnx.NodeProto | None:
        """The one consumer of an activation tensor (None when there are several or none)."""
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 else None


def _sequence_tokens(model: onnx.ModelProto) -> int:
    """The tokens of a [1, L, C] -> [1, L, C'] graph (as the lowering decides it), else 1."""
    def dims(info: onnx.ValueInfoProto) -> tuple[int, ...]:
        return tuple(int(d.dim_value) for d in info.type.tensor_type.shape.dim)
    if not model.graph.input or not model.graph.output:
        return 1
    shape, out_shape = dims(model.graph.input[0]), dims(model.graph.output[0])
    if len(shape) == 3 and shape[0] == 1 and shape[1] > 1 and len(out_shape) == 3 and out_shape[1] == shape[1]:
        return shape[1]
    return 1


def _rows_equal(out: np.ndarray, rows: int) -> np.ndarray | None:
    """The first of ``rows`` equal rows of a probe result, or None when they differ."""
    table = out.reshape(rows, -1)
    return table[0] if np.all(table == table[:1]) else None


# --- one stage ---------------------------------------------------------------------------------

@dataclass
class StageMatch:
    nodes: list[onnx.NodeProto]     # the stage's nodes (Einsum, or Mul + ReduceSum)
    input: str                      # activation tensor in
    output: str
    total: int                      # NT
    stride: int
    twiddle: Const                  # constant operand as given
    canonical: np.ndarray           # index map: canonical [A, 2(i), 2(j), st] -> flat index into twiddle


def _equation(node: onnx.NodeProto) -> str:
    for attr in node.attribute:
        if attr.name == "equation":
            value = helper.get_attribute_value(attr)
            return (value.decode() if isinstance(value, bytes) else value).replace(" ", "")
    return ""


def match_einsum_stage(info: GraphInfo, node: onnx.NodeProto) -> StageMatch | None:
    """An Einsum ``...aib,aijb->...ajb`` (any letters and operand order) on a constant, or None."""
    if node.op_type != "Einsum" or node.domain not in STANDARD or len(node.input) != 2:
        return None
    acts = info.activation_inputs(node)
    if len(acts) != 1:
        return None
    act_pos = list(node.input).index(acts[0])
    const = info.const(node.input[1 - act_pos])
    shape = info.shapes.get(acts[0])
    if const is None or shape is None or len(shape) < 3:
        return None
    eq = _equation(node)
    if "->" not in eq:
        return None
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return None
    act_term, const_term = terms[act_pos], terms[1 - act_pos]
    batch_act, core = (act_term[:-3], act_term[-3:])
    batch_out, out_core = (out[:-3], out[-3:])
    if len(core) != 3 or len(out_core) != 3 or batch_act != batch_out or "." in core + out_core:
        return None
    a, i, b = core
    if out_core[0] != a or out_core[2] != b or out_core[1] in (a, b, i):
        return None
    j = out_core[1]
    letters = batch_act.replace("...", "")
    if sorted(const_term) != sorted(a + i + j + b) or set(letters) & set(a + i + j + b) or len(set(core)) != 3:
        return None
    count, two, st = shape[-3:]
    if two != 2 or math.prod(shape[:-3]) != info.rows(shape) or not is_pow2(st):
        return None
    perm = [const_term.index(ch) for ch in (a, i, j, b)]
    value = const.value
    if value.ndim != 4 or tuple(value.shape[p] for p in perm) != (count, 2, 2, st):
        return None
    index = np.arange(value.size).reshape(value.shape).transpose(perm)
    return StageMatch([node], acts[0], node.output[0], count * 2 * st, st, const, index)


def match_mul_stage(info: GraphInfo, node: onnx.NodeProto) -> StageMatch | None:
    """``Mul`` of x (..., A, 1, 2, st) by a constant (..., A, 2, 2, st), ``ReduceSum`` over i."""
    if node.op_type != "Mul" or node.domain not in STANDARD:
        return None
    acts = info.activation_inputs(node)
    if len(acts) != 1:
        return None
    const = info.const(node.input[1] if node.input[0] == acts[0] else node.input[0])
    shape = info.shapes.get(acts[0])
    red = info.next_node(node.output[0])
    if const is None or shape is None or len(shape) < 4 or red is None or red.op_type != "ReduceSum":
        return None
    try:
        full = np.broadcast_shapes(shape, const.value.shape)
    except ValueError:
        return None
    if len(full) != len(shape) or shape[-3] != 1 or full[-3:-1] != (2, 2) or shape[-2] != 2:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in red.attribute}
    if attrs.get("keepdims", 1) != 0:
        return None
    axes = attrs.get("axes")
    if axes is None and len(red.input) > 1:
        axes_const = info.const(red.input[1])
        axes = None if axes_const is None else axes_const.value.reshape(-1).tolist()
    rank = len(full)
    if axes is None or [int(x) % rank for x in axes] != [rank - 2]:
        return None
    st = full[-1]
    count = math.prod(full[:-3])
    if not is_pow2(st) or math.prod(shape[:-3]) != count:
        return None
    index = np.broadcast_to(np.arange(const.value.size).reshape(const.value.shape), full)
    index = index.reshape(count, 2, 2, st).transpose(0, 2, 1, 3)          # [A, j, i, b] -> [A, i, j, b]
    return StageMatch([node, red], acts[0], red.output[0], count * 2 * st, st, const, index)


def match_stage(info: GraphInfo, node: onnx.NodeProto) -> StageMatch | None:
    """The stage starting at ``node``, or None (anything unexpected: not a stage)."""
    try:
        return match_einsum_stage(info, node) or match_mul_stage(info, node)
    except (ValueError, TypeError, IndexError, KeyError):
        return None


# --- quantizers on the activation ---------------------------------------------------------------

def match_quantizer(info: GraphInfo, node: onnx.NodeProto) -> tuple[list[onnx.NodeProto], QType, bool] | None:
    """(nodes, type, gives codes) of a quantizer starting at ``node``: Q + DQ, Q alone, or Quant."""
    try:
        if is_qonnx_quant(node):
            inputs = [None] + [info.const(name) for name in node.input[1:]]
            if any(v is None for v in inputs[1:]):
                return None
            return [node], qonnx_quantizer(node, inputs).qtype(node), False
        if is_linear_quantizer(node) and node.op_type == "QuantizeLinear":
            rank = len(info.shapes.get(node.input[0], (1,)))
            params = [info.const(name) for name in node.input[1:]]
            if any(v is None for v in params):
                return None
            quantizer = linear_quantizer(node, [None] + params, rank)
            qtype = quantizer.qtype(node)
            nxt = info.next_node(node.output[0])
            if nxt is not None and is_linear_quantizer(nxt) and nxt.op_type == "DequantizeLinear":
                dq_params = [info.const(name) for name in nxt.input[1:]]
                if any(v is None for v in dq_params):
                    return None
                dq = linear_quantizer(nxt, [None] + dq_params, rank, quantizer.elem_type)
                if not (np.array_equal(dq.scale, quantizer.scale) and np.array_equal(dq.zero_point, quantizer.zero_point)):
                    return None
                return [node, nxt], qtype, False
            return [node], qtype, True
    except EinhlsError:
        return None
    return None


# --- the chain ---------------------------------------------------------------------------------

@dataclass
class Chain:
    input: str
    prefix: list[onnx.NodeProto]
    stages: list[StageMatch]
    links: list[list[onnx.NodeProto]]          # nodes between stage s and s + 1
    stage_types: list[QType | None]
    suffix: list[onnx.NodeProto] = field(default_factory=list)
    n: int = 0
    stacks: int = 1
    in_size: int = 0
    out_size: int = 0
    bias: np.ndarray | None = None
    relu: bool = False
    out_type: QType | None = None
    out_codes: bool = False
    output: str = ""

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        found = list(self.prefix)
        for s, stage in enumerate(self.stages):
            found += stage.nodes
            if s < len(self.links):
                found += self.links[s]
        return found + self.suffix


def _probe(info: GraphInfo, nodes: list[onnx.NodeProto], start: str, values: np.ndarray) -> np.ndarray | None:
    """Run order-keeping / copying nodes on a probe tensor; None when one cannot be evaluated."""
    tensors = {start: values}
    for node in nodes:
        arrays = [tensors.get(name) if name in tensors else (info.const(name).value if info.const(name) else None)
                  for name in node.input]
        try:
            out = evaluate(node, arrays, info.opset)[0]
        except Exception:
            return None
        tensors[node.output[0]] = np.asarray(out)
    return tensors[nodes[-1].output[0]] if nodes else values


def _walk_link(info: GraphInfo, tensor: str) -> tuple[list[onnx.NodeProto], QType | None, str, StageMatch | None]:
    """From a stage's output: layout nodes and at most one quantizer, then maybe the next stage."""
    nodes: list[onnx.NodeProto] = []
    qtype = None
    while True:
        node = info.next_node(tensor)
        if node is None:
            return nodes, qtype, tensor, None
        if node.op_type in ORDER_KEEPING and node.domain in STANDARD and info.activation_inputs(node) == [tensor]:
            nodes.append(node)
            tensor = node.output[0]
            continue
        quant = match_quantizer(info, node) if qtype is None else None
        if quant is not None and not quant[2]:
            nodes += quant[0]
            qtype = quant[1]
            tensor = quant[0][-1].output[0]
            continue
        stage = match_stage(info, node)
        if stage is not None and stage.input == tensor:
            return nodes, qtype, tensor, stage
        return nodes, qtype, tensor, None


def _find_prefix(info: GraphInfo, tensor: str) -> tuple[list[onnx.NodeProto], str]:
    """Copy and layout nodes leading to the first stage (walking back), and the chain's input."""
    prefix: list[onnx.NodeProto] = []
    while True:
        node = info.producer.get(tensor)
        if node is None or node.op_type not in COPY_OPS or node.domain not in STANDARD:
            break
        acts = info.activation_inputs(node)
        # the node leaves with the chain: nothing else may read its output (its input may have other readers)
        if not acts or any(name != acts[0] for name in acts) or len(info.consumers.get(tensor, [])) != 1:
            break
        if node.op_type == "Concat" and len(acts) != len([n for n in node.input if n]):
            break
        prefix.insert(0, node)
        tensor = acts[0]
    return prefix, tensor


def _fit_prefix(info: GraphInfo, chain: Chain) -> bool:
    """Find n and stacks: the prefix must turn the input into stacks copies, zero padded to n.

    Prefix nodes that do not fit are left outside the chain (dropped from its start)."""
    total = chain.stages[0].total
    while True:
        start = chain.prefix[0].input[0] if chain.prefix else chain.stages[0].input
        shape = info.shapes.get(start)
        if shape is None:
            return False
        rows = info.rows(shape)
        k = size_of(shape) // rows
        out = _probe(info, chain.prefix, start, np.tile(np.arange(k, dtype=np.float32) + 1, rows).reshape(shape))
        row = _rows_equal(out, rows) if out is not None and out.size == total * rows else None
        if row is not None and _set_geometry(chain, row, k, total):
            chain.input = start
            return True
        if not chain.prefix:
            return False
        chain.prefix.pop(0)


def _set_geometry(chain: Chain, flat: np.ndarray, k: int, total: int) -> bool:
    widest = max(st.stride for st in chain.stages) * 2
    n = max(2, widest, 1 << math.ceil(math.log2(k)))
    while n <= total:
        if total % n == 0:
            local = np.arange(total) % n
            if np.array_equal(flat, np.where(local < k, local + 1, 0)):
                chain.n, chain.stacks, chain.in_size = n, total // n, k
                return True
        n *= 2
    return False


def _walk_suffix(info: GraphInfo, chain: Chain, tensor: str) -> None:
    """Layout / Slice nodes (a prefix of the elements), bias Add, Relu, output quantizer."""
    total = chain.stages[-1].total
    keep: list[onnx.NodeProto] = []
    probe_nodes: list[onnx.NodeProto] = []
    out_size, bias = total, None
    current = tensor
    while True:   # layout and Slice
        node = info.next_node(current)
        if node is None or node.domain not in STANDARD or info.activation_inputs(node) != [current]:
            break
        if node.op_type not in ORDER_KEEPING and node.op_type != "Slice":
            break
        shape = info.shapes.get(tensor)
        rows = info.rows(shape) if shape else 1
        out = _probe(info, probe_nodes + [node], tensor,
                     np.tile(np.arange(total, dtype=np.float32) + 1, rows).reshape(shape)) if shape else None
        row = _rows_equal(out, rows) if out is not None and out.size % rows == 0 else None
        if row is None or not np.array_equal(row, np.arange(row.size) + 1):
            break
        probe_nodes.append(node)
        keep.append(node)
        out_size = row.size
        current = node.output[0]
    node = info.next_node(current)
    out_shape = info.shapes.get(current)
    if node is not None and node.op_type == "Add" and node.domain in STANDARD and info.activation_inputs(node) == [current]:
        const = info.const(node.input[1] if node.input[0] == current else node.input[0])
        shape = info.shapes.get(node.output[0])
        if const is not None and shape is not None and shape == out_shape:
            try:
                bias = _rows_equal(np.broadcast_to(const.value.astype(np.float64), shape), info.rows(shape))
            except ValueError:
                bias = None
            bias = None if bias is None or bias.size != out_size else bias.copy()
            if bias is not None:
                keep.append(node)
                current = node.output[0]
    node = info.next_node(current)
    relu = node is not None and node.op_type == "Relu" and node.domain in STANDARD
    quant_start = info.next_node(node.output[0]) if relu else node
    quant = match_quantizer(info, quant_start) if quant_start is not None else None
    if quant is not None:
        if relu:
            keep.append(node)
        keep += quant[0]
        current = quant[0][-1].output[0]
        chain.out_type, chain.out_codes, chain.relu = quant[1], quant[2], relu
    chain.suffix, chain.out_size, chain.bias, chain.output = keep, out_size, bias, current


def _leads_to_stages(info: GraphInfo, node: onnx.NodeProto) -> bool:
    """``node`` is a butterfly stage, or copy / layout nodes that lead only to stages."""
    if match_stage(info, node) is not None:
        return True
    if node.op_type not in COPY_OPS or node.domain not in STANDARD or len(node.output) != 1:
        return False
    users = info.consumers.get(node.output[0], [])
    return bool(users) and all(_leads_to_stages(info, user) for user in users)


def _unshare_prefixes(model: onnx.ModelProto) -> GraphInfo:
    """torch.onnx.export merges identical nodes, so butterflies on the same input (an attention
    layer's query, key and value) share their Pad and first Reshape; each reader of such a shared
    copy / layout node that leads only to butterfly stages gets its own copy of it, so each
    butterfly has its own prefix.  Returns the GraphInfo of the graph with the copies."""
    graph = model.graph
    while True:
        info = GraphInfo(model)
        shared = next((node for node in graph.node
                       if node.op_type in COPY_OPS and node.domain in STANDARD and len(node.output) == 1
                       and len(info.consumers.get(node.output[0], [])) > 1
                       and all(_leads_to_stages(info, user) for user in info.consumers[node.output[0]])), None)
        if shared is None:
            return info
        out = shared.output[0]
        shape = next((vi for vi in graph.value_info if vi.name == out), None)
        position = list(graph.node).index(shared)
        for index, user in enumerate(info.consumers[out][1:], start=1):
            copy = onnx.NodeProto()
            copy.CopyFrom(shared)
            copy.name = f"{shared.name or shared.op_type}_copy{index}"
            copy.output[0] = f"{out}_copy{index}"
            for slot, name in enumerate(user.input):
                if name == out:
                    user.input[slot] = copy.output[0]
            if shape is not None:
                copied = graph.value_info.add()
                copied.CopyFrom(shape)
                copied.name = copy.output[0]
            graph.node.insert(position + index, copy)


def find_chains(info: GraphInfo) -> list[Chain]:
    chains, used = [], set()
    for node in info.model.graph.node:
        if id(node) in used:
            continue
        first = match_stage(info, node)
        if first is None:
            continue
        stages, links, types = [first], [], []
        while True:
            link, qtype, tensor, nxt = _walk_link(info, stages[-1].output)
            if nxt is None or nxt.total != first.total:
                break
            stages.append(nxt)
            links.append(link)
            types.append(qtype)
        prefix, start = _find_prefix(info, first.input)
        chain = Chain(start, prefix, stages, links, types)
        if not _fit_prefix(info, chain):
            continue
        _walk_suffix(info, chain, stages[-1].output)
        used.update(id(n) for n in chain.nodes)
        chains.append(chain)
    return chains


# --- the custom node ---------------------------------------------------------------------------

def _twiddles(chain: Chain, info: GraphInfo) -> tuple[np.ndarray | None, list[float] | None, np.ndarray]:
    """(codes [L, NT/2, 2, 2] or None, scales or None, real values): canonical pair layout."""
    codes, scales, values = [], [], []
    for stage in chain.stages:
        const = stage.twiddle
        real = const.value.astype(np.float64).reshape(-1)[stage.canonical]         # [A, i, j, b]
        to_pairs = (0, 3, 1, 2)                                                     # -> [A, b, i, j]
        values.append(real.transpose(to_pairs).reshape(-1, 2, 2))
        if const.quantized:
            scale = const.scale.reshape(-1)[stage.canonical]
            if not np.all(scale == scale.flat[0]):
                raise EinhlsError("the twiddles of a butterfly stage must have one scale (per-tensor "
                                  "quantization)", node_label(stage.nodes[0]), stage.nodes[0].op_type)
            c = (const.codes.astype(np.int64) - const.zero_point.astype(np.int64)).reshape(-1)[stage.canonical]
            codes.append(c.transpose(to_pairs).reshape(-1, 2, 2))
            scales.append(float(scale.flat[0]))
        else:
            exact = lossless_fixed_point(real)
            if exact is None:
                codes = None
            elif codes is not None:
                codes.append(exact[0].transpose(to_pairs).reshape(-1, 2, 2))
                scales.append(exact[1])
    if codes is None or len(codes) != len(chain.stages):
        return None, None, np.stack(values)
    return np.stack(codes).astype(np.int64), scales, np.stack(values)


def butterfly_node(chain: Chain, info: GraphInfo, name: str) -> onnx.NodeProto:
    codes, scales, values = _twiddles(chain, info)
    out_shape = info.shapes.get(chain.output) or (1, chain.out_size)
    config = {
        "n": chain.n, "stacks": chain.stacks, "in_size": chain.in_size, "out_size": chain.out_size,
        "strides": [st.stride for st in chain.stages], "twiddle_scales": scales,
        "stage_types": [t.to_json() if t else None for t in chain.stage_types],
        "out_type": chain.out_type.to_json() if chain.out_type else None,
        "out_codes": chain.out_codes, "relu": chain.relu, "out_shape": list(out_shape),
        "sources": [node_label(n) for n in chain.nodes],
    }
    attrs = {"config": json.dumps(config, sort_keys=True),
             "twiddle_values": numpy_helper.from_array(values.astype(np.float64), "twiddle_values")}
    if codes is not None:
        attrs["twiddle_codes"] = numpy_helper.from_array(codes, "twiddle_codes")
    if chain.bias is not None:
        attrs["bias"] = numpy_helper.from_array(chain.bias.astype(np.float64), "bias")
    return helper.make_node(OP_TYPE, [chain.input], [chain.output], name=name, domain=DOMAIN, **attrs)


def _prune_dead_constants(graph: onnx.GraphProto) -> None:
    """Remove nodes whose outputs nobody reads (the absorbed chains' constant subgraphs)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        keep = [node for node in graph.node if any(name in used for name in node.output if name)]
        if len(keep) == len(graph.node):
            return
        del graph.node[:]
        graph.node.extend(keep)


def fuse_butterflies(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Replace every butterfly chain by one ``einhls.Butterfly`` node; returns (model, changed).

    Like a qonnx transformation it edits ``model`` itself (lower_model passes the copy that
    prepare_model made); nodes that only fed the replaced chains (twiddle quantizers, shape
    constants) are removed with them."""
    ops = {node.op_type for node in model.graph.node}
    if "Einsum" not in ops and not {"Mul", "ReduceSum"} <= ops:
        return model, False
    info = _unshare_prefixes(model)
    chains = find_chains(info)
    if not chains:
        return model, False
    graph = model.graph
    new_nodes = []
    replaced: dict[int, onnx.NodeProto] = {}
    dropped = set()
    for index, chain in enumerate(chains):
        first = chain.nodes[0]
        name = f"butterfly_{index}" if not first.name else f"{first.name}_butterfly"
        replaced[id(first)] = butterfly_node(chain, info, name)
        dropped.update(id(n) for n in chain.nodes[1:])
    for node in graph.node:
        if id(node) in replaced:
            new_nodes.append(replaced[id(node)])
        elif id(node) not in dropped:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _prune_dead_constants(graph)
    if not any(op.domain == DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return model, True


# --- lowering ----------------------------------------------------------------------------------

def lower_butterfly(low, node: onnx.NodeProto, inputs: list):
    """The lowering of an ``einhls.Butterfly`` node (``low`` is the running Lowering)."""
    from .messages import HOW_TO_QUANTIZE

    label = node_label(node)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    config = json.loads(attrs["config"].decode() if isinstance(attrs["config"], bytes) else attrs["config"])
    real = low.linear_input(inputs[0], node)
    if size_of(real.shape) != config["in_size"] * low.stream.tokens:
        raise EinhlsError(f"the butterfly expects {config['in_size']} inputs per token, the activation has "
                          f"{size_of(real.shape)} for {low.stream.tokens} token(s)", label, OP_TYPE)
    default = low.default_type
    if "twiddle_codes" in attrs:
        codes = numpy_helper.to_array(attrs["twiddle_codes"]).astype(np.int64)
        scales = config["twiddle_scales"]
    elif default is not None:
        values = numpy_helper.to_array(attrs["twiddle_values"])
        codes, scales = quantize(values, default) - default.zero_point, [default.scale] * len(config["strides"])
    else:
        raise EinhlsError("the butterfly twiddles are not quantized: " + HOW_TO_QUANTIZE, label, OP_TYPE)
    stage_types = [QType.from_json(t) if t else default for t in config["stage_types"]]
    out_type = QType.from_json(config["out_type"]) if config["out_type"] else default
    stream_type = low.stream.type
    in_type = QType(stream_type.signed, stream_type.bits, float(real.scale[0]), stream_type.zero_point,
                    stream_type.narrow)
    bias = numpy_helper.to_array(attrs["bias"]) if "bias" in attrs else None
    source = " + ".join(real.sources + config["sources"])
    try:
        op = make_butterfly(low.stream.name(node.name or "butterfly"), source, config["n"], config["stacks"],
                            config["strides"], codes, scales, in_type, config["in_size"], config["out_size"],
                            stage_types, out_type, bias=bias, in_offset=low.per_token(real.offset, node),
                            relu=config["relu"])
    except ValueError as exc:
        raise EinhlsError(f"cannot build the butterfly: {exc}", label, OP_TYPE) from exc
    low.stream.append(op)
    shape = tuple(config["out_shape"])
    if config["out_codes"]:
        return Codes(shape)
    return Real.of_stream(shape, op.out_type.scale)
