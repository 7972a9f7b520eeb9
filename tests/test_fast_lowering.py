"""The faster front-end helpers compute what the plain definitions compute: exact_range against
the dense matrix of the einsum with Python integers, N:M detection against counting each group,
multiplier_and_shift against its one-multiplier-at-a-time form, the lazily folding GraphInfo on a
constant chain longer than Python's recursion limit, and single_threaded restoring torch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from codegen.frontend.butterfly import GraphInfo
from codegen.frontend import einsum as einsum_frontend
from codegen.frontend.einsum import exact_range
from codegen.ir.requant import multiplier_and_shift
from codegen.ir.sparsity import detect_nm, max_nonzeros_per_group
from codegen.ir.types import QType
from codegen.threads import single_threaded


def dense_range(inputs, output, sizes, constants, offset, bias, in_type):
    """Definition: W (in x out) from the einsum on unit vectors in Python integers; each output's
    extremes are the bias plus, per input, the larger / smaller of W x_lo and W x_hi."""
    x_letters = inputs[0]
    in_size = math.prod(sizes[c] for c in x_letters)
    eye = np.eye(in_size, dtype=np.int64).astype(object).reshape([in_size] + [sizes[c] for c in x_letters])
    w = np.einsum("Z" + x_letters + "," + ",".join(inputs[1:]) + "->Z" + output, eye,
                  *[c.astype(object) for c in constants]).reshape(in_size, -1)
    x_lo = [in_type.min + int(o) for o in offset]
    x_hi = [in_type.max + int(o) for o in offset]
    lo, hi = [], []
    for j in range(w.shape[1]):
        terms = [(int(w[i, j]) * x_lo[i], int(w[i, j]) * x_hi[i]) for i in range(in_size)]
        lo.append(int(bias[j]) + sum(min(t) for t in terms))
        hi.append(int(bias[j]) + sum(max(t) for t in terms))
    return lo, hi


CASES = {   # name: (einsum inputs (x first), output, sizes, largest |constant|)
    "tensor_train": (["abc", "dae", "efbg", "ghc"], "dfh",
                     {"a": 2, "b": 3, "c": 4, "d": 3, "e": 2, "f": 2, "g": 3, "h": 2}, 127),
    "x_index_kept": (["ab", "bc"], "ac", {"a": 3, "b": 4, "c": 5}, 127),   # a: not in any constant
    "low_rank": (["a", "ar", "rb"], "b", {"a": 6, "r": 2, "b": 5}, 7),
    # large entries that never meet in one product: the bound from the largest magnitudes is
    # >= 2^52, the exact one (contracting |constants|) far below: still the float64 path
    "exact_bound": (["a", "ar", "rb"], "b", {"a": 6, "r": 2, "b": 5}, 2 ** 26),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("in_type", [QType(True, 8), QType(False, 4), QType(True, 16)], ids=["s8", "u4", "s16"])
@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced"])
def test_exact_range_equals_the_dense_definition(name: str, in_type: QType, sliced: bool, monkeypatch) -> None:
    """``sliced``: W built one slice of its first output index at a time (as a large one is)."""
    if sliced:
        monkeypatch.setattr(einsum_frontend, "W_SLICE_ELEMENTS", 0)
    inputs, output, sizes, largest = CASES[name]
    rng = np.random.default_rng(len(name) + in_type.bits)
    constants = [rng.integers(-largest, largest + 1, size=[sizes[c] for c in word]) for word in inputs[1:]]
    if name == "exact_bound":
        constants[0][:, 1] %= 8   # column r = 1 of the first small, row r = 0 of the second
        constants[1][0, :] %= 8
    in_size = math.prod(sizes[c] for c in inputs[0])
    out_size = math.prod(sizes[c] for c in output)
    for offset in (np.zeros(in_size, np.int64), rng.integers(-300, 300, size=in_size)):
        bias = rng.integers(-10**6, 10**6, size=out_size)
        lo, hi = exact_range(inputs, output, sizes, constants, offset, bias, in_type)
        want_lo, want_hi = dense_range(inputs, output, sizes, constants, offset, bias, in_type)
        assert [int(v) for v in lo] == want_lo and [int(v) for v in hi] == want_hi


def test_exact_range_with_int64_partial_sums() -> None:
    """Partial sums beyond 2^52 that cancel (W = -d v, small): the int64 path, still exact."""
    rng = np.random.default_rng(5)
    u, d, v = rng.integers(1, 8, size=6), rng.integers(-5, 6, size=6), rng.integers(-7, 8, size=5)
    big = 2 ** 46
    constants = [np.stack([u * big, u * big + d], axis=1), np.stack([v, -v])]
    sizes = {"a": 6, "r": 2, "b": 5}
    offset, bias = rng.integers(-3, 4, size=6), rng.integers(-100, 100, size=5)
    lo, hi = exact_range(["a", "ar", "rb"], "b", sizes, constants, offset, bias, QType(True, 8))
    want_lo, want_hi = dense_range(["a", "ar", "rb"], "b", sizes, constants, offset, bias, QType(True, 8))
    assert [int(x) for x in lo] == want_lo and [int(x) for x in hi] == want_hi


def test_nm_detection_equals_counting_each_group() -> None:
    rng = np.random.default_rng(0)
    for _ in range(400):
        rows, cols = rng.integers(1, 6), rng.integers(1, 70)
        weight = rng.integers(-3, 4, size=(rows, cols)) * (rng.random((rows, cols)) < rng.random())
        counts = {m: max(int(np.count_nonzero(weight[r, g:g + m])) for r in range(rows) for g in range(0, cols, m))
                  for m in (1, 2, 3, 4, 8, 16)}
        for m, count in counts.items():
            assert max_nonzeros_per_group(weight, m) == count
        options = [((max(counts[m], 1), m), max(counts[m], 1) * math.ceil(cols / m)) for m in (4, 8, 16)]
        saving = [(pattern, slots) for pattern, slots in options if pattern[0] < pattern[1] and slots < cols]
        want = min(saving, key=lambda p: p[1])[0] if saving else None   # min keeps the first (smaller M) on ties
        assert detect_nm(weight) == want


def one_at_a_time(real, significant_bits: int) -> tuple[tuple[int, ...], int]:
    """multiplier_and_shift's rule written per multiplier with Python integers."""
    values = [float(v) for v in np.atleast_1d(real)]
    shift = max(0, min(62, significant_bits - 1 - math.floor(math.log2(max(values)))))
    mults = [max(1, int(np.round(np.float64(v) * 2.0 ** shift))) for v in values]
    while shift > 0 and all(m % 2 == 0 for m in mults):
        mults, shift = [m // 2 for m in mults], shift - 1
    return (tuple(mults[:1]) if len(set(mults)) == 1 else tuple(mults)), shift


def test_multiplier_and_shift_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    for trial in range(3000):
        n = int(rng.integers(1, 9))
        values = [2.0 ** rng.integers(-40, 40, size=n).astype(float), rng.random(n) * 10.0 ** rng.integers(-12, 12),
                  2.0 ** rng.integers(-5, 5) * rng.integers(1, 64, size=n), np.full(n, 2.0 ** rng.integers(-70, 80)),
                  rng.random(n) * 1e-25][trial % 5]
        for bits in (2, 16, 40, 62):
            got = multiplier_and_shift(values, bits)
            assert got == one_at_a_time(values, bits) and all(type(m) is int for m in got[0])


def test_graph_info_folds_a_long_constant_chain_on_demand() -> None:
    """A constant through 3,000 Identity nodes (deeper than the recursion limit) reaches the Add
    that reads it; the activation input stays an activation."""
    nodes = [helper.make_node("Identity", ["c0" if i == 0 else f"t{i - 1}"], [f"t{i}"]) for i in range(3000)]
    nodes.append(helper.make_node("Add", ["x", "t2999"], ["y"]))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "c0")])
    info = GraphInfo(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert info.activation_inputs(nodes[-1]) == ["x"]
    assert np.array_equal(info.const("t2999").value, np.arange(4, dtype=np.float32).reshape(1, 4))
    assert info.const("x") is None and info.const("y") is None


def test_single_threaded_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    with single_threaded():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), single_threaded():
        raise RuntimeError("an error inside")
    assert torch.get_num_threads() == before
