"""A Linear unit's input buffer where Yosys puts it (codegen/schedule/cost.py input_buffer_bram36).

Default run: today's estimate against the Yosys counts stored by ``python -m bench.input_buffer_ram``
(bench/results/input_buffer_ram.json): block RAM within half a block (the weight ROM's plus the
buffer's), and where the buffer is in block RAM, LUT and FF estimates closer to Yosys than the
register-and-multiplexer model of the buffer was (it said up to 11x the FFs).  Slow: one point
synthesized again.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.input_buffer_ram import DSP_KIND, POINTS, RESULTS, estimate, measure

STORED = json.loads((RESULTS / "input_buffer_ram.json").read_text())["points"]


@pytest.mark.parametrize("row", STORED, ids=[r["name"] for r in STORED])
@pytest.mark.parametrize("family", list(DSP_KIND))
def test_estimate_against_stored_yosys(row: dict, family: str) -> None:
    measured = row["yosys"][family]
    now = estimate(row["kind"], row["params"], family)
    # block RAM: at most half a block over (one memory is counted in one block shape, where Yosys
    # mixes RAMB36 and RAMB18: 224-bit words are 4 x 72 here, 3 x 72 + 1 x 36 there), never under
    assert measured["BRAM"] <= now["BRAM"] <= measured["BRAM"] + 0.5, (row["name"], family, now, measured)
    if now["input_BRAM"]:
        # the buffer in block RAM brings LUT and FF closer to Yosys than registers and a
        # multiplexer (the model before: input_ram=False) did
        before = estimate(row["kind"], row["params"], family, input_ram=False)
        for target, counted in (("LUT", measured["LUT"] + measured["LUT_MEM"]), ("FF", measured["FF"])):
            assert abs(now[target] - counted) < abs(before[target] - counted), (row["name"], family, target,
                                                                                 now, before, measured)


def test_stored_points_are_the_bench_points() -> None:
    assert [(r["kind"], r["params"]) for r in STORED] == [(k, p) for k, p in POINTS]
    # the sweep covers both sides of the rule: buffers in block RAM and in LUTs
    kinds = {bool(estimate(k, p, "xcup")["input_BRAM"]) for k, p in POINTS}
    assert kinds == {True, False}


@pytest.mark.slow
def test_yosys_places_the_buffer_as_estimated(tmp_path: Path) -> None:
    kind, params = POINTS[0]
    measured = measure(kind, params, tmp_path)
    for family in DSP_KIND:
        assert measured[family]["BRAM"] == estimate(kind, params, family)["BRAM"], (family, measured)
