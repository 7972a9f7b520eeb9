"""QDQ models written with onnx.helper: the forms onnxruntime's quantizer and hand-written graphs use.

``QdqBuilder`` chains nodes from the float input ``x``; weights are integer initializers (any ONNX
integer type, int4 included at opset 21) behind a DequantizeLinear, per tensor or per axis.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NP_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64, TensorProto.INT8: np.int8,
            TensorProto.UINT8: np.uint8, TensorProto.INT16: np.int16, TensorProto.UINT16: np.uint16,
            TensorProto.INT32: np.int32, TensorProto.INT4: np.int8, TensorProto.UINT4: np.uint8}


class QdqBuilder:
    """Builds a chain ``x -> ... -> y``; every method returns the name of its output tensor."""

    def __init__(self, in_shape: list, opset: int = 13) -> None:
        self.in_shape, self.opset = in_shape, opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def _name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def tensor(self, value, elem_type: int = TensorProto.FLOAT, name: str | None = None) -> str:
        name = name or self._name("c")
        array = np.asarray(value)
        if elem_type in (TensorProto.INT4, TensorProto.UINT4):  # packed two per byte by make_tensor
            tensor = helper.make_tensor(name, elem_type, list(array.shape), array.ravel().tolist())
        else:  # raw_data, so the tensor can move to an external data file
            tensor = numpy_helper.from_array(array.astype(NP_TYPES.get(elem_type, np.float32)), name)
        self.inits.append(tensor)
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        name = name or self._name(op.lower())
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def qdq(self, x: str, scale: float, zero_point: int = 0, elem_type: int = TensorProto.INT8,
            name: str | None = None, dequantize: bool = True, **attrs) -> str:
        """QuantizeLinear (+ DequantizeLinear) on an activation, per tensor."""
        s = self.tensor(np.array(scale))
        z = self.tensor(np.array(zero_point), elem_type)
        q = self.node("QuantizeLinear", [x, s, z], name, **attrs)
        return self.node("DequantizeLinear", [q, s, z], None, **attrs) if dequantize else q

    def weight(self, codes: np.ndarray, scale, zero_point=0, elem_type: int = TensorProto.INT8,
               axis: int | None = None) -> str:
        """Integer weight codes behind a DequantizeLinear (per axis when ``axis`` is given)."""
        w = self.tensor(codes, elem_type)
        s = self.tensor(np.asarray(scale))
        z = self.tensor(np.broadcast_to(np.asarray(zero_point), np.asarray(scale).shape), elem_type)
        attrs = {"axis": axis} if axis is not None else {}
        return self.node("DequantizeLinear", [w, s, z], **attrs)

    def model(self, y: str, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        """The finished model; ``y`` (the last tensor) is renamed to the graph output."""
        last = self.nodes[-1]
        assert last.output[0] == y, "the output must be the last node's output"
        last.output[0] = "y"
        out_type = TensorProto.FLOAT
        if last.op_type == "QuantizeLinear":  # integer codes out: the zero point's type
            out_type = next(i.data_type for i in self.inits if i.name == last.input[2])
        graph = helper.make_graph(self.nodes, "qdq_test",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.in_shape)],
                                  [helper.make_tensor_value_info("y", out_type, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 10 if self.opset >= 21 else 8
        if metadata:
            helper.set_model_props(model, metadata)
        return onnx.shape_inference.infer_shapes(model)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def float_mlp(path: Path) -> Path:
    """A float model (no quantizers): Gemm 8 -> 6, Relu, MatMul 6 -> 3 (nodes dense_1, dense_2)."""
    rng = np.random.default_rng(12)
    b = QdqBuilder([1, 8])
    x = b.node("Gemm", ["x", b.tensor(rng.normal(0, 0.4, size=(6, 8))), b.tensor(rng.normal(0, 0.1, size=6))],
               "dense_1", transB=1)
    x = b.node("Relu", [x])
    x = b.node("MatMul", [x, b.tensor(rng.normal(0, 0.4, size=(6, 3)))], "dense_2")
    return save(b.model(x), path)
