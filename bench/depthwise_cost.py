"""Benchmark: what a depthwise convolution costs on the N:M Linear unit (einhls runs a depthwise kxk
conv as a window + a Linear whose kernel is zero outside each channel, found N:M sparse), against
what a dedicated depthwise unit (k*k multiply-accumulates per channel, k*k weights per channel)
would need at the same interval.

    python -m bench.depthwise_cost      # under a minute: compiles only (the scheduler's figures)

For depthwise 3x3 convs (padding 1, 8x8 pixels, int8 QDQ from torch + quantize_static) over C
channels, at the interval the scheduler picks for pynq-z2 and at --target-ii 72:

* multipliers: the Linear's SIMD x PE (N:M slots) against ceil(C * k*k / cycles per output pixel),
  the fewest a dedicated unit needs at the same rate;
* weight memory: the Linear's stored bits (N values + their in-group indices per group) against
  C * k*k weights of the same width.

The ratio decides whether a dedicated unit is worth building (the review's bar: more than 2x).
Each design twice: with einhls' grouping (one N:M group per kernel tap, ``tap_aligned_pattern``)
and with the generic detection alone (groups of 4, 8 or 16; the tap-aligned choice switched off
for the comparison).

Writes bench/results/depthwise_cost.md and depthwise_cost.json.
"""
from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent / "tests"))

from models.ort_qdq import export_quantized  # noqa: E402

import codegen.frontend.conv as conv_frontend  # noqa: E402
from codegen.project import CompileOptions, compile_model  # noqa: E402

CHANNELS = (6, 8, 16, 32, 64)
TARGETS = (None, 72)
KERNEL = 3


def _weight_bits(layer: dict) -> int:
    """Bits of one weight (the report's weight type, e.g. 'int9 (ap_fixed<9,9>)')."""
    return int(re.match(r"u?int(\d+)", layer["weight_type"]).group(1))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for channels in CHANNELS:
            torch.manual_seed(0)
            model = export_quantized(nn.Conv2d(channels, channels, KERNEL, padding=1, groups=channels),
                                     Path(tmp) / f"dw{channels}.onnx", shape=(1, channels, 8, 8))
            for grouping, target in [(g, t) for g in ("per tap", "generic") for t in TARGETS]:
                chooser = conv_frontend.tap_aligned_pattern
                if grouping == "generic":
                    conv_frontend.tap_aligned_pattern = lambda codes, channels: None
                try:
                    project = compile_model(model, Path(tmp) / f"out_{channels}_{target}_{grouping}",
                                            CompileOptions(board="pynq-z2", target_ii=target),
                                            progress=lambda *_: None)
                finally:
                    conv_frontend.tap_aligned_pattern = chooser
                layer = next(l for l in project.report["layers"] if l["kind"] == "linear")
                useful = channels * KERNEL * KERNEL                  # MACs per output pixel
                cycles = layer["cycles"]                             # per output pixel
                dedicated_mults = math.ceil(useful / cycles)
                dedicated_bits = useful * _weight_bits(layer)
                rows.append({"channels": channels, "grouping": grouping, "target_ii": target, "sparsity": layer["sparsity"],
                             "simd": layer["simd"], "pe": layer["pe"], "cycles_per_pixel": cycles,
                             "multipliers": layer["multipliers"], "dedicated_multipliers": dedicated_mults,
                             "multiplier_ratio": round(layer["multipliers"] / dedicated_mults, 2),
                             "weight_bits": layer["weight_bits"], "dedicated_weight_bits": dedicated_bits,
                             "memory_ratio": round(layer["weight_bits"] / dedicated_bits, 2),
                             "lut": layer["lut"], "dsp": layer["dsp"], "bram36": layer["bram36"]})
                print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "depthwise_cost.json").write_text(json.dumps({"command": "python -m bench.depthwise_cost",
                                                              "rows": rows}, indent=1) + "\n")
    lines = ["# Depthwise 3x3 on the N:M Linear unit against a dedicated depthwise unit (scheduler figures)", "",
             "Command: `python -m bench.depthwise_cost` (compile only, pynq-z2, int8 QDQ, 8x8 pixels). "
             "Dedicated = ceil(C*9 / cycles per output pixel) multipliers and C*9 weights, at the same rate.", "",
             "| C | N:M groups | --target-ii | N:M | SIMD x PE | cycles / output pixel | multipliers (dedicated) | ratio | "
             "weight bits (dedicated) | ratio | LUT est. | DSP est. | BRAM36 est. |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['channels']} | {r['grouping']} | {r['target_ii'] or 'fit'} | {r['sparsity']} | {r['simd']} x {r['pe']} | "
                     f"{r['cycles_per_pixel']} | {r['multipliers']} ({r['dedicated_multipliers']}) | "
                     f"{r['multiplier_ratio']} | {r['weight_bits']} ({r['dedicated_weight_bits']}) | "
                     f"{r['memory_ratio']} | {r['lut']} | {r['dsp']} | {r['bram36']} |")
    (RESULTS / "depthwise_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
