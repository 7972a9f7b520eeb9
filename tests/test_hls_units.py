"""Golden tests of the HLS C++ units: C-simulation must equal the PyTorch integer reference.

Each case emits a small design, compiles it with g++ against the ap_types headers, runs many
vectors through the AXI4-Stream top (vector 0 all-minimum, vector 1 all-maximum inputs) and compares
every element with ``run_reference``.  Axes are combined so that about fifteen builds cover bit widths
2/4/8/16, dense and N:M 1:4, 2:4, 2:8, 4:8, 4:16, odd sizes, lane re-packing, per-channel requant,
fused ReLU, unsigned inputs with zero points, wide weight words and the elementwise units.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from codegen.emit.hls import emit_csim_testbench, emit_hls
from codegen.errors import EinhlsError
from codegen.examples import chain_graph, linear_graph, manual_design
from codegen.ir.build import make_linear, make_relu, make_requant
from codegen.ir.graph import Graph
from codegen.ir.reference import random_inputs, run_reference
from codegen.ir.types import QType
from codegen.schedule.design import Design
from codegen.verify.csim import ap_types_dir, run_csim



def needs_csim(test):
    """Marks a test as a C-sim test (marker ``csim``), skipped without g++ or the ap_types headers."""
    test = pytest.mark.csim(test)
    test = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")(test)
    return pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")(test)


VECTORS = 300


def s(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def linear_case(k: int, n: int, in_type: QType, w_bits: int, out_type: QType | None,
                schedule: tuple[int, int, int, int], **kwargs) -> Design:
    graph = linear_graph(k, n, in_type, w_bits, out_type, **kwargs)
    return manual_design(graph, {"layer0": schedule})


def full_range_weights_design(bits: int) -> Design:
    """Weights over the whole two's complement range, including -2**(bits-1), which the narrow
    weight types of examples.linear_graph never produce; every row holds both extremes."""
    rng = np.random.default_rng(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    weight = rng.integers(lo, hi + 1, size=(5, 12))
    weight[:, 0], weight[:, 1] = lo, hi
    in_type = s(bits, 2.0 ** -(bits - 2))
    acc_scale = in_type.scale * 2.0 ** -(bits - 2)
    op = make_linear("layer0", "MatMul_0", weight, rng.integers(-1000, 1000, 5), in_type, acc_scale,
                     s(bits, acc_scale * 2.0 ** bits))
    graph = Graph("full_range", in_type, 12, [op], input_shape=(1, 12), output_shape=(1, 5))
    return manual_design(graph, {"layer0": (3, 5, 4, 5)})


def elementwise_design() -> Design:
    """ReLU (zero point 3) -> Requant (per-element offset and multiplier, to uint6 zp 7) -> ReLU.

    Lanes change inside the chain (3 -> 4 -> 2), so the re-pack stage is exercised too.
    """
    rng = np.random.default_rng(5)
    t_in, t_mid = s(8, zp=3), u(6, 0.125, zp=7)
    relu_a = make_relu("relu_a", "Relu_0", t_in, 10)
    rq = make_requant("rq", "Add_1/Mul_2", t_in, t_mid, 10, offset=rng.integers(-40, 40, 10),
                      real_multiplier=rng.uniform(0.05, 0.9, 10))
    relu_b = make_relu("relu_b", "Relu_3", t_mid, 10)
    graph = Graph("elementwise", t_in, 10, [relu_a, rq, relu_b], input_shape=(1, 10), output_shape=(1, 10))
    return manual_design(graph, {"relu_a": (3, 3, 3, 3), "rq": (3, 3, 3, 4), "relu_b": (4, 4, 4, 2)})


def requant_relu_design() -> Design:
    """Requant with one offset and a power-of-two scale (a pure shift by 2, so a quarter of all
    values are exact ties for round-half-to-even), fused ReLU, int8 -> int6."""
    rq = make_requant("rq", "rq", s(8), s(6, 0.25), 7, offset=5, relu=True)
    graph = Graph("requant_relu", s(8), 7, [rq], input_shape=(1, 7), output_shape=(1, 7))
    return manual_design(graph, {"rq": (2, 2, 2, 2)})


def chain_design() -> Design:
    # fc1 writes 2 elements per beat, fc2 reads 5: a re-pack stage sits between them.
    return manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                         "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)})


# Output scales are chosen so that outputs spread over their range with a little saturation at
# both ends.  Most are not powers of two, so the requantization multiplier M is exercised; those
# that are make M = 1 and give many exact ties, which test round-half-to-even.
CASES = {
    # dense: bit widths, odd sizes (K, N not multiples of SIMD / PE / lanes), requant variants
    "dense_int8_odd": lambda: linear_case(13, 7, s(8), 8, s(8, 2.74), (4, 2, 3, 2)),
    "dense_int2": lambda: linear_case(16, 8, s(2, 0.5), 2, s(2, 0.7), (4, 4, 4, 4), seed=1),
    "dense_int4_perchannel_relu": lambda: linear_case(20, 9, s(4, 0.25), 4, s(4, 0.97), (5, 3, 5, 3), seed=2,
                                                      per_channel=True, relu=True),
    "dense_int16_extreme_w": lambda: linear_case(11, 5, s(16, 2.0 ** -10), 16, s(16, 15.5), (2, 5, 1, 5),
                                                 seed=3, extreme_weights=True),
    "dense_uint8_zp_relu": lambda: linear_case(10, 12, u(8, zp=128), 8, u(8, 1.94, zp=100), (5, 4, 2, 3),
                                               seed=4, relu=True),
    "dense_full_range_w8": lambda: full_range_weights_design(8),
    "dense_exact_acc_out": lambda: linear_case(9, 3, s(8), 8, None, (3, 3, 9, 1), seed=5),
    "dense_wide_words": lambda: linear_case(160, 8, s(8), 8, s(8, 5.5), (160, 2, 32, 4), seed=6),
    # N:M sparse
    # 7 slots of 10 bits: a 70-bit word, written as a hex string that is not a whole number of digits
    "sparse_1_4_odd_word": lambda: linear_case(40, 6, s(8), 8, s(8, 2.0), (28, 2, 4, 2), seed=7,
                                               sparsity=(1, 4)),
    "sparse_2_4_odd_perchannel": lambda: linear_case(13, 7, s(8), 4, s(8, 0.18), (4, 3, 2, 4), seed=8,
                                                     sparsity=(2, 4), per_channel=True),
    "sparse_2_8_w2_relu": lambda: linear_case(24, 5, s(4, 0.25), 2, s(4, 0.085), (8, 1, 8, 5), seed=9,
                                              sparsity=(2, 8), relu=True),
    "sparse_4_8_int16": lambda: linear_case(16, 4, s(16, 2.0 ** -10), 16, s(16, 16.0), (16, 2, 4, 2), seed=10,
                                            sparsity=(4, 8), per_channel=True, relu=True),
    "sparse_4_16_extreme_w": lambda: linear_case(35, 6, u(4, 0.25, zp=5), 4, s(8, 0.044), (16, 3, 5, 6),
                                                 seed=11, sparsity=(4, 16), extreme_weights=True),
    "sparse_2_4_wide_words": lambda: linear_case(64, 16, s(8), 8, s(8, 2.74), (32, 4, 8, 4), seed=12,
                                                 sparsity=(2, 4)),
    # elementwise units and a whole chain
    "elementwise_relu_requant": elementwise_design,
    "requant_relu_per_tensor": requant_relu_design,
    "chain_graph": chain_design,
}


def emit(design: Design, out: Path) -> None:
    emit_hls(design, out)
    emit_csim_testbench(design, out)


@needs_csim
@pytest.mark.parametrize("name", CASES)
def test_unit_matches_reference(name: str, tmp_path: Path) -> None:
    design = CASES[name]()
    emit(design, tmp_path)
    inputs = random_inputs(design.graph, VECTORS, seed=100)
    expected = run_reference(design.graph, inputs)
    result = run_csim(tmp_path, inputs, expected, tmp_path / "work")
    assert result.passed, result.line()
    assert result.vectors == VECTORS
    np.testing.assert_array_equal(result.outputs, expected)


@needs_csim
def test_corrupted_weight_is_caught(tmp_path: Path) -> None:
    """Change one weight in the generated ROM: C-sim must report a mismatch, not pass or crash."""
    design = CASES["dense_int8_odd"]()
    emit(design, tmp_path)
    header = tmp_path / "hls" / "params_00_layer0.h"
    text = header.read_text()
    # The first word of PE 0 (one 32-bit limb) holds W[0, 0..3] of output 0; its lowest 8 bits are
    # W[0, 0]: invert them.
    match = re.search(r"\{  // PE 0\n\s+\{0x([0-9a-f]+)\}", text)
    assert match, "weight ROM layout changed; update this test"
    word = int(match.group(1), 16) ^ 0xFF
    corrupted = text[:match.start(1)] + f"{word:0{len(match.group(1))}x}" + text[match.end(1):]
    header.write_text(corrupted)

    inputs = random_inputs(design.graph, 50, seed=100)
    expected = run_reference(design.graph, inputs)
    result = run_csim(tmp_path, inputs, expected, tmp_path / "work")
    assert result.error is None, result.error
    assert result.mismatch is not None, "a corrupted weight went unnoticed"
    assert result.mismatch.element == 0
    assert "MISMATCH" in result.line()


@needs_csim
def test_build_error_is_reported(tmp_path: Path) -> None:
    """A compile failure comes back as CheckResult.error carrying g++'s own message."""
    design = CASES["dense_int8_odd"]()
    emit(design, tmp_path)
    top = tmp_path / "hls" / f"{design.top_name}.cpp"
    top.write_text(top.read_text().replace("einhls::linear<", "einhls::no_such_kernel<"))
    inputs = random_inputs(design.graph, 4, seed=1)
    result = run_csim(tmp_path, inputs, run_reference(design.graph, inputs), tmp_path / "work")
    assert result.error is not None and "no_such_kernel" in result.error
    assert not result.passed


# --- emitter behaviour that needs no compiler ---------------------------------------------

@pytest.mark.parametrize("name", ["sparse_2_4_odd_perchannel", "chain_graph"])
def test_emission_is_deterministic(name: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    emit(CASES[name](), first)
    emit(CASES[name](), second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_sparse_simd_must_be_a_multiple_of_m(tmp_path: Path) -> None:
    design = linear_case(16, 4, s(8), 8, s(8, 1.0), (6, 2, 4, 2), sparsity=(2, 4))
    with pytest.raises(EinhlsError, match="multiple of the N:M group size"):
        emit_hls(design, tmp_path)


def test_words_beyond_the_vitis_ap_int_limit_are_refused(tmp_path: Path) -> None:
    design = linear_case(520, 2, s(8), 8, s(8, 1.0), (520, 1, 8, 2))     # 520 x 8 = 4160-bit words
    with pytest.raises(EinhlsError, match="4096-bit ap_int limit"):
        emit_hls(design, tmp_path)
