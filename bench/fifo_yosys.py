"""Benchmark: einhls_fifo at the depths the scheduler chooses, synthesized with Yosys against the
estimate of codegen/schedule/ (bram36_for, uram_for).

    python -m bench.fifo_yosys

Each case is one einhls_fifo in the wrapper of the graph-unit tests (testbench/cocotb/
join_units_top.v.j2), synthesized with ``synth_xilinx -family xcup`` (codegen/verify/yosys.py).
The cases: a layer-input delay of the 128-token MiniLM encoder (a sequence of 8-bit beats plus a
token and slack, 49,538 beats) at that exact depth and at the power of two it used to take, and
the same FIFO packed 8 lanes a word into UltraRAM (6,193 words of 64 bits, and 8,192), and two
small depths.  Writes bench/results/fifo_yosys.{json,md}.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from codegen.emit.rtl import KERNEL_DEPS, Param, verilog_value  # noqa: E402
from codegen.resources import resource_dir  # noqa: E402
from codegen.schedule.cost import bram36_for, uram_for  # noqa: E402
from codegen.verify.yosys import synth_counts  # noqa: E402

# (name, DEPTH, WIDTH, URAM)
CASES = [("delay_exact", 49538, 8, 0), ("delay_pow2", 65536, 8, 0),
         ("delay_packed_uram_exact", 6193, 64, 1), ("delay_packed_uram_pow2", 8192, 64, 1),
         ("small_100x8", 100, 8, 0), ("medium_1500x8", 1500, 8, 0)]


def wrapper(folder: Path, name: str, depth: int, width: int, uram: int) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("testbench") / "cocotb")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["verilog_value"] = verilog_value
    params = [Param("DEPTH", depth), Param("WIDTH", width)] + ([Param("URAM", 1)] if uram else [])
    spec = {"index": 0, "name": name, "kind": "fifo", "module": "einhls_fifo", "params": params,
            "inputs": [{"width": width}], "outputs": [{"width": width}]}
    top = f"fifo_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{top}.v").write_text(env.get_template("join_units_top.v.j2").render(top=top, cases=[spec]))
    for module in ("einhls_fifo", *KERNEL_DEPS["einhls_fifo"]):
        (folder / f"{module}.v").write_text((resource_dir("rtl_kernels") / f"{module}.v").read_text())
    return top


def main() -> None:
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, depth, width, uram in CASES:
            folder = Path(tmp) / name
            top = wrapper(folder / "rtl", name, depth, width, uram)
            counts = synth_counts(folder / "rtl", top, "xcup", folder / "yosys")
            estimate = {"uram": uram_for(width, depth)} if uram else {"bram36": bram36_for(width, depth)}
            rows.append({"name": name, "depth": depth, "width": width, "uram": uram, "estimate": estimate,
                         "yosys": {k: counts[k] for k in ("BRAM", "URAM", "LUT", "LUT_MEM", "FF")}})
            print(json.dumps(rows[-1]), flush=True)
    command = "python -m bench.fifo_yosys"
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "fifo_yosys.json").write_text(json.dumps({"command": command, "yosys": counts["yosys"],
                                                                  "seconds": time.time() - start,
                                                                  "rows": rows}, indent=1) + "\n")
    lines = ["# einhls_fifo at any depth: Yosys against the estimate", "", f"`{command}`", "",
             f"{counts['yosys']}, `synth_xilinx -family xcup`; estimate: codegen/schedule/cost.py "
             "bram36_for (block RAM) or uram_for (UltraRAM, URAM = 1).", "",
             "| FIFO | DEPTH | WIDTH | URAM | estimate | Yosys BRAM36 | Yosys URAM288 | LUT | LUT RAM | FF |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        est = ", ".join(f"{v:g} {k.upper()}" for k, v in r["estimate"].items())
        y = r["yosys"]
        lines.append(f"| {r['name']} | {r['depth']:,} | {r['width']} | {r['uram']} | {est} | {y['BRAM']:g} | "
                     f"{y['URAM']} | {y['LUT']} | {y['LUT_MEM']} | {y['FF']} |")
    (ROOT / "results" / "fifo_yosys.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
