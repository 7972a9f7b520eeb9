"""Benchmark: the choice between a decomposed convolution's factor chain and the kernel rebuilt from
its factors, where no quantizer sits between the factors (Brevitas ``QuantConv2d`` factors with
4-bit per-tensor weight quantizers only, a Tucker 1x1 / 3x3 / 1x1 chain on 6x6 pixels, QONNX).

    python -m bench.conv_chain_choice     # under a minute: lowering and scheduling only

For each layer and interval (the smallest that fits pynq-z2, and --target-ii 72) the scheduler's
totals of both graphs at the same interval and the resource score that decides (the sum over DSP,
LUT, FF, BRAM36 of the fraction of the board used; codegen/passes/conv_chain.py).  The rebuilt
kernel computes the same integers as the chain (tests/test_conv_chain.py checks it element by
element), so this is a choice of hardware only.

Writes bench/results/conv_chain_choice.md and conv_chain_choice.json.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent / "tests"))

from models.conv_chain import tucker_chain  # noqa: E402

from codegen.frontend import load_graph  # noqa: E402
from codegen.frontend.passes import fuse_relu  # noqa: E402
from codegen.passes.conv_chain import compare_conv_chains  # noqa: E402
from codegen.passes.graph import insert_forks  # noqa: E402
from codegen.schedule.boards import get_board  # noqa: E402

#: (c_in, c_out, rank_in, rank_out)
LAYERS = ((8, 16, 4, 6), (8, 16, 8, 16), (8, 8, 8, 8), (8, 8, 12, 12), (8, 8, 16, 16))
TARGETS = (None, 72)


def _export(layer, path: Path) -> Path:
    import warnings

    import torch
    from brevitas.export import export_qonnx
    torch.manual_seed(0)
    model = tucker_chain(*layer).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, layer[0], 6, 6), export_path=str(path))
    return path


def _side(totals: dict | None, score: float | None) -> dict:
    if totals is None:
        return {"fits": False}
    return {"fits": True, "dsp": totals["dsp"], "lut": totals["lut"], "bram36": totals["bram36"],
            "macs_per_pixel": totals["macs"], "multipliers": totals["multipliers"], "score": round(score, 4)}


def main() -> None:
    board = get_board("pynq-z2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layer in LAYERS:
            path = _export(layer, Path(tmp) / f"tucker_{'_'.join(map(str, layer))}.onnx")
            graph = insert_forks(fuse_relu(load_graph(path)))
            for target in TARGETS:
                _, choice = compare_conv_chains(graph, board, target_ii=target)
                rows.append({"layer": f"{layer[0]} -> {layer[1]}, ranks ({layer[2]}, {layer[3]})",
                             "target_ii": target, "interval": choice.interval, "chosen": choice.chosen,
                             "chain": _side(choice.chain, choice.chain_score),
                             "rebuilt": _side(choice.rebuilt, choice.rebuilt_score)})
                print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "conv_chain_choice.json").write_text(json.dumps({"command": "python -m bench.conv_chain_choice",
                                                                "board": board.name, "rows": rows}, indent=1) + "\n")

    def cell(side: dict) -> str:
        if not side["fits"]:
            return "does not fit"
        return (f"{side['macs_per_pixel']} MACs, {side['dsp']:g} DSP, {side['lut']:g} LUT, "
                f"{side['bram36']:g} BRAM36: {side['score']}")

    lines = ["# Tucker 3x3 conv with no quantizer between its factors: factor chain or rebuilt kernel", "",
             "Command: `python -m bench.conv_chain_choice` (Brevitas QONNX, 4-bit per-tensor weights, 6x6 "
             "pixels, pynq-z2; scheduler estimates, per input pixel). Score: the sum over DSP, LUT, FF, BRAM36 "
             "of the fraction of the board; the lower is kept.", "",
             "| layer | --target-ii | compared at (cycles / pixel) | factor chain | rebuilt kernel | kept |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['target_ii'] or 'fit'} | {r['interval']} | {cell(r['chain'])} | "
                     f"{cell(r['rebuilt'])} | {r['chosen']} |")
    (RESULTS / "conv_chain_choice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
