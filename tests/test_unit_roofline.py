"""Every multiplying unit kind within 1.1x of its MAC roofline (bench/unit_roofline.py).

Default run: the scheduler's frame interval (its interval formulas, which the calibration and unit
tests tie to RTL simulation) against ceil(MACs / (multipliers x products per multiplier)), the
MACs counted independently from the layer's shape.  Slow: the same designs emitted and run in RTL
simulation (Verilator through cocotb), the measured interval against the roofline.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.unit_roofline import CASES, RATIO_LIMIT, measure, plan
from codegen.schedule.roofline import UnitRoofline, unit_roofline
from codegen.schedule.design import OpSchedule

BY_NAME = {case.name: case for case in CASES}


def expected_macs(planned) -> int:
    """MACs per frame from the case, or for a tensor-train layer from its stages' weight shapes."""
    if planned.case.macs is not None:
        return planned.case.macs
    total = 0
    for op in planned.graph.ops:
        if op.kind == "contract":
            n, k = op.weight.shape
            total += (op.in_size // k) * k * n
    return total


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_scheduled_interval_within_roofline(name: str, tmp_path: Path) -> None:
    planned = plan(BY_NAME[name], tmp_path)
    p = planned.pipeline
    assert p.macs == expected_macs(planned)
    # the pipeline's interval is its slowest unit's; no unit can beat its own roofline
    assert p.cycles >= max(u.cycles for u in planned.units)
    assert all(u.cycles >= u.roofline_cycles for u in planned.units)
    assert p.ratio <= RATIO_LIMIT, (name, p.ratio, planned.units)


@pytest.mark.parametrize("name, interval", [("tt_64_r4", 43), ("tt_64_r4_48", 48)])
def test_span_folds_beat_the_bound_of_one_repeat_at_a_time(name: str, interval: int, tmp_path: Path) -> None:
    """The small TT layer has R = 16 repeats a stage: one repeat at a time a stage takes R x NF x KF
    cycles, so at 48 (and 43) every stage pays a padded fold and no such design is within the
    limit (its fewest product slots, counted over every shape, give 1.116 and 1.103).  The
    scheduler's design there uses span folds (a stage's PE slots over all repeats' outputs) and
    is within it; the fastest design that fits the board is the 43-cycle one."""
    from bench.unit_roofline import fewest_product_slots

    planned = plan(BY_NAME[name], tmp_path)
    macs = planned.pipeline.macs
    assert planned.pipeline.cycles == interval
    one_at_a_time = interval / math.ceil(macs / sum(fewest_product_slots(planned.graph, interval, span=False)))
    assert one_at_a_time > RATIO_LIMIT
    assert any(s.span for s in planned.design.schedules.values())
    assert planned.pipeline.ratio <= RATIO_LIMIT
    assert planned.pipeline.ratio >= interval / math.ceil(macs / sum(fewest_product_slots(planned.graph, interval)))


def test_packed_dsp_counts_two_products() -> None:
    """Two PEs sharing a DSP: half the multipliers, two products each, the same roofline."""
    from codegen.examples import linear_graph
    from codegen.ir.types import QType
    from codegen.schedule.cost import linear_cost
    graph = linear_graph(32, 16, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=3)
    op = graph.ops[0]
    s = OpSchedule(op.name, 4, 8, 4, 8)
    cost = linear_cost(op, s, "DSP48E1")
    row = unit_roofline(op, s, cost, 1, "DSP48E1")
    assert isinstance(row, UnitRoofline)
    assert (row.multipliers, row.products_per_multiplier) == (16, 2)
    assert row.dsp == cost.dsp == 16
    assert row.roofline_cycles == math.ceil(32 * 16 / 32) == cost.cycles
    # the same layer on a multiplier without a pre-adder (ECP5): one product each
    ecp5 = unit_roofline(op, s, cost, 1, "MULT18X18D")
    assert (ecp5.multipliers, ecp5.products_per_multiplier) == (32, 1)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_measured_interval_within_roofline(name: str, tmp_path: Path) -> None:
    planned = plan(BY_NAME[name], tmp_path)
    measured = measure(planned, tmp_path / "projects")
    assert measured == planned.pipeline.cycles
    assert measured <= RATIO_LIMIT * planned.pipeline.roofline_cycles, (name, measured, planned.pipeline)


@pytest.mark.rtl
def test_tt_stage_with_uneven_lanes_runs_at_its_schedule(tmp_path: Path) -> None:
    """The 96-wide TT pipeline at its fastest fitting interval feeds its third stage at 7 lanes into
    a Linear unit that loads 10 (einhls_lanes' queue form: neither divides the other).  The Linear
    takes its beats in bursts (a bank, then compute), so a queue that took an input beat only while
    it held fewer than OUT_LANES lanes stalled the producer (at the 56-cycle design of one repeat a
    stage at a time: 64 measured).  Using the whole queue it runs at the schedule (RTL sim,
    bit-exact)."""
    from codegen.schedule.contraction import stage_linear

    planned = plan(BY_NAME["tt_96_r3"], tmp_path)
    third = [op for op in planned.graph.ops if op.kind == "contract"][-1]
    s = planned.design.schedules[third.name]
    loads = stage_linear(third, s)[1].in_lanes
    assert s.in_lanes % loads and loads % s.in_lanes, (s.in_lanes, loads)
    assert measure(planned, tmp_path / "projects") == planned.pipeline.cycles