"""A bias on a grid finer than the accumulator's, added exactly.

A MatMul/Gemm accumulator counts in units of input scale x weight scale.  A bias added to it may sit
on a finer grid (a hand-written model, a bias quantized to its own scale): rounding it to whole
accumulator units moves outputs near a rounding boundary by one step (found by bench/fuzz, see
tests/test_fuzz.py::test_bias_off_the_accumulator_grid_is_added_exactly).  The einhls rule rounds
once, after the multiplier (``rne((bias + sum w x) * M, shift)``), so the exact fix is to count the
accumulator in units 2**k times finer: weights and bias times 2**k, the scale divided by 2**k.
The hardware is unchanged; the weights get k more bits (k is the smallest that makes the bias
whole, at most MAX_REFINE_BITS).  A bias on no such grid (a float bias, as Brevitas exports it) is
rounded to whole accumulator units, as quantize_static quantizes a bias (to input scale x weight
scale): finer units would widen every weight and still not make it exact.
"""
from __future__ import annotations

import numpy as np

MAX_REFINE_BITS = 8
ON_GRID_TOLERANCE = 1e-3   # how far (in units of the grid tried) a bias may be off it and count as on it


def refinement_bits(steps: np.ndarray) -> int:
    """The smallest k (0..MAX_REFINE_BITS) with ``steps * 2**k`` whole, else 0; ``steps`` are the
    bias in accumulator units."""
    steps = np.asarray(steps, dtype=np.float64)
    for bits in range(MAX_REFINE_BITS + 1):
        scaled = steps * float(1 << bits)
        if np.all(np.abs(scaled - np.rint(scaled)) <= ON_GRID_TOLERANCE):
            return bits
    return 0
