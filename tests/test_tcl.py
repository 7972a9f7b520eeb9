"""run_hls.tcl is valid Tcl, runs the Vitis HLS flow in order, and names only files that exist.

The Xilinx commands are replaced by stubs (a small Tcl prelude) that only record their arguments,
so the script runs under plain ``tclsh``, from a different working directory than its own.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from codegen.emit.hls import emit_csim_testbench, emit_csim_vectors, emit_hls
from codegen.examples import chain_graph, linear_graph, manual_design
from codegen.ir.reference import random_inputs, run_reference
from codegen.ir.types import QType
from codegen.schedule.design import Design

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")

VITIS_COMMANDS = ("open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock",
                  "config_rtl", "csim_design", "csynth_design", "cosim_design", "export_design")
SEP = "\x1f"   # separates the words of one recorded call

PRELUDE = """
# Stubs of the Vitis HLS commands: each call is printed as its words separated by \\x1f.
foreach cmd {%s} {
    proc $cmd args [format {puts [join [list %%s {*}$args] "\\x1f"]} $cmd]
}
source [lindex $argv 0]
""" % " ".join(VITIS_COMMANDS)


def run_tcl(script: Path, cwd: Path) -> list[list[str]]:
    prelude = cwd / "vitis_stubs.tcl"
    prelude.write_text(PRELUDE)
    done = subprocess.run(["tclsh", str(prelude), str(script)], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split(SEP) for line in done.stdout.splitlines() if line]


def file_arguments(call: list[str]) -> list[str]:
    """The file operands of an add_files call (options and their values removed)."""
    words, files = call[1:], []
    while words:
        word = words.pop(0)
        if word == "-cflags" or word == "-csimflags":
            words.pop(0)
        elif not word.startswith("-"):
            files.append(word)
    return files


def project(tmp_path: Path, design: Design) -> Path:
    out = tmp_path / "out"
    emit_hls(design, out)
    emit_csim_testbench(design, out)
    inputs = random_inputs(design.graph, 8, seed=0)
    emit_csim_vectors(out, inputs, run_reference(design.graph, inputs))
    return out


DESIGNS = {
    "linear": lambda: manual_design(linear_graph(13, 7, QType(True, 8, 2.0 ** -4), 4, QType(True, 8, 0.5),
                                                 sparsity=(2, 4)), {"layer0": (4, 2, 3, 2)},
                                    board="ultra96-v2"),
    "chain": lambda: manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                                   "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)}),
}


@pytest.mark.parametrize("name", DESIGNS)
def test_run_hls_tcl(name: str, tmp_path: Path) -> None:
    design = DESIGNS[name]()
    out = project(tmp_path, design)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    calls = run_tcl(out / "hls" / "run_hls.tcl", elsewhere)
    commands = [call[0] for call in calls]

    # The flow, in order.
    flow = ["open_project", "set_top", "open_solution", "set_part", "create_clock", "csim_design",
            "csynth_design", "cosim_design", "export_design"]
    assert [c for c in commands if c in flow] == flow
    by_name = {call[0]: call for call in calls}
    assert by_name["set_top"][1:] == [design.top_name]
    assert by_name["set_part"][1:] == [design.board.part]
    period = float(by_name["create_clock"][by_name["create_clock"].index("-period") + 1])
    assert period == pytest.approx(1000.0 / design.clock_mhz, abs=1e-3)
    assert by_name["export_design"][1:] == ["-format", "ip_catalog"]

    # Every file named exists; every source of hls/ is added; the testbench and vectors are -tb files.
    added = [(call, Path(f)) for call in calls if call[0] == "add_files" for f in file_arguments(call)]
    for _, path in added:
        assert path.is_absolute() and path.is_file(), path
    design_files = {p for call, p in added if "-tb" not in call}
    assert design_files == {p.resolve() for p in (out / "hls").iterdir() if p.suffix in (".h", ".cpp")}
    tb_files = {p for call, p in added if "-tb" in call}
    assert tb_files == {(out / "tb" / "csim" / n).resolve() for n in ("tb_top.cpp", "inputs.txt", "expected.txt")}

    # C-sim and co-sim get the vector files (absolute paths) and an output file name.
    for command in ("csim_design", "cosim_design"):
        call = by_name[command]
        argv = call[call.index("-argv") + 1].split()
        assert [Path(a).name for a in argv] == ["inputs.txt", "expected.txt", "csim_outputs.txt"]
        assert all(Path(a).is_file() for a in argv[:2])


def test_every_include_is_shipped(tmp_path: Path) -> None:
    """Each quoted #include of the generated sources resolves inside hls/ (the folder stands alone)."""
    out = project(tmp_path, DESIGNS["chain"]())
    hls = out / "hls"
    for source in hls.iterdir():
        if source.suffix in (".h", ".cpp"):
            for name in re.findall(r'#include "([^"]+)"', source.read_text()):
                assert (hls / name).is_file(), f"{source.name} includes missing {name}"
