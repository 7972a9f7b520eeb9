"""Benchmark: one 3x3 convolution layer (16 -> 16 channels, 8x8 pixels, padding 1, int8 weights and
activations, from torch + onnxruntime quantize_static) in einhls, beside FINN's and hls4ml's figures
for the same layer where they can be had here.

    python -m bench.conv_compare        # ~10 minutes: a Verilator build and a Yosys run per folding

einhls (measured here): for each folding, the interval in RTL simulation (cocotb + Verilator, frames
back to back, bit-exact against the reference) and Yosys 0.70 ``synth_xilinx -family xc7`` counts of
the whole generated design (window + Linear + AXI-Stream glue), beside the scheduler's estimates.

FINN (not run: FINN is not installed here and its flow needs Vivado): the same layer at the same
folding (MVAU SIMD x PE = einhls' Linear SIMD x PE; ConvolutionInputGenerator SIMD = einhls' window
lanes) through FINN's own analytical models, as its source code states them:

* cycles: ``MVAU.get_exp_cycles`` = MH/PE * MW/SIMD * output pixels
  (src/finn/custom_op/fpgadataflow/matrixvectoractivation.py) and the RTL sliding-window generator's
  ``get_exp_cycles`` (default style, 2-D: buffer_min_size + OFM_H * max(write block, read block))
  (src/finn/custom_op/fpgadataflow/rtl/convolutioninputgenerator_rtl.py) on the padded 10x10 input
  (FINN pads in a separate FMPadding node);
* LUT / DSP / BRAM18: ``MVAU_hls.lut_estimation`` / ``dsp_estimation`` (the FINN-R paper's fitted
  model: 300 + 1.1 * PE * (adder tree + accumulator), multipliers in DSPs with resType "dsp")
  (src/finn/custom_op/fpgadataflow/hls/matrixvectoractivation_hls.py), ``MVAU.bram_estimation``
  (RAMB18 count of the weight memory, internal_decoupled), the SWG's ``lut_estimation`` (300 + the
  buffer in LUTRAM when distributed) and ``bram_estimation``;
* FINN's RTL MVU backend (matrixvectoractivation_rtl.py) packs two or more products into a DSP as
  einhls does; its DSP model is not used here, so the FINN DSP column is the HLS MVAU's;
* not included: the requantization to int8 (FINN's MultiThreshold with 255 thresholds per channel
  or a separate Thresholding layer), the FMPadding node, FIFOs.

These are FINN's estimates, not synthesis results; the figures on this page that are measured are
einhls' only.

hls4ml: no per-layer figure for a comparable 3x3 layer was found published (the hls4ml CNN paper,
Aarrestad et al. 2021, arXiv:2101.05108, reports whole networks on SVHN), and its resources and
cycles come only from Vivado / Vitis HLS synthesis, which is not available here: nothing is
tabulated for it.

Writes bench/results/conv_compare.md and conv_compare.json.
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
from codegen.report import synthesize  # noqa: E402
from codegen.verify.runner import verify  # noqa: E402

TARGETS = (72, 144)          # einhls --target-ii (cycles per input pixel): 32 and 16 multipliers
CHANNELS, SIZE, KERNEL = 16, 8, 3
BITS = 8


# --- FINN's analytical models (formulas transcribed from FINN's source, see the module docstring) ---

def finn_mvau(simd: int, pe: int, mw: int, mh: int, vectors: int, w_bits: int = BITS,
              a_bits: int = BITS) -> dict:
    """MVAU with resType "dsp", noActivation (accumulator out), internal_decoupled weights in BRAM."""
    alpha = math.log2(mw) + w_bits + a_bits - 1 - 1                     # signed input
    acc_bits = math.ceil(alpha + math.log2(1 + 2 ** -alpha) + 1)
    adder_tree = (w_bits + a_bits) * (2 * simd - 1)
    lut = int(300 + 1.1 * (pe * (0 + adder_tree + acc_bits)) + 0)
    dsp = int(pe * simd * math.ceil((w_bits + a_bits) / 48))
    omega = mw * mh / (simd * pe)
    width = simd * w_bits * pe
    if width <= 18 or omega > 512:
        bram18 = math.ceil(omega / 1024) * math.ceil(width / 18)
    else:
        bram18 = math.ceil(omega / 512) * math.ceil(width / 36)
    cycles = int(mh / pe * mw / simd * vectors)
    return {"cycles": cycles, "lut": lut, "dsp": dsp, "bram18": bram18}


def finn_swg(simd: int, channels: int, ifm: int, ofm: int, k: int, a_bits: int = BITS) -> dict:
    """RTL ConvolutionInputGenerator, default style, stride 1, no dilation, 2-D, buffer in BRAM."""
    factor = channels // simd
    buffer_min = ((k - 1) * ifm + (k - 1) + 1) * factor
    write_block = ofm * k * k * factor
    read_block = ifm * factor
    cycles = buffer_min + ofm * max(write_block, read_block)
    depth = buffer_min                                    # stride 1: no extra depth
    ram_width = 36 if depth <= 512 else 18 if depth <= 1024 else 9
    bram18 = math.ceil(depth / 16384) * math.ceil(simd * a_bits / ram_width)
    return {"cycles": cycles, "lut": 300, "bram18": bram18, "buffer_depth": depth}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = export_quantized(nn.Conv2d(CHANNELS, CHANNELS, KERNEL, padding=1), Path(tmp) / "conv3x3.onnx",
                                 shape=(1, CHANNELS, SIZE, SIZE))
        for target in TARGETS:
            options = CompileOptions(board="pynq-z2", target_ii=target)
            project = compile_model(model, Path(tmp) / f"out_{target}", options, progress=lambda *_: None)
            graph, design = project.graph, project.design
            window = next(op for op in graph.ops if op.kind == "window")
            linear = next(op for op in graph.ops if op.kind == "linear")
            s = design.schedule(linear)
            lanes = design.schedule(window).in_lanes
            result, = verify(project, ("rtlsim",), vectors=4, progress=lambda *_: None)
            assert result.passed, result.line()
            counts = synthesize(project)
            totals = project.report["totals"]
            pixels = window.out_height * window.out_width
            mvau = finn_mvau(s.simd, s.pe, linear.in_size, linear.out_size, pixels)
            swg = finn_swg(lanes, CHANNELS, SIZE + 2, SIZE, KERNEL)
            rows.append({
                "target_ii": target, "simd": s.simd, "pe": s.pe, "window_lanes": lanes,
                "multipliers": s.simd * s.pe, "macs_per_frame": pixels * linear.macs,
                "einhls": {"measured_interval": result.measured["interval_cycles"],
                           "scheduled_interval": totals["frame_interval"],
                           "yosys": {k: counts[k] for k in ("LUT", "LUT_MEM", "FF", "DSP", "BRAM", "CARRY")},
                           "estimate": {k: totals[k] for k in ("lut", "ff", "dsp", "bram36")}},
                "finn_estimate": {"mvau": mvau, "swg": swg,
                                  "interval": max(mvau["cycles"], swg["cycles"]),
                                  "lut": mvau["lut"] + swg["lut"], "dsp": mvau["dsp"],
                                  "bram36": (mvau["bram18"] + swg["bram18"]) / 2},
            })
            print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "conv_compare.json").write_text(json.dumps({"command": "python -m bench.conv_compare", "rows": rows},
                                                          indent=1) + "\n")
    (RESULTS / "conv_compare.md").write_text(render(rows))
    print(render(rows))


def render(rows: list[dict]) -> str:
    """The markdown table of the rows (``python -m bench.conv_compare --render`` redoes it from the JSON)."""
    lines = ["# 3x3 conv (16 -> 16, 8x8, pad 1, int8): einhls measured beside FINN's analytical estimates", "",
             "Command: `python -m bench.conv_compare`. einhls: RTL-sim interval (Verilator, bit-exact) and Yosys 0.70 "
             "`synth_xilinx -family xc7` of the whole design (window, Linear with requantization to int8, AXI-Stream "
             "glue), estimates in brackets. FINN: not run (not installed, needs Vivado); its own estimate formulas "
             "(`MVAU.get_exp_cycles`, `MVAU_hls.lut_estimation` / `dsp_estimation`, `MVAU.bram_estimation`, RTL "
             "`ConvolutionInputGenerator.get_exp_cycles` / `bram_estimation`, from FINN's source) at the same SIMD x PE "
             "and window SIMD, without the requantization (Thresholding), FMPadding and FIFOs; its DSP column is the HLS "
             "MVAU's one DSP per product (FINN's RTL MVU packs products into DSPs, as einhls does: 32 products in 16 DSPs "
             "+ 1 for the requantization at 8 x 4). hls4ml: no comparable "
             "per-layer figure published; its figures need Vivado/Vitis HLS synthesis (not here).", "",
             "| SIMD x PE (window lanes) | MACs/frame | einhls interval: measured (scheduled) | FINN interval: max(MVAU, SWG) | "
             "einhls LUT (est.) | FINN LUT est. | einhls FF (est.) | einhls DSP (est.) | FINN DSP est. | "
             "einhls BRAM36 (est.) | FINN BRAM36 est. |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        e, f = r["einhls"], r["finn_estimate"]
        y, est = e["yosys"], e["estimate"]
        lines.append(
            f"| {r['simd']} x {r['pe']} ({r['window_lanes']}) | {r['macs_per_frame']} | "
            f"{e['measured_interval']} ({e['scheduled_interval']}) | {f['interval']} = max({f['mvau']['cycles']}, "
            f"{f['swg']['cycles']}) | {y['LUT']} + {y['LUT_MEM']} as RAM ({est['lut']}) | {f['lut']} | "
            f"{y['FF']} ({est['ff']}) | {y['DSP']} ({est['dsp']}) | {f['dsp']} | {y['BRAM']} ({est['bram36']}) | "
            f"{f['bram36']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:
        stored = json.loads((RESULTS / "conv_compare.json").read_text())["rows"]
        (RESULTS / "conv_compare.md").write_text(render(stored))
    else:
        main()
