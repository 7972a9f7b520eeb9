"""`python -m bench.fuzz`: run N random models in parallel, shrink the failures, write a summary.

Case i of a run uses the generator ``default_rng([SEED, i])``, so any single case is reproduced
with ``--seed SEED --only i`` whatever N and JOBS were.  Results: bench/results/fuzz/summary.json
(counts by form and stage, every failure with its original and shrunk spec) and, per failure, a
folder failure-<i>/ holding the shrunk model.onnx and spec.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .check import TARGETS, run_case
from .forms import FORMS, model_size, sample

RESULTS = Path("bench/results/fuzz")
SHRINK_ATTEMPTS = 40


def case_spec(seed: int, index: int, forms: list[str] | None) -> dict:
    return sample(np.random.default_rng([seed, index]), forms)


def _run(job: tuple[int, dict, tuple[str, ...], int]) -> tuple[int, dict]:
    index, spec, targets, vectors = job
    return index, run_case(spec, targets, vectors)


def shrink(outcome: dict, targets: tuple[str, ...], vectors: int, log=print) -> dict:
    """Greedy: take the first smaller spec that fails at the same stage; repeat until none does."""
    form = FORMS[outcome["spec"]["form"]]
    best, attempts = outcome, 0
    improved = True
    while improved and attempts < SHRINK_ATTEMPTS:
        improved = False
        for candidate in sorted(form.smaller(best["spec"]), key=model_size):
            attempts += 1
            tried = run_case(candidate, targets, vectors)
            if not tried["ok"] and tried["stage"] == outcome["stage"]:
                best, improved = tried, True
                log(f"  shrunk to size {model_size(candidate)}: {json.dumps(candidate, sort_keys=True)}")
                break
            if attempts >= SHRINK_ATTEMPTS:
                break
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="how many random models")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--targets", default="ort,csim,rtlsim",
                        help=f"comma-separated, from {','.join(TARGETS)} (the reference always runs)")
    parser.add_argument("--forms", default="", help=f"comma-separated, from {','.join(sorted(FORMS))} (default all)")
    parser.add_argument("--vectors", type=int, default=24, help="random input vectors per model")
    parser.add_argument("--only", type=int, default=None, help="run only case number ONLY of this seed")
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    targets = tuple(t for t in args.targets.split(",") if t)
    forms = [f for f in args.forms.split(",") if f] or None
    unknown = [t for t in targets if t not in TARGETS] + [f for f in forms or [] if f not in FORMS]
    if unknown:
        parser.error(f"unknown target or form: {', '.join(unknown)}")

    indices = [args.only] if args.only is not None else list(range(args.n))
    jobs = [(i, case_spec(args.seed, i, forms), targets, args.vectors) for i in indices]
    start = time.monotonic()
    outcomes: dict[int, dict] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for index, outcome in pool.map(_run, jobs, chunksize=1 if "csim" in targets or "rtlsim" in targets else 4):
            outcomes[index] = outcome
            if not outcome["ok"]:
                print(f"case {index} ({outcome['spec']['form']}): FAILED at {outcome['stage']}: "
                      f"{outcome['detail'].splitlines()[0][:300]}", flush=True)
    failures = [i for i in indices if not outcomes[i]["ok"]]
    args.results.mkdir(parents=True, exist_ok=True)
    reports = []
    for index in failures:
        print(f"shrinking case {index} ...", flush=True)
        small = outcomes[index] if args.no_shrink else shrink(outcomes[index], targets, args.vectors)
        folder = args.results / f"failure-s{args.seed}-{index}"
        run_case(small["spec"], targets, args.vectors, keep=folder)
        reports.append({"case": index, "stage": small["stage"], "detail": small["detail"],
                        "spec": outcomes[index]["spec"], "shrunk": small["spec"], "folder": str(folder),
                        "reproduce": f"python -m bench.fuzz --seed {args.seed} --only {index} --targets {args.targets}"})
    elapsed = time.monotonic() - start
    by_form = Counter(outcomes[i]["spec"]["form"] for i in indices)
    by_stage = Counter(outcomes[i]["stage"] or "ok" for i in indices)
    ort_checked = sum(1 for i in indices if outcomes[i].get("ort_max_steps") is not None)
    probed = sum(1 for i in indices if outcomes[i].get("probe_max_codes") is not None)
    summary = {"command": "python -m bench.fuzz " + " ".join(sys.argv[1:] if argv is None else argv),
               "seed": args.seed, "models": len(indices), "targets": list(targets), "by_form": dict(by_form),
               "by_stage": dict(by_stage), "ort_compared": ort_checked,
               "ort_inner_tensors_compared": probed,
               "ort_max_steps": max((outcomes[i].get("ort_max_steps") or 0 for i in indices), default=0), "seconds": round(elapsed, 1),
               "failures": reports}
    name = f"summary-s{args.seed}-n{len(indices)}-{'-'.join(targets)}{''.join('-' + f for f in forms or [])}.json"
    (args.results / name).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    print(f"{len(indices)} models ({', '.join(f'{k} {v}' for k, v in sorted(by_form.items()))}) in {elapsed:.0f} s; "
          f"compared with onnxruntime: {ort_checked} (inner tensors: {probed}); outcome: {dict(by_stage)}; summary in {args.results / name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
