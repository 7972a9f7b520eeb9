"""Benchmark: one 3x3 convolution layer (16 -> 16 channels, 8x8 pixels, padding 1, int8 QDQ from
torch + onnxruntime quantize_static) at several intervals, in RTL simulation.

    python -m bench.conv_roofline        # a few minutes: one Verilator build per interval

For each design: the multipliers of the conv's Linear unit, its MAC roofline (MACs per frame /
multipliers: the fewest cycles a frame can take on those multipliers), the sliding window's floor
(one beat of at most C channels per cycle: max(pixels, windows x taps) x C / lanes), the
scheduler's frame interval, and the interval measured in RTL simulation (cocotb + Verilator, frames
back to back, every output element checked against the reference).  The ratio measured / max(MAC
roofline, window floor) is how close the unit comes to what its hardware allows.

Writes bench/results/conv_roofline.md and conv_roofline.json.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent / "tests"))

from models.ort_qdq import export_quantized  # noqa: E402

from codegen.project import CompileOptions, compile_model  # noqa: E402
from codegen.schedule.conv_cost import window_frame_cycles  # noqa: E402
from codegen.verify.runner import verify  # noqa: E402

TARGETS = (None, 72, 144, 288)   # cycles per pixel of the input (None: the smallest that fits pynq-z2)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = export_quantized(nn.Conv2d(16, 16, 3, padding=1), Path(tmp) / "conv3x3.onnx", shape=(1, 16, 8, 8))
        for target in TARGETS:
            options = CompileOptions(board="pynq-z2", target_ii=target)
            project = compile_model(model, Path(tmp) / f"out_{target}", options, progress=lambda *_: None)
            graph, design = project.graph, project.design
            window = next(op for op in graph.ops if op.kind == "window")
            linear = next(op for op in graph.ops if op.kind == "linear")
            s = design.schedule(linear)
            tokens = window.out_height * window.out_width
            multipliers = s.simd * s.pe
            macs = tokens * linear.macs
            roofline = math.ceil(macs / multipliers)
            window_floor = window_frame_cycles(window, design.schedule(window).in_lanes)
            result, = verify(project, ("rtlsim",), vectors=4, progress=lambda *_: None)
            assert result.passed, result.line()
            measured = result.measured["interval_cycles"]
            bound = max(roofline, window_floor)
            rows.append({"target_ii": target, "simd": s.simd, "pe": s.pe, "multipliers": multipliers,
                         "window_lanes": design.schedule(window).in_lanes, "macs_per_frame": macs,
                         "mac_roofline_cycles": roofline, "window_floor_cycles": window_floor,
                         "scheduled_frame_interval": project.report["totals"]["frame_interval"],
                         "measured_interval": measured, "measured_over_bound": round(measured / bound, 3),
                         "bound": "MACs" if roofline >= window_floor else "window"})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "conv_roofline.json").write_text(json.dumps({"command": "python -m bench.conv_roofline", "rows": rows},
                                                           indent=1) + "\n")
    lines = ["# 3x3 conv (16 -> 16, 8x8, pad 1, int8 QDQ): RTL-sim interval against the roofline", "",
             "Command: `python -m bench.conv_roofline` (Verilator through cocotb, frames back to back, bit-exact).", "",
             "| --target-ii | SIMD x PE | mults | window lanes | MACs/frame | MAC roofline | window floor | "
             "scheduled | measured | measured / max(roofline, floor) | bound |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['target_ii'] or 'fit'} | {r['simd']} x {r['pe']} | {r['multipliers']} | {r['window_lanes']} | "
                     f"{r['macs_per_frame']} | {r['mac_roofline_cycles']} | {r['window_floor_cycles']} | "
                     f"{r['scheduled_frame_interval']} | {r['measured_interval']} | {r['measured_over_bound']} | "
                     f"{r['bound']} |")
    (RESULTS / "conv_roofline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
