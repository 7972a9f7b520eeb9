"""The attention mask as a second model input (padding).

A model exported with ``forward(hidden_states [1, L, C], attention_mask [1, L])`` extends the mask
the way transformers' BERT does::

    Unsqueeze(s) -> [1, 1, 1, L] -> Cast -> Sub(1, m) -> Mul(large negative) -> Add(scores, .)

and adds it to the scores of every head before the Softmax.  einhls follows the mask through
those nodes symbolically (:class:`MaskValue`: no op is built for them), and at the Add marks the
scores as masked (:class:`MaskedReal`); the Softmax island after it becomes a
:class:`~codegen.ir.mask.MaskScores` op followed by the integer softmax (frontend/nonlinear.py).

In hardware the mask travels with the hidden states: the graph input carries, per token, the C
hidden codes then the mask code (0 or 1), one stream as before; two Slice ops at the start of the
graph separate them (:func:`pack_inputs`, called once the lowering is done).  docs/interface.md
explains the packing, docs/attention_mask.md the choice.

Refused by name: any other use of the mask input (a 2-D [L, L] mask, a mask read by anything but
the padding pattern, a quantized mask path), and a constant mask added to the scores (a causal
mask).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import EinhlsError
from ..ir.graph import GRAPH_INPUT, Graph, InputPart
from ..ir.joins import make_slice
from .names import node_label
from .values import Const, Real

MASK_LARGE_NEGATIVE = -1e3     # the added constant must be at least this negative (BERT: -1e4, finfo.min)
HIDDEN_SLICE = "input_values"  # the op that takes the hidden codes out of each packed input token
SHAPE_OPS = ("Unsqueeze", "Reshape", "Cast", "Identity", "Expand")
QUANTIZER_OPS = ("QuantizeLinear", "DequantizeLinear", "Quant")
FORMS = ("mask", "inverted", "additive", "count")   # m, 1 - m, (1 - m) * negative, sum(m)


@dataclass
class MaskValue:
    """The mask input, or a value computed from it on the way to the scores."""
    shape: tuple[int, ...]
    form: str             # one of FORMS
    input: str            # the ONNX input it comes from
    tensor: str           # the IR tensor of the mask codes (a Slice of the packed graph input)
    nodes: list[str] = field(default_factory=list)


@dataclass
class MaskedReal(Real):
    """Attention scores with a padding mask added: the Softmax after them leaves the padding keys out."""
    mask_tensor: str = ""


@dataclass
class MaskedTokens:
    """Tokens [1, L, C] times the mask [1, L, 1] (mean pooling with padding, frontend/pooling.py):
    ``summed`` once a ReduceSum over the tokens follows."""
    real: Real
    mask: MaskValue
    shape: tuple[int, ...]
    summed: bool = False
    nodes: list[str] = field(default_factory=list)
    tensor: str | None = None


def mask_slice_name(input_name: str) -> str:
    """The op (and tensor) name of an input's mask codes: an identifier of its own."""
    safe = "".join(c if c.isalnum() else "_" for c in input_name)
    return f"input_{safe}"


def is_mask_input(info: onnx.ValueInfoProto, other: onnx.ValueInfoProto) -> bool:
    """Whether ``info`` looks like the attention mask of the activation input ``other``: [1, L] next
    to [1, L, C] (the batch fixed to 1)."""
    dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
    other_dims = [d.dim_value for d in other.type.tensor_type.shape.dim]
    return (len(dims) == 2 and len(other_dims) == 3 and dims[1] == other_dims[1] > 1
            and dims[0] in (0, 1) and other_dims[0] in (0, 1))


def split_inputs(inputs: list[onnx.ValueInfoProto]) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    """(activation inputs, attention mask inputs) of a model's non-constant inputs."""
    if len(inputs) != 2:
        return inputs, []
    first, second = inputs
    if is_mask_input(second, first):
        return [first], [second]
    if is_mask_input(first, second):
        return [second], [first]
    return inputs, []


def set_mask_input(low, info: onnx.ValueInfoProto) -> None:
    """The mask input's value for the lowering; its codes come from the packed input (see module docstring)."""
    elem = info.type.tensor_type.elem_type
    if elem == TensorProto.BOOL or elem == TensorProto.STRING:
        raise EinhlsError(f"attention mask of element type {TensorProto.DataType.Name(elem)}: give it as "
                          "integers or floats, 1 for a token and 0 for padding", info.name, "graph input")
    shape = tuple(int(d.dim_value) or 1 for d in info.type.tensor_type.shape.dim)
    low.values[info.name] = MaskValue(shape, "mask", info.name, mask_slice_name(info.name))
    low.mask_inputs = getattr(low, "mask_inputs", []) + [info]


def _refuse(node: onnx.NodeProto, why: str) -> EinhlsError:
    return EinhlsError(why, node_label(node), node.op_type)


def _shape_after(low, node: onnx.NodeProto, inputs: list, mask: MaskValue) -> tuple[int, ...]:
    from .constants import fold_node
    probe = [Const(np.zeros(mask.shape, np.float32)) if v is mask else v for v in inputs]
    return tuple(fold_node(node, probe, low.opset)[0].value.shape)


def _scalar(value) -> float | None:
    if not isinstance(value, Const) or value.value.size != 1:
        return None
    return float(np.asarray(value.value, dtype=np.float64).ravel()[0])


def touches_mask(inputs: list) -> bool:
    return any(isinstance(v, (MaskValue, MaskedReal, MaskedTokens)) for v in inputs)


def lower_mask_node(low, node: onnx.NodeProto, inputs: list) -> list:
    """The outputs of a node that reads the mask (or the masked scores); everything but the
    padding pattern of the module docstring is refused by name."""
    op = node.op_type
    masked = [v for v in inputs if isinstance(v, MaskedReal)]
    if masked and op in QUANTIZER_OPS:
        raise _refuse(node, "the attention scores are quantized after the padding mask is added: its large "
                            "negative leaves the scores no resolution; exclude the Add and the Softmax after it "
                            "from quantization (quantize_static(..., nodes_to_exclude=[...]))")
    if masked:
        raise _refuse(node, f"{op} of attention scores with the padding mask added: only a Softmax over "
                            "the keys may read them")
    pooled = [v for v in inputs if isinstance(v, MaskedTokens)]
    if pooled or op in ("ReduceSum", "Clip", "Max") or (op == "Mul" and any(isinstance(v, Real) for v in inputs)
                                                        and _token_weights(low, inputs)):
        from .pooling import lower_masked_mean_node
        return [lower_masked_mean_node(low, node, inputs)]
    masks = [v for v in inputs if isinstance(v, MaskValue)]
    mask = masks[0]
    label = node_label(node)
    what = f"the attention mask {mask.input!r}"
    if op in QUANTIZER_OPS:
        raise _refuse(node, f"{what} is quantized on its way to the scores: a quantized (1 - mask) * "
                            "large negative loses the scores' resolution; exclude the mask's nodes and the Add "
                            "to the scores from quantization (quantize_static(..., nodes_to_exclude=[...]))")
    tokens = low.stream.tokens
    if any(isinstance(v, Const) and v.value.ndim >= 2 and v.value.shape[-2:] == (tokens, tokens) for v in inputs):
        raise _refuse(node, f"{what} is combined with a constant [{tokens}, {tokens}] mask (a causal mask): not "
                            "supported, einhls supports the padding mask alone")
    if op == "Add" and mask.form == "additive" and len(inputs) == 2:
        return [_masked_scores(low, node, inputs, mask)]
    others = [v for v in inputs if v is not None and not isinstance(v, (MaskValue, Const))]
    if len(masks) != 1 or others and op != "Add":
        raise _refuse(node, f"{what} is combined with another value by {op}: einhls supports the padding "
                            "mask added to the attention scores, (1 - mask) * large negative")
    if op in SHAPE_OPS:
        shape = _shape_after(low, node, inputs, mask)
        return [dataclasses.replace(mask, shape=shape, nodes=mask.nodes + [label])]
    if op == "Sub" and mask.form == "mask" and inputs[1] is mask and _scalar(inputs[0]) == 1.0:
        return [dataclasses.replace(mask, form="inverted", shape=_shape_after(low, node, inputs, mask),
                                    nodes=mask.nodes + [label])]
    if op == "Mul" and mask.form == "inverted":
        factor = _scalar(inputs[1] if inputs[0] is mask else inputs[0])
        if factor is not None and factor <= MASK_LARGE_NEGATIVE:
            return [dataclasses.replace(mask, form="additive", shape=_shape_after(low, node, inputs, mask),
                                        nodes=mask.nodes + [label])]
    raise _refuse(node, f"{op} on {what} ({mask.form} form): einhls supports the padding mask as BERT "
                        f"writes it, (1 - mask) * large negative (at most {MASK_LARGE_NEGATIVE:g}) added to the "
                        "attention scores")


def _token_weights(low, inputs: list) -> bool:
    """Whether a MaskValue among ``inputs`` is the mask as one weight per token, [1, L, 1]."""
    tokens = low.stream.tokens
    return any(isinstance(v, MaskValue) and v.form == "mask" and tuple(v.shape) == (1, tokens, 1) for v in inputs)


def _masked_scores(low, node: onnx.NodeProto, inputs: list, mask: MaskValue) -> MaskedReal:
    scores = inputs[1] if inputs[0] is mask else inputs[0]
    view = getattr(scores, "view", None)
    if not isinstance(scores, Real) or view is None or view.kind != "heads":
        raise _refuse(node, f"the attention mask {mask.input!r} is added to a value that is not attention "
                            "scores split into heads [1, H, L, L]: only the padding mask on the scores is supported")
    tokens = low.stream.tokens
    key_axis_only = (len(mask.shape) >= 1 and mask.shape[-1] == tokens
                     and all(d == 1 for d in mask.shape[:-1]))
    if not key_axis_only:
        raise _refuse(node, f"an attention mask of shape {list(mask.shape)} (a mask per query, causal or "
                            "2-D) is not supported: only the padding mask, one value per key, [1, 1, 1, L]")
    return MaskedReal(**{f.name: getattr(scores, f.name) for f in dataclasses.fields(Real)},
                      mask_tensor=mask.tensor)


def refuse_constant_mask(low, node: onnx.NodeProto, inputs: list) -> None:
    """A constant added to attention scores along [L, L] is a causal (or other fixed) mask: refused by name."""
    if node.op_type not in ("Add", "Sub", "Where") or len(inputs) < 2:
        return
    tokens = low.stream.tokens
    has_scores = any(getattr(v, "view", None) is not None and getattr(v.view, "kind", "") == "heads"
                     for v in inputs if v is not None and not isinstance(v, Const))
    square = any(isinstance(v, Const) and v.value.ndim >= 2 and v.value.shape[-2:] == (tokens, tokens)
                 for v in inputs)
    if has_scores and square and tokens > 1:
        raise _refuse(node, "a constant mask over the attention scores (a causal mask) is not supported: "
                            "einhls supports the padding mask given as a model input")


def pack_inputs(low, graph: Graph) -> Graph:
    """The lowered graph with its mask inputs packed into the graph input: every token carries the
    hidden codes then one code per mask input; Slice ops take them apart (module docstring)."""
    infos = getattr(low, "mask_inputs", [])
    if not infos:
        return graph
    hidden = graph.input_size
    used = {name for op in graph.ops for name in op.inputs}
    parts = [InputPart(low.activation_name, 0, hidden, "values", tuple(graph.input_shape))]
    qtype = graph.input_type
    if qtype.min > 0 or qtype.max < 1:
        raise EinhlsError(f"the input type {qtype.describe()} cannot carry the attention mask's codes 0 and 1",
                          infos[0].name, "graph input")
    total = hidden + len(infos)
    slices = [make_slice(HIDDEN_SLICE, low.activation_name, qtype, total, 0, hidden)]
    for index, info in enumerate(infos):
        name = mask_slice_name(info.name)
        if name not in used:
            raise EinhlsError(f"the attention mask {info.name!r} is not added to any attention scores",
                              info.name, "graph input")
        shape = tuple(int(d.dim_value) or 1 for d in info.type.tensor_type.shape.dim)
        parts.append(InputPart(info.name, hidden + index, 1, "mask", shape))
        slices.append(make_slice(name, info.name, qtype, total, hidden + index, hidden + index + 1))
    slices = [dataclasses.replace(op, inputs=(GRAPH_INPUT,)) for op in slices]
    ops = slices + [dataclasses.replace(op, inputs=tuple(HIDDEN_SLICE if t == GRAPH_INPUT else t for t in op.inputs))
                    for op in graph.ops]
    output = HIDDEN_SLICE if graph.output == GRAPH_INPUT else graph.output
    return dataclasses.replace(graph, ops=ops, input_size=total, output=output, input_parts=tuple(parts))
