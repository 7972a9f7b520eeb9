"""all-MiniLM-L6-v2 with padding: sentence embeddings of the einhls integer reference of the whole
6-layer encoder exported with the attention mask and masked mean pooling, each sentence padded to
a fixed length, against the original float model and against the same sentence unpadded.

    python -m bench.minilm_padded [--lengths 16 32] [--fortunes N] [--configs I ...]

For each configuration (int8 weights; int16 activations, the accurate one of bench/minilm.py, and
int8 activations for comparison) and each length L: the encoder ``forward(x, attention_mask)``
with ``sum(mask * h) / sum(mask)`` pooling (tests/models/minilm_mask.py) is exported at L,
quantized by quantize_static (calibrated on the written sentences padded to L) and loaded by
einhls: one graph, 6 masked attention units and a MaskedTokenMean unit at the end, its output the
pooled vector.  Token embeddings are computed on the host.  Each sentence of at most L tokens:

- padded: its tokens then padding to L, the mask 1 on its tokens; the integer reference (the IR's
  bit-exact definition, which C-sim and RTL sim reproduce) gives the pooled vector, L2-normalised;
  the metric is the cosine to the original float model's sentence embedding (the sentence alone
  at its own length, mean pooling, L2 norm);
- unpadded: the same graph moved to the sentence's own length n by the sequence-length pass, the
  sentence's own embeddings, a mask of n ones; its pooled codes must equal the padded run's
  element by element (padding must change nothing).

Sentences longer than L tokens are left out (counted).  Written = tests/data/sentences.txt (also
the calibration set); held-out = Debian fortunes (bench/minilm.py's selection) when installed.

Writes bench/results/minilm_padded.json and bench/results/minilm_padded.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bench.minilm import fortunes  # noqa: E402
from codegen.frontend import load_graph  # noqa: E402
from codegen.ir.reference import pack_inputs, run_reference  # noqa: E402
from codegen.passes.sequence import with_tokens  # noqa: E402
from models import minilm, minilm_mask  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LAYERS = 6
CONFIGS = [   # (title, activation bits); new rows go at the end
    ("dense, int8 weights, int16 activations", 16),
    ("dense, int8 weights, int8 activations", 8),
]


def unit_vector(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values / np.linalg.norm(values)


@torch.no_grad()
def score(graph, texts: list[str], length: int) -> dict:
    """Cosines to the float model and the padded-vs-unpadded comparison over ``texts``."""
    tokenizer, model = minilm.load()
    encoder = minilm.Layers(model, 0, LAYERS)
    t = graph.output_type
    cosines, identical, compared, too_long, differing = [], 0, 0, 0, []
    for text in texts:
        own_ids = tokenizer(text, return_tensors="pt")["input_ids"]
        n = own_ids.shape[1]
        if n > length:
            too_long += 1
            continue
        own_x = model.embeddings(input_ids=own_ids).numpy().astype(np.float32)
        ((x, mask),) = minilm_mask.padded_inputs([text], length)
        assert int(mask.sum()) == n
        padded = run_reference(graph, pack_inputs(graph, {"x": x, "attention_mask": mask})).reshape(-1)
        short = with_tokens(graph, n)
        alone = run_reference(short, pack_inputs(short, {"x": own_x, "attention_mask": np.ones((1, n), np.int64)}))
        compared += 1
        if np.array_equal(padded, alone.reshape(-1)):
            identical += 1
        else:
            differing.append(text)
        ours = unit_vector((padded.astype(np.float64) - t.zero_point) * t.scale)
        real = minilm.sentence_embedding(encoder(torch.as_tensor(own_x)).numpy())
        cosines.append(float(ours @ real))
    return {"sentences": compared, "too_long": too_long, "cosine_mean": float(np.mean(cosines)) if cosines else None,
            "cosine_min": float(np.min(cosines)) if cosines else None, "padding_identical": identical,
            "padding_differs": differing[:5]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32], help="padded lengths (default 16 32)")
    parser.add_argument("--fortunes", type=int, default=50, help="held-out fortunes to score (default 50)")
    parser.add_argument("--configs", type=int, nargs="*", help="configuration rows to compute (indexes; default all)")
    args = parser.parse_args(argv)
    written = minilm.sentences()
    held_out = fortunes(args.fortunes)
    command = "python -m bench.minilm_padded --lengths " + " ".join(map(str, args.lengths)) \
        + f" --fortunes {args.fortunes}" \
        + (f" --configs {' '.join(map(str, args.configs))}" if args.configs is not None else "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (title, activation_bits) in enumerate(CONFIGS):
            if args.configs is not None and index not in args.configs:
                continue
            for length in args.lengths:
                start = time.time()
                path = minilm_mask.export_masked_layers(Path(tmp) / f"encoder{index}_{length}.onnx", length, 0, LAYERS,
                                                        pooling="masked_mean", activation_bits=activation_bits)
                graph = load_graph(path)
                kinds = [op.kind for op in graph.ops]
                assert kinds.count("maskscores") == LAYERS and kinds[-1] == "maskedmean", kinds
                row = {"config": title, "length": length, "ops": len(graph.ops),
                       "written": score(graph, written, length),
                       "heldout": score(graph, held_out, length) if held_out else None,
                       "command": command}
                row["seconds"] = round(time.time() - start, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stored = RESULTS / "minilm_padded.json"
    if stored.is_file():   # rows not recomputed now stay as stored
        done = {(row["config"], row["length"]) for row in rows}
        rows = [row for row in json.loads(stored.read_text())["rows"]
                if (row["config"], row["length"]) not in done] + rows
    order = [title for title, _ in CONFIGS]
    rows.sort(key=lambda row: (order.index(row["config"]) if row["config"] in order else len(order), row["length"]))
    stored.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    write_markdown(rows)


def write_markdown(rows: list[dict]) -> None:
    """bench/results/minilm_padded.md from the rows of minilm_padded.json."""
    lines = ["# all-MiniLM-L6-v2 with padding: the whole encoder with the mask and masked mean pooling", "",
             "The einhls integer reference of the 6-layer encoder exported with `forward(x, attention_mask)` and "
             "masked mean pooling (one graph), each sentence padded to the length L. Cosine of the pooled, "
             "L2-normalised vector to the original float model's sentence embedding (the sentence alone); "
             "'padding changes nothing': the pooled codes of the padded run equal, element by element, those of "
             "the same graph moved to the sentence's own length on the unpadded sentence. Written = "
             "tests/data/sentences.txt (also the calibration set), held-out = Debian fortunes. Sentences longer "
             "than L tokens are left out (counted). Each (configuration, L) is exported and calibrated at L on the "
             "written sentences padded to L (the padding tokens' hidden states are calibration data too, so the int8 "
             "rows move a little with L). Seconds: export, calibration and both runs of every sentence, on a shared "
             "2-core machine.", "",
             "| configuration | L | cosine written (mean / min, n) | cosine held-out (mean / min, n) | "
             "padded = unpadded | left out (> L tokens) | seconds | command |", "|---|---|---|---|---|---|---|---|"]

    def cell(part: dict | None) -> str:
        if not part or not part["sentences"]:
            return "n/a"
        return f"{part['cosine_mean']:.4f} / {part['cosine_min']:.4f} ({part['sentences']})"

    for row in rows:
        parts = [p for p in (row["written"], row["heldout"]) if p]
        same = sum(p["padding_identical"] for p in parts)
        total = sum(p["sentences"] for p in parts)
        left = sum(p["too_long"] for p in parts)
        lines.append(f"| {row['config']} | {row['length']} | {cell(row['written'])} | {cell(row['heldout'])} | "
                     f"{same} of {total} | {left} | {row['seconds']:g} | `{row['command']}` |")
    (RESULTS / "minilm_padded.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
