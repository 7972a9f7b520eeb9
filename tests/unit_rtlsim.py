"""One Verilator build and one cocotb run per unit test module: every case of a unit kind behind
one wrapper top (the RTL twin of tests/unit_csim.py).

The unit tests write their wrapper (one instance per case) and a config of the cases; this module
builds it with the project's Verilator arguments (the runtime objects cached between builds), runs
the module's cocotb bench on it and returns what the bench recorded per case.  The expected
values are the tests' own (from the integer reference), never from here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from codegen.emit.rtl import LINT_WAIVERS
from codegen.resources import resource_dir


def case_config(specs: list[dict], seed: int) -> dict:
    """The bench's config: the seed and every case spec but its Verilog parameters."""
    return {"seed": seed, "cases": [{k: v for k, v in spec.items() if k != "params"} for spec in specs]}


def build_and_simulate(sources: list[Path], top: str, folder: Path, config: dict,
                       test_module: str = "join_units_tb", env_prefix: str = "JOIN_UNITS") -> list[dict]:
    """Builds ``sources`` (``top``) in ``folder``/build, runs ``test_module`` in ``folder``/run
    with ``config`` in $``env_prefix``_CONFIG, returns the ``cases`` of its $``env_prefix``_RESULTS.
    Fails the calling test on a build error or a bench that wrote no results."""
    from codegen.verify import rtlsim
    from codegen.verify.tools import simulator_env, store_runtime, tool_error, verilator_bin

    env = simulator_env(verilator_bin(), fast_build=True, pythonpath=[resource_dir("testbench") / "cocotb"])
    build_dir, run_dir = folder / "build", folder / "run"
    build_dir.mkdir(parents=True)
    run_dir.mkdir(parents=True)
    cache = rtlsim._runtime_cache(rtlsim._tool_versions(verilator_bin()))
    restored = rtlsim._restore_runtime(cache, build_dir)
    build = {"sources": [str(resource_dir("rtl_kernels") / LINT_WAIVERS), *map(str, sources)], "top": top,
             "build_dir": str(build_dir), "build_args": rtlsim.VERILATOR_ARGS, "assume_old_makefile": restored}
    proc = subprocess.run([sys.executable, "-m", "codegen.verify.rtlsim", "build", json.dumps(build)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, tool_error(proc.stdout + proc.stderr, "Verilator build failed")
    store_runtime(cache, build_dir, rtlsim.RUNTIME_OBJECTS)
    config_file, results = run_dir / "config.json", run_dir / "results.json"
    config_file.write_text(json.dumps(config))
    test = {"top": top, "build_dir": str(build_dir), "test_dir": str(run_dir), "test_module": test_module,
            "env": {f"{env_prefix}_CONFIG": str(config_file), f"{env_prefix}_RESULTS": str(results)}}
    proc = subprocess.run([sys.executable, "-m", "codegen.verify.rtlsim", "test", json.dumps(test)],
                          env=env, capture_output=True, text=True)
    assert results.is_file(), tool_error(proc.stdout + proc.stderr, f"simulation failed ({proc.returncode})")
    return json.loads(results.read_text())["cases"]
