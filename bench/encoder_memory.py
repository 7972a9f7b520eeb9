"""Benchmark: where the on-chip memory of the compressed MiniLM encoder goes at a sequence length.

    python -m bench.encoder_memory --model encoder128.onnx --boards kv260 zcu104 --intervals 18432

The model is the 6-layer all-MiniLM-L6-v2 encoder with 4-bit weights, 2:8 attention projections and
1:8 FFN (tests/models/minilm.py ``export_compressed``; without --model it is exported here at
--tokens, a few minutes).  For every board and interval (cycles per token) the scheduler folds the
design at that interval with no utilisation limit (so a design that does not fit is still costed)
and the memory is split by kind:

* weights: the Linear units' ROMs (block RAM and UltraRAM after the scheduler's placement);
* key / value buffers: the attention products' b buffers (keys for Q K^T, values for P V);
* FIFOs between paths, by the join they feed: the query stream waiting in front of Q K^T, the
  residual stream waiting in front of the Add after attention (or after the FFN), others;
* other units' own memories;
* what the scheduler put in LUT RAM where block RAM and UltraRAM run out (codegen/schedule/
  lutram.py: short FIFOs, Linear input buffers, LayerNorm and Softmax row buffers), 0 blocks each.

Each line gives BRAM36, URAM288 and the bits stored.  Writes bench/results/encoder_memory.json
and .md (the command that made them at the top).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from codegen.project import CompileOptions, lower  # noqa: E402
from codegen.schedule.boards import get_board  # noqa: E402
from codegen.schedule.folding import fold  # noqa: E402


def fifo_kind(graph, op_name: str, index: int) -> str:
    """What a FIFO in front of input ``index`` of ``op_name`` holds."""
    op = graph.op(op_name)
    if op.kind == "actmatmul":
        return ("query FIFOs (a of Q K^T)" if op.layout == "nt" else "probability FIFOs (a of P V)") \
            if index == 0 else "key / value FIFOs (b)"
    if op.kind == "add":
        return "residual FIFOs"
    if op.kind == "fork" and getattr(op, "holds_sequence", False):
        return "layer input delays (queries and residual)"
    return f"other FIFOs ({op.kind})"


def memory_split(graph, board_name: str, interval: int | None, max_util: float) -> dict:
    """The memory of the design folded at ``interval`` (None: the scheduler's choice at
    ``max_util``) on ``board_name``, by kind; a refusal is returned as its message."""
    from codegen.errors import EinhlsError
    from codegen.schedule.fifo_memory import fifo_shapes
    board = get_board(board_name)
    try:
        result = fold(graph, board, max_util=max_util, target_ii=interval)
    except EinhlsError as exc:
        return {"board": board.name, "interval": interval, "max_util": max_util, "tokens": graph.tokens,
                "refused": str(exc)}
    design, costs, totals = result.design, result.costs, result.totals
    split: dict[str, dict] = {}

    def add(kind: str, bram36: float, uram: int, bits: int) -> None:
        entry = split.setdefault(kind, {"bram36": 0.0, "uram": 0, "bits": 0, "count": 0})
        entry["bram36"] += bram36
        entry["uram"] += uram
        entry["bits"] += bits
        entry["count"] += 1

    from codegen.schedule.lutram import input_buffer_shape
    for op in graph.ops:
        c = costs[op.name]
        in_lutram = op.name in design.lutram_units
        if op.kind == "linear":
            add("weights", c.bram36, c.uram, c.weight_bits)
            if in_lutram:
                width, words = input_buffer_shape(op, design.schedule(op))
                add("Linear input buffers (LUT RAM)", 0.0, 0, width * words)
        elif op.kind == "actmatmul":
            add("key / value buffers" + (" (UltraRAM)" if op.name in design.uram_buffers else ""),
                c.bram36, c.uram, c.buffer_bits)
        elif c.bram36 or c.uram or in_lutram:
            add(f"other units ({op.kind})" + (" (LUT RAM)" if in_lutram else ""), c.bram36, c.uram, c.buffer_bits)
    for key, shape in fifo_shapes(graph, design.fifo_depths, design.schedules).items():
        in_uram = key in design.uram_fifos
        where = " (UltraRAM, packed)" if in_uram else " (LUT RAM)" if key in design.lutram_fifos else ""
        add(fifo_kind(graph, *key) + where, 0.0 if in_uram or where else shape.bram36,
            shape.uram if in_uram else 0, shape.width * shape.depth)
    return {"board": board.name, "interval": interval, "max_util": max_util, "tokens": graph.tokens,
            "rate_ii": totals["rate_ii"], "b_sequences": totals["b_sequences"],
            "cycles_per_sequence": totals["frame_interval"],
            "sequences_per_s": board.clock_mhz * 1e6 / totals["frame_interval"],
            "totals": {k: totals[k] for k in ("ii", "dsp", "bram36", "uram", "lut", "ff")},
            "capacity": {"bram36": board.bram36, "uram": board.uram, "lut": board.lut},
            "notes": result.notes, "split": split}


def closest_design(graph, board_name: str, max_util: float) -> dict:
    """Of every design the scheduler costs while it searches (and refuses), the one whose fullest
    resource is least full: what binds, and by how much.  Records the totals the scheduler passes
    to codegen.schedule.folding.fits; the search itself is unchanged."""
    import codegen.schedule.folding as folding
    from codegen.errors import EinhlsError
    board = get_board(board_name)
    capacity = {"dsp": board.dsp, "bram36": board.bram36, "uram": board.uram, "lut": board.lut, "ff": board.ff}
    seen = []
    original = folding.fits

    def recording(totals, board_, util):
        seen.append({k: totals.get(k) for k in ("ii", "rate_ii", "frame_interval", "b_sequences", "dsp", "bram36",
                                                 "uram", "lut", "ff", "fifo_bram36", "fifo_uram",
                                                 "uram_buffers", "uram_fifos")})
        return original(totals, board_, util)

    folding.fits = recording
    try:
        folding.fold(graph, board, max_util=max_util)
    except EinhlsError:
        pass
    finally:
        folding.fits = original

    def fullest(t: dict) -> float:
        return max(t[k] / v for k, v in capacity.items() if v)

    best = min(seen, key=fullest)
    return {**best, "utilisation": {k: round(best[k] / v, 3) for k, v in capacity.items() if v},
            "fullest": round(fullest(best), 3), "designs_costed": len(seen)}


def lower_bound(graph, board_name: str, max_util: float, weights_uram: int) -> dict:
    """The least memory the attention needs beside the weights, against what the board offers.

    At the moment a sequence's last token arrives, each layer still holds, whatever the
    architecture: every key and every value of the sequence (each score row needs all keys, each
    context row all values) and every token's input to the layer (the queries' and the residual's
    source; both can come from one delayed copy), each one sequence of 8-bit codes.  The board
    offers ``max_util`` of its block RAM and of the UltraRAM the weights leave."""
    board = get_board(board_name)
    keys_values = sum(op.tokens * op.in_size_b * op.in_type_b.bits for op in graph.ops if op.kind == "actmatmul")
    queries = sum(op.tokens * op.in_size * op.in_type.bits for op in graph.ops
                  if op.kind == "actmatmul" and op.layout == "nt")
    need = keys_values + queries
    bram_bits, uram_bits = 36 * 1024, 288 * 1024
    offer = max_util * board.bram36 * bram_bits + max(0.0, max_util * board.uram - weights_uram) * uram_bits
    return {"board": board.name, "max_util": max_util, "keys_values_bits": keys_values, "inputs_bits": queries,
            "need_bits": need, "weights_uram": weights_uram, "offer_bits": offer, "fits": need <= offer}


def markdown(rows: list[dict], command: str, bounds: list[dict] | None = None) -> str:
    lines = ["# On-chip memory of the compressed MiniLM encoder by kind", "", f"`{command}`", "",
             "4-bit weights, 2:8 attention projections, 1:8 FFN, 6 layers; each design folded at the "
             "interval shown with no utilisation limit (estimates of codegen/schedule/).", ""]
    for row in rows:
        asked = (f"folded at {row['interval']} cycles per token, no utilisation limit" if row["interval"]
                 else f"the scheduler's choice at --max-util {row['max_util']:g}")
        lines += [f"## {row['board']}, {row['tokens']} tokens, {asked}", ""]
        if "refused" in row:
            lines += [f"Refused: {row['refused']}", ""]
            c = row.get("closest")
            if c:
                u = c["utilisation"]
                lines += [f"The closest of the {c['designs_costed']} designs the scheduler costed (its fullest "
                          f"resource least full): {c['b_sequences']} sequence(s) of keys / values, "
                          f"{c['ii']:,} cycles per token, {c['dsp']} DSP ({u['dsp']:.0%}), {c['bram36']:g} BRAM36 "
                          f"({u['bram36']:.0%}), {c['uram']} URAM288 ({u['uram']:.0%}), {c['lut']:,} LUT "
                          f"({u['lut']:.0%}), {c['ff']:,} FF ({u['ff']:.0%}); {c['uram_buffers']} key / value "
                          f"buffers and {c['uram_fifos']} FIFOs in UltraRAM.", ""]
            continue
        t, cap = row["totals"], row["capacity"]
        lines += [f"{row['b_sequences']} sequence(s) of keys / values per attention product, "
                  f"{t['ii']:,} cycles per token, "
                  f"{row['cycles_per_sequence']:,} cycles per sequence, {row['sequences_per_s']:.1f} "
                  f"sequences/s at the board clock; totals: {t['dsp']} DSP, {t['bram36']:g} / {cap['bram36']} "
                  f"BRAM36, {t['uram']} / {cap['uram']} URAM288, {t['lut']:,} / {cap['lut']:,} LUT", "",
                  "| kind | count | BRAM36 | URAM288 | Mb stored |", "|---|---:|---:|---:|---:|"]
        for kind, e in sorted(row["split"].items(), key=lambda kv: -(kv[1]["bram36"] + 8 * kv[1]["uram"])):
            lines.append(f"| {kind} | {e['count']} | {e['bram36']:g} | {e['uram']} | {e['bits'] / 1e6:.2f} |")
        lines += [""] + [f"- {note}" for note in row["notes"]] + [""]
    if bounds:
        lines += ["## The least any design needs beside the weights", "",
                  "Per layer one sequence of keys, one of values and one of the layer's input (the queries "
                  "and the residual can share a delayed copy), 8-bit codes; against the block RAM and the "
                  "UltraRAM left beside the weights' URAM288, at the utilisation limit:", "",
                  "| board | limit | keys + values Mb | inputs Mb | need Mb | weights URAM288 | offered Mb | enough |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for b in bounds:
            lines.append(f"| {b['board']} | {b['max_util']:.0%} | {b['keys_values_bits'] / 1e6:.2f} | "
                         f"{b['inputs_bits'] / 1e6:.2f} | {b['need_bits'] / 1e6:.2f} | {b['weights_uram']} | "
                         f"{b['offer_bits'] / 1e6:.2f} | {'yes' if b['fits'] else 'no'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="the exported encoder (default: export it)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--activation-bits", type=int, choices=(8, 16), default=8,
                        help="activations of the exported encoder (without --model)")
    parser.add_argument("--attention-bits", type=int, choices=(8, 16),
                        help="the attention products' query / key / value operands (default: --activation-bits)")
    parser.add_argument("--boards", nargs="+", default=["kv260", "zcu104"])
    parser.add_argument("--intervals", nargs="*", type=int, default=[18432],
                        help="intervals to cost with no utilisation limit")
    parser.add_argument("--max-util", type=float, nargs="*", default=[0.8],
                        help="utilisation limits for the scheduler's own choice")
    parser.add_argument("--out", default="encoder_memory", help="results file stem in bench/results")
    parser.add_argument("--bound-utils", type=float, nargs="*", default=[0.8, 0.9, 1.0],
                        help="utilisation limits of the lower-bound table")
    args = parser.parse_args(argv)
    command = "python -m bench.encoder_memory " + " ".join(argv if argv is not None else sys.argv[1:])
    model = args.model
    if model is None:
        from models import minilm
        model = minilm.export_compressed(
            Path("/tmp") / f"encoder{args.tokens}_a{args.activation_bits}_q{args.attention_bits}.onnx", args.tokens,
            layers=6, activation_bits=args.activation_bits, attention_bits=args.attention_bits)
    start = time.time()
    rows, bounds = [], []
    for board in args.boards:
        graph = lower(model, CompileOptions(board=board, sequence_length=args.tokens))
        for interval, max_util in [(i, 100.0) for i in args.intervals] + [(None, u) for u in args.max_util]:
            rows.append(memory_split(graph, board, interval, max_util))
            if "refused" in rows[-1] and interval is None:
                rows[-1]["closest"] = closest_design(graph, board, max_util)
            print(json.dumps({k: rows[-1].get(k) for k in ("board", "interval", "max_util", "totals", "refused")}),
                  flush=True)
        weights_uram = next((r["split"]["weights"]["uram"] for r in rows
                             if r["board"] == get_board(board).name and "split" in r), 0)
        bounds += [lower_bound(graph, board, u, weights_uram) for u in args.bound_utils]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"command": command, "seconds": time.time() - start,
                                                          "rows": rows, "lower_bound": bounds}, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(rows, command, bounds) + "\n")
    print(markdown(rows, command, bounds))


if __name__ == "__main__":
    main()
