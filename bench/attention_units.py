"""Benchmark: Yosys resource counts of the attention product unit against its cost model.

    python -m bench.attention_units         # a few minutes (Yosys synth_xilinx, one unit at a time)
    python -m bench.attention_units --only scores_L128_single   # those rows only, merged into the results

einhls_actmatmul (rtl_kernels/einhls_actmatmul.v with its lane converters, FIFO, adder tree and
requant stage), instantiated alone as in its unit test (tests/test_attention_units.py), is
synthesized with Yosys `synth_xilinx -family xc7` at the sizes of a MiniLM encoder layer: 12 heads
of 32, scores Q K^T (layout nt, b = the keys) and context P V (layout nn, b = the values), int8 Q,
K, V and uint8 P, sequence length 16 and 128; the unit with its keys in UltraRAM (B_URAM = 1) with
`-family xcup` (UltraScale+, the family that has URAM288).  Next to the counts: codegen/schedule/attention_cost.py's
estimate (DSP48E1) and its interval in cycles per token (equal to RTL simulation in the unit test).
Writes bench/results/attention_units.json and .md.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from codegen.ir.types import QType  # noqa: E402
from codegen.schedule.attention_cost import actmatmul_cost  # noqa: E402
from codegen.verify.yosys import synth_counts, yosys_version  # noqa: E402
from test_attention_units import WRAPPER_TOP, case, rtl_case_spec, write_wrapper  # noqa: E402

COMMAND = "python -m bench.attention_units"


def units() -> list:
    int8, uint8 = QType(True, 8, 0.05, 0), QType(False, 8, 1 / 256, 0)
    return [
        case("scores_L16", "nt", 12, 32, 16, int8, int8, int8, 8, 2, 8, 8, 8),
        case("context_L16", "nn", 12, 16, 32, uint8, int8, int8, 8, 2, 8, 8, 8),
        case("scores_L128", "nt", 12, 32, 128, int8, int8, int8, 8, 4, 8, 8, 8),
        case("context_L128", "nn", 12, 128, 32, uint8, int8, int8, 8, 4, 8, 8, 8),
        # one sequence of keys / values (B_SEQS = 1): half the b buffer
        case("scores_L128_single", "nt", 12, 32, 128, int8, int8, int8, 8, 4, 8, 8, 8, b_sequences=1),
        # the keys in UltraRAM (B_URAM = 1), synthesized for UltraScale+ (xcup), the family with URAM288
        case("scores_L128_single_uram", "nt", 12, 32, 128, int8, int8, int8, 8, 4, 8, 8, 8, b_sequences=1,
             b_uram=True),
    ]


def family_of(c) -> str:
    """xc7 (the Zynq-7000 the rows were first compared on), xcup for a unit with UltraRAM."""
    return "xcup" if c.b_uram else "xc7"


def main(argv: list[str] | None = None) -> None:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="units to synthesize, merged into the stored rows")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in units():
            if args.only and c.name not in args.only:
                continue
            start = time.time()
            work = Path(tmp) / c.name
            spec, _ = rtl_case_spec(0, c, 1, 0)
            write_wrapper([spec], work / "rtl")
            family = family_of(c)
            counts = synth_counts(work / "rtl", WRAPPER_TOP, family, work / "yosys")
            cost = actmatmul_cost(c.op, c.schedule, "DSP48E1" if family == "xc7" else "DSP48E2", c.b_sequences)
            uram = 0
            if c.b_uram:   # the scheduler's placement (schedule/buffers.py move_buffers_to_uram)
                from codegen.schedule.fifo_memory import BufferShape
                from codegen.schedule.attention_cost import b_banks
                from codegen.emit.attention import folding
                shape = BufferShape(*b_banks(c.op, folding(c.op, c.schedule), c.b_sequences))
                cost.bram36 -= shape.bram36
                uram = shape.uram
            rows.append({"unit": c.name, "family": family, "layout": c.op.layout, "b_sequences": c.b_sequences, "heads": c.op.heads, "inner": c.op.inner,
                         "cols": c.op.cols, "tokens": c.op.tokens, "simd": c.simd, "pe": c.pe,
                         "interval_cycles": cost.ii, "latency_cycles": cost.latency,
                         "yosys": {k: counts[k] for k in ("LUT", "LUT_MEM", "FF", "DSP", "BRAM", "URAM", "CARRY")},
                         "model": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp, "BRAM36": cost.bram36,
                                   "URAM": uram},
                         "seconds": round(time.time() - start, 1)})
            print(rows[-1], flush=True)
    stored = RESULTS / "attention_units.json"
    if args.only and stored.is_file():
        new = {r["unit"] for r in rows}
        rows = [r for r in json.loads(stored.read_text())["rows"] if r["unit"] not in new] + rows
    lines = ["| unit | family | heads x inner x cols, tokens | SIMD x PE | cycles / token | LUT (+LUTRAM) | FF | DSP | "
             "BRAM36 | URAM288 | model LUT | model FF | model DSP | model BRAM36 | model URAM288 |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        y, m = r["yosys"], r["model"]
        lines.append(f"| {r['unit']} ({r['layout']}) | {r.get('family', 'xc7')} | {r['heads']} x {r['inner']} x "
                     f"{r['cols']}, {r['tokens']} | "
                     f"{r['simd']} x {r['pe']} | {r['interval_cycles']} | {y['LUT']:,} (+{y['LUT_MEM']}) | "
                     f"{y['FF']:,} | {y['DSP']} | {y['BRAM']:g} | {y.get('URAM', 0)} | {m['LUT']:,} | {m['FF']:,} | "
                     f"{m['DSP']} | {m['BRAM36']:g} | {m.get('URAM', 0)} |")
    table = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    command = COMMAND + (f"`, then `{COMMAND} --only {' '.join(args.only)}" if args.only else "")
    (RESULTS / "attention_units.json").write_text(json.dumps(
        {"command": command.replace("`", ""), "yosys": yosys_version(), "families": ["xc7", "xcup"], "rows": rows},
        indent=2) + "\n")
    (RESULTS / "attention_units.md").write_text(
        f"Made by `{command}` ({yosys_version()}, synth_xilinx -family xc7, and -family xcup for the "
        f"UltraRAM row; DSP is DSP48E1 on xc7, DSP48E2 on xcup).\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
