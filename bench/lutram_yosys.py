"""Benchmark: small memories in LUT RAM (codegen/schedule/lutram.py), Yosys against the estimate.

    python -m bench.lutram_yosys

The block after attention at MiniLM's width (tests/test_lutram.py ``lutram_design``: fork ->
Linear 384 -> 384 at SIMD 8 x PE 1 -> Add with the residual -> LayerNorm 384), emitted twice: as
synthesis chooses (no attribute), and with the residual FIFO (700 words of 8 bits), the Linear
unit's input buffer (2 x 64 words of 64 bits) and the LayerNorm unit's row buffer and gamma / beta
ROMs in LUT RAM (ram_style / rom_style "distributed").  Both synthesized with ``synth_xilinx
-family xcup``; the difference in BRAM36 and LUTs against the model's (lutram_luts,
layernorm_luts; the block RAM each memory takes by bram36_for).  Writes
bench/results/lutram_yosys.{json,md}.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from codegen.emit.rtl import emit_rtl  # noqa: E402
from codegen.schedule.cost import bram36_for  # noqa: E402
from codegen.schedule.lutram import input_buffer_shape, layernorm_luts, lutram_luts  # noqa: E402
from codegen.schedule.nonlinear_cost import layernorm_cost  # noqa: E402
from codegen.verify.yosys import synth_counts  # noqa: E402


def main() -> None:
    from test_lutram import lutram_design

    start = time.time()
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("synthesis_choice", "lut_ram"):
            design = lutram_design()
            if label == "synthesis_choice":
                design.lutram_fifos, design.lutram_units = frozenset(), frozenset()
            emit_rtl(design, Path(tmp) / label)
            counts[label] = synth_counts(Path(tmp) / label / "rtl", design.top_name, "xcup", Path(tmp) / label / "ys")
            print(label, {k: counts[label][k] for k in ("BRAM", "URAM", "LUT", "LUT_MEM", "FF")}, flush=True)
    graph = design.graph
    lin, norm = graph.op("lin"), graph.op("norm")
    xbuf = input_buffer_shape(lin, design.schedule(lin))
    depth = design.fifo_depths[("add", 0)]
    model = {"fifo": {"bram36": bram36_for(8, depth), "lut": lutram_luts(8, depth)},
             "input_buffer": {"bram36": bram36_for(*xbuf), "lut": lutram_luts(*xbuf)},
             "layernorm": {"bram36": layernorm_cost(norm.unit, 1, "DSP48E2").bram36, "lut": layernorm_luts(norm, 1)}}
    est_bram = sum(m["bram36"] for m in model.values())
    est_lut = sum(m["lut"] for m in model.values())
    a, b = counts["synthesis_choice"], counts["lut_ram"]
    measured = {"bram36": a["BRAM"] - b["BRAM"], "lut": b["LUT"] - a["LUT"], "lut_mem": b["LUT_MEM"] - a["LUT_MEM"]}
    command = "python -m bench.lutram_yosys"
    result = {"command": command, "yosys": a["yosys"], "seconds": round(time.time() - start, 1),
              "counts": {k: {f: v[f] for f in ("BRAM", "URAM", "LUT", "LUT_MEM", "FF", "DSP")} for k, v in counts.items()},
              "model": model, "estimated_change": {"bram36": est_bram, "lut": est_lut}, "measured_change": measured}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "lutram_yosys.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Small memories in LUT RAM: Yosys against the estimate", "", f"`{command}`", "",
             f"{a['yosys']}, `synth_xilinx -family xcup`.  The block after attention at width 384 (fork, Linear "
             "384 -> 384 at SIMD 8 x PE 1, Add with the residual, LayerNorm), as synthesis chooses and with the "
             "residual FIFO (700 x 8 bits), the Linear input buffer (128 x 64 bits) and the LayerNorm memories "
             "in LUT RAM.", "",
             "| design | BRAM36 | URAM288 | LUT | of which LUT RAM | FF | DSP |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, c in counts.items():
        lines.append(f"| {label.replace('_', ' ')} | {c['BRAM']:g} | {c['URAM']} | {c['LUT']:,} | {c['LUT_MEM']:,} | "
                     f"{c['FF']:,} | {c['DSP']} |")
    lines += ["", "| memory | model BRAM36 freed | model LUTs |", "|---|---:|---:|"]
    lines += [f"| {name.replace('_', ' ')} | {m['bram36']:g} | {m['lut']:,} |" for name, m in model.items()]
    lines += ["", f"Change: BRAM36 {measured['bram36']:g} freed by Yosys, {est_bram:g} by the model; LUTs "
              f"+{measured['lut']:,} by Yosys (LUT RAM +{measured['lut_mem']:,}), +{est_lut:,} by the model.", ""]
    (ROOT / "results" / "lutram_yosys.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
