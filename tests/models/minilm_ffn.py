"""One MiniLM feed-forward block as QDQ ONNX: MatMul 384 -> 1536, Relu, MatMul 1536 -> 384.

int8 weights (random codes, fixed seed) and power-of-two scales; 1.18 MB of weights, more than a
KV260's block RAM holds at 80% (144 BRAM36 = 5.3 Mb) and what its UltraRAM (64 URAM288, 18.9 Mb)
is for.  MiniLM's GELU is a Relu here (the weights, not the activation, are what this model tests).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .qdq_helper import QdqBuilder, save


def minilm_ffn(path: Path, hidden: int = 384, inner: int = 1536, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    b = QdqBuilder([1, hidden])
    x = b.qdq("x", 2**-4)
    x = b.node("MatMul", [x, b.weight(rng.integers(-127, 128, size=(hidden, inner)), 2**-9)], "ffn_up")
    x = b.node("Relu", [x], "ffn_act")
    x = b.qdq(x, 2**-4, zero_point=-128)
    x = b.node("MatMul", [x, b.weight(rng.integers(-127, 128, size=(inner, hidden)), 2**-10)], "ffn_down")
    x = b.qdq(x, 2**-3)
    return save(b.model(x), path)
