"""C-sim outputs and counted cycles of designs with the HLS kernels as they are now and at a git revision.

    python -m bench.kernel_refactor_csim --rev main units:dense_int8_odd pair:sparse_2_4_int8 model:tt512

For a refactor of the HLS kernel library (hls_kernels/) that must not change what the kernels
compute or how many cycles they take: every point is emitted once with the working tree's
kernels and C-simulated (g++, codegen/verify/csim.py) on the same vectors, then every kernel
header of the emitted hls/ folder is replaced by the same file at REV and the design is
C-simulated again.  Both runs must equal the integer reference element by element, and the
per-process counts of pipelined-loop iterations (einhls_csim.h: calls, most in one call, total)
must be identical.  Prints one line a point and exits 1 if any point differs or fails.

Points:  units:NAME (tests/test_hls_units.py CASES: dense and N:M Linear units),
         pequad:NAME (tests/test_pe_quad.py: PE quads, linear_quad_compute),
         pair:NAME (tests/test_token_pairs.py: token pairs, linear_pair_compute),
         pairquad:NAME (tests/test_quad_pack.py: token pairs with PE pairs),
         model:NAME, a compiled model: tt512 (a tensor-train layer on zcu104), sweep_parallel,
         sweep_serial (the TT / Tucker / low-rank chain of tests/models/einsum_models.py on
         pynq-z2, the second at a 2000-cycle target), demo (codegen/demo_model.py): the
         contraction stages (contract_compute) and plain Linear units of a whole design.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

VECTORS = 64
SEED = 7


MODELS = ("tt512", "sweep_parallel", "sweep_serial", "demo")
CASE_MODULES = {"units": "test_hls_units", "pequad": "test_pe_quad", "pair": "test_token_pairs",
                "pairquad": "test_quad_pack"}


def _cases(kind: str) -> dict:
    import importlib
    return importlib.import_module(CASE_MODULES[kind]).CASES


def point_error(point: str) -> str | None:
    """Why ``point`` names no point, or None."""
    kind, _, name = point.partition(":")
    if kind == "model":
        return None if name in MODELS else f"{point!r}: no model {name!r} (one of {', '.join(MODELS)})"
    if kind not in CASE_MODULES:
        return f"{point!r}: the kind must be one of model, {', '.join(CASE_MODULES)}"
    return None if name in _cases(kind) else f"{point!r}: no case {name!r} in tests/{CASE_MODULES[kind]}.py"


def _model_project(name: str, out: Path):
    from codegen.demo_model import build_demo_model
    from codegen.project import CompileOptions, compile_model
    from models.einsum_models import sweep_model, tt_model

    models = {"tt512": (lambda: tt_model([8, 8, 8], [8, 8, 8], [8, 8]), {"board": "zcu104"}),
              "sweep_parallel": (sweep_model, {"board": "pynq-z2"}),
              "sweep_serial": (sweep_model, {"board": "pynq-z2", "target_ii": 2000})}
    path = out / f"{name}.onnx"
    if name == "demo":
        build_demo_model(path)
        options = {"board": "pynq-z2"}
    else:
        model, options = models[name]
        path.write_bytes(model().SerializeToString())
    return compile_model(path, out / "project", CompileOptions(**options), progress=lambda *_: None)


def _prepare(point: str, out: Path):
    """(project folder, graph, tokens) of the point, emitted with the working tree's kernels."""
    from codegen.emit.hls import emit_csim_testbench, emit_hls

    kind, name = point.split(":", 1)
    if kind == "model":
        project = _model_project(name, out)
        return project.path, project.graph, project.graph.tokens
    design = _cases(kind)[name]()
    emit_hls(design, out)
    emit_csim_testbench(design, out)
    return out, design.graph, 1


def _swap_kernels(hls_dir: Path, rev: str) -> list[str]:
    """Replace every kernel header of hls_dir that exists at REV with REV's; their names."""
    swapped = []
    for header in sorted(hls_dir.glob("einhls_*.h")):
        done = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:hls_kernels/{header.name}"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            header.write_text(done.stdout)
            swapped.append(header.name)
    return swapped


def _counts(measured: dict) -> dict:
    return {p["process"]: (p["calls"], p["cycles_per_frame"], p["total"]) for p in measured.get("processes", [])}


def check_point(point: str, rev: str, root: Path) -> bool:
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.verify.csim import run_csim

    out = root / point.replace(":", "_")
    out.mkdir(parents=True)
    project, graph, tokens = _prepare(point, out)
    inputs = random_inputs(graph, VECTORS, seed=SEED)
    expected = run_reference(graph, inputs)
    now = run_csim(project, inputs, expected, out / "work_now", tokens)
    swapped = _swap_kernels(project / "hls", rev)
    then = run_csim(project, inputs, expected, out / "work_rev", tokens)
    same_outputs = (now.outputs is not None and then.outputs is not None
                    and np.array_equal(now.outputs, then.outputs))
    same_cycles = bool(now.measured) and _counts(now.measured) == _counts(then.measured)
    # no header swapped would compare the working tree with itself
    ok = bool(swapped) and now.passed and then.passed and same_outputs and same_cycles
    print(f"{point}: {'identical' if ok else 'DIFFERENT'}  now {now.line()}  {rev} {then.line()}  "
          f"outputs {'equal' if same_outputs else 'differ'}, cycles {'equal' if same_cycles else 'differ'}: "
          f"interval {now.measured.get('interval_cycles_ii1')} / {then.measured.get('interval_cycles_ii1')} "
          f"({len(_counts(now.measured))} processes; {len(swapped)} headers swapped)", flush=True)
    if not same_cycles:
        for process, counts in sorted(_counts(now.measured).items()):
            print(f"    {process}: now {counts}  {rev} {_counts(then.measured).get(process)}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="main", help="the git revision whose hls_kernels/ to compare with")
    parser.add_argument("points", nargs="+", help="KIND:NAME (see the module docstring)")
    args = parser.parse_args(argv)
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{args.rev}^{{commit}}"],
                      capture_output=True).returncode != 0:
        parser.error(f"--rev {args.rev!r} is not a commit of this repository")
    for point in args.points:
        if point_error(point):
            parser.error(point_error(point))
    with tempfile.TemporaryDirectory(prefix="kernel_refactor_csim_") as tmp:
        results = [check_point(point, args.rev, Path(tmp)) for point in args.points]
    print(f"{sum(results)} of {len(results)} points identical")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
