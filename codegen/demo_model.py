"""The built-in demo model: a small quantized MLP written with onnx.helper.

    x [1, 64] float
      -> QuantizeLinear/DequantizeLinear int8 (scale 2^-5)                    the input quantizer
      -> fc1: Gemm, 4-bit per-channel weights (QONNX Quant), bias, Relu
      -> Quant uint6 (scale 2^-3)
      -> fc2: MatMul, int8 weights 2:4 sparse (int8 initializer + DequantizeLinear), bias, Relu
      -> QuantizeLinear/DequantizeLinear uint8 (scale 2^-4)
      -> fc3: Gemm, int8 narrow weights (QONNX Quant), bias
      -> QuantizeLinear/DequantizeLinear int8 (scale 2^-3) -> y [1, 10] float

Both quantization forms the front end reads (QONNX ``Quant`` and ONNX QDQ) appear, every scale is
a power of two (so the integer reference equals the float model exactly), fc2 declares its 2:4
pattern in the metadata (``einhls.sparsity.fc2``).  Weights come from a fixed seed, so the file's
bytes are the same on every run.  qonnx's ``execute_onnx`` runs the model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX_DOMAIN = "qonnx.custom_op.general"
SEED = 2024
SIZES = (64, 64, 32, 10)
IN_SCALE, MID1_SCALE, MID2_SCALE, OUT_SCALE = 2.0**-5, 2.0**-3, 2.0**-4, 2.0**-3


def _nonzero_codes(rng: np.random.Generator, shape: tuple[int, int], limit: int) -> np.ndarray:
    """Random integer codes in [-limit, limit] without zeros (so dense layers stay dense)."""
    magnitude = rng.integers(1, limit + 1, size=shape)
    return magnitude * rng.choice([-1, 1], size=shape)


def _two_of_four(rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    """Keep exactly two non-zeros in every group of four consecutive inputs of each row."""
    rows, cols = codes.shape
    mask = np.zeros_like(codes, dtype=bool)
    for r in range(rows):
        for g in range(0, cols, 4):
            mask[r, g + rng.choice(4, size=2, replace=False)] = True
    return np.where(mask, codes, 0)


class _Builder:
    """Nodes and initializers of the demo graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, domain: str = "", **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, domain=domain, **attrs))
        return name

    def qdq(self, x: str, name: str, scale: float, dtype: type) -> str:
        """QuantizeLinear + DequantizeLinear (per tensor) on an activation."""
        s = self.const(f"{name}.scale", np.array(scale, np.float32))
        z = self.const(f"{name}.zero_point", np.array(0, dtype))
        q = self.node("QuantizeLinear", [x, s, z], f"{name}.q")
        return self.node("DequantizeLinear", [q, s, z], name)

    def quant(self, x: str, name: str, scale: np.ndarray, bits: int, signed: bool, narrow: bool) -> str:
        """A QONNX Quant node (round half to even)."""
        inputs = [x, self.const(f"{name}.scale", np.asarray(scale, np.float32)),
                  self.const(f"{name}.zeropt", np.array(0.0, np.float32)),
                  self.const(f"{name}.bitwidth", np.array(float(bits), np.float32))]
        return self.node("Quant", inputs, name, domain=QONNX_DOMAIN, signed=int(signed),
                         narrow=int(narrow), rounding_mode="ROUND")


def demo_model() -> onnx.ModelProto:
    """The demo MLP as an in-memory ONNX model (deterministic)."""
    rng = np.random.default_rng(SEED)
    k, h1, h2, n = SIZES
    b = _Builder()
    x = b.qdq("x", "x_q", IN_SCALE, np.int8)

    # fc1: 4-bit per-output-channel weights through a QONNX Quant, Gemm(transB=1)
    s1 = (2.0 ** rng.integers(-5, -2, size=(h1, 1))).astype(np.float32)
    w1 = (_nonzero_codes(rng, (h1, k), 7) * s1).astype(np.float32)
    bias1 = (rng.integers(-64, 64, size=h1) * IN_SCALE * s1[:, 0]).astype(np.float32)
    w1q = b.quant(b.const("fc1.weight", w1), "fc1.weight_q", s1, bits=4, signed=True, narrow=True)
    x = b.node("Gemm", [x, w1q, b.const("fc1.bias", bias1)], "fc1", transB=1)
    x = b.node("Relu", [x], "fc1.relu")
    x = b.quant(x, "act1_q", np.array(MID1_SCALE), bits=6, signed=False, narrow=False)

    # fc2: int8 codes stored as int8, 2:4 sparse, DequantizeLinear, MatMul + Add
    s2 = 2.0**-7
    w2 = _two_of_four(rng, _nonzero_codes(rng, (h2, h1), 127)).astype(np.int8)
    w2dq = b.node("DequantizeLinear", [b.const("fc2.weight", np.ascontiguousarray(w2.T)),
                                       b.const("fc2.weight_scale", np.array(s2, np.float32)),
                                       b.const("fc2.weight_zero_point", np.array(0, np.int8))],
                  "fc2.weight_dq")
    x = b.node("MatMul", [x, w2dq], "fc2")
    bias2 = (rng.integers(-256, 256, size=h2) * MID1_SCALE * s2).astype(np.float32)
    x = b.node("Add", [x, b.const("fc2.bias", bias2)], "fc2.bias_add")
    x = b.node("Relu", [x], "fc2.relu")
    x = b.qdq(x, "act2_q", MID2_SCALE, np.uint8)

    # fc3: int8 narrow per-tensor weights through a QONNX Quant, Gemm(transB=1)
    s3 = 2.0**-9
    w3 = (_nonzero_codes(rng, (n, h2), 127) * s3).astype(np.float32)
    bias3 = (rng.integers(-512, 512, size=n) * MID2_SCALE * s3).astype(np.float32)
    w3q = b.quant(b.const("fc3.weight", w3), "fc3.weight_q", np.array(s3), bits=8, signed=True, narrow=True)
    x = b.node("Gemm", [x, w3q, b.const("fc3.bias", bias3)], "fc3", transB=1)
    b.qdq(x, "y", OUT_SCALE, np.int8)

    graph = helper.make_graph(b.nodes, "einhls_demo",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], b.inits)
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
    model = helper.make_model(graph, producer_name="einhls", producer_version="demo", opset_imports=opsets)
    model.ir_version = 8
    helper.set_model_props(model, {"einhls.sparsity.fc2": "2:4"})
    onnx.checker.check_model(model)
    return model


def build_demo_model(path: Path) -> None:
    """Write the demo model to ``path`` (same bytes on every call)."""
    Path(path).write_bytes(demo_model().SerializeToString(deterministic=True))
