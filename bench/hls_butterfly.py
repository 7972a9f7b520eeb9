"""The HLS butterfly unit's cycles per frame in C-sim against the schedule's estimate.

    python -m bench.hls_butterfly        (writes bench/results/hls_butterfly.md)

For every butterfly design of the golden tests (tests/models/butterfly_cases.py) the unit is
emitted alone (codegen/emit/butterfly.py emit_unit_csim), compiled with g++ and the C-sim cycle
counting (hls_kernels/einhls_csim.h), and run on 8 random frames, bit-exact against the PyTorch
integer reference.  The HLS count is the slowest process's pipelined-loop iterations per frame,
the interval at II = 1; it is shown beside the schedule's estimate (what RTL simulation measures,
tests/test_butterfly_rtl.py) and the count of the same unit as one process at the Verilog's P
(one frame in flight, the design before the stage groups).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from models.butterfly_cases import CASES, SLOW  # noqa: E402

from codegen.emit.butterfly import StageGroup, emit_unit_csim  # noqa: E402
from codegen.ir.reference import random_inputs, run_reference  # noqa: E402
from codegen.schedule.butterfly import timing  # noqa: E402
from codegen.verify.csim import (CSIM_DEFINES, CXX, CXXFLAGS, CYCLES_ENV, ap_types_dir, read_cycles,  # noqa: E402
                                 read_vectors, write_vectors)

FRAMES = 8
COMMAND = "python -m bench.hls_butterfly"


def _run(design, directory: Path, groups) -> tuple[object, int, str]:
    """(unit, HLS cycles per frame, slowest process) of one C-sim run, values checked."""
    op = design.graph.ops[0]
    unit = emit_unit_csim(design, directory, groups)
    binary = directory / "butterfly_unit"
    subprocess.run([CXX, *CXXFLAGS, *CSIM_DEFINES, "-isystem", str(ap_types_dir()), "-I", str(directory),
                    str(directory / "butterfly_unit.cpp"), "-o", str(binary)], check=True)
    inputs = random_inputs(design.graph, FRAMES, seed=5)
    write_vectors(directory / "inputs.txt", inputs)
    cycles = directory / "cycles.tsv"
    subprocess.run([str(binary), str(directory / "inputs.txt"), str(directory / "outputs.txt")], check=True,
                   env={**os.environ, CYCLES_ENV: str(cycles)})
    np.testing.assert_array_equal(read_vectors(directory / "outputs.txt", op.out_size),
                                  run_reference(design.graph, inputs))
    measured = read_cycles(cycles, FRAMES)
    return unit, measured["interval_cycles_ii1"], measured["slowest_process"]


def main() -> None:
    rows = []
    for name, make in {**CASES, **SLOW}.items():
        design = make()
        op = design.graph.ops[0]
        s = design.schedule(op)
        tm = timing(op, s.pe)
        estimate = max(tm.compute, -(-op.in_size // s.in_lanes), -(-op.out_size // s.out_lanes))
        with tempfile.TemporaryDirectory() as tmp:
            unit, hls, slowest = _run(design, Path(tmp) / "groups", None)
            one = (s.pe, [StageGroup(0, op.stages, op.stages * tm.stage_cycles + sum(tm.gaps))])
            _, single, _ = _run(design, Path(tmp) / "one", one)
        groups = " ".join(f"{g.group.first}-{g.group.last - 1}" for g in unit.groups)
        rows.append(f"| {name} | {op.stages} | {s.pe} ({tm.contexts}) | {4 * s.pe} | {len(unit.groups)} x P'={unit.c.units} "
                    f"({groups}) | {4 * unit.c.units * len(unit.groups)} | {estimate} | {hls} | {hls / estimate:.2f} | "
                    f"{single} | {slowest.split('<')[0]} | yes |")
        print(rows[-1], flush=True)
    text = f"""# HLS butterfly: frames in flight as stage groups (C-sim cycle count)

`{COMMAND}` (g++ C-sim with the cycle counting of hls_kernels/einhls_csim.h, {FRAMES} random frames per
design, every output bit-exact against the PyTorch integer reference).  *RTL P (contexts)*: the
Verilog unit's butterfly units and frames in flight; *HLS groups*: stage-group processes x units
per group (stage ranges); *estimate*: the schedule's cycles per frame, max(RTL issue model, input
beats, output beats), which RTL simulation measures; *HLS*: the slowest process's loop iterations
per frame (the interval at II = 1); *one process*: the same unit as one process at the Verilog's P
(one frame in flight, the HLS design before the stage groups).  Vitis HLS was not run: the
counts assume every loop reaches II = 1.

| design | stages | RTL P (contexts) | RTL multipliers | HLS groups | HLS multipliers | estimate | HLS | HLS / estimate | one process | slowest | bit-exact |
|---|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
    out = ROOT / "bench" / "results" / "hls_butterfly.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
