"""Benchmark: a Linear unit's input buffer in block RAM, the estimate against Yosys.

    python -m bench.input_buffer_ram

einhls_linear double-buffers its input (``xbuf``: 2 x KF words of SIMD inputs, one synchronous
read port).  The calibration sweep (bench/calibrate.py) has only shallow buffers (KF <= 64, at most
2,048 bits), which synthesis leaves in LUTs; on the layers of a BERT-base-sized encoder at a slow
interval (KF = 96 and more) Yosys puts the buffer in block RAM, and the register-and-multiplexer
model of it said up to 11x the FFs Yosys counts.  The scheduler now places the buffer as Yosys
does (codegen/schedule/cost.py input_buffer_bram36).  Each point: one Linear unit built as the
calibration's points are (bench.calibrate.build_point), the estimate of today's cost model, and
Yosys ``synth_xilinx`` on both families.  Writes bench/results/input_buffer_ram.json and .md.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
COMMAND = "python -m bench.input_buffer_ram"

#: (kind, params) as bench.calibrate's grid: deep input buffers (KF 96, 48, 24, 192)
POINTS: list[tuple[str, dict]] = [
    ("linear_nm", {"k": 768, "n": 16, "a": 8, "w": 4, "simd": 8, "pe": 1, "nm": [1, 8]}),
    ("linear_nm", {"k": 768, "n": 16, "a": 8, "w": 4, "simd": 16, "pe": 1, "nm": [1, 8]}),
    ("linear_nm", {"k": 768, "n": 16, "a": 8, "w": 4, "simd": 32, "pe": 1, "nm": [1, 8]}),
    ("linear", {"k": 768, "n": 8, "a": 8, "w": 8, "simd": 4, "pe": 2}),
    # the MiniLM FFN's second layer at its kv260 shape (KF 55, 224-bit words), 8 outputs
    ("linear", {"k": 1536, "n": 8, "a": 8, "w": 8, "simd": 28, "pe": 8}),
]
DSP_KIND = {"xc7": "DSP48E1", "xcup": "DSP48E2"}


def point_name(kind: str, params: dict) -> str:
    nm = f" {params['nm'][0]}:{params['nm'][1]}" if params.get("nm") else ""
    return (f"{kind}{nm} {params['k']}->{params['n']} a{params['a']}w{params['w']} "
            f"SIMD {params['simd']} x PE {params['pe']}")


def estimate(kind: str, params: dict, family: str, input_ram: bool = True) -> dict:
    """Today's estimate of the point (the weight ROM where the emitter puts it: by its size);
    ``input_ram`` False: with the input buffer modelled as registers and a read multiplexer
    whatever its depth (the model before input_buffer_bram36)."""
    sys.path.insert(0, str(ROOT.parent))
    from bench.calibrate import build_point
    from codegen.schedule.calibration import apply
    from codegen.schedule.cost import linear_cost

    design = build_point(kind, dict(params))
    op = design.graph.ops[0]
    s = design.schedules[op.name]
    cost = linear_cost(op, s, DSP_KIND[family], rom_kind=design.rom_kinds.get(op.name), input_ram=input_ram)
    apply("linear", op, s, DSP_KIND[family], cost)
    return {"LUT": cost.lut, "FF": cost.ff, "BRAM": cost.bram36, "input_BRAM": cost.input_bram36}


def measure(kind: str, params: dict, work: Path) -> dict:
    sys.path.insert(0, str(ROOT.parent))
    from bench.calibrate import MEASURES, emit_point
    from codegen.verify.yosys import synth_counts

    rtl, top = emit_point(kind, dict(params), work)
    out = {}
    for family in DSP_KIND:
        counts = synth_counts(rtl, top, family, work / f"yosys_{family}")
        out[family] = {k: counts[k] for k in MEASURES}
    return out


def main(argv: list[str] | None = None) -> int:
    from codegen.verify.yosys import yosys_version

    rows = []
    start = time.time()
    for kind, params in POINTS:
        with tempfile.TemporaryDirectory() as tmp:
            measured = measure(kind, params, Path(tmp))
        rows.append({"kind": kind, "params": params, "name": point_name(kind, params), "yosys": measured,
                     "estimate": {family: estimate(kind, params, family) for family in DSP_KIND}})
        print(f"{time.time() - start:6.0f} s  {rows[-1]['name']}: {measured}", flush=True)
    data = {"command": COMMAND, "yosys": yosys_version(), "points": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "input_buffer_ram.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = ["# A Linear unit's input buffer: estimate against Yosys", "",
             f"Made by `{COMMAND}` ({data['yosys']}, synth_xilinx -family xc7 / xcup, whole generated top). "
             "LUT = logic + LUTs as memory (LUT_MEM); BRAM in 36 Kb equivalents; the estimate's "
             "BRAM is the weight ROM's plus the input buffer's (in brackets).", "",
             "| point | family | BRAM est. (input) | BRAM Yosys | LUT est. | LUT Yosys | FF est. | FF Yosys |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for family in DSP_KIND:
            e, m = row["estimate"][family], row["yosys"][family]
            lines.append(f"| {row['name']} | {family} | {e['BRAM']:g} ({e['input_BRAM']:g}) | {m['BRAM']:g} | "
                         f"{e['LUT']:,} | {m['LUT'] + m['LUT_MEM']:,} | {e['FF']:,} | {m['FF']:,} |")
    (RESULTS / "input_buffer_ram.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
