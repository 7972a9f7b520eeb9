"""all-MiniLM-L6-v2 through einhls: accuracy of the integer reference against the float model, and
the scheduler's numbers for one layer and the whole encoder on kv260 and zcu104.

    python -m bench.minilm [--fortunes N] [--configs I ...] [--schedule I ...] [--skip-accuracy] [--skip-schedule]

``--configs`` / ``--schedule`` recompute only those accuracy rows / scheduler models and merge them
into the stored results (minilm.json keeps the command that regenerates everything; each row
records the command that computed it).

Accuracy: each sentence runs at its own length (no padding; the quantized graph is built once at
length 16 and moved to each length by the sequence-length pass).  Token embeddings are computed on
the host, the encoder layers by the einhls integer reference (the IR's bit-exact definition, which
C-sim and RTL sim reproduce), then mean pooling and L2 normalisation as sentence-transformers does;
the metric is the cosine to the original float model's sentence embedding.  Sentences: the 60 in
tests/data/sentences.txt (also the calibration set) and held-out text from Debian's ``fortunes``
when /usr/share/games/fortunes exists (``apt-get install fortunes``).

Schedule: the scheduler's numbers at 128 tokens (the export at 16, moved by --sequence-length)
for one dense int8 layer and for the whole encoder compressed to 4-bit weights, 2:8 attention
projections and 1:8 FFN, on kv260 and zcu104: cycles per token and per
sequence, sequences/s at the board clock, resources, weight bits against dense int8, the op that
holds the interval, and the ratio to the physical limit (MACs per sequence / (DSP x 2 x clock)).
Also one layer with compressed layers inside it (tests/models/minilm.py ``variant_copy``): the FFN
2:4-pruned, the FFN as tensor trains (TT-SVD of the trained weights), and the query / key / value /
output projections as butterflies fitted to the trained weights; the TT FFN and the butterfly
projections in all 6 layers are accuracy rows (the 2:4 FFN one was already).

Writes bench/results/minilm.json and bench/results/minilm.md.
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

from codegen.frontend import load_graph  # noqa: E402
from codegen.ir.reference import quantize, run_reference  # noqa: E402
from codegen.passes.sequence import with_tokens  # noqa: E402
from models import minilm  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FORTUNES = Path("/usr/share/games/fortunes")
CALIBRATION_LENGTH = 16


def fortunes(count: int) -> list[str]:
    """Short one-line fortunes (<= 120 characters), in file order, from the plain-text databases."""
    if not FORTUNES.is_dir():
        return []
    found: list[str] = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file():
            continue
        for entry in path.read_text(errors="replace").split("\n%\n"):
            text = " ".join(entry.split())
            if 20 <= len(text) <= 120 and "\n" not in entry.strip():
                found.append(text)
    step = max(1, len(found) // max(count, 1))
    return found[::step][:count]


def cosines(graph, texts: list[str], layers: int) -> list[float]:
    """Cosine of einhls' sentence embedding to the float model's, per text."""
    _, model = minilm.load()
    out = []
    for x in minilm.hidden_states(texts):
        at_n = with_tokens(graph, x.shape[1])
        t = at_n.output_type
        codes = run_reference(at_n, quantize(x.reshape(1, -1), at_n.input_type))
        ours = (codes.astype(np.float64) - t.zero_point) * t.scale
        with torch.no_grad():
            real = minilm.Layers(model, 0, layers)(torch.as_tensor(x)).numpy()
        out.append(float(minilm.sentence_embedding(ours) @ minilm.sentence_embedding(real)))
    return out


SCHEDULE_LENGTH = 128
DENSE_INT8_BITS = 6 * (4 * 384 * 384 + 2 * 384 * 1536) * 8   # the encoder's weights at int8


SCHEDULE_MODELS = [   # (title, encoder layers, export(path) -> ONNX path); new rows go at the end
    ("one layer, dense int8", 1, lambda path: minilm.export_layers(path, CALIBRATION_LENGTH)),
    ("6 layers, 4-bit, 2:8 attention, 1:8 FFN", 6, lambda path: minilm.export_compressed(path, CALIBRATION_LENGTH, 6)),
    ("one layer, FFN 2:4, int8", 1, lambda path: minilm.export_variant(path, "ffn_2_4", CALIBRATION_LENGTH)),
    ("one layer, FFN as tensor trains (rank 8), int8", 1,
     lambda path: minilm.export_variant(path, "ffn_tt", CALIBRATION_LENGTH)),
    ("one layer, Q/K/V/O as butterflies, int8", 1,
     lambda path: minilm.export_variant(path, "attention_butterfly", CALIBRATION_LENGTH)),
]


def schedule_row(path: Path, title: str, layers: int, board_name: str, max_util: float) -> dict:
    """The scheduler's design for ``path`` at 128 tokens on ``board_name`` within ``max_util`` of
    it, or its refusal."""
    from codegen.project import CompileOptions, lower
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold

    board = get_board(board_name)
    start = time.time()
    options = CompileOptions(board=board_name, sequence_length=SCHEDULE_LENGTH)
    try:
        graph = lower(path, options)
        result = fold(graph, board, max_util=max_util)
    except Exception as exc:   # a configuration that does not fit is a result too
        return {"model": title, "board": board_name, "max_util": max_util, "error": str(exc)}
    t, costs = result.totals, result.costs
    bound = max(costs, key=lambda name: costs[name].ii)
    macs = t["macs"] * graph.tokens
    clock = board.clock_mhz * 1e6
    per_sequence = t["ii"] * graph.tokens
    peak = board.dsp * 2 * clock / macs
    return {"model": title, "board": board_name, "max_util": max_util, "tokens": graph.tokens,
            "cycles_per_token": t["ii"], "cycles_per_sequence": per_sequence,
            "sequences_per_s": clock / per_sequence, "clock_mhz": board.clock_mhz,
            "dsp": t["dsp"], "bram36": t["bram36"], "uram": t.get("uram", 0), "lut": t["lut"],
            "weight_bits": t["weight_bits"], "dense_int8_bits": DENSE_INT8_BITS * layers // 6,
            "macs_per_sequence": macs, "bound": f"{bound} ({graph.op(bound).kind})",
            "physical_limit_sequences_per_s": peak,
            "ratio_to_physical_limit": clock / per_sequence / peak,
            "notes": result.notes, "seconds": round(time.time() - start, 1)}


def schedule_rows(tmp: Path, chosen: list[int] | None = None) -> list[dict]:
    """The scheduler on the SCHEDULE_MODELS (all, or the indexes ``chosen``) at 128 tokens, kv260
    and zcu104, within 80% of each board, and where that is refused within 100% as well."""
    rows = []
    for index, (title, layers, export) in enumerate(SCHEDULE_MODELS):
        if chosen is not None and index not in chosen:
            continue
        path = export(tmp / f"schedule{index}.onnx")
        for board_name in ("kv260", "zcu104"):
            for max_util in (0.8, 1.0):
                row = schedule_row(path, title, layers, board_name, max_util)
                if max_util != 0.8:
                    row["model"] = f"{title} (--max-util {max_util:g})"
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "notes"}), flush=True)
                if "error" not in row:   # the default fits: no need to relax it
                    break
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fortunes", type=int, default=200, help="held-out fortunes to score (default 200)")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the scheduler's numbers")
    parser.add_argument("--configs", type=int, nargs="*", help="accuracy rows to compute (indexes; default all)")
    parser.add_argument("--schedule", type=int, nargs="*",
                        help="scheduler models to compute (indexes into SCHEDULE_MODELS; default all, none "
                             "with --skip-schedule); rows not computed stay as stored")
    parser.add_argument("--skip-schedule", action="store_true", help="only the accuracy rows")
    args = parser.parse_args(argv)
    written = minilm.sentences()
    held_out = fortunes(args.fortunes)
    configs = [
        ("dense, int8 weights, int8 activations", dict(activation_bits=8)),
        ("dense, int8 weights, int16 activations", dict(activation_bits=16)),
        ("FFN 2:4 (magnitude, no retraining), int8 weights, int16 activations",
         dict(compressed=dict(attention=None, ffn=(2, 4), weight_bits=8, activation_bits=16))),
        ("4-bit weights, 2:8 attention, 1:8 FFN (no retraining), int8 activations",
         dict(compressed=dict(attention=(2, 8), ffn=(1, 8), weight_bits=4, activation_bits=8))),
        ("FFN as tensor trains (TT-SVD, rank 8, no retraining), int8 weights, int16 activations",
         dict(variant="ffn_tt", activation_bits=16)),
        ("Q/K/V/O as butterflies (fitted to the weights, no retraining), int16 activations",
         dict(variant="attention_butterfly", activation_bits=16)),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        schedule = [] if args.skip_schedule else schedule_rows(Path(tmp), args.schedule)
        chosen = [c for i, c in enumerate(configs) if args.configs is None or i in args.configs]
        for title, kwargs in ([] if args.skip_accuracy else chosen):
            start = time.time()
            if "variant" in kwargs:
                path = minilm.export_variant(Path(tmp) / "encoder.onnx", kwargs["variant"], CALIBRATION_LENGTH, 6,
                                             activation_bits=kwargs["activation_bits"])
            elif "compressed" in kwargs:
                path = minilm.export_compressed(Path(tmp) / "encoder.onnx", CALIBRATION_LENGTH, 6,
                                                **kwargs["compressed"])
            else:
                path = minilm.export_layers(Path(tmp) / "encoder.onnx", CALIBRATION_LENGTH, 0, 6, **kwargs)
            graph = load_graph(path)
            row = {"config": title, "layers": 6, "ops": len(graph.ops), "cosine_heldout": None,
                   "heldout_sentences": len(held_out)}
            scores = cosines(graph, written, 6)
            row["cosine_written"], row["cosine_written_min"] = float(np.mean(scores)), float(np.min(scores))
            if held_out:
                scores = cosines(graph, held_out, 6)
                row["cosine_heldout"], row["cosine_heldout_min"] = float(np.mean(scores)), float(np.min(scores))
            row["seconds"] = round(time.time() - start, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.minilm" + (f" --fortunes {args.fortunes}" if args.fortunes != 200 else "") \
        + (" --skip-accuracy" if args.skip_accuracy else "") \
        + (f" --configs {' '.join(map(str, args.configs))}" if args.configs is not None else "") \
        + (" --skip-schedule" if args.skip_schedule else "") \
        + (f" --schedule {' '.join(map(str, args.schedule))}" if args.schedule is not None else "")
    for row in rows + schedule:
        row["command"] = command
    partial = args.configs is not None or args.schedule is not None or args.skip_accuracy or args.skip_schedule
    updates: list[str] = []
    if (RESULTS / "minilm.json").is_file():   # rows not recomputed now stay as stored
        previous = json.loads((RESULTS / "minilm.json").read_text())
        if partial:   # the file keeps the command that regenerates all of it; this run is an update
            updates = previous.get("updated_by", []) + [command]
            command = previous.get("command", "python -m bench.minilm")
        done = {row["config"] for row in rows}
        stored = [row for row in json.loads((RESULTS / "minilm.json").read_text()).get("accuracy", [])
                  if row["config"] not in done]
        order = [title for title, _ in configs]
        rows = sorted(stored + rows, key=lambda row: order.index(row["config"]) if row["config"] in order else len(order))
        done = {(row["model"], row["board"]) for row in schedule}
        stored = [row for row in json.loads((RESULTS / "minilm.json").read_text()).get("schedule", [])
                  if (row["model"], row["board"]) not in done]
        order = [title for title, _, _ in SCHEDULE_MODELS]
        schedule = sorted(stored + schedule, key=lambda row: (order.index(row["model"].split(" (--max-util")[0])
                                                               if row["model"].split(" (--max-util")[0] in order
                                                               else len(order), row["board"], row["model"]))
    data = {"command": command, "updated_by": updates, "accuracy": rows, "schedule": schedule}
    if (RESULTS / "minilm.json").is_file():   # bench.minilm_rtlsim's rows
        data["rtlsim"] = json.loads((RESULTS / "minilm.json").read_text()).get("rtlsim", [])
    (RESULTS / "minilm.json").write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(data)


def write_markdown(data: dict) -> None:
    """bench/results/minilm.md from the results of minilm.json."""
    command, rows, schedule = data["command"], data["accuracy"], data["schedule"]
    rerun = "".join(f" Rows updated since by `{c}`." for c in data.get("updated_by", []))
    lines = ["# all-MiniLM-L6-v2: einhls integer reference vs the float model", "",
             f"Command: `{command}` (all rows; each row in minilm.json records the command that computed it).{rerun} "
             "Cosine of sentence embeddings (mean pooling, L2 norm), each sentence at "
             "its own length; written = tests/data/sentences.txt (60, also the calibration set), held-out = "
             "Debian fortunes (how many: in brackets).", "",
             "| configuration | cosine written (mean / min) | cosine held-out (mean / min) |", "|---|---|---|"]
    for row in rows:
        held = (f"{row['cosine_heldout']:.4f} / {row['cosine_heldout_min']:.4f} ({row['heldout_sentences']})"
                if row["cosine_heldout"] is not None else "n/a")
        lines.append(f"| {row['config']} | {row['cosine_written']:.4f} / {row['cosine_written_min']:.4f} | {held} |")
    lines += ["", f"## The scheduler at {SCHEDULE_LENGTH} tokens", "",
              "| model | board | cycles/token | cycles/sequence | sequences/s | DSP | BRAM36 | URAM | LUT | weight bits "
              "(dense int8) | bound | of physical limit |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in schedule:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['board']} | refused: {r['error']} ||||||||||")
            continue
        lines.append(f"| {r['model']} | {r['board']} | {r['cycles_per_token']} | {r['cycles_per_sequence']} | "
                     f"{r['sequences_per_s']:.1f} | {r['dsp']} | {r['bram36']:g} | {r['uram']} | {r['lut']} | "
                     f"{r['weight_bits'] / 1e6:.1f} M ({r['dense_int8_bits'] / 1e6:.1f} M) | {r['bound']} | "
                     f"{r['ratio_to_physical_limit']:.1%} |")
    if data.get("rtlsim"):
        lines += ["", "## One layer measured in RTL simulation", "",
                  "Verilator through the cocotb test bench (`einhls verify --rtlsim`'s code path): sequences back to "
                  "back, then with random input gaps and output back-pressure, every element compared with the "
                  "integer reference; wall time on the shared 2-core machine. Command per row in minilm.json.", "",
                  "| model | board | tokens | bit-exact | sequences (back to back / paused) | cycles/token measured "
                  "(schedule) | cycles/sequence measured (schedule) | latency measured (schedule) | simulated cycles | "
                  "simulation | verify in all (Verilator build) | command |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in data["rtlsim"]:
            build = "cached" if r["build_reused"] else "built"
            lines.append(f"| {r['model']} | {r['board']} | {r['tokens']} | {'yes' if r['passed'] else 'NO'} | "
                         f"{r['sequences_back_to_back']} / {r['sequences_paused']} | {r['measured_cycles_per_token']} "
                         f"({r['schedule_cycles_per_token']}) | {r['measured_interval_cycles']} "
                         f"({r['schedule_cycles_per_sequence']}) | {r['measured_latency_cycles']} "
                         f"({r['schedule_latency_cycles']}) | {r['simulated_cycles']} | {r['simulation_s']} s "
                         f"({r['simulated_cycles_per_s']} cycles/s) | {r['verify_s']} s ({build}) | `{r['command']}` |")
    (RESULTS / "minilm.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
