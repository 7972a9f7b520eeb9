"""Benchmark: the token means with two banks of sums (OVERLAP = 1) against the scheduler's estimate.

    python -m bench.tokenmean_overlap        # Yosys on both families, one RTL simulation (about 3 minutes)

The designs are the calibration sweep's token-mean and masked-mean points (bench/calibrate_units.py:
64 int8 features over 16 tokens, on zcu104 at each target of the sweep) folded as the compiler
folds them, with two banks: the fold gives them to every token-mean point (with one, a sequence
takes 17 tokens' beats, one more than the target allows) and to the masked mean at 65 cycles; at
the other masked-mean targets the slices of its odd-sized input (one lane: 65 cycles a token) are
slower than the one-bank mean, the fold keeps one bank, and the second is set here to measure it
("set" in the table).  Each design (the unit, with the slices and forks of the masked mean and the
lane converters) is synthesized by Yosys (``synth_xilinx -family xc7`` and ``xcup``) and compared
with the scheduler's calibrated estimate of the whole design (the sweep's own comparison:
bench/calibrate.py point_summary, here for the design with two banks); beside it the sweep's
measurement of the one-bank design, so the difference is what the second bank costs.

One design (the token mean at 16 cycles a token) also runs in RTL simulation, frames back to back
and with random pauses, bit-exact against the integer reference: its measured interval is the
frame interval the scheduler states.

Writes bench/results/tokenmean_overlap.md and tokenmean_overlap.json.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.calibrate import DSP_KIND, FAMILIES, MEASURES, RESULTS, load, measured_value, point_key
from bench.calibrate_units import GRAPH_UNIT_BOARDS, GRAPH_UNIT_TARGETS, design_extras, unit_graph

COMMAND = "python -m bench.tokenmean_overlap"
KINDS = ("tokenmean", "maskedmean")
SIMULATED = ("tokenmean", 16)
TOLERANCE = 0.15


def overlapped_design(kind: str, target: int) -> tuple[object, bool]:
    """The point's design as the fold builds it, its mean with two banks; whether the fold chose
    them (False: set here)."""
    import dataclasses

    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold
    design = fold(unit_graph(kind), get_board(GRAPH_UNIT_BOARDS.get(kind, "zcu104")), target_ii=target).design
    chosen = design.schedules["mean"].overlap == 1
    design.schedules["mean"] = dataclasses.replace(design.schedules["mean"], overlap=1)
    return design, chosen


def estimate(design, family: str) -> dict:
    """The scheduler's calibrated LUT / FF of the whole design (as bench/calibrate.py point_summary)."""
    from codegen.schedule.cost import op_cost
    dsp_kind = DSP_KIND[family]
    costs = {op.name: op_cost(op, design.schedules[op.name], dsp_kind) for op in design.graph.ops}
    extras = design_extras(design, costs, dsp_kind)
    return {"lut": sum(c.lut for c in costs.values()) + extras["fifo_lut"] + extras["lanes_lut"],
            "ff": sum(c.ff for c in costs.values()) + extras["lanes_ff"],
            "mean_lut": costs["mean"].lut, "mean_ff": costs["mean"].ff,
            "frame_interval": extras["frame_interval"], "latency": extras["latency"]}


def simulate(design, work: Path) -> dict:
    from codegen.emit.cocotb_tb import emit_cocotb_tb
    from codegen.emit.rtl import emit_rtl
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.verify.rtlsim import run_rtlsim

    emit_rtl(design, work)
    emit_cocotb_tb(design, work)
    inputs = random_inputs(design.graph, 6, seed=100)
    result = run_rtlsim(work, inputs, run_reference(design.graph, inputs), work / "work", seed=100)
    if not result.passed:
        raise RuntimeError(f"RTL simulation failed: {result.line()}")
    return {k: result.measured[k] for k in ("interval_cycles", "mean_interval_cycles", "latency_cycles")}


def main() -> None:
    from codegen.emit.rtl import emit_rtl
    from codegen.verify.yosys import synth_counts, yosys_version

    sweep = {p["key"]: p for p in load()["points"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            for target in GRAPH_UNIT_TARGETS[kind]:
                design, chosen = overlapped_design(kind, target)
                work = Path(tmp) / f"{kind}_{target}"
                emit_rtl(design, work)
                key = point_key(kind, {"target": target})
                row = {"key": key, "lanes": design.schedules["mean"].in_lanes, "fold_chose": chosen, "families": {}}
                for family in FAMILIES:
                    counts = synth_counts(work / "rtl", design.top_name, family, work / f"yosys_{family}")
                    est = estimate(design, family)
                    one_bank = sweep[key]["yosys"][family]
                    row["families"][family] = {
                        "measured": {k: counts[k] for k in MEASURES}, "estimate": est,
                        "one_bank_measured": {k: one_bank[k] for k in MEASURES},
                        "lut_error": round((est["lut"] - measured_value(counts, "lut")) / measured_value(counts, "lut"), 4),
                        "ff_error": round((est["ff"] - counts["FF"]) / counts["FF"], 4)}
                    print(key, family, row["families"][family]["measured"], est, flush=True)
                if (kind, target) == SIMULATED:
                    row["rtlsim"] = simulate(design, Path(tmp) / "sim")
                    row["rtlsim"]["one_bank"] = sweep[key].get("rtlsim")
                    print(key, row["rtlsim"], flush=True)
                rows.append(row)
    data = {"command": COMMAND, "yosys": yosys_version(), "rows": rows}
    (RESULTS / "tokenmean_overlap.json").write_text(json.dumps(data, indent=1) + "\n")
    (RESULTS / "tokenmean_overlap.md").write_text(table(data))
    print(table(data))


def table(data: dict) -> str:
    lines = ["# Token means with two banks of sums (OVERLAP = 1): Yosys against the estimate", "",
             f"Made by `{data['command']}` ({data['yosys']}).  The calibration sweep's token-mean points "
             "(64 int8 features, 16 tokens a sequence, zcu104) as the fold builds them now, with two banks "
             "(\"set\": the fold keeps one bank there, its slices being slower; the second is set to measure "
             "it); the whole one-unit design (with the masked mean's slices, forks and lane converters). "
             "LUT counts include LUT RAM.  One bank: the sweep's measurement of the same point "
             "(bench/results/calibration.json).", "",
             "| point | lanes | family | LUT meas | LUT est | err | FF meas | FF est | err | "
             "LUT / FF one bank |", "|---|---|---|---|---|---|---|---|---|---|"]
    worst = 0.0
    for row in data["rows"]:
        for family, f in row["families"].items():
            m, e = f["measured"], f["estimate"]
            lut = m["LUT"] + m["LUT_MEM"]
            worst = max(worst, abs(f["lut_error"]), abs(f["ff_error"]))
            one = f["one_bank_measured"]
            lines.append(f"| {row['key']}{'' if row['fold_chose'] else ' (set)'} | {row['lanes']} | {family} | {lut} | {e['lut']} | {f['lut_error']:+.1%} | "
                         f"{m['FF']} | {e['ff']} | {f['ff_error']:+.1%} | {one['LUT'] + one['LUT_MEM']} / {one['FF']} |")
    lines += ["", f"Largest error: {worst:.1%} (bound {TOLERANCE:.0%})."]
    for row in data["rows"]:
        if "rtlsim" in row:
            sim, est = row["rtlsim"], row["families"][FAMILIES[0]]["estimate"]
            one = sim.get("one_bank") or {}
            lines += ["", f"RTL simulation of {row['key']} (6 frames back to back, then with random pauses, "
                      f"bit-exact against the reference): mean interval {sim['mean_interval_cycles']} cycles a "
                      f"frame (estimate {est['frame_interval']}; one bank: "
                      f"{one.get('mean_interval_cycles', one.get('interval_cycles', '?'))} measured by the sweep), "
                      f"latency {sim['latency_cycles']} (estimate {est['latency']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
