"""Fuzz form ``conv_qdq``: small convolutional networks as torch exports them and onnxruntime's
quantize_static quantizes them.

x [1, C, H, W] or [1, C, L] -> 1..3 layers, each one of

* Conv (kernel 1..4 per axis, stride 1..3, padding below the window's extent, dilation 1..2,
  groups 1, a divisor of both channel counts, or depthwise), BatchNorm (folded by the exporter,
  or kept as a node: ``bn_node``), ReLU;
* a residual block: a same-padded stride-1 Conv C -> C (odd kernel, dilation 1..2) [+ BatchNorm]
  [+ ReLU] added to its input [then ReLU];
* MaxPool or AveragePool (padding counted in the average), kernel 1..3, stride 1..3;

then a tail: nothing, GlobalAveragePool, GlobalAveragePool + Flatten + Linear, or Flatten +
Linear.  Channels 1..8, spatial sizes 1..7 (primes and 1 included, not a 1x1 input); activations
int8 or uint8 (zero points), weights int8 or int4, per tensor or per channel, the scales
quantize_static chose or (``pow2``) the same rounded to powers of two.

BatchNorm is folded by the exporter (torch's eval-mode export); ``bn_node`` (not drawn) keeps it
as a node, which quantize_static then puts after a quantizer, where einhls refuses it by name
("BatchNormalization is supported right after a Conv / MatMul").
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .forms import Built, Form, register
from .forms_attention import export_qdq, snap_scales_to_pow2

CHANNELS = (1, 2, 3, 4, 5, 7, 8)
SPATIAL = (1, 2, 3, 4, 5, 6, 7)
TAILS = ("none", "gap", "gap_linear", "flatten_linear")
#: ONNX ops whose output quantizer closes an op that rounds (the ReLU quantize_static may leave)
COMPUTING = ("Conv", "AveragePool", "GlobalAveragePool", "Gemm", "MatMul", "Relu", "Add")


def _extent(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1


def _out(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - _extent(kernel, dilation)) // stride + 1


def groups_of(kind: str, c_in: int, c_out: int) -> tuple[int, int]:
    """(groups, output channels) for a group kind at these channel counts."""
    if kind == "depthwise":
        return c_in, c_in
    if kind == "some":
        common = [g for g in range(2, c_in + 1) if c_in % g == 0 and c_out % g == 0]
        return (common[-1], c_out) if common else (1, c_out)
    return 1, c_out


def shapes(spec: dict) -> list[tuple[int, int, int]] | None:
    """(C, H, W) after the input and after every layer, or None when a layer does not fit."""
    c, h, w = spec["channels"], spec["height"], spec["width"]
    out = [(c, h, w)]
    for layer in spec["layers"]:
        kernel, stride, pad, dilation = layer["kernel"], layer.get("stride", [1, 1]), layer["pad"], \
            layer.get("dilation", [1, 1])
        if spec["rank"] == 1 and (kernel[0], stride[0], pad[0], dilation[0]) != (1, 1, 0, 1):
            return None
        if any(p >= _extent(k, d) for p, k, d in zip(pad, kernel, dilation)):
            return None
        if layer["kind"] in ("maxpool", "avgpool") and any(2 * p > k for p, k in zip(pad, kernel)):
            return None   # torch pads a pool by at most half its kernel
        if layer["kind"] == "conv":
            _, c = groups_of(layer["groups"], c, layer["out"])
        h, w = (_out(h, kernel[0], stride[0], pad[0], dilation[0]), _out(w, kernel[1], stride[1], pad[1], dilation[1]))
        if h < 1 or w < 1:
            return None
        out.append((c, h, w))
    return out


def _draw_layer(rng: np.random.Generator, rank: int, h: int, w: int) -> dict:
    kind = str(rng.choice(["conv", "conv", "conv", "residual", "maxpool", "avgpool"]))

    def axis(size: int, pool: bool) -> tuple[int, int, int, int]:
        kernel = int(rng.integers(1, min(4, size + 2) + 1)) if not pool else int(rng.integers(1, 4))
        dilation = int(rng.choice([1, 1, 2])) if not pool and kernel > 1 else 1
        stride = int(rng.choice([1, 1, 2, 3]))
        limit = (kernel // 2) if pool else _extent(kernel, dilation) - 1
        pad = int(rng.integers(0, limit + 1)) if rng.random() < 0.6 else 0
        return kernel, stride, pad, dilation

    if kind == "residual":
        kernel = int(rng.choice([1, 3])) if rank == 1 or h > 1 else 1
        kw = int(rng.choice([1, 3, 5]))
        dil = int(rng.choice([1, 2]))
        ks = [1 if rank == 1 else kernel, kw]
        dilation = [1 if ks[0] == 1 else dil, 1 if ks[1] == 1 else dil]
        return {"kind": "residual", "kernel": ks, "dilation": dilation,
                "pad": [d * (k - 1) // 2 for k, d in zip(ks, dilation)],
                "bn": bool(rng.random() < 0.4), "relu": bool(rng.random() < 0.5),
                "relu_after": bool(rng.random() < 0.5)}
    pool = kind != "conv"
    across = axis(w, pool)
    down = axis(h, pool) if rank == 2 else (1, 1, 0, 1)
    layer = {"kind": kind, "kernel": [down[0], across[0]], "stride": [down[1], across[1]],
             "pad": [down[2], across[2]], "dilation": [down[3], across[3]]}
    if kind == "conv":
        layer.update({"out": int(rng.choice(CHANNELS)), "groups": str(rng.choice(["one", "one", "some", "depthwise"])),
                      "bn": bool(rng.random() < 0.4), "relu": bool(rng.random() < 0.6)})
    return layer


def ort_tolerance(spec: dict) -> int | None:
    """Output steps allowed between the integer reference and onnxruntime's float run.  Powers of
    two scales (``pow2``) and no average over a count that is not a power of two: onnxruntime's
    arithmetic is exact, so 0.  Otherwise each requantization may round the other way (the integer
    multiplier approximates the scale ratio; onnxruntime's float32 divides), which is one step for a
    model with one requantizing layer; later layers multiply a code off by their weights (seed 7
    case 3: one code after an AveragePool became 3 steps after a Conv), so longer chains are not
    compared; the first layer's output is, code for code (``probes``), and the bit-exact checks
    against C-sim and RTL sim still run."""
    sizes = shapes(spec) or []
    averages = [layer["kernel"][0] * layer["kernel"][1] for layer in spec["layers"] if layer["kind"] == "avgpool"]
    if spec["tail"].startswith("gap") and sizes:
        averages.append(sizes[-1][1] * sizes[-1][2])
    exact = spec.get("pow2") and all(n & (n - 1) == 0 for n in averages)
    if exact:
        return 0
    requantizing = len(spec["layers"]) + (spec["tail"] != "none") + (spec["tail"] == "gap_linear")
    return 1 if requantizing == 1 else None


@register
class ConvQdq(Form):
    name = "conv_qdq"

    def sample(self, rng: np.random.Generator) -> dict:
        rank = int(rng.choice([1, 2]))
        spec = {"form": self.name, "seed": int(rng.integers(2**31)), "rank": rank,
                "channels": int(rng.choice(CHANNELS)), "height": int(rng.choice(SPATIAL)) if rank == 2 else 1,
                "width": int(rng.choice(SPATIAL)), "layers": [], "tail": str(rng.choice(TAILS)),
                "classes": int(rng.choice(CHANNELS)),
                "activation": str(rng.choice(["QInt8", "QUInt8"])), "weight": str(rng.choice(["QInt8", "QInt4"])),
                "per_channel": bool(rng.random() < 0.6), "pow2": bool(rng.random() < 0.5)}
        if spec["height"] * spec["width"] < 2:
            # one pixel is a plain vector, not a convolution stream: refused by name ("does not
            # stream pixel by pixel"), a limitation the README states
            spec["width"] = 2
        for _ in range(int(rng.integers(1, 4))):
            for _attempt in range(20):
                _, h, w = shapes(spec)[-1]
                layer = _draw_layer(rng, rank, h, w)
                if shapes({**spec, "layers": spec["layers"] + [layer]}) is not None:
                    spec["layers"].append(layer)
                    break
        if not spec["layers"]:
            spec["layers"].append({"kind": "conv", "kernel": [1, 1], "stride": [1, 1], "pad": [0, 0],
                                   "dilation": [1, 1], "out": 2, "groups": "one", "bn": False, "relu": False})
        return spec

    def build(self, spec: dict) -> Built:
        import torch

        torch.manual_seed(spec["seed"])
        module = _conv_module(spec)
        shape = (1, spec["channels"], spec["height"], spec["width"]) if spec["rank"] == 2 else \
            (1, spec["channels"], spec["width"])
        model = export_qdq(module, shape, spec["seed"] % 1000, spec["activation"], spec["weight"],
                           spec["per_channel"], preserve_batchnorm=spec.get("bn_node", False))
        if spec.get("pow2"):
            model = snap_scales_to_pow2(model)
        # the first computing layer's quantizer: everything before it (windows, MaxPool) is exact,
        # so it is one rounding from onnxruntime at most
        made_by = {out: n for n in model.graph.node for out in n.output}
        first = next((n.name for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in made_by
                      and made_by[n.input[0]].op_type in COMPUTING), None)
        probes = {first: 0 if ort_tolerance(spec) == 0 else 1} if first else {}
        return Built(model, model, ort_tolerance(spec), probes)

    def smaller(self, spec: dict) -> Iterator[dict]:
        candidates = []
        layers = spec["layers"]
        for drop in range(len(layers)):
            if len(layers) > 1:
                candidates.append({**spec, "layers": layers[:drop] + layers[drop + 1:]})
        if spec["tail"] != "none":
            candidates.append({**spec, "tail": "none"})
        for key in ("channels", "height", "width", "classes"):
            for value in sorted({1, spec[key] // 2, spec[key] - 1} - {0, spec[key]}):
                candidates.append({**spec, key: value})
        for i, layer in enumerate(layers):
            for key, plain in (("bn", False), ("relu", False), ("groups", "one")):
                if key in layer and layer[key] != plain:
                    candidates.append({**spec, "layers": layers[:i] + [{**layer, key: plain}] + layers[i + 1:]})
        for key, plain in (("per_channel", False), ("pow2", False)):
            if spec.get(key, plain) != plain:
                candidates.append({**spec, key: plain})
        for candidate in candidates:
            sizes = shapes(candidate)
            if sizes is not None and sizes[0][1] * sizes[0][2] > 1:
                yield candidate

    @staticmethod
    def size(spec: dict) -> int:
        sizes = shapes(spec) or [(8, 7, 7)]
        total = 0
        for layer, (c, h, w), (n, oh, ow) in zip(spec["layers"], sizes, sizes[1:]):
            taps = layer["kernel"][0] * layer["kernel"][1]
            total += oh * ow * taps * c * (n if layer["kind"] in ("conv", "residual") else 1)
        return total + sizes[-1][0] * sizes[-1][1] * sizes[-1][2] * spec["classes"]


def _conv_module(spec: dict):
    import torch
    from torch import nn

    rank = spec["rank"]
    conv_cls, bn_cls, max_cls, avg_cls = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d) if rank == 2 else \
        (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d)

    def geometry(layer: dict, key: str) -> tuple[int, ...] | int:
        values = layer[key] if key != "stride" else layer.get("stride", [1, 1])
        return tuple(values) if rank == 2 else values[1]

    def batchnorm(channels: int) -> nn.Module:
        norm = bn_cls(channels)
        with torch.no_grad():   # statistics that are not the identity
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
        return norm

    class Residual(nn.Module):
        def __init__(self, channels: int, layer: dict) -> None:
            super().__init__()
            self.conv = conv_cls(channels, channels, geometry(layer, "kernel"), padding=geometry(layer, "pad"),
                                 dilation=geometry(layer, "dilation"))
            self.norm = batchnorm(channels) if layer["bn"] else nn.Identity()
            self.relu, self.relu_after = layer["relu"], layer["relu_after"]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm(self.conv(x))
            y = x + (torch.relu(h) if self.relu else h)
            return torch.relu(y) if self.relu_after else y

    class Tail(nn.Module):
        def __init__(self, kind: str, features: int, classes: int) -> None:
            super().__init__()
            self.kind = kind
            self.fc = nn.Linear(features, classes) if kind.endswith("linear") else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.kind.startswith("gap"):
                x = torch.nn.functional.adaptive_avg_pool2d(x, 1) if rank == 2 else \
                    torch.nn.functional.adaptive_avg_pool1d(x, 1)
            if self.fc is not None:
                x = self.fc(torch.flatten(x, 1))
            return x

    sizes = shapes(spec)
    layers: list[nn.Module] = []
    for layer, (c, _, _) in zip(spec["layers"], sizes):
        if layer["kind"] == "residual":
            layers.append(Residual(c, layer))
        elif layer["kind"] == "conv":
            groups, n = groups_of(layer["groups"], c, layer["out"])
            layers.append(conv_cls(c, n, geometry(layer, "kernel"), stride=geometry(layer, "stride"),
                                   padding=geometry(layer, "pad"), dilation=geometry(layer, "dilation"),
                                   groups=groups))
            if layer["bn"]:
                layers.append(batchnorm(n))
            if layer["relu"]:
                layers.append(nn.ReLU())
        else:
            pool = max_cls if layer["kind"] == "maxpool" else avg_cls
            extra = {} if layer["kind"] == "maxpool" else {"count_include_pad": True}
            layers.append(pool(geometry(layer, "kernel"), stride=geometry(layer, "stride"),
                               padding=geometry(layer, "pad"), **extra))
    c, h, w = sizes[-1]
    features = c if spec["tail"].startswith("gap") else c * h * w
    layers.append(Tail(spec["tail"], features, spec["classes"]))
    return nn.Sequential(*layers)
