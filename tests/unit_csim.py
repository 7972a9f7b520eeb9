"""One g++ program per unit test module: every case of a unit kind in one C-sim build.

The unit tests of the sequence units (mask, token mean, masked mean, ...) each render one
parameter header per case and one test program from a template, build it with the flags the
project's C-sim uses and run it; this module does the build-and-run part once for all of them.
The expected values are the tests' own (from the integer reference), never from here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from codegen.emit.hls import _environment
from codegen.resources import resource_dir
from codegen.verify.csim import CSIM_DEFINES, CXX, CXXFLAGS, ap_types_dir


def write_unit_header(folder: Path, unit) -> None:
    """The parameter header of one HLS unit (``hls_unit`` of its emitter) in ``folder``."""
    (folder / unit.header).write_text(_environment().get_template("params_nonlinear.h.j2").render(u=unit))


def build_and_run(folder: Path, kernels: Iterable[str], template: str, cases: list[dict], program: str,
                  widest: int = 64) -> None:
    """Copies the kernel headers into ``folder``, renders ``template`` for ``cases`` as
    ``program``.cpp, builds it with the C-sim flags and runs it on ``folder`` (it reads the
    case vectors there and writes the outputs there).  Fails the calling test on a compiler or
    program error; the per-process iteration counts are left in folder/cycles.tsv."""
    for header in ("einhls_stream.h", "einhls_csim.h", "einhls_requant.h", *kernels):
        shutil.copyfile(resource_dir("hls_kernels") / header, folder / header)
    source = folder / f"{program}.cpp"
    source.write_text(_environment().get_template(template).render(cases=cases, widest=widest))
    binary = folder / program
    proc = subprocess.run([CXX, *CXXFLAGS, *CSIM_DEFINES, "-Wall", "-isystem", str(ap_types_dir()), "-I", str(folder),
                           str(source), "-o", str(binary)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run([str(binary), str(folder)], capture_output=True, text=True,
                          env={**os.environ, "EINHLS_CSIM_CYCLES_FILE": str(folder / "cycles.tsv")})
    assert proc.returncode == 0, proc.stderr
