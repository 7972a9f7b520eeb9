"""Benchmark: the graph units (fork, add, mul, concat, slice) at a transformer-like width.

    python -m bench.join_units          # RTL simulation and Yosys synth_xilinx -family xc7 (about a minute)

Each unit handles int8 tokens of 64 features at 8 lanes (8 beats per token; the slice keeps
features 16..47, the concat joins 32 + 32).  RTL simulation (Verilator through cocotb, the bench
of tests/test_join_units.py): 16 tokens back to back, every output element checked against the
op's reference; reported are beats per cycle on the unit's busy side (from the handshake cycles)
and the latency from the first input beat accepted to the first output beat.  Yosys 0.70
``synth_xilinx -family xc7`` gives LUT / FF / DSP48E1 / CARRY4 of each unit alone.

Writes bench/results/join_units.md and join_units.json.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent / "tests"))

from test_join_units import (Case, check_rtl_case, full_rate_streams, run_rtl, s, u,  # noqa: E402
                             write_wrapper, WRAPPER_TOP)

from codegen.ir.joins import make_add, make_concat, make_fork, make_mul, make_slice  # noqa: E402
from codegen.verify.yosys import synth_counts  # noqa: E402

LANES, SIZE, TOKENS = 8, 64, 16


def cases() -> list[Case]:
    a, b, y = s(8, 0.05, 3), s(8, 0.11, -7), s(8, 0.13, 2)
    return [
        Case("add (residual, two scales)", make_add("add2", "Add", a, b, y, SIZE), LANES),
        Case("add (residual, one scale)", make_add("add1", "Add", a, s(8, 0.05, -7), y, SIZE), LANES),
        Case("mul (gate, uint8 zp 128)", make_mul("mul", "Mul", a, u(8, 1 / 255, 128), y, SIZE), LANES),
        Case("fork to 2", make_fork("fork2", "Fork", a, SIZE, 2), LANES),
        Case("fork to 4", make_fork("fork4", "Fork", a, SIZE, 4), LANES),
        Case("concat 32 + 32", make_concat("cat", "Concat", a, [32, 32]), LANES),
        Case("slice [16, 48) (first kept beat is the 3rd)", make_slice("slice", "Slice", a, SIZE, 16, 48), LANES),
    ]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_rtl(cases(), Path(tmp) / "sim", TOKENS, seed=1)
        for index, (case, got, expected) in enumerate(runs):
            check_rtl_case(case, got, expected)          # bit-exact in both phases, one beat per cycle
            free = got["phases"][0]
            busy = full_rate_streams(case.op, free)
            rate = min(len(c) / (c[-1] - c[0] + 1) for c in busy)
            latency = min(c[0] for c in free["out_cycles"]) - min(c[0] for c in free["in_cycles"])
            folder = Path(tmp) / f"synth{index}"
            write_wrapper([case], folder / "rtl")
            counts = synth_counts(folder / "rtl", WRAPPER_TOP, "xc7", folder / "work")
            rows.append({"unit": case.name, "beats_per_cycle": round(rate, 3), "latency_cycles": latency,
                         "LUT": counts["LUT"], "FF": counts["FF"], "DSP": counts["DSP"], "CARRY": counts["CARRY"],
                         "yosys": counts["yosys"]})
            print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "join_units.json").write_text(json.dumps({"command": "python -m bench.join_units", "rows": rows},
                                                         indent=1) + "\n")
    lines = ["# Graph units: throughput, latency and resources", "",
             f"`python -m bench.join_units`: int8 tokens of {SIZE} features at {LANES} lanes ({SIZE // LANES} beats "
             f"per token), {TOKENS} tokens back to back in RTL simulation (Verilator, every output element checked "
             "against the op's reference, then again with random pauses); resources from "
             f"{rows[0]['yosys']} `synth_xilinx -family xc7`, each unit alone.", "",
             "| unit | beats / cycle | latency (cycles) | LUT | FF | DSP48E1 | CARRY4 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['unit']} | {r['beats_per_cycle']} | {r['latency_cycles']} | {r['LUT']} | {r['FF']} | {r['DSP']} | "
              f"{r['CARRY']} |" for r in rows]
    (RESULTS / "join_units.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
