"""A QONNX MLP in the form Brevitas' ``export_qonnx`` writes, built with onnx.helper.

Brevitas exports ``QuantIdentity`` as a ``Quant`` node on the activation, ``QuantLinear`` as a
``Quant`` on the float weight initializer followed by ``Transpose`` + ``MatMul`` (bias as ``Add``),
or by ``Gemm(transB=1)``, and ``QuantReLU`` as ``Relu`` + unsigned ``Quant``.  qonnx's
``execute_onnx`` runs these graphs, which is what the front end's reference is compared with.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DOMAIN = "qonnx.custom_op.general"


class QonnxBuilder:
    """Accumulates nodes and initializers; ``quant`` adds a Quant node with its parameters."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def quant(self, x: str, out: str, scale, bits: int, signed: bool, narrow: bool = False,
              zero_point: float = 0.0) -> str:
        i = self.count = self.count + 1
        self.nodes.append(helper.make_node(
            "Quant", [x, self.const(f"q{i}_scale", scale), self.const(f"q{i}_zeropt", zero_point),
                      self.const(f"q{i}_bitwidth", float(bits))],
            [out], name=f"Quant_{i}", domain=DOMAIN, signed=int(signed), narrow=int(narrow),
            rounding_mode="ROUND"))
        return out

    def node(self, op: str, inputs: list[str], out: str, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def model(self, in_shape: list, out_shape: list, opset: int = 13) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "qonnx_mlp", [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("global_out", TensorProto.FLOAT, out_shape)], self.inits)
        model = helper.make_model(graph, producer_name="einhls-tests",
                                  opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(DOMAIN, 1)])
        model.ir_version = 8
        return model


def build_qonnx_mlp(path: Path, pow2: bool = True, seed: int = 0) -> onnx.ModelProto:
    """[1, 1, 4, 4] -> Quant int8 -> Flatten -> (4-bit per-channel W) MatMul + Add -> Relu -> Quant
    uint6 -> (8-bit narrow W) Gemm -> Quant int8 -> output [1, 5]."""
    rng = np.random.default_rng(seed)
    k, h, n = 16, 12, 5
    if pow2:
        s_in, s_mid, s_out = 2.0**-4, 2.0**-2, 2.0**-3
        w1_scale = 2.0 ** rng.integers(-5, -2, size=(h, 1))
        w2_scale = 2.0**-6
    else:
        s_in, s_mid, s_out = 0.0713, 0.211, 0.1533
        w1_scale = rng.uniform(0.05, 0.2, size=(h, 1))
        w2_scale = 0.0137
    b = QonnxBuilder()
    x = b.quant("global_in", "inp_q", s_in, 8, signed=True)
    x = b.node("Flatten", [x], "flat", "Flatten_0", axis=1)
    w1 = rng.integers(-7, 8, size=(h, k)) * w1_scale
    wq = b.quant(b.const("fc1.weight", w1), "fc1_wq", w1_scale.astype(np.float32), 4, signed=True, narrow=True)
    wt = b.node("Transpose", [wq], "fc1_wt", "Transpose_0", perm=[1, 0])
    x = b.node("MatMul", [x, wt], "fc1_mm", "MatMul_0")
    bias1 = rng.integers(-40, 40, size=h) * (s_in * w1_scale[:, 0])  # on the accumulator grid
    x = b.node("Add", [x, b.const("fc1.bias", bias1)], "fc1_out", "Add_0")
    x = b.node("Relu", [x], "relu1", "Relu_0")
    x = b.quant(x, "act1_q", s_mid, 6, signed=False)
    w2 = rng.integers(-127, 128, size=(n, h)) * w2_scale
    wq2 = b.quant(b.const("fc2.weight", w2), "fc2_wq", w2_scale, 8, signed=True, narrow=True)
    bias2 = rng.integers(-200, 200, size=n) * (s_mid * w2_scale)
    x = b.node("Gemm", [x, wq2, b.const("fc2.bias", bias2)], "fc2_out", "Gemm_0", transB=1)
    b.quant(x, "global_out", s_out, 8, signed=True)
    model = b.model([1, 1, 4, 4], [1, n])
    onnx.save(model, str(path))
    return model


def run_qonnx(path: Path, x: np.ndarray) -> np.ndarray:
    """The float model's output, executed by qonnx (one vector at a time: the batch is 1)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(path)).transform(InferShapes())
    in_name, out_name = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(in_name)
    return np.concatenate([execute_onnx(model, {in_name: row.reshape(shape).astype(np.float32)})[out_name]
                           for row in x])
