"""Fuzz form ``attention_qdq``: multi-head self-attention as torch exports it and onnxruntime's
quantize_static quantizes it.

x [1, L, C] (C = H * d) -> Q, K, V Linear -> Reshape [1, L, H, d] -> Transpose -> MatMul(Q, K^T)
-> scale (Div or Mul by sqrt(d)) -> Softmax -> MatMul(P, V) -> Transpose -> Reshape [1, L, C]
-> output Linear [-> + x (residual)] [-> LayerNorm] -> y, with heads H 1..3, head dim d 1..7
(primes included), tokens L 1..7; activations int8 or uint8 (zero points) and for some specs 4 bits
(QInt4 / QUInt4), weights int8 or int4, per tensor or per channel, the scales quantize_static
chose or (``pow2``) the same rounded to powers of two.  K^T is written the two ways
exporters write it: one Transpose (0, 2, 3, 1), or the head split (0, 2, 1, 3) followed by a
transpose of the last two axes (HF BERT's ``key.transpose(-1, -2)``).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from .forms import Built, Form, register, without_inner_quantizers

HEAD_DIMS = (1, 2, 3, 4, 5, 7)

#: how far (output steps) the integer reference may be from onnxruntime running the float model
#: between the quantizers (inner quantizers of the Softmax / LayerNorm islands removed), with one
#: token: the Softmax of one score is 1 whatever the unit's approximation, so only the
#: requantizations differ (non-power-of-two scales: a code off in Q/K/V or the output Linear, one
#: more step through the LayerNorm).  With more tokens the Softmax unit is within one step of its
#: island, and one step of P moves the context by up to L * |V| / context scale, then through the
#: output Linear and a LayerNorm (over 2 features: 18 steps from one code, seed 101 case 0), so
#: the output is not compared.  With power-of-two scales (``pow2``) onnxruntime's arithmetic up to
#: the scores Q K^T (projections, head split, key transpose, the product) is exact, so the scores
#: are compared code for code, and must be equal.  (Non-power-of-two scales: a code of Q one off
#: after a requantization moved the scores by 2 codes, seed 7 case 9, so they are not compared
#: there.)  The bit-exact checks between reference, C-sim and RTL sim are the exact ones.
ONE_TOKEN_STEPS = 2


@register
class AttentionQdq(Form):
    name = "attention_qdq"

    def sample(self, rng: np.random.Generator) -> dict:
        low_bits = bool(rng.random() < 0.25)
        spec = {"form": self.name, "seed": int(rng.integers(2**31)), "heads": int(rng.integers(1, 4)),
                "head_dim": int(rng.choice(HEAD_DIMS)), "tokens": int(rng.integers(1, 8)),
                "activation": str(rng.choice(["QInt4", "QUInt4"] if low_bits else ["QInt8", "QUInt8"])),
                "weight": str(rng.choice(["QInt8", "QInt4"])), "per_channel": bool(rng.random() < 0.6),
                "key_transpose": str(rng.choice(["one", "two"])), "scale_op": str(rng.choice(["div", "mul"])),
                "residual": bool(rng.random() < 0.4), "layernorm": bool(rng.random() < 0.4),
                "spread": float(rng.choice([0.5, 1.0, 2.0])), "pow2": bool(rng.random() < 0.5)}
        if spec["heads"] * spec["head_dim"] < 2:   # a LayerNorm of one feature is refused by name
            spec["layernorm"] = False
        return spec

    def build(self, spec: dict) -> Built:
        import torch

        torch.manual_seed(spec["seed"])
        module = _attention_module(spec)
        shape = (1, spec["tokens"], spec["heads"] * spec["head_dim"])
        model = export_qdq(module, shape, spec["seed"] % 1000, spec["activation"], spec["weight"],
                           spec["per_channel"])
        if spec.get("pow2"):
            model = snap_scales_to_pow2(model)
        tolerance = ONE_TOKEN_STEPS if spec["tokens"] == 1 else None
        probes = {scores_quantizer(model): 0} if spec.get("pow2") else {}
        return Built(model, without_inner_quantizers(model), tolerance, probes)

    def smaller(self, spec: dict) -> Iterator[dict]:
        for key, plain in (("layernorm", False), ("residual", False), ("per_channel", False),
                           ("key_transpose", "one"), ("scale_op", "div"), ("pow2", False)):
            if spec.get(key, plain) != plain:
                yield {**spec, key: plain}
        for key in ("heads", "head_dim", "tokens"):
            for value in sorted({1, spec[key] // 2, spec[key] - 1} - {0, spec[key]}):
                smaller = {**spec, key: value}
                if not smaller["layernorm"] or smaller["heads"] * smaller["head_dim"] >= 2:
                    yield smaller

    @staticmethod
    def size(spec: dict) -> int:
        width = spec["heads"] * spec["head_dim"]
        return 4 * width * width * spec["tokens"] + spec["heads"] * spec["tokens"] ** 2 * spec["head_dim"]


def scores_quantizer(model) -> str:
    """The QuantizeLinear after the first MatMul of two activations (Q K^T)."""
    weights = {i.name for i in model.graph.initializer}
    made_by = {out: n for n in model.graph.node for out in n.output}

    def is_weight(name: str) -> bool:
        node = made_by.get(name)
        return name in weights or (node is not None and node.op_type == "DequantizeLinear" and node.input[0] in weights)

    product = next(n for n in model.graph.node if n.op_type == "MatMul" and not any(map(is_weight, n.input)))
    return next(n.name for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == product.output[0])


def _attention_module(spec: dict):
    import torch
    from torch import nn

    heads, depth, tokens = spec["heads"], spec["head_dim"], spec["tokens"]
    width = heads * depth

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
            with torch.no_grad():   # spread the scores so the Softmax is not flat
                for linear in (self.q, self.k):
                    linear.weight.mul_(spec["spread"] * 2.0)
            self.norm = nn.LayerNorm(width) if spec["layernorm"] else None
            if self.norm is not None:
                with torch.no_grad():
                    self.norm.weight.uniform_(0.5, 1.5)
                    self.norm.bias.uniform_(-0.5, 0.5)

        def heads_of(self, t: torch.Tensor) -> torch.Tensor:
            return t.reshape(1, tokens, heads, depth).permute(0, 2, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, v = self.heads_of(self.q(x)), self.heads_of(self.v(x))
            if spec["key_transpose"] == "one":
                kt = self.k(x).reshape(1, tokens, heads, depth).permute(0, 2, 3, 1)
            else:
                kt = self.heads_of(self.k(x)).transpose(-1, -2)
            scores = q @ kt
            scores = scores / math.sqrt(depth) if spec["scale_op"] == "div" else scores * (1.0 / math.sqrt(depth))
            context = torch.softmax(scores, dim=-1) @ v
            y = self.o(context.permute(0, 2, 1, 3).reshape(1, tokens, width))
            if spec["residual"]:
                y = x + y
            return self.norm(y) if self.norm is not None else y

    return Attention()


def export_qdq(module, shape: tuple[int, ...], seed: int, activation: str, weight: str, per_channel: bool,
               opset: int = 17, preserve_batchnorm: bool = False):
    """torch.onnx.export then quantize_static (QDQ) with the given activation / weight types,
    calibrated on 32 seeded normal samples (sigma 2); 4-bit types need opset 21 for the QDQ nodes
    (quantize_static raises the opset itself).  ``preserve_batchnorm``: export without the eval-mode
    folding of BatchNorm into the Conv before it, so the model keeps BatchNormalization nodes."""
    import logging
    import tempfile
    import warnings
    from pathlib import Path

    import onnx
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)
    samples = iter([{"x": rng.normal(0, 2.0, size=shape).astype(np.float32)} for _ in range(32)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(samples, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)   # quantize_static's advice on pre-processing, once per model
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            float_path, path = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
            with torch.no_grad():
                torch.onnx.export(module.eval(), (torch.zeros(*shape),), str(float_path), input_names=["x"],
                                  output_names=["y"], opset_version=opset, dynamo=False,
                                  training=torch.onnx.TrainingMode.PRESERVE if preserve_batchnorm
                                  else torch.onnx.TrainingMode.EVAL)
            quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=getattr(QuantType, activation),
                            weight_type=getattr(QuantType, weight),
                            extra_options={"ForceQuantizeNoInputCheck": True})
            return onnx.load(str(path))
    finally:
        root.setLevel(level)


def snap_scales_to_pow2(model):
    """``model`` with the scale of every QuantizeLinear / DequantizeLinear rounded to the nearest
    power of two (in log2): a different valid QDQ model, on which onnxruntime's float arithmetic is
    exact (products and small sums of codes times powers of two), so the integer reference must
    equal it code for code wherever no division by a count that is not a power of two (an average)
    rounds."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    scales = {n.input[1] for n in out.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    for i, init in enumerate(out.graph.initializer):
        if init.name in scales:
            value = numpy_helper.to_array(init).astype(np.float64)
            snapped = np.exp2(np.round(np.log2(value))).astype(np.float32)
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(snapped, init.name))
    return out
