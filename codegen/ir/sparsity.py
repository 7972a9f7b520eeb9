"""N:M structured sparsity: detection from weight values and the compressed (values, indices) form."""
from __future__ import annotations

import math

import numpy as np

GROUP_SIZES = (4, 8, 16)


def max_nonzeros_per_group(weight: np.ndarray, m: int) -> int:
    """Largest count of non-zeros in any group of m consecutive weights along the reduction axis.

    ``weight`` is [out, in]; the last group of a row is zero-padded when in is not a multiple of m.
    """
    n_out, n_in = weight.shape
    padded = np.zeros((n_out, math.ceil(n_in / m) * m), dtype=weight.dtype)
    padded[:, :n_in] = weight
    return int((padded.reshape(n_out, -1, m) != 0).sum(axis=2).max(initial=0))


def detect_nm(weight: np.ndarray) -> tuple[int, int] | None:
    """The N:M pattern (M in 4, 8, 16) that needs the fewest multipliers, or None for dense.

    A pattern counts only when it saves multipliers over dense for this reduction length:
    n * ceil(K / m) < K (with K < M the zero padding alone would make any layer look sparse).
    Among those, the fewest multiplier slots win; ties go to the smaller M (cheaper multiplexers).
    """
    k = weight.shape[1]
    best, best_slots = None, k
    for m in GROUP_SIZES:
        n = max(max_nonzeros_per_group(weight, m), 1)
        slots = n * math.ceil(k / m)
        if n < m and slots < best_slots:
            best, best_slots = (n, m), slots
    return best


def compress_nm(weight: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """[out, in] -> values [out, G, n] and indices [out, G, n] (G = ceil(in / m) groups).

    Unused slots of a group hold value 0 and index 0.  Indices are positions inside the group,
    ceil(log2 m) bits each.
    """
    n_out, n_in = weight.shape
    groups = math.ceil(n_in / m)
    padded = np.zeros((n_out, groups * m), dtype=np.int64)
    padded[:, :n_in] = weight
    padded = padded.reshape(n_out, groups, m)
    nonzero = padded != 0
    counts = nonzero.sum(axis=2)
    if counts.size and counts.max() > n:
        o, g = np.argwhere(counts > n)[0]
        raise ValueError(f"row {o} group {g} has {counts[o, g]} non-zeros, more than {n}:{m} allows")
    # a stable sort of "is zero" puts each group's non-zero positions first, in ascending order
    order = np.argsort(~nonzero, axis=2, kind="stable")[:, :, :n]
    used = np.arange(n)[None, None, :] < counts[:, :, None]
    values = np.where(used, np.take_along_axis(padded, order, axis=2), 0).astype(np.int64)
    indices = np.where(used, order, 0).astype(np.int64)
    return values, indices
