"""Benchmark: CPU time of `einhls compile`'s lowering, phase by phase, on the BERT-base-sized models.

    python -m bench.lowering_time [--models DIR] [--repo DIR] [--runs N] [--profile N]

Models (tests/models/bert_base.py, exported once into DIR, default a temporary folder; an export
takes about 20 s and is not timed):

  bert_base_encoder     12 layers of attention (12 heads of 64), LayerNorm, GELU, tensor-train
                        FFNs (768 = 8 x 8 x 12, 3072 = 12 x 16 x 16, rank 4), 1:8 attention
                        projections, 4-bit weights, 16 tokens; lowered for zcu104
  bert_base_encoder_tt  the same with tensor-train attention projections; for zcu102
  bert_tt_chain         12 tensor-train FFN blocks, one vector; for zcu102

Each model is lowered in a fresh Python process (``--runs`` times; the table shows the run with
the least total CPU, the machine being shared) with the code of ``--repo`` (default: this
checkout; another checkout measures the code before a change).  The child times, in CPU seconds
(``time.process_time``: all its threads) and wall seconds: importing the compiler, the ONNX
capacity check, and the phases of ``codegen.project.lower`` (read, prepare = checker and shape
inference, fuse_butterflies, lower_prepared, fuse_relu, expand_for_board = the contraction
pipelines and their self-check, insert_forks, share_input_delay), measured by wrapping those
functions.  The lowered graph is compared op by op with bench/results/lowered_ir_large.json (the
lowering before it was made faster; tests/lowered_ir.py) and the table says whether it is the same.
With ``--profile N`` the child also writes the N top functions by cumulative and by own time.

Writes bench/results/lowering_time.json and lowering_time.md (with --repo: *_REPONAME.*); with
``--write-stored`` (after an intended change of the IR) only the reference digests,
bench/results/lowered_ir_large.json, with the command that wrote them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
STORED = RESULTS / "lowered_ir_large.json"
MODELS = {"bert_base_encoder": ("zcu104", {}), "bert_base_encoder_tt": ("zcu102", {"projections": "tt"}),
          "bert_tt_chain": ("zcu102", None)}

# runs in the child, in the checkout being measured (its codegen on sys.path first)
_CHILD = r"""
import json, sys, time
t0, w0 = time.process_time(), time.perf_counter()
sys.path.insert(0, sys.argv[1])
import codegen.cli
from codegen import project, frontend
import codegen.passes.graph, codegen.passes.input_delay, codegen.frontend.passes
assert project.__file__.startswith(sys.argv[1]), project.__file__
phases = {"import": (time.process_time() - t0, time.perf_counter() - w0)}
model, board, tests, profile = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
from pathlib import Path
from codegen.schedule.boards import get_board
from codegen.schedule.capacity import check_model_capacity
c, w = time.process_time(), time.perf_counter()
check_model_capacity(model, get_board(board), 0.8)
phases["capacity_check"] = (time.process_time() - c, time.perf_counter() - w)

def timed(owner, name, label):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        c, w = time.process_time(), time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            old = phases.get(label, (0.0, 0.0))
            phases[label] = (old[0] + time.process_time() - c, old[1] + time.perf_counter() - w)
    setattr(owner, name, wrapper)

import importlib
# each function where it is defined, and where codegen.frontend bound it at import (older code)
for module, name, label in (("codegen.frontend.load", "read_model", "read"),
                            ("codegen.frontend.load", "prepare_model", "prepare"),
                            ("codegen.frontend.butterfly", "fuse_butterflies", "fuse_butterflies"),
                            ("codegen.frontend.lower", "lower_prepared", "lower_prepared"),
                            ("codegen.frontend.passes", "fuse_relu", "fuse_relu"),
                            ("codegen.project", "expand_for_board", "expand_for_board"),
                            ("codegen.passes.graph", "insert_forks", "insert_forks"),
                            ("codegen.passes.input_delay", "share_input_delay", "share_input_delay")):
    timed(importlib.import_module(module), name, label)
    if name in vars(frontend):
        timed(frontend, name, label)
if profile:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
c, w = time.process_time(), time.perf_counter()
graph = project.lower(Path(model), project.CompileOptions(board=board))
phases["lower"] = (time.process_time() - c, time.perf_counter() - w)
top = {}
if profile:
    profiler.disable()
    import io, pstats
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(profile)
        top[order] = [line.replace(sys.argv[1] + "/", "") for line in text.getvalue().splitlines()
                      if line.strip() and line.lstrip()[:1].isdigit()]
sys.path.insert(0, tests)
from lowered_ir import digests, fingerprint
print("RESULT " + json.dumps({"phases": {k: [round(v[0], 3), round(v[1], 3)] for k, v in phases.items()},
                              "ops": len(graph.ops), "digests": digests(fingerprint(graph)), "profile": top}))
"""


def export(name: str, folder: Path) -> Path:
    path = folder / f"{name}.onnx"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT.parent))
    from tests.models.bert_base import export_bert_base, export_tt_chain
    compression = MODELS[name][1]
    return export_tt_chain(path) if compression is None else export_bert_base(path, **compression)


def measure(model: Path, board: str, repo: Path, profile: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(repo), str(model), board,
                          str(ROOT.parent / "tests"), str(profile)],
                         capture_output=True, text=True, cwd=repo)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"lowering {model.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="folder for the exported models (kept; default: temporary)")
    parser.add_argument("--repo", type=Path, default=ROOT.parent, help="checkout whose codegen is measured")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per model (the least CPU is kept)")
    parser.add_argument("--profile", type=int, default=0, help="also list the N top functions (one more run)")
    parser.add_argument("--write-stored", action="store_true",
                        help="rewrite bench/results/lowered_ir_large.json from this lowering (only for an intended "
                             "change of the IR)")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    stored = json.loads(STORED.read_text())
    commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    results = {"command": "python -m bench.lowering_time " + " ".join(argv if argv is not None else sys.argv[1:]),
               "repo": f"commit {commit}" + ("" if repo == ROOT.parent.resolve() else f" (checkout {repo.name})"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible",
               "load_average_at_start": os.getloadavg()[0], "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.models or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        fresh_digests = {}
        for name, (board, _) in MODELS.items():
            model = export(name, folder)
            runs = [measure(model, board, repo, 0) for _ in range(args.runs)]
            best = min(runs, key=lambda r: r["phases"]["lower"][0])
            fresh_digests[name] = best["digests"]
            entry = {"board": board, "ops": best["ops"], "phases": best["phases"],
                     "lower_cpu_all_runs": [r["phases"]["lower"][0] for r in runs],
                     "same_ir_as_before": best["digests"] == stored.get(name),
                     "same_ir_every_run": all(r["digests"] == best["digests"] for r in runs)}
            if not entry["same_ir_as_before"] and name in stored:
                entry["first_differing_ops"] = [
                    [a, b] for a, b in zip(stored[name]["ops"], best["digests"]["ops"]) if a != b][:3]
            if args.profile:
                entry["profile"] = measure(model, board, repo, args.profile)["profile"]
            results["models"][name] = entry
            print(name, json.dumps({k: v for k, v in entry.items() if k != "profile"}), flush=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    if args.write_stored:   # the reference IR only: the timing results stay those of a measuring run
        STORED.write_text(json.dumps({"command": results["command"], **fresh_digests}, sort_keys=True, indent=0) + "\n")
        return 0
    suffix = "" if repo == ROOT.parent.resolve() else "_" + repo.name
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"lowering_time{suffix}.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / f"lowering_time{suffix}.md").write_text(markdown(results) + "\n")
    print(markdown(results))
    return 0


PHASES = ("import", "capacity_check", "read", "prepare", "fuse_butterflies", "lower_prepared", "fuse_relu",
          "expand_for_board", "insert_forks", "share_input_delay", "lower")


def markdown(results: dict) -> str:
    lines = [f"# Lowering time (`{results['command']}`)", "",
             f"Code: {results['repo']}. Machine: {results['machine']}; load average "
             f"{results['load_average_at_start']:.1f} at the start, {results['load_average_at_end']:.1f} at the end "
             "(shared: CPU seconds are steadier than wall seconds). Each cell: CPU s / wall s of the run with the "
             "least lowering CPU. `lower` is the whole of codegen.project.lower (read .. share_input_delay); "
             "`import` and `capacity_check` come before it in `einhls compile`.", "",
             "| model | board | ops | " + " | ".join(PHASES) + " | lower CPU, every run | same IR as before |",
             "|---|---|---|" + "---|" * len(PHASES) + "---|---|"]
    for name, entry in results["models"].items():
        cells = [f"{entry['phases'][p][0]:.2f} / {entry['phases'][p][1]:.2f}" if p in entry["phases"] else "-"
                 for p in PHASES]
        runs = ", ".join(f"{v:.2f}" for v in entry["lower_cpu_all_runs"])
        lines.append(f"| {name} | {entry['board']} | {entry['ops']} | " + " | ".join(cells) +
                     f" | {runs} | {'yes' if entry['same_ir_as_before'] else 'NO'} |")
    for name, entry in results["models"].items():
        for order, rows in entry.get("profile", {}).items():
            lines += ["", f"{name}: top functions by {order} time (cProfile; ncalls tottime percall cumtime "
                      "percall function)", "", "```", *rows, "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
