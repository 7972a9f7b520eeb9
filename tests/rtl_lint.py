"""verilator --lint-only -Wall (with the project's waivers, einhls.vlt) on one kernel module and on a
generated top: the check every unit's tests run on their parameter sets."""
from __future__ import annotations

import subprocess
from pathlib import Path


def lint_kernel(module: str, params: list[str]) -> subprocess.CompletedProcess:
    """Lint rtl_kernels/``module``.v with its dependencies, ``params`` as -G overrides."""
    from codegen.emit.rtl import KERNEL_DEPS, LINT_WAIVERS
    from codegen.resources import resource_dir
    from test_rtl_units import _verilator

    kernels = resource_dir("rtl_kernels")
    files = [kernels / f"{m}.v" for m in (module, *KERNEL_DEPS[module])]
    return subprocess.run([_verilator(), "--lint-only", "-Wall", str(kernels / LINT_WAIVERS), *map(str, files),
                           "--top-module", module, *params], capture_output=True, text=True)


def lint_generated_top(design, out: Path) -> subprocess.CompletedProcess:
    """Emit ``design``'s Verilog into ``out`` and lint its top."""
    from codegen.emit.rtl import LINT_WAIVERS, emit_rtl, rtl_sources
    from test_rtl_units import _verilator

    emit_rtl(design, out)
    return subprocess.run([_verilator(), "--lint-only", "-Wall", str(out / "rtl" / LINT_WAIVERS),
                           *map(str, rtl_sources(out)), "--top-module", design.top_name],
                          capture_output=True, text=True)
