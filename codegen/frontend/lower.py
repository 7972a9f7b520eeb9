"""Lowering: a prepared ONNX graph -> IR ``Graph`` of Linear / Requant / Relu ops.

The nodes are visited in order and every tensor is tracked as one of the kinds of
:mod:`codegen.frontend.values`.  Constant expressions are folded; a MatMul/Gemm of a quantized
activation and a quantized constant weight opens an accumulator (:class:`Acc`) into which a bias
``Add``, a ``Mul`` by a constant and a ``Relu`` fold; the next quantizer turns it into one
``Linear`` op (requantized to the quantizer's type), and without one it keeps its exact width.
Elementwise constants on a quantized activation become a ``Requant`` op at the next quantizer.

With ``default_type`` (e.g. ``fixed<16,6>``) a float model is accepted: the input, float weights
and every layer output without a quantizer of its own are quantized to that type (round half to
even, saturating).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import EinhlsError
from ..ir.build import make_linear, make_relu, make_requant, round_with_zero_point
from ..ir.graph import GRAPH_INPUT, Graph, Linear, Requant
from ..ir.reference import quantize
from ..ir.types import QType, bits_for_range
from .chain import activation_input, check_graph_shape
from .bias import refinement_bits
from .butterfly import DOMAIN as BUTTERFLY_DOMAIN, OP_TYPE as BUTTERFLY_OP, lower_butterfly
from .constants import LAYOUT_OPS, broadcast_const, evaluate, fold_node
from . import conv as conv_fe
from . import einsum as einsum_fe
from .einsum import Pending
from .joins import Join, finish_join, lower_join, lower_split
from .odd_zero_point import quantize_rounding_zero_point
from .nonlinear import Island, finish_island, match_island, open_island, refuse_island
from .load import opset_version
from .messages import HOW_TO_QUANTIZE, INPUT_NOT_QUANTIZED  # noqa: F401 (part of this module's interface)
from .names import graph_name, node_label
from .quantizers import (INTEGER_TYPES, elem_type_of, fold_constant_node, is_linear_quantizer, is_qonnx_quant,
                         linear_quantizer, lossless_fixed_point, qonnx_quantizer)
from .sparsity import choose_sparsity, declared_patterns
from .stream import Stream
from .values import Acc, Codes, Const, FloatInput, Real, Value, size_of
from . import attention as attention_fe
from . import mask as mask_fe
from . import pooling as pooling_fe

FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
QUANTIZER_OPS = ("QuantizeLinear", "DequantizeLinear", "Quant")
QOPERATOR_OPS = frozenset({"MatMulInteger", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearConv",
                           "ConvInteger", "DynamicQuantizeLinear", "QLinearMul"})
OFFSET_TOLERANCE = 1e-3  # how far (in steps) a constant added to an activation may be off the grid
REFINE_BITS = 16         # finer grid for a constant that is off it (see Lowering.refine_grid)


def same_codes(have: QType, want: QType) -> bool:
    """Codes of type ``have`` are already valid codes of ``want`` (no op needed)."""
    return (have.signed, have.bits, have.scale, have.zero_point) == (
        want.signed, want.bits, want.scale, want.zero_point) and have.min >= want.min


#: values that wait for the quantizer after them to become an op (updated in place until then)
PENDING_KINDS = (Acc, Pending, Join, Island, attention_fe.ActAcc)


class Lowering:
    """One lowering run over a prepared model (see :func:`codegen.frontend.load.prepare_model`)."""

    def __init__(self, model: onnx.ModelProto, default_type: QType | None = None) -> None:
        self.model = model
        self.graph = model.graph
        self.opset = opset_version(model)
        self.default_type = default_type
        self.declared = declared_patterns(model)
        self.quantized_model = any(node.op_type in QUANTIZER_OPS for node in self.graph.node)
        self.values: dict[str, Value] = {}
        self.stream = Stream()
        self.raw_int_input = False  # the integer input has not been given a scale by a DequantizeLinear yet
        self.readers: dict[str, int] = {}   # ONNX tensor -> number of node inputs reading it
        self.absorbed: set[str] = set()     # outputs of ONNX nodes a recognised float island replaced

    # ----- driver -----
    def run(self) -> Graph:
        check_graph_shape(self.graph)
        attention_fe.refuse_rotary_embedding(self.graph)
        for node in self.graph.node:
            for name in node.input:
                self.readers[name] = self.readers.get(name, 0) + 1
        if self.graph.sparse_initializer:
            raise EinhlsError("sparse initializers are not supported; store weights densely "
                              "(N:M sparsity is detected from the values)")
        for init in self.graph.initializer:
            self.values[init.name] = Const(numpy_helper.to_array(init))
        self.set_input(activation_input(self.graph))
        constants = {init.name for init in self.graph.initializer}
        _, masks = mask_fe.split_inputs([vi for vi in self.graph.input if vi.name not in constants])
        for info in masks:
            mask_fe.set_mask_input(self, info)
        for node in self.graph.node:
            try:
                self.lower_node(node)
            except ValueError as exc:  # an IR constructor refused a type or parameter
                raise EinhlsError(str(exc), node_label(node), node.op_type) from exc
        return mask_fe.pack_inputs(self, self.finish())

    def set_input(self, info: onnx.ValueInfoProto) -> None:
        tensor = info.type.tensor_type
        shape = tuple(int(d.dim_value) for d in tensor.shape.dim)
        # [1, L, C] in and [1, L, C'] out: a frame of L tokens of C features; anything else (a
        # [1, a, b] input reshaped to one vector, say) is one vector per frame
        out_dims = self.graph.output[0].type.tensor_type.shape.dim
        out_shape = tuple(int(d.dim_value) for d in out_dims)
        # (or one vector out of a mean over the tokens, frontend/pooling.py)
        tokens = shape[1] if (len(shape) == 3 and shape[0] == 1 and shape[1] > 1
                              and (len(out_shape) == 3 and out_shape[1] == shape[1]
                                   or pooling_fe.pools_tokens(self.graph))) else 1
        self.activation_name = info.name
        self.stream.input_shape, self.stream.tokens = shape, tokens
        self.stream.input_size = size_of(shape) // tokens
        self.channels_first_input = False
        conv_fe.set_spatial_input(self, shape)   # a CNN streams pixel by pixel (frontend/conv.py)
        if tensor.elem_type in FLOAT_TYPES:
            self.values[info.name] = FloatInput(shape, tensor=GRAPH_INPUT)
        elif tensor.elem_type in INTEGER_TYPES:
            signed, bits = INTEGER_TYPES[tensor.elem_type]
            self.stream.input_type = QType(signed, bits)
            self.raw_int_input = True
            self.values[info.name] = Codes(shape, tensor=GRAPH_INPUT)
        else:
            raise EinhlsError(f"input element type {TensorProto.DataType.Name(tensor.elem_type)} is not "
                              "supported", info.name, "graph input")

    def lower_node(self, node: onnx.NodeProto) -> None:
        if node.output and all(name in self.absorbed for name in node.output if name):
            return   # part of a float island already replaced by its integer unit
        inputs = [self.values[name] if name else None for name in node.input]
        if mask_fe.touches_mask(inputs) and not (node.op_type == "Softmax" and len(inputs) == 1):
            for name, value in zip(node.output, mask_fe.lower_mask_node(self, node, inputs)):
                self.values[name] = value
            return
        mask_fe.refuse_constant_mask(self, node, inputs)
        if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx"):
            outputs = fold_node(node, [Const(np.zeros(inputs[0].shape, np.float32))], self.opset)
        elif all(value is None or isinstance(value, Const) for value in inputs):
            outputs = self.fold(node, inputs)
        else:
            activations = [i for i, v in enumerate(inputs) if v is not None and not isinstance(v, Const)]
            for i in activations:   # a pending value read twice is closed first (it is mutable)
                if isinstance(inputs[i], PENDING_KINDS) and self.readers.get(node.input[i], 0) > 1:
                    self.stream.focus_on(inputs[i].tensor)
                    closed = self.real_of(inputs[i], node)
                    if closed.tensor is None:
                        closed = dataclasses.replace(closed, tensor=self.stream.focus)
                    self.values[node.input[i]] = inputs[i] = closed
            self.stream.focus_on(inputs[activations[0]].tensor)
            # one activation (Mul(x, x) of the tanh GELU reads the same tensor twice)
            one_tensor = len({node.input[i] for i in activations}) == 1
            match = match_island(self, node, inputs) if one_tensor else None
            if match is not None:   # a float Softmax / LayerNorm / GELU: pending until its quantizer
                island = open_island(self, match, node, inputs)
                island.tensor = self.stream.focus
                for inner in match.nodes:
                    self.absorbed.update(name for name in inner.output if name)
                self.values[match.output] = island
                return
            if len(activations) == 2 and node.op_type == "MatMul" and node.domain in ("", "ai.onnx"):
                outputs = [attention_fe.lower_act_matmul(self, node, inputs)]
            elif len(activations) > 1:
                outputs = [lower_join(self, node, inputs)]
            elif node.op_type in ("Split", "Slice") and node.domain in ("", "ai.onnx"):
                outputs = lower_split(self, node, inputs)
            else:
                outputs = [self.lower_activation(node, inputs)]
            for index, value in enumerate(outputs):   # new values stand for the focus tensor
                if getattr(value, "tensor", "const") is not None:
                    continue
                if isinstance(value, PENDING_KINDS):   # pending: updated in place later
                    value.tensor = self.stream.focus
                else:
                    outputs[index] = dataclasses.replace(value, tensor=self.stream.focus)
            if node.op_type not in LAYOUT_OPS:   # elementwise results keep their input's head view
                views = {getattr(inputs[i], "view", None) for i in activations}
                view = views.pop() if len(views) == 1 else None
                for index, value in enumerate(outputs):
                    if view is not None and hasattr(value, "view") and value.view is None \
                            and tuple(value.shape) == tuple(inputs[activations[0]].shape):
                        if isinstance(value, PENDING_KINDS):
                            value.view = view
                        else:
                            outputs[index] = dataclasses.replace(value, view=view)
        for name, value in zip(node.output, outputs):
            if name:
                self.values[name] = value

    def fold(self, node: onnx.NodeProto, inputs: list[Const | None]) -> list[Const]:
        """Evaluate a node on constants (quantizers keep track of codes, scales and zero points)."""
        return fold_constant_node(node, inputs, self.opset)

    def lower_activation(self, node: onnx.NodeProto, inputs: list[Value | None]) -> Value:
        """Dispatch a node that has one activation input."""
        op = node.op_type
        if node.domain == BUTTERFLY_DOMAIN and op == BUTTERFLY_OP:   # codegen/frontend/butterfly.py
            return lower_butterfly(self, node, inputs)
        if node.domain not in ("", "ai.onnx") and not (is_qonnx_quant(node) or is_linear_quantizer(node)):
            raise EinhlsError(f"operator {op} of domain {node.domain!r} is not supported",
                              node_label(node), op)
        if op in QOPERATOR_OPS:
            raise EinhlsError("QOperator-format quantized operators are not supported: quantize in QDQ "
                              "format (onnxruntime quantize_static(..., quant_format=QuantFormat.QDQ))",
                              node_label(node), op)
        handler = {
            "QuantizeLinear": self.lower_quantize_linear, "DequantizeLinear": self.lower_dequantize_linear,
            "Quant": self.lower_qonnx_quant, "MatMul": self.lower_matmul, "Gemm": self.lower_gemm,
            "Add": self.lower_add, "Sub": self.lower_sub, "Mul": self.lower_mul, "Div": self.lower_div,
            "Relu": self.lower_relu, "Cast": self.lower_cast,
            "Einsum": lambda n, i: einsum_fe.lower_einsum(self, n, i),
            "Conv": lambda n, i: conv_fe.lower_conv(self, n, i),
            "GlobalAveragePool": lambda n, i: conv_fe.lower_global_average_pool(self, n, i),
            "AveragePool": lambda n, i: conv_fe.lower_average_pool(self, n, i),
            "MaxPool": lambda n, i: conv_fe.lower_max_pool(self, n, i),
            "BatchNormalization": lambda n, i: conv_fe.lower_batch_norm(self, n, i),
            "ReduceMean": lambda n, i: pooling_fe.lower_reduce_mean(self, n, i),
        }.get(op)
        if handler is None and op in LAYOUT_OPS:
            handler = self.lower_layout
        if handler is None:
            if self.quantized_model:
                raise refuse_island(self, node)
            raise EinhlsError("unsupported operator on the activation path", node_label(node), op)
        return handler(node, inputs)

    # ----- quantizers -----
    def lower_quantize_linear(self, node: onnx.NodeProto, inputs: list) -> Codes:
        quantizer = linear_quantizer(node, inputs, len(inputs[0].shape))
        return self.quantize_to(inputs[0], quantizer.qtype(node), node)

    def lower_dequantize_linear(self, node: onnx.NodeProto, inputs: list) -> Real:
        value = inputs[0]
        if not isinstance(value, Codes):
            raise EinhlsError("DequantizeLinear of a value that is not integer codes", node_label(node),
                              node.op_type)
        stream_type = self.stream.type
        quantizer = linear_quantizer(node, inputs, len(value.shape),
                                     elem_type_of(stream_type.signed, stream_type.bits))
        if self.raw_int_input and not self.stream.ops and quantizer.per_tensor:
            # an integer graph input: the DequantizeLinear says what its codes mean
            try:
                self.stream.input_type = dataclasses.replace(stream_type, scale=float(quantizer.scale.flat[0]),
                                                             zero_point=int(quantizer.zero_point.flat[0]))
            except ValueError as exc:
                raise EinhlsError(str(exc), node_label(node), node.op_type) from exc
            self.raw_int_input = False
            return Real.of_stream(value.shape, self.stream.input_type.scale)
        scale, zero_point = quantizer.full(value.shape)
        return Real(value.shape, scale.ravel(), stream_type.zero_point - zero_point.ravel(),
                    sources=[node_label(node)])

    def lower_qonnx_quant(self, node: onnx.NodeProto, inputs: list) -> Real:
        qtype = qonnx_quantizer(node, inputs).qtype(node)
        before = len(self.stream.ops)
        rounded = quantize_rounding_zero_point(self, inputs[0], qtype, node)   # QONNX: round(x/s + zp)
        if rounded is not None:
            return rounded
        self.quantize_to(inputs[0], qtype, node)
        if len(self.stream.ops) > before and isinstance(self.stream.ops[-1], (Linear, Requant)):
            self.stream.ops[-1] = round_with_zero_point(self.stream.ops[-1])   # QONNX: round(x/s + zp)
        return Real.of_stream(inputs[0].shape, qtype.scale)

    def quantize_to(self, value: Value, qtype: QType, node: onnx.NodeProto) -> Codes:
        """The stream codes of ``value`` quantized to ``qtype`` (appending a Linear or Requant if needed)."""
        label = node_label(node)
        if isinstance(value, FloatInput):
            if self.stream.input_type is not None:
                raise EinhlsError("the float input is quantized twice", label, node.op_type)
            self.stream.input_type = qtype
        elif isinstance(value, Acc):
            self.finish_acc(value, qtype, node)
        elif isinstance(value, Pending):
            einsum_fe.finish_pending(self, value, qtype, node)
        elif isinstance(value, Join):
            finish_join(self, value, qtype, node)
        elif isinstance(value, Island):
            finish_island(self, value, qtype, node)
        elif isinstance(value, attention_fe.ActAcc):
            attention_fe.finish_act_matmul(self, value, qtype, node)
        elif isinstance(value, Real):
            if not (value.plain and np.all(value.scale == self.stream.type.scale)
                    and same_codes(self.stream.type, qtype)):
                self.append_requant(value, qtype, value.scale / qtype.scale, node)
        else:
            raise EinhlsError("quantizing a value that is already integer codes", label, node.op_type)
        return Codes(value.shape, tensor=self.stream.focus)

    # ----- MatMul / Gemm -----
    def lower_matmul(self, node: onnx.NodeProto, inputs: list) -> Acc:
        activation, weight = inputs
        if isinstance(activation, Const):
            raise EinhlsError("the activation must be the left operand of MatMul (x @ W)",
                              node_label(node), node.op_type)
        pending = einsum_fe.pending_matmul(self, node, activation, weight, transposed=False) \
            if isinstance(weight, Const) else None
        if pending is not None:  # a MatMul after an einsum or a MatMul, nothing between: one contraction
            return pending
        return self.open_acc(node, activation, weight, transposed=False, alpha=1.0)

    def lower_gemm(self, node: onnx.NodeProto, inputs: list) -> Acc:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        label = node_label(node)
        if attrs.get("transA", 0):
            raise EinhlsError("Gemm with transA=1 is not supported", label, node.op_type)
        activation, weight = inputs[0], inputs[1]
        if isinstance(activation, Const) or not isinstance(weight, Const):
            raise EinhlsError("Gemm needs the activation as A and a constant weight as B", label,
                              node.op_type)
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if not alpha > 0:
            raise EinhlsError(f"Gemm alpha={alpha} is not supported (must be positive)", label, node.op_type)
        acc = einsum_fe.pending_matmul(self, node, activation, weight, bool(attrs.get("transB", 0)), alpha)
        if acc is not None:
            if len(inputs) > 2 and inputs[2] is not None:
                if not isinstance(inputs[2], Const):
                    raise EinhlsError("Gemm's C must be a constant", label, node.op_type)
                einsum_fe.pending_add(self, acc, inputs[2].value.astype(np.float64) * beta, node)
            return acc
        acc = self.open_acc(node, activation, weight, transposed=bool(attrs.get("transB", 0)), alpha=alpha)
        if len(inputs) > 2 and inputs[2] is not None:
            if not isinstance(inputs[2], Const):
                raise EinhlsError("Gemm's C must be a constant", label, node.op_type)
            self.add_bias(acc, inputs[2].value.astype(np.float64) * beta, node, record=False)
        return acc

    def open_acc(self, node: onnx.NodeProto, activation: Value, weight: Const, transposed: bool,
                 alpha: float) -> Acc:
        """Start an accumulator for ``activation @ weight`` (weight [K, N], or [N, K] if transposed)."""
        label = node_label(node)
        x = self.linear_input(activation, node)
        rows = size_of(x.shape[:-1])
        if len(x.shape) == 0 or rows != self.stream.tokens:
            raise EinhlsError(f"{node.op_type} over {rows} rows (input shape {list(x.shape)}) is not "
                              f"supported: the frame has {self.stream.tokens} token(s) and a layer applies "
                              "to each token", label, node.op_type)
        codes, w_scale = self.weight_codes(weight, node, transposed)
        codes = conv_fe.classifier_columns(self, codes)   # after a flattened pixel stream: (h, w, c) order
        if codes.shape[1] != x.shape[-1]:
            raise EinhlsError(f"weight has {codes.shape[1]} inputs, the activation {x.shape[-1]}",
                              label, node.op_type)
        out_shape = (1, codes.shape[0]) if node.op_type == "Gemm" else x.shape[:-1] + (codes.shape[0],)
        return Acc(shape=out_shape, weight=codes, bias=codes @ self.per_token(x.offset, node),
                   scale=x.scale[0] * w_scale * alpha, node=node.name, hint=node.name or node.op_type,
                   sources=x.sources + [label])

    def weight_codes(self, weight: Const, node: onnx.NodeProto,
                     transposed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Integer weight codes [N, K] with the zero point removed, and the per-output scale [N]."""
        label = node_label(node)
        if weight.value.ndim != 2:
            raise EinhlsError(f"the weight must be a matrix, it has shape {list(weight.shape)}",
                              label, node.op_type)
        exact = None if weight.quantized else lossless_fixed_point(weight.value)
        if weight.quantized:
            codes, scale = weight.codes - weight.zero_point, weight.scale
        elif exact is not None:  # a float weight already on a fixed-point grid
            codes, scale = exact[0], np.full(weight.shape, exact[1])
        elif self.default_type is not None and np.issubdtype(weight.value.dtype, np.floating):
            codes = quantize(weight.value, self.default_type)
            scale = np.full(weight.shape, self.default_type.scale)
        elif self.quantized_model:
            raise EinhlsError("the weight is not quantized (no DequantizeLinear or Quant on it, and its "
                              "float values are not on a fixed-point grid of at most 16 bits): "
                              + HOW_TO_QUANTIZE, label, node.op_type)
        else:
            raise EinhlsError("the model is a float model: " + HOW_TO_QUANTIZE, label, node.op_type)
        if not transposed:
            codes, scale = codes.T, scale.T
        if np.any(scale != scale[:, :1]):
            raise EinhlsError("the weight's scale varies along the reduction axis: only per-tensor and "
                              "per-output-channel scales are supported", label, node.op_type)
        return codes.astype(np.int64), scale[:, 0].astype(np.float64)

    def finish_acc(self, acc: Acc, out_type: QType | None, node: onnx.NodeProto | None) -> Real:
        """Append the Linear op of an accumulator; ``out_type`` None keeps the exact accumulator."""
        label = node_label(node) if node is not None else acc.node
        sources = acc.sources + ([label] if node is not None else [])
        uniform = bool(np.all(acc.scale == acc.scale[0]))
        # an exact per-channel accumulator: codes in accumulator units, the scales stay pending
        acc_scale = acc.scale if uniform or out_type is not None else np.ones_like(acc.scale)
        sparsity = choose_sparsity(acc.weight, acc.node or acc.hint, "MatMul/Gemm",
                                   self.declared.get(acc.node))
        try:
            op = make_linear(self.stream.name(acc.hint), " + ".join(sources), acc.weight, acc.bias,
                             self.stream.type, acc_scale, out_type, relu=acc.relu, sparsity=sparsity)
        except ValueError as exc:
            raise EinhlsError(f"cannot build the layer: {exc}", acc.node or acc.hint, "MatMul/Gemm") from exc
        self.stream.append(op)
        if out_type is None:
            scale = np.tile(acc.scale, self.stream.tokens)
            return Real(acc.shape, scale, np.zeros(scale.size, np.int64))
        return Real.of_stream(acc.shape, out_type.scale)

    # ----- elementwise -----
    def split_const(self, node: onnx.NodeProto, inputs: list) -> tuple[Value, Const, bool]:
        """(activation, constant, activation_is_first) of a binary elementwise node."""
        first, second = inputs
        if isinstance(second, Const):
            return first, second, True
        return second, first, False

    def lower_add(self, node: onnx.NodeProto, inputs: list) -> Value:
        value, const, _ = self.split_const(node, inputs)
        return self.add_const(value, const.value.astype(np.float64), node)

    def lower_sub(self, node: onnx.NodeProto, inputs: list) -> Value:
        value, const, first = self.split_const(node, inputs)
        if not first:
            raise EinhlsError("constant minus activation is not supported", node_label(node), node.op_type)
        return self.add_const(value, -const.value.astype(np.float64), node)

    def add_const(self, value: Value, const: np.ndarray, node: onnx.NodeProto) -> Value:
        if isinstance(value, Pending) and not value.relu:
            return einsum_fe.pending_add(self, value, const, node)
        if isinstance(value, Acc) and not value.relu:
            self.add_bias(value, const, node)
            return value
        real = self.real_of(value, node)
        if real.relu:
            real = self.materialize(real, node)
        steps = broadcast_const(const, real.shape, node) / real.scale
        rounded = np.rint(steps)
        if np.any(np.abs(steps - rounded) > OFFSET_TOLERANCE):
            real = self.refine_grid(real, node)
            steps = broadcast_const(const, real.shape, node) / real.scale
            rounded = np.rint(steps)
        return dataclasses.replace(real, offset=real.offset + rounded.astype(np.int64),
                                   sources=real.sources + [node_label(node)])

    def refine_grid(self, real: Real, node: onnx.NodeProto) -> Real:
        """A constant off the activation's grid (a bias added after a requantized MatMul, as
        quantize_static writes it): the codes move, exactly, to a grid 2**-REFINE_BITS as fine, so
        the constant is added with an error below 2**-(REFINE_BITS+1) input steps, before the one
        rounding of the next quantizer."""
        if real.uniform_scale is None:
            raise EinhlsError("the added constant is not a multiple of the activation's quantization step "
                              "and the activation has per-element scales: quantize the activation here",
                              node_label(node), node.op_type)
        have = self.stream.type
        factor = 1 << REFINE_BITS
        offsets = self.per_token(real.offset, node)
        lo = (have.min - have.zero_point + int(offsets.min())) * factor
        hi = (have.max - have.zero_point + int(offsets.max())) * factor
        if real.relu:
            lo, hi = max(lo, 0), max(hi, 0)
        fine = QType(signed=lo < 0, bits=bits_for_range(lo, hi), scale=real.uniform_scale / factor)
        self.append_requant(real, fine, float(factor), node)
        return Real.of_stream(real.shape, fine.scale, 0)

    def add_bias(self, acc: Acc, const: np.ndarray, node: onnx.NodeProto, record: bool = True) -> None:
        """Fold a constant into the accumulator's bias; one finer than the accumulator's grid makes
        the accumulator count in finer units first (codegen/frontend/bias.py)."""
        steps = self.per_token(broadcast_const(const, acc.shape, node), node) / acc.scale
        refine = 1 << refinement_bits(steps)
        if refine > 1:
            acc.weight, acc.bias, acc.scale = acc.weight * refine, acc.bias * refine, acc.scale / refine
        acc.bias = acc.bias + np.rint(steps * refine).astype(np.int64)
        if record:
            acc.sources.append(node_label(node))

    def lower_mul(self, node: onnx.NodeProto, inputs: list) -> Value:
        value, const, _ = self.split_const(node, inputs)
        return self.mul_const(value, const.value.astype(np.float64), node)

    def lower_div(self, node: onnx.NodeProto, inputs: list) -> Value:
        value, const, first = self.split_const(node, inputs)
        if not first or np.any(const.value == 0):
            raise EinhlsError("only division of an activation by a non-zero constant is supported",
                              node_label(node), node.op_type)
        return self.mul_const(value, 1.0 / const.value.astype(np.float64), node)

    def mul_const(self, value: Value, const: np.ndarray, node: onnx.NodeProto) -> Value:
        if isinstance(value, Pending) and einsum_fe.pending_mul(self, value, const, node) is not None:
            return value
        label = node_label(node)
        if isinstance(value, Acc):
            factor = self.per_token(broadcast_const(const, value.shape, node), node)
            if not (value.relu and np.any(factor < 0)):
                zero, negative = factor == 0, factor < 0
                sign = np.where(negative, -1, 1) * np.where(zero, 0, 1)
                value.weight = value.weight * sign[:, None]
                value.bias = value.bias * sign
                value.scale = value.scale * np.where(zero, 1.0, np.abs(factor))
                value.sources.append(label)
                return value
        real = self.real_of(value, node)
        factor = broadcast_const(const, real.shape, node)
        if np.any(factor <= 0):
            raise EinhlsError("multiplying an activation by a negative or zero constant is not supported",
                              label, node.op_type)
        return dataclasses.replace(real, scale=real.scale * factor, sources=real.sources + [label])

    def lower_relu(self, node: onnx.NodeProto, inputs: list) -> Value:
        value, label = inputs[0], node_label(node)
        if isinstance(value, Pending):
            return einsum_fe.pending_relu(self, value, node)
        if isinstance(value, Join) and value.kind != "concat":
            value.relu = True
            value.sources.append(label)
            return value
        if isinstance(value, Acc):
            value.relu = True
            value.sources.append(label)
            return value
        if isinstance(value, Codes):
            if self.stream.type.zero_point != 0:
                raise EinhlsError("Relu on integer codes with a non-zero zero point", label, node.op_type)
            self.stream.append(make_relu(self.stream.name(node.name or "relu"), label, self.stream.type,
                                         self.stream.size))
            return Codes(value.shape, tensor=self.stream.focus)
        if isinstance(value, FloatInput) and self.default_type is None and self.quantized_model:
            raise EinhlsError("Relu on the float input before its quantizer is not supported",
                              label, node.op_type)
        real = self.real_of(value, node)
        if real.relu:
            return real
        if np.any(real.offset):
            return dataclasses.replace(real, relu=True, sources=real.sources + [label])
        sources = real.sources + [label]
        self.stream.append(make_relu(self.stream.name(node.name or "relu"), " + ".join(sources),
                                     self.stream.type, self.stream.size))
        return dataclasses.replace(real, sources=[], tensor=self.stream.focus)

    # ----- layout and casts -----
    def lower_layout(self, node: onnx.NodeProto, inputs: list) -> Value:
        """Reshape-like nodes on the activation: allowed when they keep the element order."""
        value = inputs[0]
        if isinstance(value, Pending):
            return einsum_fe.pending_layout(self, node, inputs)
        if node.op_type == "Transpose":
            moved = attention_fe.view_transpose(self, node, value)
            if moved is not None:
                return moved
        if getattr(value, "view", None) is not None and node.op_type != "Identity":
            raise EinhlsError(f"{node.op_type} of a value split into {value.view.heads} heads "
                              f"(shape {list(value.shape)}): only the head merge Transpose(0, 2, 1, 3) is "
                              "supported before reshaping", node_label(node), node.op_type)
        size = size_of(value.shape)
        probe = np.arange(size, dtype=np.int64).reshape(value.shape)
        rest = [c.value if c is not None else None for c in inputs[1:]]
        try:
            moved = np.asarray(evaluate(node, [probe] + rest, self.opset)[0])
        except Exception as exc:
            raise EinhlsError(f"cannot apply to shape {list(value.shape)}: {exc}", node_label(node),
                              node.op_type) from exc
        regrouped = conv_fe.flatten_pixels(self, value, node, tuple(moved.shape))
        if regrouped is not None:   # a pixel stream flattened for a classifier
            return regrouped
        if moved.size != size or not np.array_equal(moved.ravel(), np.arange(size)):
            raise EinhlsError("changes the order of the activation's elements; only reshapes that keep "
                              "the order are supported", node_label(node), node.op_type)
        return dataclasses.replace(value, shape=tuple(moved.shape))

    def lower_cast(self, node: onnx.NodeProto, inputs: list) -> Value:
        value = inputs[0]
        to = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "to"), None)
        if to in (TensorProto.FLOAT, TensorProto.DOUBLE):
            if isinstance(value, Codes):
                return Real.of_stream(value.shape, 1.0, self.stream.type.zero_point)
            return value
        raise EinhlsError("only casts of the activation to float are supported", node_label(node),
                          node.op_type)

    # ----- conversions between kinds -----
    def real_of(self, value: Value, node: onnx.NodeProto) -> Real:
        """``value`` as a :class:`Real` (closing an accumulator, quantizing a float input)."""
        if isinstance(value, Real):
            return value
        if isinstance(value, Acc):
            return self.finish_acc(value, self.default_type, None)
        if isinstance(value, Pending):
            return einsum_fe.finish_pending(self, value, self.default_type, None)
        if isinstance(value, Join):
            return finish_join(self, value, None, None)
        if isinstance(value, Island):
            return finish_island(self, value, None, None)
        if isinstance(value, attention_fe.ActAcc):
            return attention_fe.finish_act_matmul(self, value, None, None)
        if isinstance(value, FloatInput):
            if self.default_type is None:
                what = INPUT_NOT_QUANTIZED if self.quantized_model else "the model is a float model: " + HOW_TO_QUANTIZE
                raise EinhlsError(what, node_label(node), node.op_type)
            self.stream.input_type = self.default_type
            return Real.of_stream(value.shape, self.default_type.scale)
        raise EinhlsError("arithmetic on integer codes is not supported: dequantize them first "
                          "(DequantizeLinear)", node_label(node), node.op_type)

    def linear_input(self, value: Value, node: onnx.NodeProto) -> Real:
        """The activation of a MatMul/Gemm: one scale, no pending ReLU (offsets go into the bias)."""
        real = self.real_of(value, node)
        if real.relu or real.uniform_scale is None:
            real = self.materialize(real, node)
        return real

    def materialize(self, real: Real, node: onnx.NodeProto) -> Real:
        """Apply pending ReLU, offsets and per-element scales with an op: afterwards the codes alone,
        times one scale, carry the value.

        With a default type the result is requantized to it.  Otherwise it is exact: a Relu op, or a
        Requant into a type wide enough for every value, scaling each element by the integer ratio
        of its scale to the smallest one (per-element scales must be integer multiples of it, as
        power-of-two per-channel scales are).
        """
        if self.default_type is not None:
            target = self.default_type
            if not (real.plain and np.all(real.scale == self.stream.type.scale)
                    and same_codes(self.stream.type, target)):
                self.append_requant(real, target, real.scale / target.scale, node)
            return Real.of_stream(real.shape, target.scale)
        uniform = real.uniform_scale
        if real.plain and uniform is not None:
            return real
        have = self.stream.type
        if uniform is not None and not np.any(real.offset):  # only a pending ReLU
            source = " + ".join(real.sources + [node_label(node)])
            self.stream.append(make_relu(self.stream.name(node.name or "relu"), source, have, self.stream.size))
            return Real.of_stream(real.shape, uniform)
        scale = float(real.scale.min())
        ratio = real.scale / scale
        if np.any(np.abs(ratio - np.rint(ratio)) > 1e-9 * ratio):
            raise EinhlsError("the activation has per-element scales that are not integer multiples of one "
                              "another: quantize it (QuantizeLinear/Quant) here", node_label(node),
                              node.op_type)
        ratio = np.rint(ratio).astype(np.int64)
        lo = int(((have.min - have.zero_point + real.offset) * ratio).min())
        hi = int(((have.max - have.zero_point + real.offset) * ratio).max())
        if real.relu:
            lo, hi = max(lo, 0), max(hi, 0)
        exact = QType(signed=lo < 0, bits=bits_for_range(lo, hi), scale=scale)
        self.append_requant(real, exact, ratio.astype(np.float64), node)
        return Real.of_stream(real.shape, scale)

    def per_token(self, values: np.ndarray, node: onnx.NodeProto | None) -> np.ndarray:
        """Per-element values of a whole frame -> those of one token (they must repeat per token)."""
        values = np.asarray(values)
        tokens = self.stream.tokens
        if tokens == 1 or values.size <= 1:
            return values
        if self.channels_first_input:   # a CNN: per-element values are in ONNX's channel-major order
            pixel = conv_fe.per_pixel(values, tokens)
            if pixel is not None:
                return pixel
        rows = values.reshape(tokens, -1)
        if np.any(rows != rows[:1]):
            raise EinhlsError("a constant that differs from token to token (e.g. a position embedding) is "
                              "not supported on the activation path: add it on the host",
                              node_label(node) if node is not None else None,
                              node.op_type if node is not None else None)
        return rows[0]

    def append_requant(self, real: Real, out_type: QType, multiplier, node: onnx.NodeProto | None,
                       label: str | None = None) -> None:
        label = label or node_label(node)
        hint = (node.name or node.op_type) if node is not None else "requant"
        try:
            multiplier = self.per_token(np.broadcast_to(np.asarray(multiplier, dtype=np.float64),
                                                        real.offset.shape), node)
            if np.all(multiplier == multiplier.flat[0]):
                multiplier = float(multiplier.flat[0])
            op = make_requant(self.stream.name(hint), " + ".join(real.sources + [label]),
                              self.stream.type, out_type, self.stream.size,
                              offset=self.per_token(real.offset, node),
                              real_multiplier=multiplier, relu=real.relu)
        except ValueError as exc:
            raise EinhlsError(f"cannot requantize: {exc}", label, node.op_type) from exc
        self.stream.append(op)

    # ----- the output -----
    def finish(self) -> Graph:
        output = self.graph.output[0].name
        value = self.values[output]
        producer = next((node for node in self.graph.node if output in node.output), None)
        if isinstance(value, Const):
            raise EinhlsError("the graph output is a constant", output, "graph output")
        if producer is None:
            raise EinhlsError("the graph has no nodes", output, "graph output")
        is_float = not isinstance(value, Codes)
        self.stream.focus_on(getattr(value, "tensor", None))
        if is_float:
            real = self.real_of(value, producer)
            self.stream.focus_on(real.tensor)
            self.finish_real(real, producer)
        return Graph(name=graph_name(self.model), input_type=self.stream.input_type,
                     input_size=self.stream.input_size, ops=self.stream.ops,
                     input_shape=self.stream.input_shape, output_shape=tuple(value.shape),
                     output_is_float=is_float, tokens=self.stream.input_tokens, output=self.stream.focus,
                     channels_first=self.channels_first_input)

    def finish_real(self, real: Real, node: onnx.NodeProto) -> None:
        """Make the stream's last type mean exactly the output's real value."""
        if real.relu or real.uniform_scale is None or self.default_type is not None:
            real = self.materialize(real, node)
        scale = real.uniform_scale
        have = self.stream.type
        offset = int(real.offset[0])
        if np.all(real.offset == offset) and have.min <= have.zero_point - offset <= have.max:
            want = dataclasses.replace(have, scale=scale, zero_point=have.zero_point - offset)
            if want == have:
                return
            if self.stream.can_retype():
                self.stream.retype(want)
                return
            if offset == 0:
                self.append_requant(real, want, 1.0, node)  # an identity that carries the new scale
                return
        self.materialize(real, node)  # an exact Requant that applies the offsets


def lower_prepared(model: onnx.ModelProto, default_type: QType | None = None) -> Graph:
    """Lower a model already passed through :func:`prepare_model` (no Relu fusion)."""
    return Lowering(model, default_type).run()

