"""A Linear unit's input buffer where Yosys puts it (codegen/schedule/cost.py input_buffer_bram36).

Default run: today's estimate against the Yosys counts stored by ``python -m bench.input_buffer_ram``
(bench/results/input_buffer_ram.json): block RAM exactly (the weight ROM's plus the buffer's), and
where the buffer is in block RAM no LUT or FF estimate above the measurement by more than 15% (the
register-and-multiplexer model of a deep buffer said up to 11x the FFs).  Slow: one point
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
    assert now["BRAM"] == measured["BRAM"], (row["name"], family, now, measured)
    if now["input_BRAM"]:
        assert now["LUT"] <= 1.15 * (measured["LUT"] + measured["LUT_MEM"]), (row["name"], family, now, measured)
        assert now["FF"] <= 1.15 * measured["FF"], (row["name"], family, now, measured)


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
