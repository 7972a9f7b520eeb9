"""Benchmark: butterfly layers (N = 256, 512, 1024) against the dense layer of the same size, one board.

    python -m bench.butterfly                  # compile, RTL-simulate, write the table (several minutes)
    python -m bench.butterfly --no-measure     # estimates only (seconds)
    python -m bench.butterfly --sweep          # also: every P at N = 256 in RTL simulation
    python -m bench.butterfly --synth          # also: Yosys synth_xilinx counts of every design

Part 1.  For each N: ``codegen.nn.ButterflyLinear(N, N)`` with int8 fake quantization (input,
twiddles per stage, activations between stages, output; power-of-two scales) and the dense int8
``nn.Linear(N, N)``, both exported with ``torch.onnx.export`` and compiled by ``einhls compile``
for the same board (pynq-z2 by default; the scheduler picks the parallelism: P butterfly units
for the butterfly, SIMD x PE for the dense layer).  Reported: MACs per vector, multipliers, DSPs,
LUTs, BRAM36, stored weight bits, the estimated interval, the interval measured in RTL simulation
(Verilator through cocotb, the mean cycles between output frames in the back-to-back phase, every
output checked bit-exact against the PyTorch integer reference), and for the butterfly the unit's
roofline L * N / (2P) = N log2 N / (2P) cycles (4P multipliers busy every cycle).

Part 2 (``--sweep``).  N = 256 with every P = 1 .. N/2, the butterfly unit alone in RTL
simulation: measured cycles per frame against the roofline, and the number of frames the unit
keeps in flight (contexts) to hide the stage-to-stage pipeline latency at large P.

Writes bench/results/butterfly.md and butterfly.json.  The weights are random (seeded), which
changes nothing measured here except, slightly, exact accumulator widths.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SIZES = (256, 512, 1024)
ACT_SCALE, TWIDDLE_SCALE, OUT_SCALE = 2.0 ** -4, 2.0 ** -6, 2.0 ** -4


def _fq(t: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(t, scale, 0, -128, 127)


class DenseQ(nn.Module):
    """The dense int8 layer: fake-quantized input, weight (per tensor, power of two) and output."""

    def __init__(self, n: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = nn.Linear(n, n)
        self.w_scale = 2.0 ** math.ceil(math.log2(self.linear.weight.abs().max().item() / 127))

    def forward(self, x):
        y = nn.functional.linear(_fq(x, ACT_SCALE), _fq(self.linear.weight, self.w_scale), self.linear.bias)
        return _fq(y, OUT_SCALE)


def butterfly_model(n: int, seed: int) -> nn.Module:
    from codegen.nn.butterfly import ButterflyLinear, ButterflyQuant

    quant = ButterflyQuant(input_scale=ACT_SCALE, twiddle_scale=TWIDDLE_SCALE, stage_scale=ACT_SCALE,
                           output_scale=OUT_SCALE)
    return ButterflyLinear(n, n, bias=True, quantize=quant, seed=seed)


def export(model: nn.Module, n: int, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, n),), str(path), dynamo=True, opset_version=18,
                          input_names=["x"], output_names=["y"])


def mean_interval(project_path: Path, contexts: int = 1) -> float | None:
    """Mean cycles between output frames of the back-to-back phase, over whole context rounds."""
    results = project_path / "build" / "rtlsim" / "rtlsim_run" / "results.json"
    if not results.is_file():
        return None
    gaps = json.loads(results.read_text())["frame_gaps"]
    warm, span = 2 * contexts + 2, 4 * contexts
    window = gaps[warm:warm + span] if len(gaps) >= warm + span else gaps[len(gaps) // 3:]
    return sum(window) / len(window) if window else None


def compile_and_measure(kind: str, n: int, board: str, work: Path, measure: bool, vectors: int,
                        synth: bool = False) -> dict:
    from codegen.errors import EinhlsError
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import run_check

    model = butterfly_model(n, seed=n) if kind == "butterfly" else DenseQ(n, seed=n)
    onnx_path = work / f"{kind}{n}.onnx"
    export(model, n, onnx_path)
    out = work / f"{kind}{n}"
    row: dict = {"kind": kind, "n": n, "board": board}
    t0 = time.time()
    try:
        project = compile_model(onnx_path, out, CompileOptions(board=board), force=True, progress=lambda *_: None)
    except EinhlsError as exc:
        row["error"] = str(exc).splitlines()[0]
        return row
    report = project.report
    layer = report["layers"][0]
    op = project.graph.ops[0]
    totals = report["totals"]
    row.update(ops=len(project.graph.ops), macs=totals["macs"], multipliers=totals["multipliers"],
               dsp=totals["dsp"], lut=totals["lut"], bram36=totals["bram36"], weight_bits=totals["weight_bits"],
               est_ii=totals["ii"], est_latency=totals["latency"], simd=layer["simd"], pe=layer["pe"],
               compile_s=round(time.time() - t0, 1))
    contexts = 1
    if kind == "butterfly":
        from codegen.schedule.butterfly import timing
        tm = timing(op, layer["pe"])
        contexts = tm.contexts
        row.update(units=layer["pe"], contexts=tm.contexts, roofline=tm.roofline, stages=op.stages)
    if measure:
        t0 = time.time()
        inputs = random_inputs(project.graph, vectors, seed=1)
        result = run_check(project, "rtlsim", inputs, run_reference(project.graph, inputs))
        row["rtlsim"] = result.line()
        row["bit_exact"] = bool(result.passed)
        row["measured_ii"] = mean_interval(project.path, contexts)
        row["measured_latency"] = result.measured.get("latency_cycles") if result.measured else None
        row["sim_s"] = round(time.time() - t0, 1)
    if synth:
        from codegen.schedule.boards import get_board
        from codegen.verify.yosys import synth_counts
        t0 = time.time()
        family = get_board(board).yosys_family
        try:
            counts = synth_counts(project.path / "rtl", project.design.top_name, family, work / f"yosys_{kind}{n}")
            row["yosys"] = {k: counts[k] for k in ("LUT", "LUT_MEM", "FF", "DSP", "BRAM", "yosys", "family")}
        except Exception as exc:   # a failed synthesis is reported, the table still written
            row["yosys"] = {"error": str(exc).splitlines()[0][:200]}
        row["synth_s"] = round(time.time() - t0, 1)
    return row


def sweep(n: int, work: Path, vectors: int) -> list[dict]:
    """The unit alone at every P: measured cycles per frame against the roofline."""
    from codegen.emit.butterfly import emit_unit_rtl
    from codegen.examples import butterfly_graph, manual_design
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.ir.types import QType
    from codegen.schedule.butterfly import timing
    from codegen.verify.rtlsim import run_rtlsim

    t = QType(True, 8, ACT_SCALE)
    graph = butterfly_graph(n, t, 8, t, t, seed=3)
    rows = []
    for k in range(int(math.log2(n))):
        units = 1 << k
        lanes = min(2 * units, 64)
        design = manual_design(graph, {graph.ops[0].name: (2, units, lanes, lanes)})
        out = work / f"sweep{n}_{units}"
        cfg = emit_unit_rtl(design, out)
        tm = timing(graph.ops[0], units)
        count = max(vectors, 2 * (6 * cfg.contexts + 2))
        inputs = random_inputs(graph, count, seed=2)
        t0 = time.time()
        result = run_rtlsim(out, inputs, run_reference(graph, inputs), out / "work")
        results = out / "work" / "rtlsim_run" / "results.json"
        gaps = json.loads(results.read_text())["frame_gaps"] if results.is_file() else []
        warm, span = 2 * cfg.contexts + 2, 4 * cfg.contexts
        window = gaps[warm:warm + span] or gaps
        stream = math.ceil(n / lanes)
        rows.append({"n": n, "units": units, "contexts": cfg.contexts, "roofline": tm.roofline,
                     "model": max(tm.compute, stream), "stream_beats": stream,
                     "measured": sum(window) / len(window) if window else None, "bit_exact": bool(result.passed),
                     "multipliers": 4 * units, "sim_s": round(time.time() - t0, 1)})
        print(f"  sweep n={n} P={units}: {rows[-1]}", flush=True)
    return rows


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits else f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(rows: list[dict], sweep_rows: list[dict], board: str, measure: bool) -> str:
    lines = [
        "# Butterfly layers vs dense layers",
        "",
        f"`python -m bench.butterfly` on board **{board}** (100 MHz clock estimates). Each layer is an "
        "N x N int8 layer exported by `torch.onnx.export` and compiled by `einhls compile` (the scheduler "
        "picks the parallelism to fit 80% of the board). MACs are per input vector: 2 N log2 N for the "
        "butterfly (4 per pair, N/2 pairs per stage, log2 N stages), N^2 for the dense layer. "
        "*measured* = mean cycles between output frames in RTL simulation (Verilator, back to back, "
        "every output bit-exact against the PyTorch integer reference); *roofline* = N log2 N / (2P), "
        "the butterfly unit with its 4P multipliers busy every cycle.",
        "",
        "| N | layer | parallelism | multipliers | DSP | LUT (est.) | BRAM36 | weight bits | MACs / vector "
        "| est. cycles | measured cycles | roofline | measured / roofline | bit-exact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            why = r["error"].split("utilisation: ")[-1].split(";")[0]
            lines.append(f"| {r['n']} | {r['kind']} | does not fit the board even fully folded ({why}) "
                         f"| | | | | | {fmt(r['n'] ** 2)} | | | | | |")
            continue
        par = (f"P = {r['units']} units ({r['contexts']} frame{'s' if r['contexts'] > 1 else ''} in flight)"
               if r["kind"] == "butterfly" else f"SIMD {r['simd']} x PE {r['pe']}")
        ratio = (r["measured_ii"] / r["roofline"]) if r.get("roofline") and r.get("measured_ii") else None
        lines.append(
            f"| {r['n']} | {r['kind']} | {par} | {fmt(r['multipliers'])} | {fmt(r['dsp'])} | {fmt(r['lut'])} "
            f"| {fmt(float(r['bram36']))} | {fmt(r['weight_bits'])} | {fmt(r['macs'])} | {fmt(r['est_ii'])} "
            f"| {fmt(r.get('measured_ii'))} | {fmt(r.get('roofline'))} | "
            f"{'-' if ratio is None else f'{ratio:.3f}'} | {'yes' if r.get('bit_exact') else '-' if not measure else 'NO'} |")
    by_n = {}
    for r in rows:
        by_n.setdefault(r["n"], {})[r["kind"]] = r
    lines += ["", "Butterfly against dense, same N and board:", "",
              "| N | MACs (dense / butterfly) | weight bits (dense / butterfly) | cycles per vector (dense / butterfly) "
              "| DSP (dense / butterfly) |", "|---|---|---|---|---|"]
    for n, pair in by_n.items():
        b, d = pair.get("butterfly"), pair.get("dense")
        if not b or not d or "error" in b:
            continue
        if "error" in d:
            lines.append(f"| {n} | {d.get('n', n) ** 2 / b['macs']:.0f}x | dense does not fit | - | - |")
            continue
        cyc_d = d.get("measured_ii") or d["est_ii"]
        cyc_b = b.get("measured_ii") or b["est_ii"]
        lines.append(f"| {n} | {d['macs'] / b['macs']:.1f}x | {d['weight_bits'] / b['weight_bits']:.1f}x "
                     f"| {cyc_d / cyc_b:.1f}x ({fmt(cyc_d)} / {fmt(cyc_b)}) | {fmt(d['dsp'])} / {fmt(b['dsp'])} |")
    synth = [r for r in rows if "yosys" in r]
    if synth:
        y0 = next((r["yosys"] for r in synth if "yosys" in r["yosys"]), {})
        lines += ["", f"Resources of the generated Verilog, {y0.get('yosys', 'Yosys')} `synth_xilinx -family "
                  f"{y0.get('family', '?')}` (estimates from the cost model in brackets):", "",
                  "| N | layer | LUT | LUT as memory | FF | DSP | BRAM36 |", "|---|---|---|---|---|---|---|"]
        for r in synth:
            y = r["yosys"]
            if "error" in y:
                lines.append(f"| {r['n']} | {r['kind']} | synthesis failed: {y['error']} | | | | |")
                continue
            lines.append(f"| {r['n']} | {r['kind']} | {fmt(y['LUT'])} ({fmt(r['lut'])}) | {fmt(y['LUT_MEM'])} "
                         f"| {fmt(y['FF'])} | {fmt(y['DSP'])} ({fmt(r['dsp'])}) | {fmt(float(y['BRAM']))} "
                         f"({fmt(float(r['bram36']))}) |")
    if sweep_rows:
        lines += ["", f"## Every P at N = {sweep_rows[0]['n']} (the unit alone, RTL simulation)", "",
                  "Stream lanes min(2P, 64) per beat. From P = N/16 on a stage takes 8 cycles or fewer, no more "
                  "than the unit's read-after-write pipeline, so the unit keeps several frames in flight "
                  "(contexts), each running a whole stage in turn; *model* is codegen/schedule/butterfly.py (the "
                  "max of its cycle model and the stream beats).",
                  "", "| P | multipliers | frames in flight | roofline | model | measured | measured / roofline | bit-exact |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sweep_rows:
            ratio = r["measured"] / r["roofline"] if r["measured"] else None
            lines.append(f"| {r['units']} | {r['multipliers']} | {r['contexts']} | {r['roofline']} | {r['model']} "
                         f"| {fmt(r['measured'], 1)} | {'-' if ratio is None else f'{ratio:.2f}'} "
                         f"| {'yes' if r['bit_exact'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="pynq-z2")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--no-measure", action="store_true", help="estimates only (no RTL simulation)")
    parser.add_argument("--no-dense-measure", action="store_true", help="do not RTL-simulate the dense layers")
    parser.add_argument("--sweep", action="store_true", help="also every P at N = 256 (unit RTL simulations)")
    parser.add_argument("--synth", action="store_true", help="Yosys synth_xilinx counts of every design")
    parser.add_argument("--vectors", type=int, default=32)
    parser.add_argument("--keep", type=Path, help="keep the compiled projects in this folder")
    parser.add_argument("--render", action="store_true", help="only rewrite butterfly.md from butterfly.json")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads((RESULTS / "butterfly.json").read_text())
        measured = any("measured_ii" in r for r in data["rows"])
        (RESULTS / "butterfly.md").write_text(markdown(data["rows"], data["sweep"], data["rows"][0]["board"], measured))
        print((RESULTS / "butterfly.md").read_text())
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="einhls_bench_butterfly_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in args.sizes:
            for kind in ("butterfly", "dense"):
                measure = not args.no_measure and not (kind == "dense" and args.no_dense_measure)
                print(f"{kind} {n}: compiling{' and simulating' if measure else ''} ...", flush=True)
                rows.append(compile_and_measure(kind, n, args.board, work, measure, args.vectors, args.synth))
                print(f"  {rows[-1]}", flush=True)
        sweep_rows = sweep(256, work, args.vectors) if args.sweep else []
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "butterfly.md").write_text(markdown(rows, sweep_rows, args.board, not args.no_measure))
    (RESULTS / "butterfly.json").write_text(json.dumps({"command": "python -m bench.butterfly", "rows": rows,
                                                        "sweep": sweep_rows}, indent=1) + "\n")
    print((RESULTS / "butterfly.md").read_text())
    failed = [r for r in rows if r.get("bit_exact") is False] + [r for r in sweep_rows if not r["bit_exact"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
