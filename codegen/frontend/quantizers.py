"""Quantizer nodes: ONNX QuantizeLinear / DequantizeLinear and QONNX Quant, read into one form.

A :class:`Quantizer` holds what any of them means: ``code = clamp(round(x / scale) + zp, lo, hi)``
and ``real = scale * (code - zp)``, with round half to even, per tensor or per axis (``scale`` and
``zero_point`` are arrays shaped to broadcast against the input).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import EinhlsError
from ..ir.types import QType
from .names import node_label
from .values import Const
from .constants import fold_node

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
#: Domains whose QuantizeLinear/DequantizeLinear have the ONNX semantics (onnxruntime's quantizer
#: writes com.microsoft ones for int16/int4 at older opsets).
QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")

#: ONNX integer element types a QuantizeLinear/DequantizeLinear may use: (signed, bits).
INTEGER_TYPES: dict[int, tuple[bool, int]] = {
    TensorProto.INT8: (True, 8), TensorProto.UINT8: (False, 8),
    TensorProto.INT16: (True, 16), TensorProto.UINT16: (False, 16),
    TensorProto.INT32: (True, 32),
    TensorProto.INT4: (True, 4), TensorProto.UINT4: (False, 4),
}
for _name, _signed in (("INT2", True), ("UINT2", False)):  # newer onnx releases only
    if hasattr(TensorProto, _name):
        INTEGER_TYPES[getattr(TensorProto, _name)] = (_signed, 2)

ACTIVATION_BITS = (2, 16)


@dataclass(frozen=True)
class Quantizer:
    """One quantizer: integer range, scale and zero point (arrays broadcastable to the input)."""
    signed: bool
    bits: int
    narrow: bool
    scale: np.ndarray
    zero_point: np.ndarray
    rounding: str = "ROUND"
    elem_type: int | None = None  # ONNX element type of the codes (QuantizeLinear output)

    @property
    def lo(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def hi(self) -> int:
        if self.signed:
            return (1 << (self.bits - 1)) - 1
        return (1 << self.bits) - (2 if self.narrow else 1)

    @property
    def per_tensor(self) -> bool:
        return bool(np.all(self.scale == self.scale.flat[0])
                    and np.all(self.zero_point == self.zero_point.flat[0]))

    def codes(self, real: np.ndarray) -> np.ndarray:
        """Quantize real values to integer codes (int64), computed in the input's float precision.

        The order of operations follows each operator's definition, so the codes equal the
        runtime's for constants quantized at run time (the dynamo exporter leaves weights float
        with a QuantizeLinear on them).
        """
        real = np.asarray(real)
        if not np.issubdtype(real.dtype, np.floating):
            real = real.astype(np.float32)
        scaled = real / self.scale.astype(real.dtype)
        if self.elem_type is not None:  # QuantizeLinear: round(x / scale) + zp, then saturate
            codes = np.rint(scaled).astype(np.int64) + self.zero_point
            return np.clip(codes, self.lo, self.hi)
        # QONNX Quant: x / scale + zp, clamp, then round
        scaled = np.clip(scaled + self.zero_point.astype(real.dtype), self.lo, self.hi)
        rounded = {"ROUND": np.rint, "HALF_EVEN": np.rint, "CEIL": np.ceil, "FLOOR": np.floor,
                   "ROUND_TO_ZERO": np.trunc}[self.rounding](scaled)
        return rounded.astype(np.int64)

    def real(self, codes: np.ndarray, dtype: np.dtype = np.float32) -> np.ndarray:
        """Dequantize integer codes (as the ONNX runtime does, in ``dtype``)."""
        return ((codes.astype(np.int64, copy=False) - self.zero_point.astype(np.int64)).astype(dtype)
                * self.scale.astype(dtype))

    def full(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Scale (float64) and zero point (int64) for every element of a tensor of ``shape``, as
        read-only broadcast views (no copy: a BERT-base-sized encoder's weights made 0.5 GB of
        copies); callers that change them make their own arrays."""
        return (np.broadcast_to(self.scale.astype(np.float64), shape),
                np.broadcast_to(self.zero_point.astype(np.int64), shape))

    def qtype(self, node: onnx.NodeProto) -> QType:
        """The per-tensor IR type of an activation quantized by this quantizer."""
        label = node_label(node)
        if not self.per_tensor:
            raise EinhlsError("per-channel quantization of an activation is not supported: use one "
                              "scale and zero point for the whole tensor", label, node.op_type)
        if not ACTIVATION_BITS[0] <= self.bits <= ACTIVATION_BITS[1]:
            raise EinhlsError(f"activation bit width {self.bits} outside {ACTIVATION_BITS[0]}.."
                              f"{ACTIVATION_BITS[1]}", label, node.op_type)
        if self.rounding not in ("ROUND", "HALF_EVEN"):
            raise EinhlsError(f"rounding mode {self.rounding} on an activation is not supported "
                              "(only ROUND, half to even)", label, node.op_type)
        if self.narrow and not self.signed:
            raise EinhlsError("unsigned narrow-range quantization of an activation is not supported",
                              label, node.op_type)
        try:
            return QType(signed=self.signed, bits=self.bits, scale=float(self.scale.flat[0]),
                         zero_point=int(self.zero_point.flat[0]), narrow=self.narrow and self.signed)
        except ValueError as exc:
            raise EinhlsError(str(exc), label, node.op_type) from exc


def is_qonnx_quant(node: onnx.NodeProto) -> bool:
    """A QONNX integer quantizer (``Quant``) node."""
    return node.op_type == "Quant" and node.domain in QONNX_DOMAINS


def is_linear_quantizer(node: onnx.NodeProto) -> bool:
    """A QuantizeLinear or DequantizeLinear node with the ONNX semantics."""
    return node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.domain in QDQ_DOMAINS


def elem_type_of(signed: bool, bits: int) -> int | None:
    """The ONNX element type of (signed, bits) codes, or None when ONNX has none."""
    return next((t for t, kind in INTEGER_TYPES.items() if kind == (signed, bits)), None)


def element_type(array: np.ndarray) -> int:
    """ONNX element type of a NumPy array (including the int4/uint4 dtypes onnx uses)."""
    return helper.np_dtype_to_tensor_dtype(array.dtype)


def integer_kind(elem_type: int, node: onnx.NodeProto) -> tuple[bool, int]:
    """(signed, bits) of an ONNX integer element type, refusing anything else (e.g. float8)."""
    if elem_type not in INTEGER_TYPES:
        known = elem_type in TensorProto.DataType.values()
        name = TensorProto.DataType.Name(elem_type) if known else elem_type
        raise EinhlsError(f"quantized element type {name} is not supported (int4/uint4/int8/uint8/int16/"
                          "uint16 only)", node_label(node), node.op_type)
    return INTEGER_TYPES[elem_type]


def _const_input(node: onnx.NodeProto, inputs: list, index: int, what: str) -> np.ndarray | None:
    if index >= len(inputs) or inputs[index] is None:
        return None
    value = inputs[index]
    if not isinstance(value, Const):
        raise EinhlsError(f"the {what} must be a constant", node_label(node), node.op_type)
    return value.value


def _per_axis(node: onnx.NodeProto, array: np.ndarray, rank: int) -> np.ndarray:
    """Shape a QuantizeLinear/DequantizeLinear scale or zero point to broadcast against the input.

    A scalar (or one-element) parameter is per tensor whatever ``axis`` says (the dynamo exporter
    writes ``axis=1`` on per-tensor nodes); a 1-D one applies along ``axis``.
    """
    if array.size == 1:
        return array.reshape(())
    if array.ndim != 1:
        raise EinhlsError("blocked quantization (scale of rank > 1) is not supported",
                          node_label(node), node.op_type)
    axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
    if not -rank <= axis < rank:
        raise EinhlsError(f"axis {axis} outside the input's rank {rank}", node_label(node), node.op_type)
    shape = [1] * rank
    shape[axis % rank] = -1
    return array.reshape(shape)


def _attribute(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def linear_quantizer(node: onnx.NodeProto, inputs: list, rank: int,
                     code_type: int | None = None) -> Quantizer:
    """The quantizer of a QuantizeLinear or DequantizeLinear node.

    ``code_type`` is the element type of the codes when known from the data input (for a
    DequantizeLinear); otherwise it comes from the zero point, the ``output_dtype`` attribute, or the
    uint8 default.
    """
    label = node_label(node)
    if _attribute(node, "block_size", 0):
        raise EinhlsError("blocked quantization (block_size) is not supported", label, node.op_type)
    scale = _const_input(node, inputs, 1, "scale")
    if scale is None:
        raise EinhlsError("missing scale", label, node.op_type)
    zero_point = _const_input(node, inputs, 2, "zero point")
    if code_type is None:
        if zero_point is not None:
            code_type = element_type(zero_point)
        else:
            code_type = _attribute(node, "output_dtype", 0) or TensorProto.UINT8
    signed, bits = integer_kind(code_type, node)
    if zero_point is None:
        zero_point = np.zeros_like(scale, dtype=np.int64)
    scale = _per_axis(node, np.asarray(scale), rank)
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise EinhlsError("scales must be positive and finite", label, node.op_type)
    zero_point = _per_axis(node, np.asarray(zero_point).astype(np.int64), rank)
    return Quantizer(signed, bits, False, scale, zero_point, "ROUND", code_type)


def qonnx_quantizer(node: onnx.NodeProto, inputs: list) -> Quantizer:
    """The quantizer of a QONNX ``Quant`` node (inputs x, scale, zeropt, bitwidth)."""
    label = node_label(node)
    scale, zero_point, bits = (_const_input(node, inputs, i, what)
                               for i, what in ((1, "scale"), (2, "zero point"), (3, "bit width")))
    if scale is None or zero_point is None or bits is None:
        raise EinhlsError("Quant needs scale, zero point and bit width inputs", label, node.op_type)
    if bits.size != 1 or float(bits.flat[0]) != int(bits.flat[0]) or not 2 <= int(bits.flat[0]) <= 32:
        raise EinhlsError(f"bit width {bits.ravel().tolist()} must be one integer in 2..32",
                          label, node.op_type)
    if np.any(zero_point != np.round(zero_point)):
        raise EinhlsError("zero point must hold integers", label, node.op_type)
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise EinhlsError("scales must be positive and finite", label, node.op_type)
    rounding = str(_attribute(node, "rounding_mode", "ROUND")).upper()
    if rounding not in ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "ROUND_TO_ZERO"):
        raise EinhlsError(f"unknown rounding mode {rounding}", label, node.op_type)
    return Quantizer(signed=bool(_attribute(node, "signed", 1)), bits=int(bits.flat[0]),
                     narrow=bool(_attribute(node, "narrow", 0)), scale=np.asarray(scale),
                     zero_point=np.asarray(zero_point).astype(np.int64), rounding=rounding)


def lossless_fixed_point(values: np.ndarray, max_bits: int = 16) -> tuple[np.ndarray, float] | None:
    """Integer codes and a power-of-two scale that represent float ``values`` exactly, or None.

    A float weight that is already on a fixed-point grid (e.g. multiples of 2^-3 within +-1) needs
    no quantizer: it is taken as codes of at most ``max_bits`` bits, with the coarsest such grid.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    for exponent in range(-max_bits, 64):
        codes = values * 2.0**exponent
        if np.all(codes == np.round(codes)):
            if np.abs(codes).max(initial=0) >= 2 ** (max_bits - 1):
                return None
            return codes.astype(np.int64), 2.0**-exponent
    return None


def quantize_const(const: Const, quantizer: Quantizer) -> Const:
    """QuantizeLinear on a constant: the integer codes, typed as the node's output."""
    codes = quantizer.codes(const.value)
    dtype = helper.tensor_dtype_to_np_dtype(quantizer.elem_type) if quantizer.elem_type else np.int64
    return Const(codes.astype(dtype))


def dequantize_const(const: Const, quantizer: Quantizer, dtype: np.dtype = np.float32) -> Const:
    """DequantizeLinear on constant codes: the real value, remembering codes, scale and zero point."""
    codes = const.value.astype(np.int64)
    scale, zero_point = quantizer.full(codes.shape)
    return Const(quantizer.real(codes, dtype), codes, scale, zero_point)


def fake_quantize_const(const: Const, quantizer: Quantizer) -> Const:
    """QONNX Quant on a constant: the quantized real value, remembering its codes."""
    codes = quantizer.codes(const.value)
    scale, zero_point = quantizer.full(codes.shape)
    dtype = const.value.dtype if np.issubdtype(const.value.dtype, np.floating) else np.float32
    return Const(quantizer.real(codes, dtype), codes, scale, zero_point)


def fold_constant_node(node: onnx.NodeProto, inputs: list, opset: int) -> list:
    """Evaluate a node on constants; quantizers keep track of codes, scales and zero points."""
    rank = len(inputs[0].shape) if inputs and inputs[0] is not None else 0
    if is_linear_quantizer(node) and node.op_type == "QuantizeLinear":
        return [quantize_const(inputs[0], linear_quantizer(node, inputs, rank))]
    if is_linear_quantizer(node):
        quantizer = linear_quantizer(node, inputs, rank, element_type(inputs[0].value))
        return [dequantize_const(inputs[0], quantizer)]
    if is_qonnx_quant(node):
        return [fake_quantize_const(inputs[0], qonnx_quantizer(node, inputs))]
    return fold_node(node, inputs, opset)
