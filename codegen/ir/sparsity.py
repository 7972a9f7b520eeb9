"""N:M structured sparsity: detection from weight values and the compressed (values, indices) form."""
from __future__ import annotations

import math

import numpy as np

GROUP_SIZES = (4, 8, 16)   # each twice the one before (detect_nm adds pairs of groups)


def _group_counts(nonzero: np.ndarray, m: int) -> np.ndarray:
    """Non-zeros per group of m consecutive entries of each row of the mask ``nonzero`` [out, in]
    (the last group zero-padded): the sum of m strided column slices, so each pass is vectorised
    over the whole matrix (a sum over an axis of length m loops m times per group)."""
    n_out, n_in = nonzero.shape
    if n_in % m:
        nonzero = np.pad(nonzero, ((0, 0), (0, m - n_in % m)))
    counts = np.zeros((n_out, nonzero.shape[1] // m), dtype=np.int32)
    for offset in range(m):
        counts += nonzero[:, offset::m]
    return counts


def max_nonzeros_per_group(weight: np.ndarray, m: int) -> int:
    """Largest count of non-zeros in any group of m consecutive weights along the reduction axis.

    ``weight`` is [out, in]; the last group of a row is zero-padded when in is not a multiple of m.
    """
    return int(_group_counts(np.asarray(weight) != 0, m).max(initial=0))


def detect_nm(weight: np.ndarray) -> tuple[int, int] | None:
    """The N:M pattern (M in 4, 8, 16) that needs the fewest multipliers, or None for dense.

    A pattern counts only when it saves multipliers over dense for this reduction length:
    n * ceil(K / m) < K (with K < M the zero padding alone would make any layer look sparse).
    Among those, the fewest multiplier slots win; ties go to the smaller M (cheaper multiplexers).
    The counts of each M are pairs of those of the M before (each M doubles the one before), from
    one mask padded to the largest M (the extra all-zero groups count 0).
    """
    k = weight.shape[1]
    best, best_slots = None, k
    nonzero = np.asarray(weight) != 0
    if k % GROUP_SIZES[-1]:
        nonzero = np.pad(nonzero, ((0, 0), (0, GROUP_SIZES[-1] - k % GROUP_SIZES[-1])))
    counts = _group_counts(nonzero, GROUP_SIZES[0])
    for index, m in enumerate(GROUP_SIZES):
        if index:
            counts = counts[:, 0::2] + counts[:, 1::2]
        n = max(int(counts.max(initial=0)), 1)
        slots = n * math.ceil(k / m)
        if n < m and slots < best_slots:
            best, best_slots = (n, m), slots
    return best


def _padded_groups(weight: np.ndarray, m: int) -> np.ndarray:
    """[out, in] -> [out, G, m]: the groups of m consecutive inputs, the last one zero-padded."""
    n_out, n_in = weight.shape
    groups = math.ceil(n_in / m)
    padded = np.zeros((n_out, groups * m), dtype=np.int64)
    padded[:, :n_in] = weight
    return padded.reshape(n_out, groups, m)


def _pair_union(nonzero: np.ndarray) -> np.ndarray:
    """The non-zero mask [out, G, m] of each pair of rows (2r, 2r+1) given to both rows (a last
    odd row keeps its own)."""
    union = nonzero.copy()
    pairs = nonzero.shape[0] // 2 * 2
    both = nonzero[0:pairs:2] | nonzero[1:pairs:2]
    union[0:pairs:2] = both
    union[1:pairs:2] = both
    return union


def row_pairs_share_nm(weight: np.ndarray, n: int, m: int) -> bool:
    """Whether rows 2r and 2r+1 of ``weight`` [out, in] can share one N:M index pattern: in every
    group of m inputs the two rows' non-zeros together take at most n positions.  Then a PE pair
    picks one input per slot for both rows (einhls_linear PACK = 2 on an N:M layer: one DSP, two
    products of that input)."""
    union = _pair_union(_padded_groups(np.asarray(weight), m) != 0)
    return int(union.sum(axis=2).max(initial=0)) <= n


def compress_nm(weight: np.ndarray, n: int, m: int, row_pairs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """[out, in] -> values [out, G, n] and indices [out, G, n] (G = ceil(in / m) groups).

    Unused slots of a group hold value 0 and index 0.  Indices are positions inside the group,
    ceil(log2 m) bits each.  With ``row_pairs`` rows 2r and 2r+1 get the same indices (those of
    their non-zeros together, which must fit n: row_pairs_share_nm), each row's value at them
    (0 where only the other row's weight is non-zero).
    """
    padded = _padded_groups(np.asarray(weight), m)
    nonzero = padded != 0
    if row_pairs:
        nonzero = _pair_union(nonzero)
    counts = nonzero.sum(axis=2)
    if counts.size and counts.max() > n:
        o, g = np.argwhere(counts > n)[0]
        rows = f"rows {o - o % 2} and {o - o % 2 + 1}" if row_pairs else f"row {o}"
        raise ValueError(f"{rows} group {g} has {counts[o, g]} non-zeros, more than {n}:{m} allows")
    # a stable sort of "is zero" puts each group's non-zero positions first, in ascending order
    order = np.argsort(~nonzero, axis=2, kind="stable")[:, :, :n]
    used = np.arange(n)[None, None, :] < counts[:, :, None]
    values = np.where(used, np.take_along_axis(padded, order, axis=2), 0).astype(np.int64)
    indices = np.where(used, order, 0).astype(np.int64)
    return values, indices
