"""Fuzz form ``conv_qonnx``: a convolution written with QONNX ``Quant`` nodes, as Brevitas / QONNX
export it, with the BatchNormalization kept as a node (einhls folds it into the accumulator).

x [1, C, H, W] or [1, C, L] -> Quant -> Conv (Quant'ed weight, kernel / stride / padding /
dilation / groups drawn as in conv_qdq, optional bias) [-> BatchNormalization] [-> Relu] -> Quant
(2..8 bits, signed or not, zero points odd or even) [-> MaxPool or AveragePool -> Quant] -> y.
Scales are powers of two or not.  Each model is also written with its quantizers in float ONNX ops
for onnxruntime (``quant_pair``).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
from onnx import helper

from .forms import QONNX_DOMAIN, Built, Form, Graph, both, both_const, draw_scale, int_range, quant_pair, register
from .forms_conv import CHANNELS, SPATIAL, _draw_layer, groups_of, shapes


def _act(rng: np.random.Generator, pow2: bool, relu: bool) -> dict:
    bits = int(rng.integers(2, 9))
    signed = bool(rng.random() < 0.5) and not relu
    lo, hi = int_range(bits, signed)
    zero = 0 if rng.random() < 0.5 else int(rng.integers(lo // 4, hi // 4 + 1))
    return {"bits": bits, "signed": signed, "zero": zero, "scale": draw_scale(rng, pow2, -6, -1)}


@register
class QonnxConv(Form):
    name = "conv_qonnx"

    def sample(self, rng: np.random.Generator) -> dict:
        rank = int(rng.choice([1, 2]))
        pow2 = bool(rng.random() < 0.6)
        spec = {"form": self.name, "seed": int(rng.integers(2**31)), "rank": rank, "pow2": pow2,
                "channels": int(rng.choice(CHANNELS)), "height": int(rng.choice(SPATIAL)) if rank == 2 else 1,
                "width": int(rng.choice(SPATIAL)), "tail": "none", "classes": 1,
                "w_bits": int(rng.integers(2, 9)), "per_channel": bool(rng.random() < 0.5),
                "bias": bool(rng.random() < 0.7), "bn": bool(rng.random() < 0.4), "relu": bool(rng.random() < 0.5),
                "input": _act(rng, pow2, False)}
        if spec["height"] * spec["width"] < 2:
            spec["width"] = 2
        spec["conv_out"] = _act(rng, pow2, spec["relu"])
        for _attempt in range(20):
            conv = _draw_layer(rng, rank, spec["height"], spec["width"])
            if conv["kind"] == "conv" and shapes({**spec, "layers": [conv]}) is not None:
                break
        else:
            conv = {"kind": "conv", "kernel": [1, 1], "stride": [1, 1], "pad": [0, 0], "dilation": [1, 1],
                    "out": 2, "groups": "one", "bn": False, "relu": False}
        layers = [conv]
        if rng.random() < 0.5:
            _, h, w = shapes({**spec, "layers": layers})[-1]
            for _attempt in range(20):
                pool = _draw_layer(rng, rank, h, w)
                if pool["kind"] in ("maxpool", "avgpool") and shapes({**spec, "layers": layers + [pool]}) is not None:
                    layers.append(pool)
                    spec["pool_out"] = _act(rng, pow2, False)
                    break
        spec["layers"] = layers
        return spec

    def build(self, spec: dict) -> Built:
        rng = np.random.default_rng(spec["seed"])
        q, f = Graph(), Graph()
        rank = spec["rank"]
        a = spec["input"]
        xq, xf = quant_pair(q, f, "x", "x", a["scale"], a["zero"], a["bits"], a["signed"], stem="x_q")
        (c, h, w), (n, oh, ow) = shapes(spec)[:2]
        conv = spec["layers"][0]
        groups, n = groups_of(conv["groups"], c, conv["out"])

        def axes(values: list[int]) -> list[int]:
            return list(values) if rank == 2 else [values[1]]

        kernel = axes(conv["kernel"])
        lo, hi = int_range(spec["w_bits"], True)
        codes = rng.integers(lo, hi + 1, size=(n, c // groups, *kernel))
        scales = np.array([draw_scale(rng, spec["pow2"], -6, -2) for _ in range(n if spec["per_channel"] else 1)],
                          dtype=np.float32)
        w_scale = scales.reshape((n,) + (1,) * (1 + rank)) if spec["per_channel"] else scales.reshape(())
        weight = (codes * w_scale).astype(np.float32)
        wq, wf = quant_pair(q, f, q.const(weight, "w"), f.const(weight, "w"), w_scale, 0.0, spec["w_bits"], True,
                            stem="conv_wq")
        inputs_q, inputs_f = [xq, wq], [xf, wf]
        if spec["bias"]:
            acc = a["scale"] * np.broadcast_to(scales, (n,))
            bq, bf = both_const(q, f, (rng.integers(-4 * hi, 4 * hi + 1, size=n) * acc).astype(np.float32), "b")
            inputs_q.append(bq)
            inputs_f.append(bf)
        attrs = {"kernel_shape": kernel, "strides": axes(conv["stride"]), "dilations": axes(conv["dilation"]),
                 "pads": axes(conv["pad"]) * 2, "group": groups}
        yq, yf = both(q, f, "Conv", inputs_q, inputs_f, **attrs)
        if spec["bn"]:
            stats = [rng.uniform(0.5, 1.5, n), rng.uniform(-0.3, 0.3, n), rng.uniform(-0.5, 0.5, n),
                     rng.uniform(0.5, 2.0, n)]
            consts = [both_const(q, f, s.astype(np.float32), stem) for s, stem in zip(stats, ("gamma", "beta", "mean", "var"))]
            yq, yf = both(q, f, "BatchNormalization", [yq, *[c[0] for c in consts]], [yf, *[c[1] for c in consts]])
        if spec["relu"]:
            yq, yf = both(q, f, "Relu", [yq], [yf])
        o = spec["conv_out"]
        yq, yf = quant_pair(q, f, yq, yf, o["scale"], o["zero"], o["bits"], o["signed"], stem="conv_q")
        probes = {}
        if len(spec["layers"]) > 1:
            pool = spec["layers"][1]
            op = "MaxPool" if pool["kind"] == "maxpool" else "AveragePool"
            extra = {"count_include_pad": 1} if op == "AveragePool" else {}
            yq, yf = both(q, f, op, [yq], [yf], kernel_shape=axes(pool["kernel"]), strides=axes(pool["stride"]),
                          pads=axes(pool["pad"]) * 2, **extra)
            p = spec["pool_out"]
            yq, yf = quant_pair(q, f, yq, yf, p["scale"], p["zero"], p["bits"], p["signed"], stem="pool_q")
        x_shape = [1, c, h, w] if rank == 2 else [1, c, w]
        last = shapes(spec)[-1]
        y_shape = [1, *last] if rank == 2 else [1, last[0], last[2]]
        opsets = [helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
        quantized = q.model(x_shape, yq, y_shape, opsets, "fuzz_conv_qonnx")
        floating = f.model(x_shape, yf, y_shape, opsets[:1], "fuzz_conv_float")
        return Built(quantized, floating, self.tolerance(spec), probes)

    @staticmethod
    def tolerance(spec: dict) -> int | None:
        """0 where onnxruntime's arithmetic is exact (powers of two, no BatchNorm, no average over a
        count that is not a power of two, sums within float32's 24 bits); 1 for the Conv alone
        otherwise; a pool after an inexact Conv is not compared (a code off before it moves the
        average by up to one code, then rounded again)."""
        taps = [p["kernel"][0] * p["kernel"][1] for p in spec["layers"][1:] if p["kind"] == "avgpool"]
        conv = spec["layers"][0]
        terms = spec["channels"] * conv["kernel"][0] * conv["kernel"][1]
        exact_sums = terms * 2 ** (spec["input"]["bits"] + spec["w_bits"]) * 8 < 2**24
        if spec["pow2"] and not spec["bn"] and exact_sums and all(t & (t - 1) == 0 for t in taps):
            return 0
        return 1 if len(spec["layers"]) == 1 else None

    def smaller(self, spec: dict) -> Iterator[dict]:
        candidates = []
        if len(spec["layers"]) > 1:
            candidates.append({**spec, "layers": spec["layers"][:1]})
        for key in ("channels", "height", "width"):
            for value in sorted({1, spec[key] // 2, spec[key] - 1} - {0, spec[key]}):
                candidates.append({**spec, key: value})
        for key in ("bn", "relu", "bias", "per_channel"):
            if spec[key]:
                candidates.append({**spec, key: False})
        conv = spec["layers"][0]
        if conv["groups"] != "one":
            candidates.append({**spec, "layers": [{**conv, "groups": "one"}] + spec["layers"][1:]})
        for candidate in candidates:
            sizes = shapes(candidate)
            if sizes is not None and sizes[0][1] * sizes[0][2] > 1:
                yield candidate

    @staticmethod
    def size(spec: dict) -> int:
        sizes = shapes(spec) or [(8, 7, 7), (8, 7, 7)]
        (c, _, _), (n, oh, ow) = sizes[:2]
        conv = spec["layers"][0]
        return oh * ow * conv["kernel"][0] * conv["kernel"][1] * c * n + 1
