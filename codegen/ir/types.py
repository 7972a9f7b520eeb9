"""Fixed-point number types of the IR.

Every tensor carries a :class:`QType`: an integer code of ``bits`` bits (signed or not) whose real value
is ``scale * (code - zero_point)``.  When the scale is a power of two the type is an ordinary
fixed-point type with ``frac_bits`` fractional bits (``ap_fixed<bits, bits - frac_bits>``); other
scales come from calibrated quantizers and are carried exactly as given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QType:
    signed: bool
    bits: int
    scale: float = 1.0
    zero_point: int = 0
    narrow: bool = False  # symmetric range (e.g. -127..127), as QONNX's `narrow` asks

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 48:
            raise ValueError(f"bit width {self.bits} outside 1..48")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale {self.scale} must be positive and finite")
        if not self.min <= self.zero_point <= self.max:
            raise ValueError(f"zero point {self.zero_point} outside the {self.bits}-bit range")

    @property
    def min(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def frac_bits(self) -> int | None:
        """Fractional bits when the scale is a power of two, else None."""
        exponent = math.log2(self.scale)
        return -int(exponent) if exponent == int(exponent) else None

    def describe(self) -> str:
        kind = "int" if self.signed else "uint"
        frac = self.frac_bits
        if frac is not None and self.zero_point == 0:
            fixed = ("ap_fixed" if self.signed else "ap_ufixed") + f"<{self.bits},{self.bits - frac}>"
            return f"{kind}{self.bits} ({fixed})"
        return f"{kind}{self.bits} (scale {self.scale:.6g}, zero point {self.zero_point})"

    def with_bits_for(self, lo: int, hi: int) -> "QType":
        """The narrowest type of the same scale that holds every integer in [lo, hi]."""
        return QType(signed=lo < 0, bits=bits_for_range(lo, hi), scale=self.scale, zero_point=0)

    def to_json(self) -> dict:
        return {"signed": self.signed, "bits": self.bits, "scale": self.scale,
                "zero_point": self.zero_point, "narrow": self.narrow, "frac_bits": self.frac_bits}

    @staticmethod
    def from_json(d: dict) -> "QType":
        return QType(d["signed"], d["bits"], d["scale"], d["zero_point"], d.get("narrow", False))


def bits_for_range(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement (if lo < 0) or unsigned integer holding [lo, hi]."""
    lo, hi = int(lo), int(hi)
    if lo < 0:
        return max(max((-lo - 1).bit_length(), hi.bit_length()) + 1, 2)
    return max(hi.bit_length(), 1)


def parse_fixed(text: str) -> QType:
    """Parse ``fixed<W,I>`` / ``ufixed<W,I>`` (ap_fixed notation: W total bits, I integer bits)."""
    import re

    match = re.fullmatch(r"\s*(u?)(?:ap_)?fixed<\s*(\d+)\s*,\s*(-?\d+)\s*>\s*", text)
    if not match:
        raise ValueError(f"cannot parse fixed-point type {text!r}; write e.g. fixed<16,6> or ufixed<8,0>")
    width, integer = int(match.group(2)), int(match.group(3))
    if not 2 <= width <= 32:
        raise ValueError(f"fixed-point width {width} outside 2..32")
    return QType(signed=match.group(1) == "", bits=width, scale=2.0 ** -(width - integer))


def dot_product_range(weights: np.ndarray, bias: np.ndarray, x_min: int, x_max: int) -> tuple[int, int]:
    """Exact range of ``bias[n] + sum_k weights[n, k] * x[k]`` over all x in [x_min, x_max].

    Bit growth is computed from the actual weights, so the accumulator is the narrowest one that can
    never overflow for any input (never a guess, and tighter than ceil(log2 K) + wa + ww).

    Each term is largest at x_max for a positive weight and at x_min for a negative one, so a row's
    extremes are x_max * P + x_min * Q (+ bias) with P, Q the sums of its positive and negative
    weights.  P and Q are summed in int64 when K * max|w| cannot overflow it (otherwise as Python
    integers), and the products with x and the bias use Python integers: exact at any width.
    """
    x_lo, x_hi = min(int(x_min), int(x_max)), max(int(x_min), int(x_max))
    w = np.asarray(weights)
    if w.dtype.kind in "iu" and w.size and max(int(w.max()), -int(w.min())) * w.shape[1] < (1 << 62):
        w64 = w.astype(np.int64, copy=False)
        pos = np.where(w64 > 0, w64, 0).sum(axis=1).astype(object)
        neg = np.where(w64 < 0, w64, 0).sum(axis=1).astype(object)
    else:   # object or very wide weights: the same sums in Python integers
        wo = w.astype(object)
        pos = np.where(wo > 0, wo, 0).sum(axis=1) if w.size else np.zeros(w.shape[0], dtype=object)
        neg = np.where(wo < 0, wo, 0).sum(axis=1) if w.size else np.zeros(w.shape[0], dtype=object)
    b = np.asarray(bias).astype(object)
    hi_terms = pos * x_hi + neg * x_lo + b
    lo_terms = pos * x_lo + neg * x_hi + b
    return int(min(lo_terms.min(), 0)), int(max(hi_terms.max(), 0))
