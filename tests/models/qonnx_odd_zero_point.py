"""Small QONNX models whose last ``Quant`` has an odd zero point and power-of-two scales, so that
values land exactly on rounding ties: QONNX rounds x / s + z, ONNX QuantizeLinear rounds x / s and
adds z, and with z odd the two differ at every tie.  One model per kind of op that requantizes:
an Add and a Mul of two activations, an attention product (MatMul of two activations), an
AveragePool, a MaxPool followed by a change of scale, and a Softmax.  Each comes with its float
twin (every Quant written out in Div / Add / Round / Clip / Sub / Mul) for onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from bench.fuzz.forms import QONNX_DOMAIN, Graph, both, quant_pair

OPSETS = [helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]


def _models(q: Graph, f: Graph, yq: str, yf: str, x_shape: list[int], y_shape: list[int]) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    return q.model(x_shape, yq, y_shape, OPSETS, "odd_zero_point"), f.model(x_shape, yf, y_shape, OPSETS[:1], "float")


def _linear(q: Graph, f: Graph, xq: str, xf: str, weight: np.ndarray, stem: str) -> tuple[str, str]:
    weight = np.asarray(weight, dtype=np.float32)
    wq, wf = quant_pair(q, f, q.const(weight, "w"), f.const(weight, "w"), 0.5, 0.0, 8, True, stem=f"{stem}_wq")
    hq, hf = both(q, f, "MatMul", [xq, wq], [xf, wf])
    return quant_pair(q, f, hq, hf, 0.5, 0.0, 8, True, stem=f"{stem}_q")


def join_model(kind: str, zero: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """x [1, 2] -> Quant (0.5) -> {x, Linear(x)} -> Add or Mul -> Quant (scale 1 or 2, zero ``zero``)."""
    q, f = Graph(), Graph()
    xq, xf = quant_pair(q, f, "x", "x", 0.5, 0.0, 8, True, stem="x_q")
    hq, hf = _linear(q, f, xq, xf, [[1.0, -2.0], [3.0, 0.5]], "fc")
    sq, sf = both(q, f, "Add" if kind == "add" else "Mul", [xq, hq], [xf, hf])
    yq, yf = quant_pair(q, f, sq, sf, 1.0 if kind == "add" else 2.0, float(zero), 8, True, stem="y_q")
    return _models(q, f, yq, yf, [1, 2], [1, 2])


def attention_model(zero: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """x [1, 2, 2] -> Quant -> Q, K Linear -> heads (1 head of 2) -> Q K^T -> Quant (zero ``zero``)
    -> head merge -> y [1, 2, 2]: the scores, one row per query token."""
    q, f = Graph(), Graph()
    xq, xf = quant_pair(q, f, "x", "x", 0.5, 0.0, 8, True, stem="x_q")
    qq, qf = _linear(q, f, xq, xf, [[1.0, -1.5], [2.0, 0.5]], "wq")
    kq, kf = _linear(q, f, xq, xf, [[0.5, 1.0], [-1.0, 2.5]], "wk")
    heads = np.array([1, 2, 1, 2], dtype=np.int64)
    shape_q, shape_f = q.const(heads, "shape", np.int64), f.const(heads, "shape", np.int64)
    qq, qf = both(q, f, "Reshape", [qq, shape_q], [qf, shape_f])
    qq, qf = both(q, f, "Transpose", [qq], [qf], perm=[0, 2, 1, 3])
    kq, kf = both(q, f, "Reshape", [kq, shape_q], [kf, shape_f])
    kq, kf = both(q, f, "Transpose", [kq], [kf], perm=[0, 2, 3, 1])
    sq, sf = both(q, f, "MatMul", [qq, kq], [qf, kf])
    sq, sf = quant_pair(q, f, sq, sf, 2.0, float(zero), 8, True, stem="scores_q")
    sq, sf = both(q, f, "Transpose", [sq], [sf], perm=[0, 2, 1, 3])
    merged = np.array([1, 2, 2], dtype=np.int64)
    sq, sf = both(q, f, "Reshape", [sq, q.const(merged, "merged", np.int64)], [sf, f.const(merged, "merged", np.int64)])
    return _models(q, f, sq, sf, [1, 2, 2], [1, 2, 2])


def pool_model(kind: str, zero: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """x [1, 2, 4, 4] -> Quant (0.5) -> AveragePool 2x2 (the mean of 4: quarter steps) or MaxPool
    2x2 -> Quant (scale 1, zero ``zero``) -> y [1, 2, 2, 2]."""
    q, f = Graph(), Graph()
    xq, xf = quant_pair(q, f, "x", "x", 0.5, 0.0, 8, True, stem="x_q")
    op = "AveragePool" if kind == "avgpool" else "MaxPool"
    pq, pf = both(q, f, op, [xq], [xf], kernel_shape=[2, 2], strides=[2, 2])
    yq, yf = quant_pair(q, f, pq, pf, 1.0, float(zero), 8, True, stem="y_q")
    return _models(q, f, yq, yf, [1, 2, 4, 4], [1, 2, 2, 2])


def softmax_model(zero: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """x [1, 2, 4] -> Quant (0.25) -> Softmax (last axis) -> Quant (2^-6, zero ``zero``) -> y."""
    q, f = Graph(), Graph()
    xq, xf = quant_pair(q, f, "x", "x", 0.25, 0.0, 8, True, stem="x_q")
    pq, pf = both(q, f, "Softmax", [xq], [xf], axis=-1)
    yq, yf = quant_pair(q, f, pq, pf, 2.0 ** -6, float(zero), 8, True, stem="y_q")
    return _models(q, f, yq, yf, [1, 2, 4], [1, 2, 4])
