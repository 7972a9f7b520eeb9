"""`einhls verify`: run the chosen checks on stored + random vectors against the reference."""
from __future__ import annotations


import numpy as np

from ..ir.reference import random_inputs, run_reference
from .result import CheckResult

CHECKS = ("csim", "rtlsim", "pynqsim", "uartsim")


def run_check(project, check: str, inputs: np.ndarray, expected: np.ndarray, seed: int = 0,
              paused: int | None = None) -> CheckResult:
    work = project.path / "build" / check
    work.mkdir(parents=True, exist_ok=True)
    if check == "csim":
        from .csim import run_csim
        return run_csim(project.path, inputs, expected, work, project.graph.tokens)
    if check == "rtlsim":
        from .rtlsim import run_rtlsim
        return run_rtlsim(project.path, inputs, expected, work, seed=seed, paused_vectors=paused)
    if check == "pynqsim":
        if project.design.board.open_flow:
            from ..errors import EinhlsError
            raise EinhlsError(f"--pynq-sim: {project.design.board.name} has no processor and no PYNQ; "
                              "use --uart-sim for its UART host link")
        from .pynqsim import run_pynqsim
        return run_pynqsim(project.path, inputs, expected, work)
    if check == "uartsim":
        from .uartsim import run_uartsim
        return run_uartsim(project.path, inputs, expected, work)
    raise ValueError(f"unknown check {check!r}; choose from {', '.join(CHECKS)}")


def verify(project, checks: tuple[str, ...] = ("csim", "rtlsim"), vectors: int = 64, seed: int = 1,
           progress=print, stored: int | None = None, paused: int | None = None) -> list[CheckResult]:
    """Run each check on the stored vectors (the first ``stored`` of them when given: a large
    design simulates a few frames) plus ``vectors`` random ones; returns the results.  ``paused``
    (RTL sim only): how many of them go through a second time with random input gaps and output
    back-pressure (all when None; one is enough for a long layer, whose interval needs two).

    Expected outputs come from the PyTorch integer reference of the IR, computed here, never from
    the design under test.  Measured cycles are saved to measured.json for `einhls report`.
    """
    stored_in, stored_out = project.stored_vectors()
    if not np.array_equal(run_reference(project.graph, stored_in), stored_out):
        raise RuntimeError("the stored expected vectors no longer match the reference of the stored IR")
    if stored is not None:
        stored_in = stored_in[:stored]
    inputs = np.concatenate([stored_in, random_inputs(project.graph, vectors, seed)]) if vectors else stored_in
    expected = run_reference(project.graph, inputs)
    results = []
    for check in checks:
        result = run_check(project, check, inputs, expected, seed, paused)
        progress(result.line())
        if check == "csim" and result.measured:
            totals = project.report["totals"]
            m = result.measured
            rtl = project.measured.get("rtlsim", {}).get("interval_cycles")
            per = "token" if project.graph.tokens > 1 else "frame"
            progress(f"csim: HLS design {m['interval_cycles_ii1']} cycles per {per} at II=1 (slowest process "
                     f"{m['slowest_process']}); schedule estimate {totals['ii']}, RTL measured "
                     f"{rtl if rtl is not None else 'not yet (run --rtlsim)'}")
            project.save_measured({"csim": {k: v for k, v in m.items() if k != "processes"}})
        if check == "rtlsim" and result.measured:
            totals = project.report["totals"]
            m = result.measured
            progress(f"rtlsim: measured {m.get('latency_cycles')} cycles per frame (estimate "
                     f"{totals['latency']}), interval {m.get('interval_cycles')} cycles between frames "
                     f"(mean {m.get('mean_interval_cycles')}; estimate {totals.get('frame_interval', totals['ii'])})")
            project.save_measured({"rtlsim": m})
        results.append(result)
    return results
