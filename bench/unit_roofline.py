"""Benchmark: every multiplying unit kind against its MAC roofline, in RTL simulation.

    python -m bench.unit_roofline              # schedule, emit and simulate every case (minutes)
    python -m bench.unit_roofline --no-measure # the scheduler's intervals only (seconds)

One small design per unit kind (dense Linear, N:M Linear, tensor-train pipeline of contraction
stages, butterfly, attention product ActMatMul, convolution = sliding Window + Linear), each folded
by the scheduler to an interval the board allows (``--target-ii``), emitted, and run in RTL
simulation (Verilator through the project's cocotb bench, frames back to back, every output element
checked against the reference).  For each design: the MACs per frame of its multiplying units, their
multipliers and products per multiplier, the roofline ceil(MACs / (multipliers x products per
multiplier)) (codegen/schedule/roofline.py), the frame interval the scheduler computed, the one
measured, and measured / roofline.  A design with several multiplying units (the tensor-train
stages) is one pipeline: its roofline is that of all its multipliers together, so unequal stage
intervals show up as a ratio above 1.

Writes bench/results/unit_roofline.md and unit_roofline.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent / "tests"))

from codegen.ir.graph import Graph  # noqa: E402
from codegen.ir.types import QType  # noqa: E402
from codegen.schedule.boards import get_board  # noqa: E402
from codegen.schedule.design import Design  # noqa: E402
from codegen.schedule.folding import fold  # noqa: E402
from codegen.schedule.roofline import PipelineRoofline, UnitRoofline, design_rooflines, pipeline_roofline  # noqa: E402

COMMAND = "python -m bench.unit_roofline"
BOARD = "pynq-z2"
RATIO_LIMIT = 1.10   # issue 11: every unit within 1.1x of its roofline


def _int8(scale: float = 2.0 ** -4) -> QType:
    return QType(True, 8, scale)


def _dense(_: Path) -> Graph:
    from codegen.examples import linear_graph
    return linear_graph(64, 64, _int8(), 8, _int8(2.0 ** -3), seed=1)


def _sparse(_: Path) -> Graph:
    from codegen.examples import linear_graph
    return linear_graph(64, 64, _int8(), 8, _int8(2.0 ** -3), sparsity=(2, 4), seed=2)


def _sparse_pairs(_: Path) -> Graph:
    from codegen.examples import linear_graph
    return linear_graph(64, 64, _int8(), 8, _int8(2.0 ** -3), sparsity=(2, 4), seed=2, row_pairs=True)


def _tt(in_factors, out_factors, ranks, seed: int) -> Callable[[Path], Graph]:
    def build(tmp: Path) -> Graph:
        import onnx
        from models.einsum_models import tt_model
        from codegen.project import CompileOptions, lower
        path = tmp / f"tt_{'x'.join(map(str, in_factors))}_{seed}.onnx"
        onnx.save(tt_model(in_factors, out_factors, ranks, seed=seed), path)
        return lower(path, CompileOptions(board=BOARD))
    return build


def _butterfly(_: Path) -> Graph:
    from codegen.examples import butterfly_graph
    return butterfly_graph(256, _int8(), 8, _int8(2.0 ** -3), _int8(2.0 ** -3), seed=4)


def _scores(_: Path) -> Graph:
    """x -> Fork -> ActMatMul(x, x) (nt): 8 tokens, 2 heads of 16, the scores of a sequence against itself."""
    from codegen.ir.attention import make_actmatmul
    from codegen.ir.joins import make_fork
    heads, inner, tokens = 2, 16, 8
    x = QType(True, 8, 0.05, 3)
    fork = make_fork("fork", "Fork_0", x, heads * inner, 2)
    amm = make_actmatmul("amm", "MatMul_0", x, x, heads, inner, tokens, tokens, "nt", QType(True, 8, 0.05, -2),
                         0.002, inputs=(fork.outputs[0], fork.outputs[1]))
    return Graph("scores", x, heads * inner, [fork, amm], tokens=tokens, input_shape=(1, tokens, heads * inner),
                 output_shape=(1, tokens, heads * tokens))


def _conv(tmp: Path) -> Graph:
    import torch
    from torch import nn
    from models.ort_qdq import export_quantized
    from codegen.project import CompileOptions, lower
    torch.manual_seed(0)
    path = export_quantized(nn.Conv2d(8, 8, 3, padding=1), tmp / "conv3x3.onnx", shape=(1, 8, 6, 6))
    return lower(path, CompileOptions(board=BOARD))


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    build: Callable[[Path], Graph]
    target_ii: int | None    # cycles per input token; None: the fastest design that fits the board
    macs: int | None         # MACs per frame, counted by hand from the layer's shape (None: TT, from its path)


def fewest_product_slots(graph: Graph, interval: int, span: bool = True) -> list[int]:
    """For every contraction stage of ``graph``, the fewest product slots (SIMD x PE, each one product
    a cycle) of any of its shapes whose cycles reach ``interval``: with them, no design of the
    pipeline at that interval has a roofline above ceil(MACs / sum of these).  ``span``: with the
    span folds (schedule/contraction.py span_options), else one repeat at a time only (R x NF x KF
    cycles)."""
    from codegen.schedule.contraction import stage_options
    return [min(simd * pe for option in stage_options(op) for cycles, simd, pe in [option]
                if cycles <= interval and (span or not option.span))
            for op in graph.ops if op.kind == "contract"]

CASES = [
    Case("dense_64x64", "dense Linear (int8, 64 -> 64)", _dense, 64, 64 * 64),
    Case("dense_64x64_fit", "dense Linear (int8, 64 -> 64)", _dense, None, 64 * 64),
    Case("nm24_64x64", "2:4 Linear (int8, 64 -> 64)", _sparse, 64, 64 * 64 // 2),
    Case("nm24_pairs_64x64", "2:4 Linear, row pairs sharing their pattern (int8, 64 -> 64)", _sparse_pairs, 64,
         64 * 64 // 2),
    # R = 16 repeats a stage: one repeat at a time only multiples of 16 cycles are reachable and at
    # 48 every stage pays a padded fold (1.116x); span folds reach 43 (the fastest that fits) and 48
    Case("tt_64_r4", "TT pipeline (4x4x4 -> 4x4x4, ranks 4,4)", _tt([4, 4, 4], [4, 4, 4], [4, 4], 3), None, None),
    Case("tt_64_r4_48", "TT pipeline (4x4x4 -> 4x4x4, ranks 4,4)", _tt([4, 4, 4], [4, 4, 4], [4, 4], 3), 48, None),
    Case("tt_64_r4_256", "TT pipeline (4x4x4 -> 4x4x4, ranks 4,4)", _tt([4, 4, 4], [4, 4, 4], [4, 4], 3), 256, None),
    Case("tt_96_r3", "TT pipeline (4x6x4 -> 2x8x4, ranks 3,5)", _tt([4, 6, 4], [2, 8, 4], [3, 5], 5), None, None),
    # 130, not 128: at P = 8 units a frame takes L x n / (2P) + 1 = 129 cycles (one to start the next
    # frame), so at exactly 128 the scheduler must take P = 16, half idle behind the 128-beat stream
    Case("butterfly_256", "butterfly (n = 256, int8)", _butterfly, 130, 2 * 256 * 8),
    Case("actmatmul_scores", "ActMatMul scores (2 heads x 16, 8 tokens)", _scores, 32, 8 * 2 * 16 * 8),
    Case("conv3x3_8x8", "conv 3x3 = Window + Linear (8 -> 8, 6x6)", _conv, 72, 6 * 6 * 8 * 8 * 9),
]


@dataclass
class Planned:
    case: Case
    graph: Graph
    design: Design
    units: list[UnitRoofline]
    pipeline: PipelineRoofline          # at the scheduled frame interval
    notes: list[str]


def plan(case: Case, tmp: Path) -> Planned:
    """Lower and fold one case (no emission): the scheduler's frame interval against the roofline."""
    graph = case.build(tmp)
    board = get_board(BOARD)
    result = fold(graph, board, target_ii=case.target_ii)
    units = design_rooflines(graph, result.design.schedules, result.costs, board.dsp_kind)
    return Planned(case, graph, result.design, units,
                   pipeline_roofline(units, result.totals["frame_interval"]), result.notes)


def measure(planned: Planned, work: Path, vectors: int = 8) -> int:
    """Compile the case's graph at the same interval and run it in RTL simulation: frame interval."""
    from codegen.project import CompileOptions, compile_graph
    from codegen.verify.runner import verify
    project = compile_graph(planned.graph, work / planned.case.name,
                            CompileOptions(board=BOARD, target_ii=planned.case.target_ii), force=True,
                            progress=lambda *_: None)
    assert project.design.schedules == planned.design.schedules, "compile folded differently from plan"
    (result,) = verify(project, ("rtlsim",), vectors, seed=1, progress=lambda *_: None)
    if not result.passed:
        raise RuntimeError(f"{planned.case.name}: {result.line()}")
    return int(result.measured["interval_cycles"])


def row_of(planned: Planned, measured: int | None) -> dict:
    p = planned.pipeline
    return {"case": planned.case.name, "unit": planned.case.unit, "target_ii": planned.case.target_ii,
            "shapes": [f"{u.op}: {u.kind} SIMD {planned.design.schedules[u.op].simd} x PE "
                       f"{planned.design.schedules[u.op].pe}" + (" span" if planned.design.schedules[u.op].span else "")
                       for u in planned.units],
            "units": [u.to_json() for u in planned.units],
            "macs": p.macs, "multipliers": p.multipliers,
            "products_per_multiplier": round(p.products_per_cycle / p.multipliers, 3), "dsp": p.dsp,
            "roofline_cycles": p.roofline_cycles, "scheduled_cycles": p.cycles,
            "scheduled_ratio": round(p.ratio, 4), "measured_cycles": measured,
            "measured_ratio": None if measured is None else round(measured / p.roofline_cycles, 4),
            "dsp_peak_share": None if measured is None or not p.dsp else round(p.macs / (measured * 2 * p.dsp), 4)}


def markdown(rows: list[dict], seconds: float, measured: bool) -> str:
    lines = ["# Every multiplying unit against its MAC roofline" + (" (RTL simulation)" if measured else ""), "",
             f"Generated by `{COMMAND}{'' if measured else ' --no-measure'}` in {seconds:.0f} s on {BOARD}. "
             "Roofline = ceil(MACs / (multipliers x products per multiplier)) per frame; a design with several "
             "multiplying units (the TT stages) counts all of them together. Measured: Verilator through the "
             "cocotb bench, frames back to back, bit-exact against the reference. DSP peak share = MACs per cycle "
             "over two products per DSP (what a packed int8 DSP does).", "",
             "| case | unit | --target-ii | shapes | MACs / frame | multipliers | products / multiplier | DSP "
             "| roofline | scheduled | measured | measured / roofline | DSP peak share |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        share = "-" if r["dsp_peak_share"] is None else f"{r['dsp_peak_share']:.0%}"
        lines.append(f"| {r['case']} | {r['unit']} | {r['target_ii'] or 'fit'} | {'; '.join(r['shapes'])} | "
                     f"{r['macs']:,} | {r['multipliers']} | {r['products_per_multiplier']:g} | {r['dsp']} | "
                     f"{r['roofline_cycles']:,} | {r['scheduled_cycles']:,} | "
                     f"{'-' if r['measured_cycles'] is None else format(r['measured_cycles'], ',')} | "
                     f"{r['measured_ratio'] if r['measured_ratio'] is not None else r['scheduled_ratio']} | {share} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-measure", action="store_true", help="the scheduler's intervals only (no RTL simulation)")
    p.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS / "unit_roofline.md")
    args = p.parse_args(argv)
    wanted = set(filter(None, args.cases.split(",")))
    start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="einhls_roofline_"))
    rows = []
    try:
        for case in CASES:
            if wanted and case.name not in wanted:
                continue
            planned = plan(case, tmp)
            measured = None if args.no_measure else measure(planned, tmp / "projects")
            rows.append(row_of(planned, measured))
            r = rows[-1]
            print(f"{case.name:18s} roofline {r['roofline_cycles']:>6} scheduled {r['scheduled_cycles']:>6} "
                  f"measured {r['measured_cycles']} ratio {r['measured_ratio'] or r['scheduled_ratio']}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, time.time() - start, not args.no_measure))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]), "board": BOARD,
         "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
