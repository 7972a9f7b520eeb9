"""ONNX einsum models written with onnx.helper: tensor-train, Tucker, low rank, einsum chains.

Every model is QDQ with power-of-two scales (so the integer reference must equal the float model
exactly) and deterministic for a seed.  Core letters, core axis order and operand order are drawn
from the seed too, so the front end is exercised on forms nobody chose for it.  Bit widths 4 and 16
use opset 21 (int4 / int16 QuantizeLinear and DequantizeLinear).

``float_reference(model, x)`` evaluates the model in float64 with numpy (quantizers as ONNX
defines them), the ground truth the integer reference is compared with; onnxruntime runs the same
models (it accumulates in float32, so it may differ by a rounding step on wide accumulators).
"""
from __future__ import annotations

import math
import string

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ELEM = {(True, 8): TensorProto.INT8, (False, 8): TensorProto.UINT8, (True, 16): TensorProto.INT16,
        (True, 4): TensorProto.INT4, (False, 4): TensorProto.UINT4}


def _int_tensor(name: str, values: np.ndarray, bits: int, signed: bool = True) -> onnx.TensorProto:
    values = np.asarray(values, dtype=np.int64)
    elem = ELEM[(signed, bits)]
    if bits == 4:
        return helper.make_tensor(name, elem, list(values.shape), values.ravel().tolist())
    dtype = {8: np.int8 if signed else np.uint8, 16: np.int16}[bits]
    return numpy_helper.from_array(values.astype(dtype), name)


class Builder:
    def __init__(self, opset: int = 17) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.opset = opset
        self._n = 0

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        name = self.fresh(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def qdq(self, x: str, scale: float, bits: int = 8, signed: bool = True) -> str:
        s = self.const(np.array(scale, np.float32), "scale")
        z = self.fresh("zp")
        self.inits.append(_int_tensor(z, np.array(0), bits, signed))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, s, z]), s, z])

    def weight(self, codes: np.ndarray, scale: float, bits: int = 8) -> str:
        """Integer codes stored as an int initializer, dequantized by a DequantizeLinear."""
        name = self.fresh("w")
        self.inits.append(_int_tensor(name, codes, bits))
        s = self.const(np.array(scale, np.float32), "wscale")
        z = self.fresh("wzp")
        self.inits.append(_int_tensor(z, np.array(0), bits))
        return self.node("DequantizeLinear", [name, s, z])

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.node("Reshape", [x, self.const(np.array(shape, np.int64), "shape")])

    def model(self, x_shape: list[int], y: str, y_shape: list[int], name: str = "einsum_model") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                  [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 10 if self.opset >= 21 else 8
        onnx.checker.check_model(model)
        return model


def random_codes(rng: np.random.Generator, shape, bits: int) -> np.ndarray:
    hi = (1 << (bits - 1)) - 1
    return rng.integers(-hi, hi + 1, size=shape)


def tt_model(in_factors, out_factors, ranks, seed: int = 0, bits: int = 8, act_bits: int = 8,
             shuffle: bool = True, bias: bool = True, out_bits: int | None = None,
             bias_grid: int = 1) -> onnx.ModelProto:
    """A TT-matrix layer x [1, prod n] -> y [1, prod m] as ONE Einsum with scrambled letters/order.

    ``bias_grid``: the bias is on a grid that many times finer than the accumulator's.

    Cores G_k of shape (r_{k-1}, m_k, n_k, r_k) (r_0 = r_d = 1, kept as size-1 axes like TTLinear),
    each axis order permuted, the operands of the Einsum shuffled (activation anywhere).
    """
    rng = np.random.default_rng(seed)
    d = len(in_factors)
    r = [1] + list(ranks) + [1]
    letters = list(string.ascii_lowercase)
    if shuffle:
        rng.shuffle(letters)
    it = iter(letters)
    batch = next(it)
    n_l = [next(it) for _ in range(d)]
    m_l = [next(it) for _ in range(d)]
    r_l = [next(it) for _ in range(d + 1)]
    b = Builder(opset=21 if 4 in (bits, act_bits) or 16 in (bits, act_bits, out_bits or 8) else 17)
    in_scale, w_scale = 2.0 ** -4, 2.0 ** -(bits - 2)
    x = b.qdq("x", in_scale, act_bits)
    x = b.reshape(x, [1, *in_factors])
    terms, names = [], []
    for k in range(d):
        axes = [r_l[k], m_l[k], n_l[k], r_l[k + 1]]
        shape = [r[k], out_factors[k], in_factors[k], r[k + 1]]
        order = list(rng.permutation(4)) if shuffle else list(range(4))
        codes = random_codes(rng, shape, bits).transpose(order)
        terms.append("".join(axes[i] for i in order))
        names.append(b.weight(codes, w_scale, bits))
    x_term = batch + "".join(n_l)
    operands = [(x_term, x)] + list(zip(terms, names))
    if shuffle:
        operands = [operands[i] for i in rng.permutation(len(operands))]
    eq = ",".join(t for t, _ in operands) + "->" + batch + "".join(m_l)
    y = b.node("Einsum", [n for _, n in operands], equation=eq)
    m_total = math.prod(out_factors)
    y = b.reshape(y, [1, m_total])
    acc_scale = in_scale * w_scale ** d
    if bias:
        y = b.node("Add", [y, b.const((rng.integers(-2000, 2000, m_total) * acc_scale / bias_grid).astype(np.float32),
                                      "bias")])
    out_bits = out_bits or act_bits
    y = b.qdq(y, 2.0 ** -3 if out_bits > 4 else 2.0 ** 3, out_bits)
    return b.model([1, math.prod(in_factors)], y, [1, m_total], name=f"tt_{d}")


def chain_model(seed: int = 0, quantize_between: bool = True, transpose: bool = True) -> onnx.ModelProto:
    """Two Einsum nodes with Reshape/Transpose between them (one core each, TT style):

        x[1,4,6] -> Einsum "bij,ajr->biar" (core 1) -> [Transpose] -> Reshape -> [QDQ]
                 -> Einsum with core 2 -> y[1, 3*5]
    """
    rng = np.random.default_rng(seed)
    b = Builder()
    x = b.reshape(b.qdq("x", 2.0 ** -4), [1, 4, 6])
    g1 = b.weight(random_codes(rng, (5, 6, 3), 8), 2.0 ** -6)          # a, j, r
    t = b.node("Einsum", [x, g1], equation="bij,ajr->biar")            # [1, 4, 5, 3]
    if transpose:
        t = b.node("Transpose", [t], perm=[0, 2, 1, 3])                  # [1, 5, 4, 3]
        t = b.reshape(t, [1, 5, 12])
    else:
        t = b.reshape(t, [1, 4, 15])
    if quantize_between:
        t = b.qdq(t, 2.0 ** -2, 8)
    if transpose:
        g2 = b.weight(random_codes(rng, (12, 3), 8), 2.0 ** -6)         # (i r) -> c
        y = b.node("Einsum", [g2, t], equation="kc,bak->bac")           # [1, 5, 3]
        y = b.reshape(y, [1, 15])
    else:
        g2 = b.weight(random_codes(rng, (15, 2), 8), 2.0 ** -6)
        y = b.node("Einsum", [t, g2], equation="...k,kc->...c")         # [1, 4, 2]
        y = b.reshape(y, [1, 8])
    y = b.qdq(y, 2.0 ** -1)
    return b.model([1, 24], y, [1, 15 if transpose else 8], name="chain")


def low_rank_model(k: int = 24, n: int = 20, rank: int = 3, seed: int = 0, relu: bool = False) -> onnx.ModelProto:
    """x [1, K] -> MatMul V [K, r] -> MatMul U [r, N] -> + bias -> [Relu] -> QDQ (no quantizer between)."""
    rng = np.random.default_rng(seed)
    b = Builder()
    x = b.qdq("x", 2.0 ** -4)
    v = b.weight(random_codes(rng, (k, rank), 8), 2.0 ** -6)
    u = b.weight(random_codes(rng, (rank, n), 8), 2.0 ** -6)
    y = b.node("MatMul", [b.node("MatMul", [x, v]), u])
    y = b.node("Add", [y, b.const((rng.integers(-500, 500, n) * 2.0 ** -16).astype(np.float32), "bias")])
    if relu:
        y = b.node("Relu", [y])
    y = b.qdq(y, 2.0 ** -3, 8, signed=not relu)
    return b.model([1, k], y, [1, n], name="low_rank")


def tucker_model(seed: int = 0) -> onnx.ModelProto:
    """Tucker-2 style: x[1, 4, 5, 6] -> factor matrices on each mode and a core, one Einsum."""
    rng = np.random.default_rng(seed)
    b = Builder()
    x = b.reshape(b.qdq("x", 2.0 ** -4), [1, 4, 5, 6])
    u1 = b.weight(random_codes(rng, (4, 2), 8), 2.0 ** -6)        # i p
    u2 = b.weight(random_codes(rng, (5, 3), 8), 2.0 ** -6)        # j q
    core = b.weight(random_codes(rng, (2, 3, 6, 7), 8), 2.0 ** -6)   # p q k o
    y = b.node("Einsum", [u2, core, x, u1], equation="jq,pqko,zijk,ip->zo")
    y = b.reshape(y, [1, 7])
    y = b.qdq(y, 2.0 ** 1)
    return b.model([1, 120], y, [1, 7], name="tucker")


def per_channel_model(seed: int = 0) -> onnx.ModelProto:
    """A 2-core TT whose second core has per-output-index scales (axis = its m index)."""
    rng = np.random.default_rng(seed)
    b = Builder(opset=17)
    x = b.reshape(b.qdq("x", 2.0 ** -4), [1, 4, 6])
    g1 = b.weight(random_codes(rng, (3, 4, 2), 8), 2.0 ** -6)      # a i r
    codes = random_codes(rng, (2, 6, 5), 8)                        # r j c
    name = b.fresh("w")
    b.inits.append(_int_tensor(name, codes, 8))
    scales = (2.0 ** -rng.integers(4, 8, size=5)).astype(np.float32)
    s = b.const(scales, "wscale")
    z = b.fresh("wzp")
    b.inits.append(numpy_helper.from_array(np.zeros(5, np.int8), z))
    g2 = b.node("DequantizeLinear", [name, s, z], axis=2)
    y = b.node("Einsum", [x, g1, g2], equation="zij,air,rjc->zac")
    y = b.reshape(y, [1, 15])
    y = b.node("Add", [y, b.const((rng.integers(-50, 50, 15) * 2.0 ** -10).astype(np.float32), "bias")])
    y = b.qdq(y, 2.0 ** -2)
    return b.model([1, 24], y, [1, 15], name="per_channel")


# --------------------------------------------------------------------------- float ground truth

def float_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The model evaluated in float64 with numpy, one row of x per frame (quantizers round half to
    even and saturate, as ONNX defines them).  Exact for these models: every value is a small
    integer times a power of two, far below 2^53."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    outs = []
    for row in np.asarray(x, dtype=np.float64):
        env = dict(inits)
        env["x"] = row[None, :]
        for node in model.graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            ins = [env[n] if n else None for n in node.input]
            op = node.op_type
            if op == "QuantizeLinear":
                zp = ins[2]
                lo, hi = (-(1 << 7), 127) if zp.dtype == np.int8 else (0, 255) if zp.dtype == np.uint8 else \
                    (-(1 << 15), (1 << 15) - 1) if zp.dtype == np.int16 else (-8, 7)
                q = np.clip(np.rint(ins[0] / ins[1].astype(np.float64)) + zp.astype(np.float64), lo, hi)
                out = q
            elif op == "DequantizeLinear":
                scale = ins[1].astype(np.float64)
                zp = ins[2].astype(np.float64) if len(ins) > 2 else 0.0
                axis = attrs.get("axis", 1)
                if scale.ndim == 1 and scale.size > 1:
                    shape = [1] * ins[0].ndim
                    shape[axis] = scale.size
                    scale, zp = scale.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp
                out = (ins[0].astype(np.float64) - zp) * scale
            elif op == "Reshape":
                out = ins[0].reshape([int(v) for v in ins[1]])
            elif op == "Einsum":
                eq = attrs["equation"]
                out = np.einsum(eq.decode() if isinstance(eq, bytes) else eq, *[v.astype(np.float64) for v in ins])
            elif op == "Transpose":
                out = ins[0].transpose(attrs["perm"])
            elif op == "Add":
                out = ins[0] + ins[1].astype(np.float64)
            elif op == "MatMul":
                out = ins[0] @ ins[1].astype(np.float64)
            elif op == "Relu":
                out = np.maximum(ins[0], 0)
            else:
                raise NotImplementedError(op)
            env[node.output[0]] = out
        outs.append(env[model.graph.output[0].name].reshape(1, -1))
    return np.concatenate(outs)


def sweep_model(seed: int = 0) -> onnx.ModelProto:
    """One chain that covers the sweep axes in a single design (few RTL builds):

        x[24] int8 -> TT d=2 (4x6 -> 6x4, rank 3, int8 cores)             -> int16
                   -> TT d=3 (2x3x4 -> 2x4x2, ranks 1, 5, int4 cores)      -> int4
                   -> TT d=4 (2x2x2x2 -> 2x2x2x4, ranks 3, 2, 3)           -> int8
                   -> TT d=5 (2x2x2x2x2 -> 2x2x3x2x2, ranks 3, 1, 2, 3)    -> int8
                   -> Tucker (6x8 -> modes 3, 2 -> core -> 10)             -> int8
                   -> low rank 10 -> 3 -> 20 (two MatMuls)                 -> int8 [20]

    Letters, core axis orders and operand orders are scrambled as in :func:`tt_model`.
    """
    rng = np.random.default_rng(seed)
    b = Builder(opset=21)
    x = b.qdq("x", 2.0 ** -4, 8)

    def tt(x, in_f, out_f, ranks, w_bits, out_bits, out_scale):
        d = len(in_f)
        r = [1] + list(ranks) + [1]
        letters = list(string.ascii_lowercase)
        rng.shuffle(letters)
        it = iter(letters)
        z = next(it)
        n_l, m_l, r_l = [next(it) for _ in range(d)], [next(it) for _ in range(d)], [next(it) for _ in range(d + 1)]
        x = b.reshape(x, [1, *in_f])
        operands = [(z + "".join(n_l), x)]
        for k in range(d):
            axes = [r_l[k], m_l[k], n_l[k], r_l[k + 1]]
            order = list(rng.permutation(4))
            codes = random_codes(rng, [r[k], out_f[k], in_f[k], r[k + 1]], w_bits).transpose(order)
            operands.append(("".join(axes[i] for i in order), b.weight(codes, 2.0 ** -(w_bits - 1), w_bits)))
        operands = [operands[i] for i in rng.permutation(len(operands))]
        eq = ",".join(t for t, _ in operands) + "->" + z + "".join(m_l)
        y = b.reshape(b.node("Einsum", [n for _, n in operands], equation=eq), [1, math.prod(out_f)])
        return b.qdq(y, out_scale, out_bits)

    x = tt(x, [4, 6], [6, 4], [3], 8, 16, 2.0 ** -8)
    x = tt(x, [2, 3, 4], [2, 4, 2], [1, 5], 4, 4, 2.0 ** 1)
    x = tt(x, [2, 2, 2, 2], [2, 2, 2, 4], [3, 2, 3], 8, 8, 2.0 ** -4)
    x = tt(x, [2, 2, 2, 2, 2], [2, 2, 3, 2, 2], [3, 1, 2, 3], 8, 8, 2.0 ** -3)
    # Tucker on the 48 outputs seen as 6 x 8: factor matrices per mode, then a core to 10 outputs
    x = b.reshape(x, [1, 6, 8])
    u1 = b.weight(random_codes(rng, (6, 3), 8), 2.0 ** -6)
    u2 = b.weight(random_codes(rng, (8, 2), 8), 2.0 ** -6)
    core = b.weight(random_codes(rng, (3, 2, 10), 8), 2.0 ** -6)
    x = b.reshape(b.node("Einsum", [u1, x, core, u2], equation="ip,zij,pqo,jq->zo"), [1, 10])
    x = b.qdq(x, 2.0 ** -2, 8)
    v = b.weight(random_codes(rng, (10, 3), 8), 2.0 ** -6)
    u = b.weight(random_codes(rng, (3, 20), 8), 2.0 ** -6)
    y = b.node("MatMul", [b.node("MatMul", [x, v]), u])
    y = b.node("Add", [y, b.const((rng.integers(-300, 300, 20) * 2.0 ** -14).astype(np.float32), "bias")])
    y = b.qdq(y, 2.0 ** -2, 8)
    return b.model([1, 24], y, [1, 20], name="sweep")
