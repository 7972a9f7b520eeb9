"""Benchmark: Yosys resource counts of the nonlinear units against their cost model.

    python -m bench.nonlinear_resources         # about 2 minutes (Yosys synth_xilinx, one unit at a time)

Each unit (rtl_kernels/einhls_{softmax,layernorm,gelu}.v with einhls_requant.v, under the
AXI4-Stream top of its unit test) is synthesized with Yosys `synth_xilinx -family xc7` at the
sizes of a MiniLM / BERT-small encoder layer: Softmax over 128 attention scores, LayerNorm over
384 features, GELU over the 1,536 FFN activations, int8 in and out, 1 and 4 lanes.  Next to the
counts: codegen/schedule/nonlinear_cost.py's estimate (DSP48E1) and its interval in cycles per
token (equal to RTL simulation, tests/test_nonlinear_units.py).
Writes bench/results/nonlinear_resources.json and .md.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from codegen.ir.nonlinear import make_gelu, make_layernorm, make_softmax  # noqa: E402
from codegen.ir.types import QType  # noqa: E402
from codegen.schedule.nonlinear_cost import nonlinear_cost  # noqa: E402
from codegen.verify.yosys import synth_counts, yosys_version  # noqa: E402
from models.nonlinear_units import TOP, emit_rtl_project  # noqa: E402

COMMAND = "python -m bench.nonlinear_resources"


def units() -> list[tuple[str, object, int]]:
    rng = np.random.default_rng(0)
    int8 = QType(True, 8, 0.05)
    ln = make_layernorm(384, int8, QType(True, 8, 1 / 32), rng.uniform(0.5, 1.5, 384), rng.uniform(-0.5, 0.5, 384))
    sm = make_softmax(128, QType(True, 8, 1 / 16), QType(False, 8, 1 / 256))
    ge = make_gelu(1536, int8, int8)
    return [(f"{op.kind} ({op.size})", op, lanes) for op in (sm, ln, ge) for lanes in (1, 4)]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, op, lanes in units():
            start = time.time()
            work = Path(tmp) / f"{op.kind}_{lanes}"
            emit_rtl_project(op, lanes, work)
            counts = synth_counts(work / "rtl", TOP, "xc7", work / "yosys")
            cost = nonlinear_cost(op, lanes, "DSP48E1")
            rows.append({"unit": label, "lanes": lanes, "interval_cycles": cost.ii, "latency_cycles": cost.latency,
                         "yosys": {k: counts[k] for k in ("LUT", "LUT_MEM", "FF", "DSP", "BRAM", "CARRY")},
                         "model": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp, "BRAM36": cost.bram36},
                         "seconds": round(time.time() - start, 1)})
            print(rows[-1], flush=True)
    lines = ["| unit | lanes | cycles / token | LUT (+LUTRAM) | FF | DSP48E1 | BRAM36 | model LUT | model FF | model DSP | model BRAM36 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        y, m = r["yosys"], r["model"]
        lines.append(f"| {r['unit']} | {r['lanes']} | {r['interval_cycles']} | {y['LUT']:,} (+{y['LUT_MEM']}) | "
                     f"{y['FF']:,} | {y['DSP']} | {y['BRAM']:g} | {m['LUT']:,} | {m['FF']:,} | {m['DSP']} | {m['BRAM36']:g} |")
    table = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nonlinear_resources.json").write_text(json.dumps(
        {"command": COMMAND, "yosys": yosys_version(), "family": "xc7", "rows": rows}, indent=2) + "\n")
    (RESULTS / "nonlinear_resources.md").write_text(f"Made by `{COMMAND}` ({yosys_version()}, synth_xilinx -family xc7).\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
