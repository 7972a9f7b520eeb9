"""Benchmark: a decomposed 3x3 convolution (tensorly-torch ``FactorizedConv``, 8 -> 16 channels, 6x6
pixels, int8 QDQ) run factor by factor, against the same factors rebuilt into one kernel
(tltorch's ``implementation='reconstructed'``: the export is one Conv with the kernel the factors
make), at the same interval.

    python -m bench.factorized_conv_cost     # about a minute: compiles only (the scheduler's figures)

The two are different models once quantized (the chain quantizes every factor's output, the rebuilt
kernel is quantized as a whole), so einhls never turns one into the other; the table shows what each
costs: MACs per frame, multipliers, and the scheduler's DSP / LUT / BRAM36 estimates for pynq-z2.

Writes bench/results/factorized_conv_cost.md and factorized_conv_cost.json.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent / "tests"))

from models.factorized_conv import FactorizedConvModel  # noqa: E402
from models.ort_qdq import export_quantized  # noqa: E402

from codegen.project import CompileOptions, compile_model  # noqa: E402

#: (label, factorization, implementation, rank)
LAYERS = (
    ("CP rank 6 (separable)", "cp", "factorized", 6),
    ("CP rank 6 (mobilenet)", "cp", "mobilenet", 6),
    ("CP rank 32 (mobilenet)", "cp", "mobilenet", 32),
    ("Tucker ranks (6, 4)", "tucker", "factorized", (6, 4, 3, 3)),
    ("Tucker ranks (16, 8): full", "tucker", "factorized", (16, 8, 3, 3)),
)
TARGETS = (None, 72)
SHAPE = (1, 8, 6, 6)


def _totals(project) -> dict:
    totals = project.report["totals"]
    graph = project.graph
    frame_macs = sum(op.nonzero_macs * graph.tensor_tokens(op.outputs[0]) for op in graph.ops if op.kind == "linear")
    return {"frame_interval": totals["frame_interval"], "multipliers": totals["multipliers"],
            "dsp": totals["dsp"], "lut": totals["lut"], "bram36": totals["bram36"],
            "weight_bits": totals["weight_bits"], "frame_macs": frame_macs}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, factorization, implementation, rank in LAYERS:
            for form in (implementation, "reconstructed"):
                torch.manual_seed(0)
                model = FactorizedConvModel(factorization, form, rank)
                path = export_quantized(model, Path(tmp) / f"{factorization}_{form}_{len(rows)}.onnx", shape=SHAPE)
                for target in TARGETS:
                    project = compile_model(path, Path(tmp) / f"out_{len(rows)}",
                                            CompileOptions(board="pynq-z2", target_ii=target), progress=lambda *_: None)
                    rows.append({"layer": label, "form": "chain" if form != "reconstructed" else "rebuilt kernel",
                                 "target_ii": target, "ops": [op.kind for op in project.graph.ops],
                                 **_totals(project)})
                    print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "factorized_conv_cost.json").write_text(json.dumps({"command": "python -m bench.factorized_conv_cost",
                                                                   "rows": rows}, indent=1) + "\n")
    lines = ["# Decomposed 3x3 conv (8 -> 16, 6x6, int8 QDQ): factor chain against the rebuilt kernel", "",
             "Command: `python -m bench.factorized_conv_cost` (compile only, pynq-z2; scheduler estimates). "
             "MACs per frame: the sum over the Linear units of their non-zero weights x their output tokens.", "",
             "| layer | form | --target-ii | frame interval | MACs / frame | multipliers | DSP | LUT | BRAM36 | weight bits |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['form']} | {r['target_ii'] or 'fit'} | {r['frame_interval']} | "
                     f"{r['frame_macs']} | {r['multipliers']} | {r['dsp']} | {r['lut']} | {r['bram36']} | "
                     f"{r['weight_bits']} |")
    (RESULTS / "factorized_conv_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
