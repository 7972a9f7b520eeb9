"""Fast forms of exact helpers (dot_product_range, compress_nm) against their definitions."""
from __future__ import annotations

import numpy as np
import pytest

from codegen.ir.types import dot_product_range


def _by_definition(weights, bias, x_min, x_max) -> tuple[int, int]:
    """Every term at its extreme, in Python integers (the former implementation, slow and exact)."""
    w = np.asarray(weights).astype(object)
    hi = np.maximum(w * x_min, w * x_max).sum(axis=1) + np.asarray(bias).astype(object)
    lo = np.minimum(w * x_min, w * x_max).sum(axis=1) + np.asarray(bias).astype(object)
    return int(min(lo.min(), 0)), int(max(hi.max(), 0))


@pytest.mark.parametrize("seed", range(6))
def test_random_matches_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bits = [2, 4, 8, 16, 24, 32][seed]
    n, k = rng.integers(1, 40), rng.integers(1, 300)
    w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(n, k), dtype=np.int64)
    bias = rng.integers(-(1 << 40), 1 << 40, size=n, dtype=np.int64)
    for x_min, x_max in ((-128, 127), (0, 255), (-8, 7), (0, 1), (-(1 << 31), (1 << 31) - 1), (5, 5)):
        assert dot_product_range(w, bias, x_min, x_max) == _by_definition(w, bias, x_min, x_max)


def test_extremes_beyond_int64() -> None:
    """Weights at the int64 limits times inputs at the int32 limits: sums far beyond 64 bits."""
    top, bottom = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    w = np.array([[top, top, bottom], [bottom, bottom, 1], [0, 0, 0]], dtype=np.int64)
    bias = np.array([top, bottom, 0], dtype=np.int64)
    for x_min, x_max in ((-(1 << 31), (1 << 31) - 1), (0, 255), (-1, 0)):
        assert dot_product_range(w, bias, x_min, x_max) == _by_definition(w, bias, x_min, x_max)


def test_unsigned_and_object_weights() -> None:
    w = np.array([[255, 0, 17], [3, 200, 255]], dtype=np.uint8)
    bias = np.array([-5, 9])
    assert dot_product_range(w, bias, -128, 127) == _by_definition(w.astype(np.int64), bias, -128, 127)
    wo = np.array([[1 << 70, -(1 << 70)], [2, -3]], dtype=object)
    assert dot_product_range(wo, np.array([0, 1 << 80], dtype=object), -3, 4) == \
        _by_definition(wo, np.array([0, 1 << 80], dtype=object), -3, 4)


def test_bert_sized_layer_range() -> None:
    """A 1024 x 768 int8 layer (int8 storage: the int64 sums must not wrap in the weights' dtype)."""
    rng = np.random.default_rng(7)
    w = rng.integers(-128, 128, size=(1024, 768), dtype=np.int8)
    bias = rng.integers(-(1 << 20), 1 << 20, size=1024, dtype=np.int64)
    assert dot_product_range(w, bias, -128, 127) == _by_definition(w, bias, -128, 127)


def _compress_by_loop(weight, n, m):
    """compress_nm by its definition, one group at a time (the former implementation)."""
    import math
    n_out, n_in = weight.shape
    groups = math.ceil(n_in / m)
    padded = np.zeros((n_out, groups * m), dtype=np.int64)
    padded[:, :n_in] = weight
    padded = padded.reshape(n_out, groups, m)
    values = np.zeros((n_out, groups, n), dtype=np.int64)
    indices = np.zeros((n_out, groups, n), dtype=np.int64)
    for o in range(n_out):
        for g in range(groups):
            nz = np.flatnonzero(padded[o, g])
            values[o, g, :nz.size] = padded[o, g, nz]
            indices[o, g, :nz.size] = nz
    return values, indices


@pytest.mark.parametrize("n,m", [(1, 4), (2, 4), (2, 8), (4, 8), (4, 16), (4, 4)])
def test_compress_nm_matches_the_loop(n: int, m: int) -> None:
    from codegen.ir.sparsity import compress_nm
    rng = np.random.default_rng(n * 100 + m)
    rows, cols = 13, 5 * m + 3          # a partial last group
    w = rng.integers(-128, 128, size=(rows, cols))
    groups = -(-cols // m)
    padded = np.zeros((rows, groups * m), dtype=np.int64)
    padded[:, :cols] = w
    blocks = padded.reshape(rows, groups, m)
    for o in range(rows):                # keep at most n per group, some groups with fewer
        for g in range(groups):
            keep = rng.choice(m, size=rng.integers(0, n + 1), replace=False)
            mask = np.zeros(m, dtype=bool)
            mask[keep] = True
            blocks[o, g, ~mask] = 0
    w = padded[:, :cols]
    got, want = compress_nm(w, n, m), _compress_by_loop(w, n, m)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_compress_nm_refuses_a_denser_group() -> None:
    from codegen.ir.sparsity import compress_nm
    w = np.array([[1, 2, 3, 0, 0, 0, 0, 1]])
    with pytest.raises(ValueError, match="row 0 group 0 has 3 non-zeros, more than 2:4"):
        compress_nm(w, 2, 4)
