"""Benchmark: BERT-base FFN layers as tensor-train (TT) layers against the dense layer, one board.

    python -m bench.tt_ffn                 # everything: full-size estimates + reduced size in RTL sim
    python -m bench.tt_ffn --no-measure    # estimates only (seconds)

Part 1 (estimates, board ZCU102 by default): the FFN sizes of BERT-base, 768 -> 3072 and
3072 -> 768, int8 activations and weights, as the dense layer and as TT layers (d = 3 cores,
several ranks) obtained by TT-SVD of the same weight matrix (codegen.nn.tt.factorize_linear),
exported with torch.onnx.export and compiled by einhls: MACs per input vector, stored weight bits,
the interval in cycles chosen by the scheduler for the board, DSPs, and cycles x DSPs (the
hardware cost of one vector; lower is better).

Part 2 (measured): reduced sizes, 256 -> 1024 (dense and TT) and 1024 -> 256 (TT rank 4), compiled
and run in RTL simulation (Verilator through cocotb): estimated against measured cycles per vector
and latency, and the interval against the roofline of all the pipeline's multipliers
(codegen/schedule/roofline.py).

The weights are random (a seeded nn.Linear), not a trained BERT checkpoint: cycles, DSPs, MACs and
weight bits do not depend on the values (only the exact accumulator widths do, a little), but the
TT approximation error of a random matrix says nothing about a trained one, so it is not reported.
Writes bench/results/tt_ffn.md and tt_ffn.json.
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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"

ACT_SCALE, OUT_SCALE = 2.0 ** -5, 2.0 ** -5


def _fq(t: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(t, scale, 0, -128, 127)


def _pow2_scale(max_abs: float) -> float:
    return 2.0 ** math.ceil(math.log2(max(max_abs, 1e-12) / 127))


class DenseQ(nn.Module):
    """The dense int8 layer: fake-quantized input, weight (per tensor) and output."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.w_scale = _pow2_scale(linear.weight.abs().max().item())

    def forward(self, x):
        y = nn.functional.linear(_fq(x, ACT_SCALE), _fq(self.linear.weight, self.w_scale), self.linear.bias)
        return _fq(y, OUT_SCALE)


def tt_layer(linear: nn.Linear, in_f, out_f, rank: int):
    from codegen.nn.tt import factorize_linear
    tt = factorize_linear(linear, in_f, out_f, max_rank=rank)
    w_scale = _pow2_scale(max(c.abs().max().item() for c in tt.cores))
    tt.quantize = (ACT_SCALE, w_scale, OUT_SCALE)
    return tt.eval()


def export(module: nn.Module, in_features: int, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the legacy exporter: faster here; tests/test_tt.py checks that both exporters compile
        torch.onnx.export(module, (torch.randn(1, in_features),), str(path), dynamo=False, opset_version=17)


@dataclass
class Row:
    layer: str
    form: str
    params: int
    weight_bits: int
    macs: int
    ii: int
    latency: int
    dsp: int
    bram36: float
    lut: int
    stages: int
    products_per_cycle: int = 0    # of all the multiplying units (codegen/schedule/roofline.py)
    roofline: int = 0              # ceil(MACs / products per cycle): the fewest cycles on those multipliers
    measured_ii: int | None = None
    measured_latency: int | None = None

    @property
    def cost(self) -> int:
        return self.ii * self.dsp

    def ratio(self, cycles: int | None) -> str:
        return "-" if cycles is None else f"{cycles / self.roofline:.3f}"

    def dsp_share(self, cycles: int | None) -> str:
        """MACs per cycle over the DSPs' peak of two products each (a packed int8 DSP)."""
        return "-" if cycles is None or not self.dsp else f"{self.macs / (cycles * 2 * self.dsp):.0%}"


def estimate(path: Path, board: str, objective: str = "macs") -> dict:
    from codegen.project import CompileOptions, lower
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold

    options = CompileOptions(board=board, contraction_objective=objective)
    graph = lower(path, options)
    from codegen.schedule.roofline import design_rooflines, pipeline_roofline

    result = fold(graph, get_board(board))
    units = design_rooflines(graph, result.design.schedules, result.costs, get_board(board).dsp_kind)
    return {"graph": graph, "totals": result.totals, "costs": result.costs,
            "roofline": pipeline_roofline(units, result.totals["frame_interval"])}


def row_for(layer: str, form: str, params: int, path: Path, board: str) -> Row:
    e = estimate(path, board)
    t = e["totals"]
    stages = sum(1 for op in e["graph"].ops if op.kind in ("contract", "linear"))
    r = e["roofline"]
    return Row(layer, form, params, t["weight_bits"], t["macs"], t["ii"], t["latency"], t["dsp"], t["bram36"],
               t["lut"], stages, r.products_per_cycle, r.roofline_cycles)


def measure(path: Path, board: str, work: Path, vectors: int = 6) -> tuple[int, int]:
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify

    out = work / path.stem
    project = compile_model(path, out, CompileOptions(board=board), force=True, progress=lambda *_: None)
    (result,) = verify(project, ("rtlsim",), vectors, seed=1, progress=lambda *_: None)
    if not result.passed:
        raise RuntimeError(f"{path.stem}: {result.line()}")
    return result.measured["interval_cycles"], result.measured["latency_cycles"]


def layers(in_features: int, out_features: int, in_f, out_f, ranks, seed: int, tmp: Path, label: str,
           dense: bool = True):
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features)
    if dense:
        path = tmp / f"{label}_dense.onnx"
        export(DenseQ(linear).eval(), in_features, path)
        yield "dense int8", in_features * out_features, path
    for rank in ranks:
        tt = tt_layer(linear, in_f, out_f, rank)
        path = tmp / f"{label}_tt_r{rank}.onnx"
        export(tt, in_features, path)
        shape = "x".join(map(str, in_f)) + " -> " + "x".join(map(str, out_f))
        yield f"TT d={len(in_f)} rank {rank} ({shape})", tt.parameter_count(), path


def fmt(n) -> str:
    if n is None:
        return "-"
    if isinstance(n, float):
        return f"{n:g}"
    return f"{n:,}"


def markdown(full: list[Row], reduced: list[Row], board: str, small_board: str, seconds: float) -> str:
    lines = ["# Tensor-train FFN layers vs dense (einhls estimates and RTL-simulation measurements)", "",
             f"Generated by `python -m bench.tt_ffn` in {seconds:.0f} s. int8 activations and weights, "
             "power-of-two scales, random (seeded) weights: see the module docstring of bench/tt_ffn.py.",
             "", f"## BERT-base FFN sizes on {board} (estimates)", "",
             "Interval: cycles per input vector of the whole pipeline as folded by the scheduler to the "
             "board (80% utilisation); cycles x DSP is the hardware cost of one vector (lower is better). "
             "Products / cycle: of all the multipliers (a DSP shared by two PEs counts two); roofline = "
             "ceil(MACs / products per cycle), the fewest cycles those multipliers allow; interval / roofline "
             "is 1 when every stage is folded to the pipeline's interval with no idle multiplier. DSP peak: MACs "
             "per cycle over two products per DSP (a packed int8 DSP).",
             "", "| layer | form | weights | weight bits | MACs / vector | stages | interval (cycles) | DSP "
             "| cycles x DSP | products / cycle | roofline | interval / roofline | DSP peak | BRAM36 | LUT |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in full:
        lines.append(f"| {r.layer} | {r.form} | {fmt(r.params)} | {fmt(r.weight_bits)} | {fmt(r.macs)} | "
                     f"{r.stages} | {fmt(r.ii)} | {fmt(r.dsp)} | {fmt(r.cost)} | {fmt(r.products_per_cycle)} | "
                     f"{fmt(r.roofline)} | {r.ratio(r.ii)} | {r.dsp_share(r.ii)} | {fmt(r.bram36)} | {fmt(r.lut)} |")
    lines += ["", f"## Reduced sizes on {small_board}: estimated vs measured (RTL simulation)", "",
              "Measured with Verilator through the cocotb test bench: interval = cycles between the last "
              "output beats of consecutive vectors (back to back), latency = first input beat to last "
              "output beat of one vector.", "",
              "| layer | form | weights | MACs / vector | DSP | interval est. | interval measured | latency est. | "
              "latency measured | cycles x DSP (measured) | products / cycle | roofline | measured / roofline "
              "| DSP peak (measured) |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in reduced:
        measured_cost = r.measured_ii * r.dsp if r.measured_ii is not None else None
        lines.append(f"| {r.layer} | {r.form} | {fmt(r.params)} | {fmt(r.macs)} | {fmt(r.dsp)} | {fmt(r.ii)} | "
                     f"{fmt(r.measured_ii)} | {fmt(r.latency)} | {fmt(r.measured_latency)} | {fmt(measured_cost)} | "
                     f"{fmt(r.products_per_cycle)} | {fmt(r.roofline)} | {r.ratio(r.measured_ii)} | "
                     f"{r.dsp_share(r.measured_ii)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--board", default="zcu102", help="board of the full-size table")
    p.add_argument("--small-board", default="pynq-z2", help="board of the measured reduced size")
    p.add_argument("--ranks", default="4,8,16", help="TT ranks of the full-size table")
    p.add_argument("--small-ranks", default="4,8", help="TT ranks of the reduced size")
    p.add_argument("--no-measure", action="store_true", help="skip the RTL simulations")
    p.add_argument("--out", type=Path, default=RESULTS / "tt_ffn.md")
    args = p.parse_args(argv)
    start = time.time()
    ranks = [int(r) for r in args.ranks.split(",")]
    small_ranks = [int(r) for r in args.small_ranks.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="einhls_bench_"))
    try:
        full: list[Row] = []
        for label, (k, n, in_f, out_f) in {"768 -> 3072": (768, 3072, [8, 8, 12], [12, 16, 16]),
                                           "3072 -> 768": (3072, 768, [12, 16, 16], [8, 8, 12])}.items():
            for form, params, path in layers(k, n, in_f, out_f, ranks, 0, tmp, label.replace(" -> ", "_")):
                row = row_for(label, form, params, path, args.board)
                print(f"{label:12s} {form:44s} MACs {row.macs:>10,} interval {row.ii:>7,} DSP {row.dsp:>5} "
                      f"cycles x DSP {row.cost:>12,}", flush=True)
                full.append(row)
        reduced: list[Row] = []
        work = tmp / "projects"
        # the second shape (the other direction, TT only) checks the stage balance on other stages
        small = [("256 -> 1024", (256, 1024, [4, 8, 8], [8, 8, 16], small_ranks, True)),
                 ("1024 -> 256", (1024, 256, [8, 8, 16], [4, 8, 8], small_ranks[:1], False))]
        for label, (k, n, in_f, out_f, shape_ranks, dense) in small:
            for form, params, path in layers(k, n, in_f, out_f, shape_ranks, 1, tmp, f"small_{k}_{n}", dense):
                row = row_for(label, form, params, path, args.small_board)
                if not args.no_measure:
                    row.measured_ii, row.measured_latency = measure(path, args.small_board, work)
                print(f"{label:12s} {form:44s} interval est {row.ii:>6,} measured {fmt(row.measured_ii):>6} "
                      f"latency est {row.latency:>6,} measured {fmt(row.measured_latency):>6} "
                      f"roofline {row.roofline:>6,}", flush=True)
                reduced.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(full, reduced, args.board, args.small_board, time.time() - start))
        args.out.with_suffix(".json").write_text(json.dumps(
            {"command": "python -m bench.tt_ffn " + " ".join(sys.argv[1:]),
             "full": [r.__dict__ for r in full], "reduced": [r.__dict__ for r in reduced]}, indent=1) + "\n")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
