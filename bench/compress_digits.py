"""Benchmark: `einhls compress` on an MLP trained here on scikit-learn's digits, for the PYNQ-Z2.

    python -m bench.compress_digits

The MLP (64 -> 64 -> 64 -> 10, ReLU) is trained for 25 epochs on 80% of the digits; the search uses
300 of the images as unlabeled samples (a fifth held out for the accuracy), the full candidate set,
the floor --min-accuracy 0.99 (output cosine to the original model), distillation capped at 300
layer-wise and 600 end-to-end steps.  The table compares every uniform setting with the searched
configuration of least cycles x DSP that is at least as accurate (before distillation).
Writes bench/results/compress_digits.json and .md.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
COMMAND = "python -m bench.compress_digits"


def main() -> int:
    from codegen.compress import compress, front_table, uniform_table
    from codegen.compress.digits import train_digits_mlp
    from codegen.compress.search import versus_uniform
    from codegen.schedule.boards import get_board
    torch.set_num_threads(1)
    start = time.time()
    model, x, test_acc = train_digits_mlp(hidden=64, seed=0, epochs=25)
    with tempfile.TemporaryDirectory() as tmp:
        result = compress(model, x[:300], "pynq-z2", Path(tmp) / "out", min_accuracy=0.99, budget_s=900, seed=0,
                          workers=2, level="full", distill_steps=(300, 600), command=COMMAND)
    elapsed = time.time() - start
    board = get_board("pynq-z2")
    rows = versus_uniform(result.points, board)
    chosen = result.chosen
    record = {"command": COMMAND, "elapsed_s": round(elapsed, 1), "mlp_test_accuracy": test_acc,
              "chosen": result.summary["chosen"], "versus_uniform": rows,
              "points": [p.row(board) for p in result.points]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compress_digits.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    (RESULTS / "compress_digits.md").write_text(
        f"# `einhls compress` on a digits MLP (pynq-z2)\n\n`{COMMAND}` ({elapsed:.0f} s, CPU)\n\n"
        f"chosen: {chosen.label if chosen else None}\n\n## uniform settings against the search\n\n"
        + uniform_table(rows) + "\n## every evaluated configuration\n\n" + front_table(result.points, board))
    print((RESULTS / "compress_digits.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
