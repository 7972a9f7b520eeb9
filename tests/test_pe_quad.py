"""PE quads: four 4-bit products per DSP for ONE vector (einhls_linear PACK = 4, einhls_linear.h
linear<cfg, true>, schedule ``pe_pack`` 4).  PEs 4q..4q+3 share one DSP and the input x of the slot:

    P = (w[4q+3] * 2^(3S) + w[4q+2] * 2^(2S) + w[4q+1] * 2^S + w[4q]) * x + 2^(S-1) + 2^(2S-1) + 2^(3S-1)

The weight ROM holds the packed weight's digits (packing.py quad_digits), so the packing is wiring.

Golden tests: RTL simulation (cocotb + Verilator, back to back and with random pauses; vector 0
all-minimum, vector 1 all-maximum inputs) and C-sim equal the integer reference element by element.
The exactness proof (packing.py pe_quad_config) is checked against brute force over every weight
and input (a one-bit-narrower S is caught, the packed weight is the digits' concatenation), a wrong
S is caught by C-sim, a layer the proof rejects is refused naming its node, the scheduler picks PE
quads for a one-vector a4w4 layer on kv260, and an a4w4 QDQ model compiles and verifies end to end.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from codegen.errors import EinhlsError
from codegen.examples import linear_graph, manual_design
from codegen.ir.build import make_linear
from codegen.ir.graph import Graph
from codegen.ir.reference import random_inputs, run_reference
from codegen.ir.types import QType
from codegen.schedule.design import Design, OpSchedule
from codegen.schedule.packing import pe_quad_config, quad_digits

from design_sim import assert_design_bit_exact
from rtl_lint import lint_generated_top, lint_kernel

VECTORS = 12
ROOT = Path(__file__).resolve().parent.parent


def s(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def layer(k: int, n: int, in_type: QType, w_bits: int, out_type: QType, seed: int, clip: int | None = None,
          extreme: bool = False, **kwargs) -> Graph:
    """One Linear layer of one vector ([1, K]); ``clip`` limits the weights to [-clip, clip] (the
    layer is rebuilt so its accumulator and requant fit); ``extreme`` puts every non-zero weight at
    the narrow range's ends (+-(2^(b-1) - 1): what symmetric quantizers write)."""
    graph = linear_graph(k, n, in_type, w_bits, out_type, seed=seed, extreme_weights=extreme, **kwargs)
    if clip is not None:
        op = graph.ops[0]
        weight = np.clip(op.weight, -clip, clip)
        acc_scale = in_type.scale * 2.0 ** -4 * (np.linspace(0.6, 1.0, n) if kwargs.get("per_channel") else 1.0)
        op = make_linear("layer0", "layer0", weight, op.bias, in_type, acc_scale, out_type,
                         relu=kwargs.get("relu", False))
        graph = dataclasses.replace(graph, ops=[op])
    return graph


def full_range(graph: Graph) -> Graph:
    """The layer with every non-zero weight at -2^(b-1) or 2^(b-1) - 1 (-8 / 7 for 4 bits)."""
    op = graph.ops[0]
    bits = op.weight_type.bits
    weight = np.where(op.weight < 0, -(1 << (bits - 1)), np.where(op.weight > 0, (1 << (bits - 1)) - 1, 0))
    op = make_linear("layer0", "layer0", weight.astype(np.int64), op.bias, op.in_type,
                     op.in_type.scale * 2.0 ** -4, op.out_type)
    return dataclasses.replace(graph, ops=[op])


def quads(graph: Graph, simd: int, pe: int, in_lanes: int, out_lanes: int, board: str = "pynq-z2") -> Design:
    design = manual_design(graph, {"layer0": (simd, pe, in_lanes, out_lanes)}, board=board)
    design.schedules["layer0"] = OpSchedule("layer0", simd, pe, in_lanes, out_lanes, pe_pack=4)
    return design


CASES = {
    # a4w4, weights at +-7 (narrow range): S = 7, one product a field, the packed weight 25 bits
    "a4w4_extreme": lambda: quads(layer(32, 16, s(4), 4, s(4, 2.0), seed=61, extreme=True), 8, 8, 8, 4),
    # odd K and SIMD, N not a multiple of PE (a partly empty quad), PE 12 (three quads)
    "a4w4_odd": lambda: quads(layer(21, 14, s(4), 4, s(8, 2.0), seed=62, extreme=True), 7, 12, 3, 7),
    # unsigned 4-bit input with a zero point, per-channel requant and ReLU: the 5-bit signed input
    # fits with weights in [-4, 4] (S = 7); [-7, 7] would need S = 8 and 4 + 24 bits
    "u4w4_clipped": lambda: quads(layer(24, 8, u(4, zp=8), 4, u(8, 0.3, zp=3), seed=63, clip=4,
                                       per_channel=True, relu=True), 8, 8, 4, 2),
    # a3w3: two products a field fit (chain 2, S = 6), odd SIMD: the last slot of a chain is alone
    "a3w3_chain2": lambda: quads(layer(15, 8, s(3), 3, s(6, 2.0), seed=64, extreme=True), 5, 4, 5, 4),
}
EXPECTED = {"a4w4_extreme": (7, 1), "a4w4_odd": (7, 1), "u4w4_clipped": (7, 1), "a3w3_chain2": (6, 2)}


@pytest.mark.parametrize("name", CASES)
def test_pe_quad_config_is_what_the_case_says(name: str) -> None:
    design = CASES[name]()
    op = design.graph.ops[0]
    assert pe_quad_config(op, design.schedule(op), design.board.dsp_kind) == EXPECTED[name]


# --- the proof against brute force ------------------------------------------------------------

def _decode(packed: int, shift: int) -> list[int]:
    """The four PE sums of a packed (chain) sum P, as the RTL reads them: each low field's bits with
    half its range taken off, the top field P >> 3S."""
    half = 1 << (shift - 1)
    fields = [((packed >> (i * shift)) & ((1 << shift) - 1)) - half for i in range(3)]
    return fields + [packed >> (3 * shift)]


def _concatenated(digits: list[int], shift: int) -> int:
    """The packed weight as the unit wires it: {e3, e2, e1, e0}, low digits S bits each."""
    low = sum((d & ((1 << shift) - 1)) << (i * shift) for i, d in enumerate(digits[:3]))
    return low + (digits[3] << (3 * shift))


def _extraction_exact(weight: np.ndarray, in_type: QType, shift: int, chain: int) -> bool:
    """Whether, for every quad of rows and every chain of slots of ``weight`` (rows a multiple of
    four, one word of all columns) and every input combination, the fields of the packed product
    (from the ROM digits, plus the constant) are the four PE sums."""
    xs = range(in_type.min, in_type.max + 1)
    digits = quad_digits(weight)
    const = sum(1 << (i * shift - 1) for i in (1, 2, 3))
    cols = weight.shape[1]
    for q in range(weight.shape[0] // 4):
        rows = weight[4 * q:4 * q + 4]
        for c in range(0, cols, chain):
            slots = list(range(c, min(c + chain, cols)))
            packed_w = [_concatenated([int(d) for d in digits[4 * q:4 * q + 4, t]], shift) for t in slots]
            for x in itertools.product(xs, repeat=len(slots)):
                packed = const + sum(v * xi for v, xi in zip(packed_w, x))
                sums = [sum(int(rows[i, t]) * xi for t, xi in zip(slots, x)) for i in range(4)]
                if _decode(packed, shift) != sums:
                    return False
    return True


def _port_fits(weight: np.ndarray, shift: int, bits: int = 25) -> bool:
    """Whether every quad's packed weight, computed as the plain sum of shifted weights, fits ``bits``
    signed bits."""
    for q in range(weight.shape[0] // 4):
        for t in range(weight.shape[1]):
            v = sum(int(weight[4 * q + i, t]) << (i * shift) for i in range(4))
            if not -(1 << (bits - 1)) <= v < 1 << (bits - 1):
                return False
    return True


PROOF_CASES = [(in_type, w_bits, kind) for in_type, w_bits, kind in itertools.product(
    [s(4), u(4), s(3), s(2), u(2)], [4, 3, 2], ["random", "extreme", "full"])]


@pytest.mark.parametrize("in_type,w_bits,kind", PROOF_CASES)
def test_pe_quad_shift_is_proven(in_type: QType, w_bits: int, kind: str) -> None:
    """Small layers (8 rows: two quads, 6 columns, SIMD 6): where the proof gives (S, chain), brute
    force over every input finds the field extraction exact at S and not at S - 1 (unless S is
    the digits' floor, W bits), every packed weight is its digits' concatenation and fits 25 bits,
    and a refused chain 2 really fails; where it refuses, no S passes both brute-force checks."""
    graph = layer(6, 8, in_type, w_bits, s(8, 2.0), seed=5, extreme=kind == "extreme")
    if kind == "full":
        graph = full_range(graph)
    op = graph.ops[0]
    weight = np.asarray(op.weight, dtype=np.int64)
    shift, chain = pe_quad_config(op, OpSchedule("layer0", 6, 8, 1, 1, pe_pack=4), "DSP48E1")
    digits = quad_digits(weight)
    digits_fit = bool(np.all(np.abs(digits + 0.5) < (1 << (w_bits - 1))))
    if not shift:
        assert not digits_fit or not any(
            _extraction_exact(weight, in_type, b, c) and _port_fits(weight, b)
            for c in (1, 2) for b in range(w_bits, 12))
        return
    assert digits_fit
    for q, t in itertools.product(range(2), range(6)):
        packed = sum(int(weight[4 * q + i, t]) << (i * shift) for i in range(4))
        assert _concatenated([int(d) for d in digits[4 * q:4 * q + 4, t]], shift) == packed
    assert _port_fits(weight, shift)
    assert _extraction_exact(weight, in_type, shift, chain)
    if shift > w_bits:
        assert not _extraction_exact(weight, in_type, shift - 1, chain)
    if chain == 1:   # no width holds two products a field and still fits the port
        assert not any(_extraction_exact(weight, in_type, b, 2) and _port_fits(weight, b) for b in range(w_bits, 12))


def test_pe_quad_needs_narrow_weights_for_a4() -> None:
    """a4w4 with weights in [-7, 7] (symmetric narrow-range quantizers) proves S = 7 and exactly 25
    bits (7 * 2^21 + ... < 2^24) on both DSP kinds; -8 weights with -8 inputs need S = 8 and 29 bits,
    so that layer stays as today (no quads), and so does a PE not a multiple of four, a token
    pair, an int8 layer or a board without a pre-adder."""
    narrow = layer(64, 64, s(4), 4, s(4, 2.0), seed=3, extreme=True).ops[0]
    sched = OpSchedule("layer0", 8, 8, 1, 1, pe_pack=4)
    assert pe_quad_config(narrow, sched, "DSP48E1") == (7, 1) == pe_quad_config(narrow, sched, "DSP48E2")
    wide = full_range(layer(64, 64, s(4), 4, s(4, 2.0), seed=3)).ops[0]
    assert wide.weight.min() == -8
    assert pe_quad_config(wide, sched, "DSP48E1") == (0, 1) == pe_quad_config(wide, sched, "DSP48E2")
    assert pe_quad_config(narrow, OpSchedule("layer0", 8, 6, 1, 1, pe_pack=4), "DSP48E1") == (0, 1)
    assert pe_quad_config(narrow, OpSchedule("layer0", 8, 8, 1, 1, 2, pe_pack=4), "DSP48E1") == (0, 1)
    assert pe_quad_config(narrow, sched, "MULT18X18D") == (0, 1)
    int8 = layer(64, 64, s(8), 8, s(8, 2.0), seed=3).ops[0]
    assert pe_quad_config(int8, sched, "DSP48E1") == (0, 1)


# --- golden: RTL sim and C-sim ------------------------------------------------------------------

@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.parametrize("name", CASES)
def test_pe_quad_rtl_and_csim_match_reference(name: str, tmp_path: Path) -> None:
    """RTL sim (back to back, then with random pauses) and C-sim equal the reference element by
    element; the unit runs at NF*KF cycles a vector (plus hand-over) with PACK = 4 on DSPs."""
    design = CASES[name]()
    rtl = assert_design_bit_exact(design, tmp_path, VECTORS, seed=71)
    op = design.graph.ops[0]
    sched = design.schedule(op)
    shift, chain = EXPECTED[name]
    top = (tmp_path / "rtl" / f"{design.top_name}.v").read_text()
    assert ".PACK(4)" in top and f".PACK_SHIFT({shift})" in top and f".PACK_CHAIN({chain})" in top
    assert ".MUL_LUT(0)" in top
    params = (tmp_path / "hls" / "params_00_layer0.h").read_text()
    assert f"QUAD_SHIFT = {shift}, QUAD_CHAIN = {chain}" in params
    assert "linear<l00_layer0::cfg, true>" in (tmp_path / "hls" / f"{design.top_name}.cpp").read_text()
    steps = -(-op.in_size // sched.simd) * -(-op.out_size // sched.pe)
    bound = max(steps, design.top_input.beats, design.top_output.beats)
    assert bound <= rtl.measured["interval_cycles"] <= bound + 2


@pytest.mark.csim
def test_pe_quad_wrong_shift_is_caught_by_csim(tmp_path: Path) -> None:
    """With fields one bit narrower than proven (S - 1) the extreme vectors borrow across fields
    and C-sim fails: the proof is not vacuous."""
    from codegen.emit.hls import emit_csim_testbench, emit_hls
    from codegen.verify.csim import run_csim

    design = CASES["a4w4_extreme"]()
    emit_hls(design, tmp_path)
    emit_csim_testbench(design, tmp_path)
    params = tmp_path / "hls" / "params_00_layer0.h"
    text = params.read_text()
    assert "QUAD_SHIFT = 7," in text
    params.write_text(text.replace("QUAD_SHIFT = 7,", "QUAD_SHIFT = 6,"))
    inputs = random_inputs(design.graph, VECTORS, seed=72)
    expected = run_reference(design.graph, inputs)
    result = run_csim(tmp_path, inputs, expected, tmp_path / "work")
    assert not result.passed and result.error is None, result.line()   # ran, and the outputs differ
    assert result.outputs is not None and (result.outputs != expected).any()


def test_pe_quad_refused_clearly() -> None:
    """A layer scheduled with PE quads that the proof rejects is refused naming the node, by both
    emitters: -8 weights on 4-bit inputs (S = 8: 29 bits), a PE not a multiple of four."""
    from codegen.emit.hls import plan_hls
    from codegen.emit.rtl import plan_rtl

    wide = quads(full_range(layer(16, 8, s(4), 4, s(8, 2.0), seed=5)), 4, 8, 4, 4)
    odd_pe = quads(layer(16, 6, s(4), 4, s(8, 2.0), seed=5, extreme=True), 4, 6, 4, 3)
    for design in (wide, odd_pe):
        for plan in (plan_rtl, plan_hls):
            with pytest.raises(EinhlsError, match="PE quads") as info:
                plan(design)
            assert info.value.node == "layer0"


# --- the scheduler --------------------------------------------------------------------------------

def _fold_64(board: str):
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold

    return fold(layer(64, 64, s(4), 4, s(4, 2.0), seed=3), get_board(board), target_ii=64)


def test_scheduler_picks_pe_quads_for_one_vector() -> None:
    """a4w4 64x64 at 64 cycles, one vector: on kv260 and zcu104 the scheduler picks PE quads on 16
    DSPs (FINN's int4 count); on pynq-z2 they are offered but lose to LUT multipliers under the
    scheduler's key (the largest share of a board resource: 16 of the Zynq-7020's 220 DSPs is more
    of it than the LUT multipliers' share of its 53k LUTs)."""
    from codegen.schedule.cost import op_cost

    for board in ("kv260", "zcu104"):
        result = _fold_64(board)
        sched, cost = result.design.schedules["layer0"], result.costs["layer0"]
        assert sched.pe_pack == 4 and sched.token_pack == 1 and sched.pe % 4 == 0, (board, sched)
        assert cost.dsp == 16 and cost.ii <= 64
    zynq = _fold_64("pynq-z2")
    chosen = zynq.design.schedules["layer0"]
    assert chosen.pe_pack == 1 and zynq.costs["layer0"].dsp == 0
    op = zynq.design.graph.ops[0]
    offered = op_cost(op, OpSchedule("layer0", 8, 8, 1, 1, pe_pack=4), "DSP48E1")
    assert offered.dsp == 16 and offered.ii == 64
    assert offered.dsp / 220 > zynq.costs["layer0"].lut / 53200


def test_pe_quad_estimates_against_stored_yosys() -> None:
    """The stored Yosys xc7 PE-quad points of bench/results/int4_packing.json (``python -m
    bench.int4_packing``): the DSP estimate exact, LUT (logic + distributed RAM) and FF within 15%."""
    from codegen.schedule.cost import linear_cost

    data = json.loads((ROOT / "bench" / "results" / "int4_packing.json").read_text())
    rows = [r for r in data["pe_quads"] if r["family"] == "xc7"]
    assert len(rows) >= 5
    op = layer(64, 64, s(4), 4, s(4, 2.0), seed=3).ops[0]
    for row in rows:
        sched = OpSchedule("layer0", row["simd"], row["pe"], 1, 1, pe_pack=4)
        cost = linear_cost(op, sched, "DSP48E1", rom_kind=row["rom"])
        measured = row["measured"]
        assert cost.dsp == measured["DSP"] == row["pe"] // 4 * row["simd"], row
        assert abs(cost.lut / (measured["LUT"] + measured["LUT_MEM"]) - 1) <= 0.15, (row, cost.lut)
        assert abs(cost.ff / measured["FF"] - 1) <= 0.15, (row, cost.ff)


@pytest.mark.slow
@pytest.mark.rtl
def test_yosys_pe_quads_64x64_at_finn_int4(tmp_path: Path) -> None:
    """The issue's layer: a4w4 64x64, one vector, SIMD 8 x PE 8 (64 cycles), weights in [-7, 7],
    ROM in block RAM (as the yardstick table was measured): Yosys synth_xilinx -family xc7 maps each
    quad to one DSP48E1 (16 in all) and the unit takes at most FINN's 1,558 LUTs."""
    from codegen.verify.yosys import synth_counts
    from codegen.emit.rtl import emit_rtl

    design = quads(layer(64, 64, s(4), 4, s(4, 2.0), seed=3), 8, 8, 1, 1)
    design.rom_kinds["layer0"] = "bram"
    emit_rtl(design, tmp_path)
    counts = synth_counts(tmp_path / "rtl", design.top_name, "xc7", tmp_path / "yosys")
    assert counts["DSP"] == 16, counts
    assert counts["LUT"] + counts["LUT_MEM"] <= 1558, counts


# --- end to end: a [1, 64] a4w4 QDQ model ----------------------------------------------------------

def a4w4_vector_model(path: Path, seed: int = 0) -> Path:
    """[1, 64] int4 input (QDQ, opset 21) -> MatMul 64x64 with int4 weights in [-7, 7] (narrow
    range, as symmetric quantizers write them) -> int4, power-of-two scales."""
    from onnx import TensorProto

    from models.qdq_helper import QdqBuilder, save

    rng = np.random.default_rng(seed)
    b = QdqBuilder([1, 64], opset=21)
    x = b.qdq("x", 2.0 ** -2, 0, TensorProto.INT4)
    w = rng.integers(-7, 8, size=(64, 64))
    w[0, :4] = [-7, 7, -7, 7]
    x = b.node("MatMul", [x, b.weight(w, 2.0 ** -3, 0, TensorProto.INT4)])
    x = b.qdq(x, 2.0 ** 1, 0, TensorProto.INT4)
    return save(b.model(x), path)


@pytest.mark.rtl
@pytest.mark.csim
def test_a4w4_vector_model_uses_pe_quads_and_verifies(tmp_path: Path) -> None:
    """`einhls compile` of the [1, 64] a4w4 model for kv260 at 64 cycles picks PE quads (16 DSPs),
    and `einhls verify --csim --rtlsim` is bit-exact with the measured interval the scheduled one."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify

    model = a4w4_vector_model(tmp_path / "a4w4.onnx")
    quiet = dict(progress=lambda *_: None)
    project = compile_model(model, tmp_path / "out", CompileOptions(board="kv260", target_ii=64), **quiet)
    (op,) = [op for op in project.graph.ops if op.kind == "linear"]
    sched = project.design.schedules[op.name]
    assert sched.pe_pack == 4 and pe_quad_config(op, sched, "DSP48E2") == (7, 1), sched
    assert project.report["totals"]["dsp"] == 16
    top = (tmp_path / "out" / "rtl" / f"{project.design.top_name}.v").read_text()
    assert ".PACK(4)" in top and ".MUL_LUT(0)" in top
    results = verify(project, ("csim", "rtlsim"), vectors=8, **quiet)
    for result in results:
        assert result.passed, result.line()
    assert results[1].measured["interval_cycles"] == project.report["totals"]["frame_interval"] == 64


# --- lint --------------------------------------------------------------------------------------

PE_QUAD_LINT_PARAMS = [
    ["-GPACK=4", "-GPACK_SHIFT=7", "-GPACK_CHAIN=1", "-GW_BITS=4", "-GIN_BITS=4", "-GACC_BITS=13",
     "-GSIMD=8", "-GPE=8", "-GIN_LANES=8", "-GN=64", "-GK=64"],
    ["-GPACK=4", "-GPACK_SHIFT=8", "-GPACK_CHAIN=2", "-GW_BITS=4", "-GIN_BITS=3", "-GIN_SIGNED=0",
     "-GACC_BITS=13", "-GSIMD=3", "-GPE=8", "-GIN_LANES=3", "-GN=13", "-GK=7"],
]


@pytest.mark.rtl
@pytest.mark.parametrize("params", PE_QUAD_LINT_PARAMS)
def test_pe_quad_unit_lint_clean(params: list[str]) -> None:
    """verilator --lint-only -Wall on einhls_linear with PE quads (einhls.vlt waivers)."""
    proc = lint_kernel("einhls_linear", params)
    assert proc.returncode == 0, (params, proc.stderr)


@pytest.mark.rtl
def test_generated_pe_quad_top_lint_clean(tmp_path: Path) -> None:
    proc = lint_generated_top(CASES["a4w4_odd"](), tmp_path)
    assert proc.returncode == 0, proc.stderr
