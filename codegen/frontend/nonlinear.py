"""Float islands of a quantized Transformer: Softmax, LayerNorm and GELU between quantizers.

onnxruntime's ``quantize_static`` (QDQ) leaves these as float nodes between a DequantizeLinear and
a QuantizeLinear.  When the lowering reaches the first node of such an island it looks ahead in
the ONNX graph and matches one of the patterns below; a match becomes an :class:`Island` (like a
MatMul's accumulator it waits for the quantizer that follows, which gives its output type), and
the island's other nodes are skipped.  At the quantizer the integer unit is built from the input's
scale and zero point and the quantizer's type (``make_softmax`` / ``make_layernorm`` /
``make_gelu`` of :mod:`codegen.ir.nonlinear`).

Patterns (x is a plain real value of one IR tensor, the features of each token on the last axis):

* ``Softmax(x)`` over the last axis;
* ``LayerNormalization(x, gamma, beta)`` over the last axis (gamma, beta constants), and its
  decomposed form as opset < 17 exports write it: ``ReduceMean(x) -> Sub(x, mean) -> Pow 2 ->
  ReduceMean -> Add eps -> Sqrt -> Div(x - mean, sqrt)``, then optionally ``Mul gamma`` and
  ``Add beta`` (constants), all over the last axis;
* GELU, erf form as exporters write it: ``Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5``
  (a Mul by 1/sqrt 2 instead of the Div, the two Muls in either order; a QuantizeLinear /
  DequantizeLinear pair between two of these nodes, as quantize_static writes around Erf, Add and
  Mul, is absorbed: the unit computes the whole GELU with one rounding); and the ONNX ``Gelu`` op
  (opset 20, approximate "none" or "tanh");
* GELU, tanh form as torch.onnx.export writes it: ``x^3`` (``Mul(x, x) -> Mul x`` or ``Pow 3``)
  ``-> Mul 0.044715 -> Add x -> Mul sqrt(2/pi) -> Tanh -> Add 1 -> Mul x, Mul 0.5``, quantizer
  pairs between them absorbed; the integer unit is the erf-form one (docs/nonlinear.md measures
  it against both).

Any other float node on the activation path is refused, naming the float nodes of its island
(:func:`refuse_island`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EinhlsError
from ..ir.graph import GRAPH_INPUT
from ..ir.nonlinear import graph_op, make_gelu, make_layernorm, make_softmax
from ..ir.types import QType
from .names import node_label
from .values import Const, Real

ANCHORS = frozenset({"Softmax", "LayerNormalization", "Gelu", "Div", "Mul", "ReduceMean", "Pow"})
QUANTIZERS = ("QuantizeLinear", "DequantizeLinear", "Quant")
CONST_TOLERANCE = 2e-2    # relative: 1, 0.5 and sqrt 2 pass through 8-bit quantizers of the constants


@dataclass
class Island:
    """A recognised float Softmax / LayerNorm / GELU, waiting for its output quantizer."""
    kind: str
    term: Real                     # the plain input
    shape: tuple[int, ...]
    nodes: list[str]               # labels of the ONNX nodes it replaces
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    eps: float = 1e-5
    sources: list[str] = field(default_factory=list)
    tensor: str | None = None
    view: object | None = None     # the input's head view (softmax over attention scores)
    mask: str | None = None        # the IR tensor of a padding mask over the keys (frontend/mask.py)

    @property
    def description(self) -> str:
        return f"{self.kind} island ({', '.join(self.nodes)})"


@dataclass
class Match:
    kind: str
    nodes: list[onnx.NodeProto]    # every node of the island, the anchor first
    output: str                    # the ONNX tensor the island writes
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    eps: float = 1e-5


class _Graph:
    """Consumers and producers of the ONNX tensors (built once per lowering)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                if name:
                    self.producer[name] = node
        self.outputs = {o.name for o in graph.output}

    def only_reader(self, tensor: str) -> onnx.NodeProto | None:
        readers = self.consumers.get(tensor, [])
        if len(readers) != 1 or tensor in self.outputs:
            return None
        return readers[0]

    def through_quantizers(self, tensor: str, absorbed: list[onnx.NodeProto]) -> str:
        """Past a QuantizeLinear -> DequantizeLinear pair that is the tensor's only reader."""
        q = self.only_reader(tensor)
        if q is None or q.op_type != "QuantizeLinear":
            return tensor
        dq = self.only_reader(q.output[0])
        if dq is None or dq.op_type != "DequantizeLinear":
            return tensor
        absorbed += [q, dq]
        return dq.output[0]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _const(low, graph: _Graph, name: str) -> np.ndarray | None:
    """The value of a constant tensor (folded already, or a Constant node not yet visited)."""
    value = low.values.get(name)
    if isinstance(value, Const):
        return np.asarray(value.value, dtype=np.float64)
    node = graph.producer.get(name)
    if node is not None and node.op_type == "Constant":
        attrs = {a.name: a for a in node.attribute}
        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"].t).astype(np.float64)
        if "value_float" in attrs:
            return np.asarray(attrs["value_float"].f, dtype=np.float64)
    return None


def _is_scalar(value: np.ndarray | None, target: float) -> bool:
    return value is not None and value.size == 1 and abs(float(value.flat[0]) - target) <= CONST_TOLERANCE * abs(target)


def _other_input(node: onnx.NodeProto, tensor: str) -> str | None:
    if len(node.input) != 2 or list(node.input).count(tensor) != 1:
        return None
    return node.input[1] if node.input[0] == tensor else node.input[0]


def _last_axis(node: onnx.NodeProto, rank: int, default: int) -> bool:
    axis = _attrs(node).get("axis", default)
    return rank > 0 and axis % rank == rank - 1


def _match_gelu(low, graph: _Graph, node: onnx.NodeProto, x: str) -> Match | None:
    """Div(x, sqrt 2) | Mul(x, 1/sqrt 2) -> Erf -> Add 1 -> Mul x, Mul 0.5 (either order)."""
    other = _other_input(node, x)
    if other is None or (node.op_type == "Div" and node.input[0] != x):
        return None
    c = _const(low, graph, other)
    if not (_is_scalar(c, math.sqrt(2.0)) if node.op_type == "Div" else _is_scalar(c, 1 / math.sqrt(2.0))):
        return None
    nodes = [node]
    tensor = graph.through_quantizers(node.output[0], nodes)
    erf = graph.only_reader(tensor)
    if erf is None or erf.op_type != "Erf":
        return None
    nodes.append(erf)
    return _gelu_tail(low, graph, graph.through_quantizers(erf.output[0], nodes), x, nodes)


def _gelu_tail(low, graph: _Graph, tensor: str, x: str, nodes: list[onnx.NodeProto]) -> Match | None:
    """... -> Add 1 -> Mul x, Mul 0.5 (either order): the end both GELU forms share."""
    add = graph.only_reader(tensor)
    if add is None or add.op_type != "Add" or not _is_scalar(_const(low, graph, _other_input(add, tensor) or ""), 1.0):
        return None
    nodes.append(add)
    tensor = graph.through_quantizers(add.output[0], nodes)
    seen_x = seen_half = False
    for _ in range(2):   # Mul x and Mul 0.5, in either order
        mul = graph.only_reader(tensor)
        if mul is None or mul.op_type != "Mul":
            return None
        second = _other_input(mul, tensor)
        if second == x and not seen_x:
            seen_x = True
        elif second is not None and not seen_half and _is_scalar(_const(low, graph, second), 0.5):
            seen_half = True
        else:
            return None
        nodes.append(mul)
        out = mul.output[0]
        tensor = graph.through_quantizers(out, nodes) if not (seen_x and seen_half) else out
    return Match("gelu", nodes, tensor)


def _mean_over_last_axis(low, graph: _Graph, node: onnx.NodeProto, rank: int) -> bool:
    attrs = _attrs(node)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = _const(low, graph, node.input[1])
    if axes is None or attrs.get("keepdims", 1) != 1:
        return False
    return [int(a) % rank for a in np.asarray(axes).ravel()] == [rank - 1]


def _match_decomposed_layernorm(low, graph: _Graph, mean: onnx.NodeProto, x: str, rank: int) -> Match | None:
    """ReduceMean -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div [-> Mul gamma] [-> Add beta]."""
    if not _mean_over_last_axis(low, graph, mean, rank):
        return None
    nodes = [mean]
    tensor = graph.through_quantizers(mean.output[0], nodes)
    sub = graph.only_reader(tensor)
    if sub is None or sub.op_type != "Sub" or list(sub.input) != [x, tensor]:
        return None
    nodes.append(sub)
    dev = graph.through_quantizers(sub.output[0], nodes)
    readers = graph.consumers.get(dev, [])
    pow_node = next((n for n in readers if n.op_type == "Pow" and n.input[0] == dev), None)
    div = next((n for n in readers if n.op_type == "Div" and n.input[0] == dev), None)
    if len(readers) != 2 or pow_node is None or div is None or dev in graph.outputs:
        return None
    if not _is_scalar(_const(low, graph, pow_node.input[1]), 2.0):
        return None
    nodes.append(pow_node)
    tensor = graph.through_quantizers(pow_node.output[0], nodes)
    var = graph.only_reader(tensor)
    if var is None or var.op_type != "ReduceMean" or not _mean_over_last_axis(low, graph, var, rank):
        return None
    nodes.append(var)
    tensor = graph.through_quantizers(var.output[0], nodes)
    add = graph.only_reader(tensor)
    eps = _const(low, graph, _other_input(add, tensor) or "") if add is not None and add.op_type == "Add" else None
    if eps is None or eps.size != 1 or not 0 <= float(eps.flat[0]) < 1:
        return None
    nodes.append(add)
    tensor = graph.through_quantizers(add.output[0], nodes)
    sqrt = graph.only_reader(tensor)
    if sqrt is None or sqrt.op_type != "Sqrt":
        return None
    nodes.append(sqrt)
    tensor = graph.through_quantizers(sqrt.output[0], nodes)
    if graph.only_reader(tensor) is not div or div.input[1] != tensor:
        return None
    nodes.append(div)
    out, gamma, beta = div.output[0], np.ones(1), None
    for op_type in ("Mul", "Add"):   # the optional affine part: Mul gamma, then Add beta
        tentative: list[onnx.NodeProto] = []
        tensor = graph.through_quantizers(out, tentative)
        step = graph.only_reader(tensor)
        if step is None or step.op_type != op_type:
            continue
        value = _const(low, graph, _other_input(step, tensor) or "")
        if value is None or (value.ndim > 1 and any(d != 1 for d in value.shape[:-1])):
            continue
        if op_type == "Mul":
            gamma = value.ravel()
        else:
            beta = value.ravel()
        nodes += tentative + [step]
        out = step.output[0]
    return Match("layernorm", nodes, out, gamma=gamma, beta=beta, eps=float(eps.flat[0]))


def _match_gelu_tanh(low, graph: _Graph, node: onnx.NodeProto, x: str) -> Match | None:
    """x^3 as Mul(x, x) -> Mul x (or Pow(x, 3)) -> Mul 0.044715 -> Add x -> Mul sqrt(2/pi) -> Tanh
    -> Add 1 -> Mul x, Mul 0.5: the tanh GELU as torch.onnx.export writes it."""
    nodes = [node]
    if node.op_type == "Mul":
        if list(node.input) != [x, x]:
            return None
        tensor = graph.through_quantizers(node.output[0], nodes)
        cube = graph.only_reader(tensor)
        if cube is None or cube.op_type != "Mul" or _other_input(cube, tensor) != x:
            return None
        nodes.append(cube)
    elif node.op_type == "Pow" and node.input[0] == x and _is_scalar(_const(low, graph, node.input[1]), 3.0):
        cube = node
    else:
        return None
    tensor = graph.through_quantizers(cube.output[0], nodes)
    kappa = graph.only_reader(tensor)
    if kappa is None or kappa.op_type != "Mul" or not _is_scalar(
            _const(low, graph, _other_input(kappa, tensor) or ""), 0.044715):
        return None
    nodes.append(kappa)
    tensor = graph.through_quantizers(kappa.output[0], nodes)
    inner = graph.only_reader(tensor)
    if inner is None or inner.op_type != "Add" or _other_input(inner, tensor) != x:
        return None
    nodes.append(inner)
    tensor = graph.through_quantizers(inner.output[0], nodes)
    beta = graph.only_reader(tensor)
    if beta is None or beta.op_type != "Mul" or not _is_scalar(
            _const(low, graph, _other_input(beta, tensor) or ""), math.sqrt(2.0 / math.pi)):
        return None
    nodes.append(beta)
    tensor = graph.through_quantizers(beta.output[0], nodes)
    tanh = graph.only_reader(tensor)
    if tanh is None or tanh.op_type != "Tanh":
        return None
    nodes.append(tanh)
    return _gelu_tail(low, graph, graph.through_quantizers(tanh.output[0], nodes), x, nodes)


def match_island(low, node: onnx.NodeProto, inputs: list) -> Match | None:
    """The island that starts at ``node`` (its first input the activation), or None."""
    if node.op_type not in ANCHORS or node.domain not in ("", "ai.onnx") or not node.input:
        return None
    graph = getattr(low, "_island_graph", None)
    if graph is None:
        graph = low._island_graph = _Graph(low.graph)
    x = node.input[0]
    value = inputs[0]
    if value is None or isinstance(value, Const):
        if node.op_type == "Mul" and len(inputs) == 2 and inputs[1] is not None and not isinstance(inputs[1], Const):
            x = node.input[1]
        else:
            return None
    rank = len(low.values[x].shape)
    if node.op_type == "Softmax":
        if not _last_axis(node, rank, -1 if low.opset >= 13 else 1):
            raise EinhlsError(f"Softmax over axis {_attrs(node).get('axis')} of shape "
                              f"{list(low.values[x].shape)}: only over the last axis (the features of a token)",
                              node_label(node), node.op_type)
        return Match("softmax", [node], node.output[0])
    if node.op_type == "LayerNormalization":
        if not _last_axis(node, rank, -1):
            raise EinhlsError("LayerNormalization over more than the last axis is not supported",
                              node_label(node), node.op_type)
        if any(name for name in node.output[1:]):
            if any(graph.consumers.get(name) or name in graph.outputs for name in node.output[1:] if name):
                raise EinhlsError("LayerNormalization's Mean / InvStdDev outputs are used: not supported",
                                  node_label(node), node.op_type)
        gamma = _const(low, graph, node.input[1]) if len(node.input) > 1 else None
        beta = _const(low, graph, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if gamma is None or (len(node.input) > 2 and node.input[2] and beta is None):
            raise EinhlsError("LayerNormalization with a scale or bias that is not a constant",
                              node_label(node), node.op_type)
        return Match("layernorm", [node], node.output[0], gamma=gamma, beta=beta,
                     eps=float(_attrs(node).get("epsilon", 1e-5)))
    if node.op_type == "ReduceMean":
        return _match_decomposed_layernorm(low, graph, node, x, rank)
    if node.op_type == "Gelu":
        return Match("gelu", [node], node.output[0])   # tanh form: the same unit (docs/nonlinear.md)
    if node.op_type in ("Mul", "Pow"):
        found = _match_gelu_tanh(low, graph, node, x)
        if found is not None:
            return found
    return _match_gelu(low, graph, node, x) if node.op_type in ("Div", "Mul") else None


def open_island(low, match: Match, node: onnx.NodeProto, inputs: list) -> Island:
    """The pending island of a match: its input brought to a plain real value of one tensor."""
    from .joins import _plain

    x = next(v for v in inputs if v is not None and not isinstance(v, Const))
    labels = [node_label(n) for n in match.nodes]
    term = _plain(low, x, node)
    shape = tuple(term.shape)
    features = low.stream.size_of(term.tensor)
    view = getattr(term, "view", None)
    if view is not None and match.kind == "softmax" and view.kind == "heads" and shape[-1] == view.depth:
        pass   # softmax over each head's row of scores: a token carries heads x L codes, rows of L
    elif view is not None:
        raise EinhlsError(f"{match.kind} of a value split into heads (shape {list(shape)}) is not supported: "
                          "only Softmax over the last axis of attention scores", labels[0], node.op_type)
    elif not shape or shape[-1] != features:
        raise EinhlsError(f"{match.kind} over the last axis of shape {list(shape)}, but a token of the stream has "
                          f"{features} features: only per-token {match.kind} is supported", labels[0], node.op_type)
    if match.gamma is not None:
        gamma = np.broadcast_to(match.gamma, (features,)).astype(np.float64)
        beta = np.zeros(features) if match.beta is None else np.broadcast_to(match.beta, (features,)).astype(np.float64)
    else:
        gamma = beta = None
    mask = getattr(x, "mask_tensor", None) or None
    if mask is not None and match.kind != "softmax":
        raise EinhlsError(f"{match.kind} of attention scores with a padding mask added: only a Softmax may read them",
                          labels[0], node.op_type)
    return Island(match.kind, term, shape, labels, gamma, beta, match.eps, sources=list(labels), view=view,
                  mask=mask)


def finish_island(low, island: Island, out_type: QType | None, node: onnx.NodeProto | None) -> Real:
    """Append the integer unit of an island, its output of ``out_type`` (the default type when None)."""
    out_type = out_type or low.default_type
    if out_type is None:
        raise EinhlsError(f"the {island.description} needs a QuantizeLinear (or Quant) after it to give its "
                          "output a type, or --default-type", island.nodes[-1], island.kind)
    term = island.term
    in_type = dataclasses.replace(low.stream.type_of(term.tensor), scale=term.uniform_scale)
    features = low.stream.size_of(term.tensor)
    size = island.shape[-1]   # one row: a token's features, or one head's scores
    source = " + ".join(island.sources + ([node_label(node)] if node is not None else []))
    inputs = (term.tensor,)
    if island.mask is not None:   # padding keys get a code the softmax turns into exactly 0 (ir/mask.py)
        from ..ir.mask import make_mask_scores
        try:
            masking = make_mask_scores(low.stream.name("mask"), source, in_type, low.stream.type_of(GRAPH_INPUT),
                                       features // size, size, inputs=(term.tensor, island.mask))
        except ValueError as exc:
            raise EinhlsError(f"cannot mask the attention scores: {exc}", island.nodes[0], island.kind) from exc
        low.stream.append(masking)
        in_type, inputs = masking.out_type, (masking.name,)
    try:
        if island.kind == "softmax":
            unit = make_softmax(size, in_type, out_type)
        elif island.kind == "layernorm":
            unit = make_layernorm(size, in_type, out_type, island.gamma, island.beta, island.eps)
        else:
            unit = make_gelu(size, in_type, out_type)
    except ValueError as exc:
        raise EinhlsError(f"cannot build the integer {island.kind}: {exc}", island.nodes[0], island.kind) from exc
    op = dataclasses.replace(graph_op(low.stream.name(island.kind), source, unit, features), inputs=inputs)
    low.stream.append(op)
    return dataclasses.replace(Real.of_stream(island.shape, out_type.scale), view=island.view)


def refuse_island(low, node: onnx.NodeProto) -> EinhlsError:
    """The error for a float node no pattern recognises: names the float nodes of its island (the
    nodes reachable from it without crossing a quantizer)."""
    graph = getattr(low, "_island_graph", None)
    if graph is None:
        graph = low._island_graph = _Graph(low.graph)
    seen: dict[str, onnx.NodeProto] = {}
    todo = [node]
    while todo:
        current = todo.pop()
        label = node_label(current)
        if label in seen or current.op_type in QUANTIZERS or current.op_type == "Constant":
            continue
        seen[label] = current
        for name in current.output:
            todo += graph.consumers.get(name, [])
        for name in current.input:
            producer = graph.producer.get(name)
            if producer is not None and not isinstance(low.values.get(name), Const):
                todo.append(producer)
    order = [node_label(n) for n in low.graph.node if node_label(n) in seen]
    listing = ", ".join(f"{label} ({seen[label].op_type})" for label in order)
    return EinhlsError(f"float subgraph [{listing}] between quantizers is not supported (not recognised as a unit): einhls replaces only "
                       "Softmax over the last axis, LayerNormalization and GELU (erf form) by integer units; "
                       "quantize around this operator or remove it", node_label(node), node.op_type)
