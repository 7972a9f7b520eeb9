"""Span folds of contraction stages (schedule/contraction.py span_options, einhls_linear REPS).

One repeat at a time a stage of R repeats takes R x NF x KF cycles, so its intervals come in
multiples of R; a span fold runs the PE slots over all R repeats' outputs flattened (a group of PE
outputs may start in one repeat and end in the next), reaching the intervals in between without a
padded fold.  Tests: the options and their cycles counted by hand, the tiled layer against the
stage's reference, hand-built stages in RTL sim and C-sim (odd PE with bias and per-channel
multipliers, PE pairs, a 16-bit input and an odd N), and a model written by the exporter compiled
at an interval that needs span folds, verified in both simulators.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from codegen.examples import manual_design
from codegen.ir.contraction import ContractStage
from codegen.ir.graph import Graph
from codegen.ir.requant import RequantParams
from codegen.ir.types import QType
from codegen.passes.contraction import _acc_type
from codegen.schedule.contraction import (SPAN_MAX_STEPS, pairs_impossible, span_options, stage_cycles,
                                          stage_linear, stage_options)
from codegen.schedule.design import OpSchedule
from codegen.schedule.packing import pair_shape
from design_sim import assert_design_bit_exact

VECTORS = 12


def tt_stages(tmp_path: Path) -> list[ContractStage]:
    import onnx
    from codegen.project import CompileOptions, lower
    from models.einsum_models import tt_model
    path = tmp_path / "tt.onnx"
    onnx.save(tt_model([4, 4, 4], [4, 4, 4], [4, 4], seed=3), path)
    return [op for op in lower(path, CompileOptions(board="pynq-z2")).ops if op.kind == "contract"]


def test_span_options_counted_by_hand(tmp_path: Path) -> None:
    first, middle, _ = tt_stages(tmp_path)
    assert (middle.repeats, middle.k, middle.n) == (16, 16, 16)
    options = span_options(middle)
    for option in options:
        cycles, simd, pe = option
        assert option.span == 16 and pe < 16 and 16 % pe
        assert cycles == math.ceil(16 * 16 / pe) * math.ceil(16 / simd) <= SPAN_MAX_STEPS
    # 48 cycles on 88 product slots: 24 groups of 11 outputs (the last with 3), 2 steps each
    assert (48, 8, 11) in [tuple(o) for o in options]
    # the middle stage's input (8-bit x 8-bit x 4, 17 bits) leaves no room for PE pairs
    assert pairs_impossible(middle)
    # the first stage multiplies int8 by int8 and packs PE pairs: only even PEs (N = 16 even), so
    # a group never splits a pair
    assert not pairs_impossible(first)
    assert span_options(first) and all(o[2] % 2 == 0 for o in span_options(first))
    # in the options the fold walks, one repeat at a time stays first where multipliers tie
    from codegen.schedule.folding import linear_options
    merged = stage_options(middle)
    one_at_a_time = [(16 * c, simd, pe) for c, simd, pe in linear_options(middle.as_linear())]
    assert [tuple(o) for o in merged if not o.span] == one_at_a_time
    slots = [o[1] * o[2] for o in merged]
    assert slots == sorted(slots)


def test_a_span_fold_never_splits_a_pe_pair() -> None:
    from codegen.examples import linear_graph
    op = linear_graph(8, 24, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=1).ops[0]
    assert pair_shape(op, OpSchedule("l", 4, 4, 4, 4, span=6))
    assert not pair_shape(op, OpSchedule("l", 4, 3, 4, 3, span=6))    # odd PE
    assert not pair_shape(op, OpSchedule("l", 4, 4, 4, 4, span=3))    # odd N a repeat


def stage_graph(repeats: int, k: int, n: int, in_type: QType, seed: int, per_channel: bool = False,
                bias: bool = False) -> Graph:
    """One ContractStage (no gather): y[r] = requant(bias + W x[r]) for r < R, int8 weights."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(n, k))
    b = rng.integers(-3000, 3000, size=n) if bias else np.zeros(n, dtype=np.int64)
    acc = _acc_type(w, b, in_type)
    mults = tuple(int(m) for m in rng.integers(1 << 10, 1 << 12, size=n)) if per_channel else (1 << 11,)
    shift = acc.bits + 11 - 8
    requant = RequantParams(mults, shift, 0, -128, 127)
    out_type = QType(True, 8, 1.0)
    stage = ContractStage(name="st", source="Einsum_0", in_type=in_type, out_type=out_type,
                          in_size=repeats * k, out_size=repeats * n, repeats=repeats, weight=w, bias=b,
                          weight_type=QType(True, 8, 1.0), acc_type=acc, requant=requant, step="rk,nk->rn")
    return Graph("span", in_type, repeats * k, [stage], input_shape=(1, repeats * k),
                 output_shape=(1, repeats * n))


def test_the_tiled_layer_computes_the_stage() -> None:
    """Output o = r * N + n of the tiled layer, fed repeat o // N, is the stage's y[r, n]."""
    import torch
    graph = stage_graph(5, 7, 6, QType(True, 8, 2.0 ** -4), seed=2, per_channel=True, bias=True)
    stage = graph.ops[0]
    tiled = stage.as_span_linear()
    x = torch.randint(-128, 128, (3, 5 * 7))
    acc = np.stack([tiled.weight[o] @ x[:, (o // 6) * 7:(o // 6 + 1) * 7].numpy().T + tiled.bias[o]
                    for o in range(30)], axis=1)
    from codegen.ir.graph import apply_requant
    expected = apply_requant(torch.as_tensor(acc), tiled.requant)
    assert torch.equal(stage.reference(x), expected)


# name -> (graph, (simd, pe, in lanes, out lanes)): the span is N
CASES = {
    # PE 3 over N = 8: groups start at 0, 3, 6 (split at PE 2), 1, 4, 7 (split at PE 1), ...;
    # K = 10 at SIMD 4 (a padded last word), bias and per-channel multipliers tiled
    "odd_pe_bias_per_channel": (lambda: stage_graph(6, 10, 8, QType(True, 8, 2.0 ** -4), 3, True, True),
                                (4, 3, 2, 3)),
    # int8 x int8: PE pairs (PACK = 2) with PE 4 over N = 6, so groups start at even outputs
    "pe_pairs": (lambda: stage_graph(5, 8, 6, QType(True, 8, 2.0 ** -4), 4, bias=True), (8, 4, 8, 2)),
    # 16-bit input (no pairs), odd N = 5 at PE 2: splits at PE 1
    "wide_input_odd_n": (lambda: stage_graph(4, 6, 5, QType(True, 16, 2.0 ** -8), 5), (3, 2, 3, 1)),
}


@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.parametrize("name", CASES)
def test_span_stage_rtl_and_csim_match_reference(name: str, tmp_path: Path) -> None:
    """RTL sim (back to back, then with random pauses) and C-sim equal the reference element by
    element; the RTL unit is einhls_linear with REPS = R at ceil(R*N / PE) x KF cycles a frame."""
    build, shape = CASES[name]
    graph = build()
    op = graph.ops[0]
    design = manual_design(graph, {"st": (*shape, 1, 1, 0, op.n)})
    s = design.schedule(op)
    rtl = assert_design_bit_exact(design, tmp_path, VECTORS, seed=7)
    top = (tmp_path / "rtl" / f"{design.top_name}.v").read_text()
    assert f".REPS({op.repeats})" in top and f".REP_N({op.n})" in top
    lin, inner = stage_linear(op, s)
    from codegen.schedule.packing import one_token_pairs
    pairs = bool(one_token_pairs(lin, inner, design.board.dsp_kind)[0])
    assert pairs == (name == "pe_pairs") and (".PACK(2)" in top) == pairs
    assert "einhls::contract_span<" in (tmp_path / "hls" / "einhls_top.cpp").read_text()
    steps = stage_cycles(op, s)
    assert steps == math.ceil(op.repeats * op.n / s.pe) * math.ceil(op.k / s.simd)
    bound = max(steps, design.top_input.beats, design.top_output.beats)
    assert bound <= rtl.measured["interval_cycles"] <= bound + 2


@pytest.mark.rtl
@pytest.mark.csim
def test_exported_tt_model_with_span_folds_verifies(tmp_path: Path) -> None:
    """The contraction sweep model (TT with 2..5 cores, Tucker, low rank; 4/8/16-bit) compiled at
    40 cycles: several stages take span folds (odd and even PE, 8 to 28-bit inputs); both
    simulators are bit-exact and the RTL runs at the scheduled interval."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify
    from models.einsum_models import sweep_model

    model = tmp_path / "sweep.onnx"
    model.write_bytes(sweep_model().SerializeToString())
    project = compile_model(model, tmp_path / "out", CompileOptions(board="pynq-z2", target_ii=40),
                            progress=lambda *_: None)
    spans = [layer for layer in project.report["layers"] if layer.get("span")]
    assert len(spans) >= 4 and {layer["pe"] % 2 for layer in spans} == {0, 1}
    results = verify(project, ("csim", "rtlsim"), VECTORS, seed=3, progress=lambda *_: None)
    for result in results:
        assert result.passed, result.line()
    assert results[1].measured["interval_cycles"] <= project.report["totals"]["ii"] + 2


def test_span_estimates_against_stored_yosys(tmp_path: Path) -> None:
    """bench/span_fold.py stored Yosys (xc7) counts and RTL-sim intervals of the TT designs at 48
    and 43 cycles, span folds and one repeat at a time: the scheduler's estimates now (the same
    designs, re-folded) within 15% in LUT and FF, DSPs and intervals exact.  These designs are not
    in the calibration sweep: an out-of-sample check."""
    import json
    from bench.span_fold import RESULTS, estimate, tt_graph

    stored = json.loads((RESULTS / "span_fold.json").read_text())
    graph = tt_graph(tmp_path)
    checked = 0
    for row in stored["rows"]:
        now = estimate(graph, row["target"], row["span"])
        if "refused" in row:
            assert "refused" in now
            continue
        assert now["shapes"] == row["shapes"]
        m, e = row["measured"], now["estimate"]
        assert e["dsp"] == m["dsp"] and now["interval"] == m["interval"]
        for key in ("lut", "ff"):
            assert abs(e[key] - m[key]) <= 0.15 * m[key], (row["target"], row["span"], key, e[key], m[key])
        checked += 1
    assert checked == 3
