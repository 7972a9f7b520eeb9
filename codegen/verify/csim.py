"""C-simulation of the generated Vitis HLS C++ with plain g++ (no Xilinx tools needed).

The project's ``hls/`` sources and ``tb/csim/tb_top.cpp`` are compiled against the ap_types headers
that ship inside the ``hls4ml`` package (Xilinx's ap_int / hls_stream C models); the testbench binary
reads input vectors and expected outputs from text files and writes the actual outputs, which are
compared here with :func:`codegen.verify.result.compare`.  Only files under ``project/hls`` and
``project/tb`` are read, never ``einhls.json``.

Builds are cached in ``work/build/`` under a hash of every source byte and the compiler command, so
a second run on an unchanged project skips the (about 3 s) compile.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .result import CheckResult, compare
from .tools import exit_reason, run_tool, tools_stopped

CXX = "g++"
CXXFLAGS = ("-std=c++14", "-O2", "-Wno-unknown-pragmas", "-Wno-unused-label")
# C-sim builds only (hls_kernels/einhls_csim.h): count each process's pipelined-loop iterations per
# frame, and check the hardware rules sequential C cannot show (read-after-write distances, one
# write per bank and cycle).  Vitis never sees these macros.
CSIM_DEFINES = ("-DEINHLS_CSIM_CYCLES", "-DEINHLS_CSIM_CHECKS")
CYCLES_ENV = "EINHLS_CSIM_CYCLES_FILE"
CYCLES_FILE = "csim_cycles.tsv"
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cc")
ERROR_LINES = 20          # lines of g++'s own message kept in CheckResult.error
COMPILE_TIMEOUT_S = 900
RUN_TIMEOUT_S = 3600


def ap_types_dir() -> Path | None:
    """The ap_types headers (ap_int.h, hls_stream.h) of the installed hls4ml package, if any.

    Located through the package's file location only: importing hls4ml itself is slow and not needed.
    """
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    return path if (path / "ap_int.h").is_file() else None


# --- vector files: one vector per line, space-separated decimal codes ---------------------

def write_vectors(path: Path, codes: np.ndarray) -> None:
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim == 1:
        codes = codes[None, :]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(str(int(c)) for c in row) + "\n" for row in codes))


def read_vectors(path: Path, size: int) -> np.ndarray:
    rows = [[int(t) for t in line.split()] for line in Path(path).read_text().splitlines() if line.strip()]
    for number, row in enumerate(rows):
        if len(row) != size:
            raise ValueError(f"{path}: vector {number} has {len(row)} codes, expected {size}")
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), size)


# --- build ----------------------------------------------------------------------------------

def _sources(project: Path) -> tuple[list[Path], list[Path]]:
    """(.cpp files to compile, every source file that can affect the build) of the project."""
    roots = [project / "hls", project / "tb" / "csim"]
    files = sorted(p for root in roots if root.is_dir() for p in root.rglob("*")
                   if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    return [p for p in files if p.suffix in (".cpp", ".cc")], files


def _first_lines(text: str, count: int = ERROR_LINES) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    more = f"\n... ({len(lines) - count} more lines)" if len(lines) > count else ""
    return "\n".join(lines[:count]) + more


def _tool(command: list[str]) -> str | None:
    """Run one compiler command: None on success, else the compiler's own first lines."""
    try:
        done = run_tool(command, COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"{command[0]} did not finish within {COMPILE_TIMEOUT_S} s: {' '.join(command)}"
    if done.returncode == 0:
        return None
    # never empty: a compiler that crashed without a word must still count as a failure
    return (f"{command[0]} failed ({exit_reason(done.returncode)}): "
            f"{_first_lines(done.stderr or done.stdout) or 'no output'}")


def build_csim(project: Path, work: Path) -> tuple[Path | None, str | None]:
    """Compile the project's C-sim binary (or reuse a cached one): (binary, None) or (None, error)."""
    project, work = Path(project), Path(work)
    include = ap_types_dir()
    if include is None:
        return None, "the ap_types headers were not found: pip install hls4ml (C-sim uses its copy of ap_int.h)"
    if shutil.which(CXX) is None:
        return None, f"{CXX} not found on PATH (C-sim compiles the HLS C++ with it)"
    units, files = _sources(project)
    if not any(p.parent == project / "tb" / "csim" for p in units):
        return None, f"no C-sim testbench in {project / 'tb' / 'csim'} (emit_csim_testbench writes it)"

    flags = [*CXXFLAGS, *CSIM_DEFINES, "-isystem", str(include), "-I", str(project / "hls"), "-I", str(project / "tb" / "csim")]
    digest = hashlib.sha256("\0".join([CXX, *flags]).encode())
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    build = work / "build"
    binary = build / f"tb_{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary, None

    build.mkdir(parents=True, exist_ok=True)
    print(f"csim: compiling {project.name} ({len(units)} C++ files) with {CXX}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=build) as tmp:
        objects = [Path(tmp) / f"{i}_{unit.stem}.o" for i, unit in enumerate(units)]

        # The translation units are independent: compile them side by side.
        pool = ThreadPoolExecutor(max_workers=max(1, min(len(units), os.cpu_count() or 1)))
        try:
            results = list(pool.map(lambda pair: _tool([CXX, *flags, "-c", str(pair[0]), "-o", str(pair[1])]),
                                    zip(units, objects)))
        except BaseException:   # interrupted: drop the queued units, stop the running compilers
            with tools_stopped():
                pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
        for error in results:
            if error:
                return None, error
        staged = Path(tmp) / binary.name
        error = _tool([CXX, *map(str, objects), "-o", str(staged)])
        if error:
            return None, error
        os.replace(staged, binary)   # atomic: a half-written binary is never found by the cache
    return binary, None


# --- cycles -----------------------------------------------------------------------------------

def process_label(signature: str) -> str:
    """A short name for a process from its C++ signature (__PRETTY_FUNCTION__): the kernel function
    and its template arguments, e.g. ``contract_compute<C = l02_st3::cfg; R = 64>``."""
    name = re.search(r"(\w+)\s*\(", signature)
    bindings = re.search(r"\[with (.*)\]\s*$", signature)
    label = name.group(1) if name else signature.strip()
    if bindings:
        args = re.sub(r"\b(unsigned int|int|long long int|class) ", "", bindings.group(1))
        args = "; ".join(a for a in args.split("; ") if not a.startswith(("typename ", "Packet =", "T =")))
        label += f"<{args}>"
    return label


def read_cycles(path: Path, frames: int, tokens: int = 1) -> dict:
    """The C-sim cycle counts (hls_kernels/einhls_csim.h) as measured fields: per process its
    calls and its pipelined-loop iterations per token (``cycles_per_frame``: cycles at II = 1 of
    one token, the schedule's interval; the most in one call, times the calls a token makes -
    several for a softmax over heads, a fraction for a process that handles a whole sequence per
    call), and the design's interval at II = 1, the slowest process's.  Empty when the file is
    missing."""
    if not Path(path).is_file():
        return {}
    processes = []
    for line in Path(path).read_text().splitlines():
        calls, most, total, signature = line.split("\t", 3)
        per_token = int(most) * int(calls) / (frames * tokens)
        processes.append({"process": process_label(signature), "calls": int(calls),
                          "cycles_per_frame": int(round(per_token)), "total": int(total)})
    if not processes:
        return {}
    processes.sort(key=lambda p: -p["cycles_per_frame"])
    return {"interval_cycles_ii1": processes[0]["cycles_per_frame"], "slowest_process": processes[0]["process"],
            "frames": frames, "processes": processes}


# --- run --------------------------------------------------------------------------------------

def run_csim(project: Path, inputs: np.ndarray, expected: np.ndarray, work: Path, tokens: int = 1) -> CheckResult:
    """C-simulate the HLS design of ``project`` on ``inputs``; compare with ``expected`` codes.

    ``inputs`` [vectors, in_size] and ``expected`` [vectors, out_size] are integer codes (the
    expected ones from the PyTorch integer reference).  A build or run failure is returned as
    ``CheckResult.error`` with the tool's own message; a difference as ``CheckResult.mismatch``.
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=np.int64))
    expected = np.atleast_2d(np.asarray(expected, dtype=np.int64))
    vectors = expected.shape[0]
    work = Path(work).resolve()   # the binary runs with cwd=work: its path must not be relative
    binary, error = build_csim(project, work)
    if binary is None:
        return CheckResult("csim", vectors, None, error=error)

    in_path, exp_path, out_path = work / "csim_inputs.txt", work / "csim_expected.txt", work / "csim_outputs.txt"
    write_vectors(in_path, inputs)
    write_vectors(exp_path, expected)
    cycles_path = work / CYCLES_FILE
    out_path.unlink(missing_ok=True)
    cycles_path.unlink(missing_ok=True)
    print(f"csim: running {vectors} vectors", file=sys.stderr, flush=True)
    try:
        done = run_tool([str(binary), str(in_path), str(exp_path), str(out_path)], RUN_TIMEOUT_S, cwd=work,
                        env={**os.environ, CYCLES_ENV: str(cycles_path)})
    except subprocess.TimeoutExpired:
        return CheckResult("csim", vectors, None, error=f"the C-sim binary did not finish within {RUN_TIMEOUT_S} s")

    # Exit 1 with complete outputs is an ordinary mismatch, reported below from the outputs
    # themselves; anything else without complete outputs (crash, bad vectors, protocol error) is
    # a failure to run, reported with the testbench's own words.
    message = _first_lines(done.stderr + done.stdout)
    try:
        got = read_vectors(out_path, expected.shape[1]) if out_path.is_file() else None
    except ValueError as exc:
        got, message = None, f"{exc}\n{message}"
    if done.returncode not in (0, 1) or got is None or got.shape[0] != vectors:
        return CheckResult("csim", vectors, got,
                           error=f"the C-sim binary failed ({exit_reason(done.returncode)}): {message}")
    result = compare("csim", expected, got, measured=read_cycles(cycles_path, vectors, tokens))
    if done.returncode == 1 and result.passed:
        # Every element matched, yet the testbench failed: the AXI4-Stream protocol was wrong.
        return CheckResult("csim", vectors, got, error=f"the C-sim testbench reported: {message}")
    return result
