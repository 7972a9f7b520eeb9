"""Golden tests of the Verilog units: RTL simulation must equal the PyTorch integer reference.

Each case emits a small design, builds it with Verilator (through cocotb's runner) and streams many
vectors through the AXI4-Stream top twice: back to back, then with random input gaps and output
back-pressure (vector 0 all-minimum, vector 1 all-maximum inputs).  Every element is compared with
``run_reference``.  Axes are combined so that fourteen builds cover bit widths 2/4/8/16 (inputs and
weights), dense and N:M 1:4, 2:4, 2:8, 4:8, 4:16, odd sizes (K, N not multiples of SIMD / PE /
lanes), lane re-packing, extreme inputs and weights, per-channel requant, fused ReLU, unsigned
inputs with zero points, an unrequantized accumulator output, LUT multipliers, DSP-shared PE pairs
(one and two products per packed field), the requant and relu units and a multi-op chain.
Measured intervals are checked against the fold arithmetic.  About 3 minutes with ``-n 2``.
"""
from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codegen.emit.cocotb_tb import emit_cocotb_tb
from codegen.emit.rtl import KERNEL_DEPS, LINT_WAIVERS, emit_rtl, requant_lanes, rtl_sources
from codegen.examples import chain_graph, linear_graph, manual_design
from codegen.ir.build import make_relu, make_requant
from codegen.ir.graph import Graph, Linear
from codegen.ir.reference import random_inputs, run_reference
from codegen.ir.types import QType
from codegen.resources import resource_dir
from codegen.schedule.design import Design, linear_folds
from codegen.verify.result import CheckResult
from codegen.verify.rtlsim import run_rtlsim

pytestmark = pytest.mark.rtl

VECTORS = 64
# cycles an interval may exceed max(NF*KF, input beats, output beats): bank hand-over and the like
INTERVAL_SLACK = 2


def s(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def linear_case(k: int, n: int, in_type: QType, w_bits: int, out_type: QType | None,
                schedule: tuple[int, int, int, int], **kwargs) -> Design:
    return manual_design(linear_graph(k, n, in_type, w_bits, out_type, **kwargs), {"layer0": schedule})


def elementwise_design() -> Design:
    """ReLU on uint8 with zero point 100 (so zero padding must be restored), then a requant with
    per-element offsets and multipliers to int6 with a fused ReLU; lanes change 4 -> 3 -> 2."""
    rng = np.random.default_rng(5)
    t_in = u(8, 2.0 ** -4, zp=100)
    relu = make_relu("relu_a", "Relu_0", t_in, 10)
    rq = make_requant("rq", "Add_1", t_in, s(6, 0.11, zp=-3), 10, offset=rng.integers(-40, 40, 10),
                      real_multiplier=rng.uniform(0.05, 0.9, 10), relu=True)
    graph = Graph("elementwise", t_in, 10, [relu, rq], input_shape=(1, 10), output_shape=(1, 10))
    return manual_design(graph, {"relu_a": (4, 4, 4, 4), "rq": (3, 3, 3, 2)})


def full_range_design() -> Design:
    """int8 weights over the whole range (-128 included) and extreme rows, K=24, N=7."""
    from codegen.ir.build import make_linear

    rng = np.random.default_rng(6)
    weight = rng.integers(-128, 128, size=(7, 24))
    weight[0, :] = -128
    weight[1, :] = 127
    weight[2, ::2] = -128
    op = make_linear("layer0", "layer0", weight, rng.integers(-3000, 3000, 7), s(8), 2.0 ** -4 * 2.0 ** -7,
                     s(8, 0.37))
    graph = Graph("full_range", s(8), 24, [op], input_shape=(1, 24), output_shape=(1, 7))
    return manual_design(graph, {"layer0": (6, 3, 6, 7)})


def chain_design() -> Design:
    # fc1 writes 2 elements per beat, fc2 reads 5: a lane converter sits between them
    return manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                         "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)})


# Output scales are not powers of two unless stated, so the requant multiplier is exercised.
CASES = {
    # dense: widths, odd sizes and lanes, per-channel requant, zero points, extremes
    # SIMD 5 and PE 3: a DSP-sharing PE pair plus a single PE, chains of two products plus a lone one
    "dense_int8_odd": lambda: linear_case(13, 7, s(8), 8, s(8, 2.74), (5, 3, 4, 2)),
    # weights at -128 too: two-product sums no longer fit the pre-adder, so one product per field
    "dense_int8_full_range_w": full_range_design,
    "dense_int2": lambda: linear_case(16, 8, s(2, 0.5), 2, s(2, 0.7), (8, 4, 8, 4), seed=1),
    "dense_uint4_zp_perchannel_relu": lambda: linear_case(20, 9, u(4, 0.25, zp=5), 4, u(4, 0.97, zp=3),
                                                          (5, 3, 4, 3), seed=2, per_channel=True, relu=True),
    "dense_int16_extreme_w": lambda: linear_case(11, 5, s(16, 2.0 ** -10), 16, s(16, 15.5), (2, 5, 1, 5),
                                                 seed=3, extreme_weights=True),
    "dense_acc_out_extreme_w": lambda: linear_case(40, 6, s(8), 8, None, (8, 2, 8, 1), seed=5,
                                                   extreme_weights=True),
    # N:M sparse
    "sparse_1_4_odd": lambda: linear_case(30, 9, s(8), 8, s(8, 2.5), (8, 3, 6, 3), seed=7, sparsity=(1, 4)),
    "sparse_2_4_uint8_zp_perchannel": lambda: linear_case(24, 10, u(8, zp=128), 4, s(8, 0.18), (4, 2, 4, 2),
                                                          seed=8, sparsity=(2, 4), per_channel=True),
    "sparse_2_8_w2_relu": lambda: linear_case(40, 8, s(4, 0.25), 2, s(4, 0.085), (16, 2, 8, 8), seed=9,
                                              sparsity=(2, 8), relu=True),
    "sparse_4_8_int16": lambda: linear_case(17, 6, s(16, 2.0 ** -10), 16, s(16, 16.0), (8, 3, 3, 1),
                                            seed=10, sparsity=(4, 8), per_channel=True, relu=True),
    "sparse_4_16_extreme_w": lambda: linear_case(40, 12, u(4, 0.25, zp=5), 4, s(8, 0.044), (16, 4, 16, 4),
                                                 seed=11, sparsity=(4, 16), extreme_weights=True),
    # wide streams: the interval must be the fold count NF*KF = 4*8 = 32
    "dense_interval": lambda: linear_case(32, 16, s(8), 8, s(8, 2.0), (4, 4, 32, 16), seed=12),
    # elementwise units and a whole chain
    "elementwise_relu_requant": elementwise_design,
    "chain_graph": chain_design,
}


def emit(design: Design, out: Path) -> None:
    emit_rtl(design, out)
    emit_cocotb_tb(design, out)


def interval_bound(design: Design) -> int:
    """max over the ops of max(NF*KF, input beats, output beats): the ideal steady-state interval."""
    worst = 1
    for op in design.graph.ops:
        cycles = max(design.input_format(op).beats, design.output_format(op).beats)
        if isinstance(op, Linear):
            nf, kf = linear_folds(op, design.schedule(op))
            cycles = max(cycles, nf * kf)
        worst = max(worst, cycles)
    return worst


def simulate(design: Design, project: Path, vectors: int = VECTORS, seed: int = 100) -> tuple[CheckResult, np.ndarray]:
    inputs = random_inputs(design.graph, vectors, seed=seed)
    expected = run_reference(design.graph, inputs)
    return run_rtlsim(project, inputs, expected, project / "work", seed=seed), expected


@pytest.mark.parametrize("name", CASES)
def test_unit_matches_reference(name: str, tmp_path: Path) -> None:
    design = CASES[name]()
    emit(design, tmp_path)
    result, expected = simulate(design, tmp_path)
    assert result.passed, result.line()
    assert result.vectors == VECTORS
    np.testing.assert_array_equal(result.outputs, expected)
    bound = interval_bound(design)
    interval = result.measured["interval_cycles"]
    assert bound <= interval <= bound + INTERVAL_SLACK, (name, interval, bound)
    if name == "dense_interval":
        assert interval == 32
    assert result.measured["latency_cycles"] > 0


def test_corrupted_weight_is_caught(tmp_path: Path) -> None:
    """Flip the bits of W[0, 0] in the ROM image: RTL sim must report a mismatch at output 0."""
    design = CASES["dense_int8_odd"]()
    emit(design, tmp_path)
    mem = tmp_path / "rtl" / "layer0_weights.mem"
    words = mem.read_text().split()
    words[0] = f"{int(words[0], 16) ^ 0xFF:0{len(words[0])}x}"     # word (0, 0), PE 0, SIMD 0: low 8 bits
    mem.write_text("".join(w + "\n" for w in words))
    result, _ = simulate(design, tmp_path, vectors=8)
    assert result.error is None, result.error
    assert result.mismatch is not None, "a corrupted weight went unnoticed"
    assert result.mismatch.element == 0
    assert "MISMATCH" in result.line()


def test_build_error_is_reported(tmp_path: Path) -> None:
    """A Verilog error comes back as CheckResult.error carrying Verilator's own message."""
    design = CASES["dense_int8_odd"]()
    emit(design, tmp_path)
    top = tmp_path / "rtl" / f"{design.top_name}.v"
    top.write_text(top.read_text().replace("einhls_linear #(", "einhls_no_such_unit #("))
    result, _ = simulate(design, tmp_path, vectors=4)
    assert result.error is not None and "einhls_no_such_unit" in result.error, result.error
    assert not result.passed


# --- resources: the 2:4 layer has half the multipliers -----------------------------------------

def test_sparse_2_4_halves_the_multipliers(tmp_path: Path) -> None:
    """Same SIMD x PE (so the same interval): 2:4 has half the multipliers of dense.

    int16 x int16 products take one DSP48E1 each and are too wide to share one, so Yosys' DSP
    count is the multiplier count.  (Dense int8 layers put two products in each DSP, see
    einhls_linear PACK and tests/test_yosys.py: there a 2:4 layer takes as many DSPs as the dense
    one and saves weight memory and adder-tree logic instead.)
    """
    from codegen.verify.yosys import synth_counts

    counts = {}
    for label, sparsity in (("dense", None), ("sparse", (2, 4))):
        design = linear_case(32, 16, s(16), 16, s(16, 2.0 ** -2), (8, 4, 8, 4), seed=4, sparsity=sparsity)
        emit_rtl(design, tmp_path / label)
        counts[label] = synth_counts(tmp_path / label / "rtl", design.top_name, "xc7", tmp_path / label / "yosys")
    assert counts["dense"]["DSP"] == 8 * 4, counts["dense"]
    assert counts["sparse"]["DSP"] == 8 * 4 // 2, counts["sparse"]


# --- lint and emitter behaviour ----------------------------------------------------------------

def _verilator() -> str:
    found = shutil.which("verilator")
    if found is None:
        pytest.skip("verilator not on PATH")
    return found


LINT_PARAMS = {
    # more parameter sets in tests/test_attention_units.py (every unit-test case, linted)
    "einhls_actmatmul": [[], ["-GLAYOUT=1", "-GHEADS=2", "-GINNER=4", "-GCOLS=6", "-GTOKENS=4", "-GSIMD=2", "-GPE=3",
                              "-GA_LANES=4", "-GB_LANES=3", "-GOUT_LANES=4", "-GRQ_LANES=3"],
                         ["-GINNER=1", "-GCOLS=1", "-GTOKENS=1", "-GMUL_LUT=1", "-GA_BITS=4", "-GB_BITS=4"],
                         ["-GB_SEQS=1"], ["-GINNER=1", "-GCOLS=1", "-GTOKENS=1", "-GB_SEQS=1"], ["-GA_LUTRAM=1"]],
    "einhls_linear": [[], ["-GNNZ=2", "-GGROUP=4", "-GSIMD=8", "-GIN_LANES=3", "-GPE=3", "-GRQ_LANES=1",
                           "-GIN_SIGNED=0", "-GPER_CHANNEL=1", "-GSHIFT=5"],
                      ["-GK=1", "-GN=1", "-GSIMD=1", "-GPE=1", "-GIN_LANES=1", "-GOUT_LANES=1"],
                      ["-GROM_KIND=2", "-GWORDS_PER_ROW=5", "-GK=40", "-GN=13", "-GNNZ=1", "-GGROUP=8",
                       "-GSIMD=8", "-GIN_LANES=8", "-GPE=1", "-GOUT_LANES=1"], ["-GXBUF_LUTRAM=1"]],
    "einhls_requant": [[], ["-GLANES=3", "-GSIZE=10", "-GOFFSET_ROM=1", "-GMULT_ROM=1", "-GSHIFT=1"]],
    "einhls_relu": [[], ["-GLANES=3", "-GSIZE=7", "-GSIGNED=0"]],
    "einhls_lanes": [[], ["-GIN_LANES=3", "-GOUT_LANES=4", "-GSIZE=13"], ["-GIN_LANES=6", "-GOUT_LANES=2"]],
    "einhls_skid": [[]],
    "einhls_fifo": [[], ["-GURAM=1", "-GDEPTH=8192", "-GWIDTH=64"], ["-GDEPTH=3"], ["-GURAM=1", "-GDEPTH=6192", "-GWIDTH=64"],
                    ["-GLUTRAM=1", "-GDEPTH=500"]],
    "einhls_adder_tree": [[], ["-GN_IN=7", "-GSTAGE=1"], ["-GN_IN=1"]],
    "einhls_permute": [[], ["-GSIZE=96", "-GIN_LANES=3", "-GOUT_LANES=4", "-GBANKS=8", "-GSKEW=1", "-GSKEW_MUL=3",
                            "-GDIGITS=2", "-GEXTENTS=256'h0000000c00000008", "-GSTRIDES=256'h0000000100000008"]],
    # graph units: more parameter sets (every case's) in tests/test_join_units.py
    "einhls_fork": [[], ["-GN=8", "-GWIDTH=1"], ["-GN=3", "-GWIDTH=24"]],
    "einhls_add": [[], ["-GLANES=3", "-GSIZE=7", "-GSHIFT=1", "-GA_SIGNED=0", "-GM_BITS=16"],
                   ["-GSIZE=1", "-GSHIFT=40", "-GM_BITS=3"], ["-GMA=5", "-GMB=5", "-GM_BITS=3", "-GB_BITS=4"]],
    "einhls_mul": [[], ["-GLANES=4", "-GSIZE=13", "-GSHIFT=9", "-GM_BITS=20", "-GB_SIGNED=0", "-GA_BITS=2"]],
    "einhls_binop": [[], ["-GMUL=1", "-GLANES=2", "-GSIZE=3"]],
    "einhls_softmax": [[], ["-GLUTRAM=1"]],
    "einhls_layernorm": [[], ["-GLUTRAM=1"]],
    "einhls_gelu": [[]],
    "einhls_concat": [[], ["-GN=3", "-GBEATS0=1", "-GBEATS1=5", "-GBEATS2=2"],
                      ["-GN=4", "-GBEATS0=3", "-GBEATS1=1", "-GBEATS2=2", "-GBEATS3=7"]],
    "einhls_slice": [[], ["-GIN_BEATS=1"], ["-GIN_BEATS=9", "-GFIRST=3", "-GCOUNT=2"],
                     ["-GIN_BEATS=5", "-GFIRST=2", "-GCOUNT=3"]],
    "einhls_window": [[], ["-GCHANNELS=6", "-GLANES=3", "-GHEIGHT=5", "-GWIDTH_PX=7", "-GKH=3", "-GKW=2", "-GSH=2",
                           "-GPT=1", "-GPL=1", "-GDH=2", "-GOH=2", "-GOW=6", "-GROWS_LOG=3", "-GPAD=-3"]],
    "einhls_tapmax": [[], ["-GCHANNELS=6", "-GLANES=2", "-GTAPS=9", "-GSIGNED=0", "-GBITS=5"],
                      ["-GCHANNELS=4", "-GLANES=4", "-GTAPS=2"]],
    # more parameter sets (every unit-test case) in tests/test_mask_units.py, tests/test_pooling_units.py
    "einhls_mask": [[], ["-GHEADS=3", "-GTOKENS=5", "-GLANES=5", "-GIN_SIGNED=0"]],
    # (OVERLAP = 1: two banks of sums; one word a bank at SIZE = LANES)
    "einhls_tokenmean": [[], ["-GSIZE=7", "-GLANES=3", "-GTOKENS=5", "-GIN_SIGNED=0"],
                         ["-GOVERLAP=1"], ["-GSIZE=7", "-GLANES=3", "-GTOKENS=5", "-GOVERLAP=1"],
                         ["-GSIZE=4", "-GLANES=4", "-GTOKENS=1", "-GOVERLAP=1"]],
    "einhls_maskedmean": [[], ["-GSIZE=7", "-GLANES=3", "-GTOKENS=5", "-GIN_SIGNED=0"],
                          ["-GOVERLAP=1"], ["-GSIZE=7", "-GLANES=3", "-GTOKENS=5", "-GOVERLAP=1"],
                          ["-GSIZE=4", "-GLANES=4", "-GTOKENS=1", "-GOVERLAP=1"]],
    # more parameter sets in tests/test_butterfly_rtl.py
    "einhls_butterfly": [[], ["-GN=64", "-GP=4", "-GSTACKS=3", "-GK=50", "-GM=150", "-GSTAGES=6", "-GMUL_RQ=1",
                              "-GM_BITS=12", "-GHAS_BIAS=1", "-GSH_BITS=5", "-GIN_SIGNED=0", "-GCTX=4"]],
}


@pytest.mark.parametrize("module", KERNEL_DEPS)
def test_kernels_lint_clean(module: str) -> None:
    """verilator --lint-only -Wall, with only the waivers of rtl_kernels/einhls.vlt."""
    kernels = resource_dir("rtl_kernels")
    files = [kernels / f"{m}.v" for m in (module, *KERNEL_DEPS[module])]
    for params in LINT_PARAMS[module]:
        proc = subprocess.run([_verilator(), "--lint-only", "-Wall", str(kernels / LINT_WAIVERS),
                               *map(str, files), "--top-module", module, *params],
                              capture_output=True, text=True)
        assert proc.returncode == 0, (params, proc.stderr)


@pytest.mark.parametrize("name", ["chain_graph", "sparse_2_4_uint8_zp_perchannel", "elementwise_relu_requant"])
def test_generated_top_lint_clean(name: str, tmp_path: Path) -> None:
    design = CASES[name]()
    emit_rtl(design, tmp_path)
    proc = subprocess.run([_verilator(), "--lint-only", "-Wall", str(tmp_path / "rtl" / LINT_WAIVERS),
                           *map(str, rtl_sources(tmp_path)), "--top-module", design.top_name],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["sparse_2_4_uint8_zp_perchannel", "chain_graph"])
def test_emission_is_deterministic(name: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    emit(CASES[name](), first)
    emit(CASES[name](), second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_weight_rom_layout(tmp_path: Path) -> None:
    """Word nf*KF+kf holds W[nf*PE+p, kf*SIMD+s] at bits (p*SIMD+s)*W_BITS (docs/hardware.md)."""
    design = CASES["dense_int8_odd"]()            # K=13, N=7, SIMD=5, PE=3: KF=3, NF=3
    op = design.graph.ops[0]
    sched = design.schedule(op)
    emit_rtl(design, tmp_path)
    words = [int(w, 16) for w in (tmp_path / "rtl" / "layer0_weights.mem").read_text().split()]
    nf_count, kf_count = linear_folds(op, sched)
    assert len(words) == nf_count * kf_count
    for nf in range(nf_count):
        for kf in range(kf_count):
            for p in range(sched.pe):
                for simd in range(sched.simd):
                    n, k = nf * sched.pe + p, kf * sched.simd + simd
                    want = int(op.weight[n, k]) if n < op.out_size and k < op.in_size else 0
                    got = (words[nf * kf_count + kf] >> ((p * sched.simd + simd) * 8)) & 0xFF
                    assert got == want & 0xFF, (nf, kf, p, simd)


def test_requant_lanes() -> None:
    assert requant_lanes(8, 8) == 1            # one requant multiplier for the 64x64 SIMD=PE=8 layer
    assert requant_lanes(8, 3) == 4
    assert requant_lanes(7, 1) == 7
    for pe in range(1, 13):
        for kf in range(1, 10):
            d = requant_lanes(pe, kf)
            assert pe % d == 0 and d * kf >= pe and math.ceil(pe / kf) <= d


def test_testbench_layout_matches_stream_format() -> None:
    """The cocotb bench packs beats itself (it runs without einhls): same layout as StreamFormat."""
    import importlib.util
    import sys

    from codegen.schedule.design import StreamFormat

    spec = importlib.util.spec_from_file_location("einhls_tb", resource_dir("testbench") / "cocotb" / "test_einhls.py")
    tb = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tb                  # dataclasses look their module up there
    try:
        spec.loader.exec_module(tb)
    finally:
        del sys.modules[spec.name]
    rng = np.random.default_rng(0)
    for size, bits, signed, lanes in [(13, 8, True, 5), (7, 3, False, 2), (10, 16, True, 1), (9, 36, True, 4)]:
        fmt = StreamFormat(size, bits, signed, lanes)
        mine = tb.Format(size, bits, signed, lanes, fmt.tdata_bits)
        lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
        codes = rng.integers(lo, hi, size)
        assert mine.pack(codes) == fmt.pack(codes)
        assert mine.unpack(fmt.pack(codes)) == list(fmt.unpack(fmt.pack(codes)))
