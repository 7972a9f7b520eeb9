"""Requantization: the one rounding and saturation rule of einhls.

    y = clamp( rne(value * M, shift) + zero_point_out, lo, hi )

``rne(p, s)`` divides the integer p by 2**s and rounds half to even, the rule of ONNX
QuantizeLinear, so power-of-two scales give exactly the float model's result.  ``lo`` is the output
type's minimum, raised to the output zero point when a ReLU is fused.  ``M`` is an unsigned integer
multiplier (per channel or per tensor) and ``shift`` one non-negative shift per op; the reference,
the HLS C++ and the Verilog all implement this formula and nothing else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MULTIPLIER_BITS = 16  # significant bits kept in M (at least; wide outputs get more, see below)
PRODUCT_BITS_MAX = 62  # value * M must fit an int64 in the reference


@dataclass(frozen=True)
class RequantParams:
    multiplier: tuple[int, ...]  # one per output channel (length 1 when per-tensor)
    shift: int
    zero_point: int
    lo: int
    hi: int

    @property
    def per_channel(self) -> bool:
        return len(self.multiplier) > 1

    @property
    def multiplier_bits(self) -> int:
        return max(max(self.multiplier).bit_length(), 1)

    def multiplier_for(self, channels: int) -> np.ndarray:
        m = np.asarray(self.multiplier, dtype=np.int64)
        return np.broadcast_to(m, (channels,)).copy() if m.size == 1 else m

    def to_json(self) -> dict:
        return {"multiplier": list(self.multiplier), "shift": self.shift,
                "zero_point": self.zero_point, "lo": self.lo, "hi": self.hi}

    @staticmethod
    def from_json(d: dict) -> "RequantParams":
        return RequantParams(tuple(d["multiplier"]), d["shift"], d["zero_point"], d["lo"], d["hi"])


def multiplier_and_shift(real: np.ndarray | float, significant_bits: int = MULTIPLIER_BITS,
                         max_shift: int = 62) -> tuple[tuple[int, ...], int]:
    """Integer multipliers M and one shift with M / 2**shift ~= real (exact for powers of two).

    Keeps ``significant_bits`` of the largest multiplier, then drops common trailing zero bits so
    a power-of-two scale becomes M = 1 and a pure shift.
    """
    values = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if np.any(values <= 0) or not np.all(np.isfinite(values)):
        raise ValueError(f"requantization multiplier must be positive and finite, got {values}")
    top = math.floor(math.log2(float(values.max())))
    shift = max(0, min(max_shift, significant_bits - 1 - top))
    scaled = np.maximum(np.round(values * 2.0**shift), 1.0)
    # an int64 array (a BERT-base layer has 3,072 channels); Python integers beyond int64's range
    array = scaled.astype(np.int64) if scaled.max() < 2.0**62 else np.array([int(v) for v in scaled], dtype=object)
    while shift > 0 and not np.any(array % 2):
        array //= 2
        shift -= 1
    if np.all(array == array[0]):
        array = array[:1]
    return tuple(int(m) for m in array), shift


def multiplier_bits_for(out_bits: int, value_bits: int) -> int:
    """Significant bits of M: 8 more than the output has (so rounding M moves an output by well under
    one step), at least MULTIPLIER_BITS, and never so many that value * M overflows an int64."""
    return max(2, min(max(MULTIPLIER_BITS, out_bits + 8), PRODUCT_BITS_MAX - value_bits))


def rne_shift(p, shift: int):
    """Round-half-to-even of p / 2**shift on int64 NumPy arrays or torch tensors (the rule)."""
    if shift == 0:
        return p
    q = p >> shift
    rem = p - (q << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up * 1
