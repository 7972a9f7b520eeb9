"""The HLS butterfly's stage groups (codegen/emit/butterfly.py hls_stage_groups), checked without a
compiler: the plan the C-sim cycle check (tests/test_butterfly_csim.py) then measures.

Every process of the plan (load, each group's issue loop, drain) meets the schedule's cycles per
frame; the groups cover the stages in order; no cut of the stages at any uniform P' has fewer
multipliers (exhaustive over all cuts); the plan passes the read-after-write rule.
"""
from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest

from codegen.emit.butterfly import hls_stage_groups
from codegen.emit.hls import plan_hls
from codegen.emit.hls_rules import check_plan
from codegen.schedule.butterfly import stage_gaps, timing, unit_options

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.butterfly_cases import CASES, SLOW  # noqa: E402

ALL = {**CASES, **SLOW}


def estimate_of(op, s) -> int:
    return max(timing(op, s.pe).compute, math.ceil(op.in_size / s.in_lanes), math.ceil(op.out_size / s.out_lanes))


def issue_of(op, units: int, first: int, last: int, gaps: list[int] | None = None) -> int:
    gaps = gaps if gaps is not None else stage_gaps(op.n, op.stacks, op.strides, units)
    return (last - first) * op.total // (2 * units) + sum(gaps[first:last - 1])


@pytest.mark.parametrize("name", ALL)
def test_every_process_of_the_plan_meets_the_estimate(name):
    design = ALL[name]()
    op = design.graph.ops[0]
    s = design.schedule(op)
    units, groups = hls_stage_groups(op, s)
    assert [g.first for g in groups] == [0, *[g.last for g in groups[:-1]]] and groups[-1].last == op.stages
    estimate = estimate_of(op, s)
    for g in groups:
        assert g.issue == issue_of(op, units, g.first, g.last) <= estimate, (g, estimate)
    banks = 2 * units
    assert op.n // banks <= estimate and math.ceil(op.out_size / banks) <= estimate   # load, drain


@pytest.mark.parametrize("name", [n for n in ALL if ALL[n]().graph.ops[0].stages <= 10])
def test_no_cut_at_any_uniform_units_has_fewer_multipliers(name):
    design = ALL[name]()
    op = design.graph.ops[0]
    s = design.schedule(op)
    units, groups = hls_stage_groups(op, s)
    estimate = estimate_of(op, s)
    best = None
    for p in unit_options(op):
        if max(op.n // (2 * p), math.ceil(op.out_size / (2 * p))) > estimate:
            continue
        gaps = stage_gaps(op.n, op.stacks, op.strides, p)
        for cuts in itertools.product([False, True], repeat=op.stages - 1):
            bounds = [0, *[i + 1 for i, cut in enumerate(cuts) if cut], op.stages]
            if all(issue_of(op, p, a, b, gaps) <= estimate for a, b in zip(bounds, bounds[1:])):
                count = (len(bounds) - 1) * p
                best = count if best is None else min(best, count)
    assert best is not None and units * len(groups) == best, (units, len(groups), best)


def test_one_frame_designs_keep_the_verilog_units():
    """Where the Verilog has one frame in flight and no gaps (n = 512, P = 1) the HLS unit is the
    Verilog's: one group at its P."""
    design = SLOW["n512_p1_int16"]()
    op = design.graph.ops[0]
    units, groups = hls_stage_groups(op, design.schedule(op))
    assert units == 1 and len(groups) == 1


@pytest.mark.parametrize("name", ["n8_p4_int4", "n16_p1_hadamard_exact", "n1024_p512_int8"])
def test_the_plan_passes_the_rules(name):
    assert check_plan(plan_hls(ALL[name]())) == []
