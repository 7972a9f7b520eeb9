"""The fold's choice of a token mean with two banks of sums (OpSchedule.overlap, einhls_tokenmean
OVERLAP = 1) and a compiled design with one, bit-exact end to end.

With one bank a token mean takes (TOKENS + 1) x BEATS cycles a sequence: after a Linear that runs at
the target interval, the design misses the target by one token's beats a sequence.  The fold gives
the mean a second bank exactly where that happens (codegen/schedule/folding.py
overlap_token_means); the unit tests of both forms are in tests/test_pooling_units.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from codegen.examples import linear_graph
from codegen.ir.graph import Graph
from codegen.ir.pooling import make_token_mean
from codegen.ir.types import QType
from codegen.schedule.boards import get_board
from codegen.schedule.folding import fold

from design_sim import assert_design_bit_exact

TOKENS = 8
SIZE = 16


def linear_then_mean(tokens: int = TOKENS, size: int = SIZE) -> Graph:
    """A Linear over every token of a sequence, then the mean of its outputs over the sequence."""
    t = QType(True, 8, 2.0 ** -4)
    layer = linear_graph(size, size, t, 4, QType(True, 8, 2.0 ** -3), seed=5)
    linear = layer.ops[0]
    mean = make_token_mean("mean", "ReduceMean", linear.out_type, size, tokens, inputs=(linear.outputs[0],))
    return Graph(name="pooled", input_type=t, input_size=size, ops=[linear, mean], input_shape=(1, tokens, size),
                 output_shape=(1, size), output_is_float=False, tokens=tokens)


def mean_schedule(result):
    return result.design.schedules["mean"]


def test_one_bank_misses_the_target_two_banks_meet_it() -> None:
    """At 4 cycles a token the mean gets 4 lanes (4 beats a token): one bank takes 9 x 4 = 36 cycles
    a sequence of 8 tokens, 5 cycles a token; the fold gives it two banks, 8 x 4 = 32, and the
    design meets the target (the Linear itself reaches 4)."""
    graph, board = linear_then_mean(), get_board("zcu104")
    plain = fold(graph, board, target_ii=4, overlap_means=False)
    assert mean_schedule(plain).overlap == 0 and mean_schedule(plain).in_lanes == 4
    assert plain.costs["layer0"].ii * TOKENS <= 4 * TOKENS
    assert plain.costs["mean"].ii == (TOKENS + 1) * 4 and plain.totals["ii"] == 5
    assert any("not 4: 'mean' needs 5" in note for note in plain.notes), plain.notes

    result = fold(graph, board, target_ii=4)
    assert mean_schedule(result) == dataclasses.replace(mean_schedule(plain), overlap=1)
    assert result.costs["mean"].ii == TOKENS * 4
    assert result.totals["ii"] == 4 and result.totals["frame_interval"] == 4 * TOKENS
    assert not any("not 4" in note for note in result.notes), result.notes
    # the second bank's words and control: more LUTs, the same DSPs and latency
    assert result.costs["mean"].lut > plain.costs["mean"].lut
    assert (result.costs["mean"].dsp, result.costs["mean"].latency) == (plain.costs["mean"].dsp,
                                                                        plain.costs["mean"].latency)
    # and the choice is recorded in the report's layer
    from codegen.project import build_report
    layers = {row["name"]: row for row in build_report(result.design, result.costs, result.totals,
                                                       result.notes)["layers"]}
    assert layers["mean"]["overlap"] == 1 and "overlap" not in layers["layer0"]


def test_one_bank_where_it_meets_the_target() -> None:
    """At 5 cycles a token the lanes are the same (16 / 5 -> 4) and one bank's 36 cycles fit the
    sequence's 40: no second bank."""
    result = fold(linear_then_mean(), get_board("zcu104"), target_ii=5)
    assert mean_schedule(result).overlap == 0 and mean_schedule(result).in_lanes == 4
    assert result.totals["ii"] == 5


def test_one_bank_where_another_unit_is_slower() -> None:
    """The masked mean of the calibration sweep at 16 cycles a token: its 65-feature input is cut
    by slices whose lanes must divide 64 and 65 (one lane, 65 cycles a token), slower than the
    one-bank mean's 17 x 16 cycles a sequence: a second bank would buy nothing."""
    from bench.calibrate_units import unit_graph
    result = fold(unit_graph("maskedmean"), get_board("zcu104"), target_ii=16)
    assert mean_schedule(result).overlap == 0
    assert result.costs["mean"].ii < result.totals["frame_interval"] == 65 * 16
    # at 65 cycles a token the one-bank mean (17 x 64 = 1,088 cycles) is the slowest: two banks
    slow = fold(unit_graph("maskedmean"), get_board("zcu104"), target_ii=65)
    assert mean_schedule(slow).overlap == 1 and slow.totals["frame_interval"] == 65 * 16


def test_search_without_target_takes_two_banks_where_needed() -> None:
    """Without a target the fold searches the smallest interval that fits; the design it picks
    runs at the interval it states (the mean no longer adds a token a sequence)."""
    result = fold(linear_then_mean(), get_board("pynq-z2"))
    assert result.totals["ii"] == result.target_ii
    s = mean_schedule(result)
    beats = -(-SIZE // s.in_lanes)
    assert s.overlap == int((TOKENS + 1) * beats > result.target_ii * TOKENS)


def test_compiled_onnx_model_takes_two_banks_after_token_pairs(tmp_path) -> None:
    """An ONNX model (ReLU(Linear) over 8 tokens then ``mean(dim=1)``, exported and quantized by
    onnxruntime) compiled for zcu104: at ``--target-ii 4`` its Linear runs with token pairs (SIMD 8
    x PE 4, two tokens in 8 cycles), so the one-bank mean (9 x 4 cycles a sequence) was what held
    the design at 5; now the mean has two banks and the design runs at 4.  At 5 one bank does."""
    import json

    import torch
    from torch import nn

    from codegen.project import CompileOptions, compile_model
    from models.ort_qdq import export_quantized

    class LinearMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(SIZE, SIZE)

        def forward(self, x):
            return torch.relu(self.fc(x)).mean(dim=1)

    torch.manual_seed(0)
    path = export_quantized(LinearMean(), tmp_path / "linear_mean.onnx", shape=(1, TOKENS, SIZE))
    layers = {}
    for target in (4, 5):
        compile_model(path, tmp_path / f"out{target}", CompileOptions(board="zcu104", target_ii=target),
                      progress=lambda *a: None)
        report = json.loads((tmp_path / f"out{target}" / "report.json").read_text())
        layers[target] = {row["kind"]: row for row in report["layers"]}
        assert report["totals"]["ii"] == target
    assert layers[4]["linear"].get("token_pack") == 2
    assert layers[4]["tokenmean"]["overlap"] == 1 and layers[4]["tokenmean"]["ii"] == TOKENS * 4
    assert "overlap" not in layers[5]["tokenmean"] and layers[5]["tokenmean"]["ii"] == (TOKENS + 1) * 4
    top = (tmp_path / "out4" / "rtl" / "einhls_top.v").read_text()
    assert ".OVERLAP(1)" in top.replace(" ", "")


@pytest.mark.rtl
def test_design_with_two_bank_mean_bit_exact(tmp_path) -> None:
    """The Linear + two-bank mean design at 4 cycles a token, Verilog (RTL sim, frames back to
    back then with random pauses) and HLS C++ (C-sim) against the reference, element by element;
    the Verilog top passes OVERLAP to the mean and the measured interval is the scheduler's."""
    result = fold(linear_then_mean(), get_board("zcu104"), target_ii=4)
    assert mean_schedule(result).overlap == 1
    rtl = assert_design_bit_exact(result.design, tmp_path, vectors=5, seed=3)
    top = next((tmp_path / "rtl").glob("einhls_top.v")).read_text()
    assert ".OVERLAP(1)" in top.replace(" ", "")
    hls = "\n".join(p.read_text() for p in (tmp_path / "hls").glob("*.cpp"))
    assert "tokenmean_overlap_stream" in hls
    assert rtl.measured["mean_interval_cycles"] == pytest.approx(result.totals["frame_interval"])
    assert np.isfinite(rtl.measured["latency_cycles"])


def test_two_bank_estimates_within_15_percent_of_yosys() -> None:
    """The scheduler's estimate of every design of bench/results/tokenmean_overlap.json (the
    calibration sweep's token-mean points with two banks), rebuilt now, within 15% of the Yosys
    counts stored there (LUT with LUT RAM, FF; both families), and the designs are still the
    measured ones (the fold gives the token means two banks; the masked means at 16, 4 and 2
    cycles keep one, the bench sets the second)."""
    import json

    from bench import tokenmean_overlap as bench
    from bench.calibrate import measured_value

    data = json.loads((bench.RESULTS / "tokenmean_overlap.json").read_text())
    assert data["command"] == bench.COMMAND and len(data["rows"]) == 8
    for row in data["rows"]:
        kind, target = row["key"].split(":target=")
        design, chosen = bench.overlapped_design(kind, int(target))
        assert chosen == row["fold_chose"] == (kind == "tokenmean" or int(target) == 65), row["key"]
        assert design.schedules["mean"].in_lanes == row["lanes"]
        for family, stored in row["families"].items():
            est = bench.estimate(design, family)
            for target_name, measured in (("lut", measured_value(stored["measured"], "lut")),
                                          ("ff", stored["measured"]["FF"])):
                assert abs(est[target_name] - measured) <= bench.TOLERANCE * measured, \
                    (row["key"], family, target_name, est[target_name], measured)


@pytest.mark.slow
@pytest.mark.rtl
def test_design_with_two_bank_masked_mean_bit_exact(tmp_path) -> None:
    """The calibration sweep's masked mean (64 features and the mask cut from one 65-code input by
    slices, 16 tokens) at 65 cycles a token, where the fold gives it two banks: RTL sim and C-sim
    bit-exact, and the measured interval is the scheduler's 65 x 16 (one bank: 17 x 64 = 1,088)."""
    from bench.calibrate_units import unit_graph
    result = fold(unit_graph("maskedmean"), get_board("zcu104"), target_ii=65)
    assert mean_schedule(result).overlap == 1
    rtl = assert_design_bit_exact(result.design, tmp_path, vectors=4, seed=7)
    assert rtl.measured["mean_interval_cycles"] == pytest.approx(result.totals["frame_interval"]) == 65 * 16
