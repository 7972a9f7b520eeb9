"""Hardware cost of a candidate layer and of a whole configuration, by einhls' own scheduler.

A candidate is exported to ONNX exactly as the compressed model will be (``torch.onnx.export`` of
the fake-quantized module), lowered by the front end (contractions expanded into stages for the
board) and folded by ``codegen.schedule.folding.fold``: the numbers are the scheduler's, not a
formula of this package.  A whole configuration is costed as the dataflow chain of its layers'
lowered ops (the same units in a pipeline): its interval is the slowest unit's at the fold that
fits the board, its resources the sum.
"""
from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import EinhlsError
from ..ir.graph import Graph
from ..schedule.boards import Board, get_board
from ..schedule.capacity import on_chip_memory_bits

#: the utilisation the fold may use, as `einhls compile`'s default --max-util
MAX_UTIL = 0.8


@dataclass
class HwCost:
    """Scheduler numbers of one layer (at the search's reference interval) or one configuration."""
    cycles: int            # interval: cycles per token (one vector of features)
    dsp: int
    bram36: float
    uram: int
    lut: int
    weight_bits: int
    latency: int           # cycles, first input to last output of one token
    effective_macs: int    # multiplies the hardware performs per token
    fits: bool             # the folded design fits MAX_UTIL of the board (weights on chip included)

    @property
    def cycles_x_dsp(self) -> int:
        return self.cycles * self.dsp

    def area_time(self, board: Board) -> float:
        """cycles x the share of the board the unit occupies (DSP, LUT, block RAM and URAM summed):
        the search's additive hardware cost of a layer."""
        share = self.dsp / board.dsp + self.lut / board.lut + self.bram36 / max(board.bram36, 1) \
            + (self.uram / board.uram if board.uram else 0.0)
        return self.cycles * share

    def edp(self) -> float:
        """Energy-delay proxy: (multiplies + weight bits read) per token x latency in cycles."""
        return float(self.effective_macs + self.weight_bits / 8) * self.latency

    def to_json(self, board: Board) -> dict:
        return {**asdict(self), "cycles_x_dsp": self.cycles_x_dsp, "area_time": self.area_time(board),
                "edp": self.edp()}


class _WithOutputQuant(nn.Module):
    """A layer and an output quantizer (``out_bits`` wide), so the exported layer ends in codes
    like a real one."""

    def __init__(self, layer: nn.Module, out_scale: float, out_bits: int = 8) -> None:
        super().__init__()
        self.layer, self.out_scale, self.out_bits = layer, out_scale, out_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .modules import fake_quant
        return fake_quant(self.layer(x), self.out_scale, self.out_bits)


def export_onnx(module: nn.Module, in_features: int, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, in_features),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"])


def lower_layer(layer: nn.Module, out_scale: float, board: str, out_bits: int = 8) -> Graph:
    """The IR graph (contractions expanded for the board) of one compressed layer."""
    from ..project import CompileOptions, lower
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layer.onnx"
        export_onnx(_WithOutputQuant(layer, out_scale, out_bits), layer.in_features, path)
        return lower(path, CompileOptions(board=board))


def fold_cost(graph: Graph, board: Board, target_ii: int | None, unfit_ii: int | None = None) -> HwCost:
    """Fold ``graph`` at ``target_ii`` cycles per token (or, when that cannot be reached or does not
    fit, at the smallest interval that fits) and read the scheduler's totals.  A design that fits
    at no interval is costed at ``target_ii`` (else ``unfit_ii``) on an unbounded board."""
    from ..schedule.folding import fold
    result = _fold_or_none(graph, board, target_ii, MAX_UTIL) if target_ii is not None else None
    fits = True
    if result is None:
        try:
            result = fold(graph, board, max_util=MAX_UTIL)
        except EinhlsError:
            fits = False
            # does not fit even at its slowest: cost it on an unbounded board of the same kind (its
            # numbers are then what the design would need; fits=False keeps it from being chosen),
            # at the interval asked for, so the table says what that throughput would take (not
            # what the fastest fold of an unbounded board would)
            huge = replace(board, dsp=10**9, lut=10**12, ff=10**12, bram36=10**9, uram=10**9 if board.uram else 0)
            asked = target_ii if target_ii is not None else unfit_ii
            result = _fold_or_none(graph, huge, asked, 1.0) if asked is not None else None
            if result is None:
                result = fold(graph, huge, max_util=1.0, target_ii=None)
    return hw_cost(result, fits)


def hw_cost(result, fits: bool) -> HwCost:
    """The HwCost of a fold result (schedule.folding.fold)."""
    t = result.totals
    return HwCost(cycles=int(t["ii"]), dsp=int(t["dsp"]), bram36=float(t["bram36"]), uram=int(t.get("uram", 0)),
                  lut=int(t["lut"]), weight_bits=int(t["weight_bits"]), latency=int(t["latency"]),
                  effective_macs=int(sum(c.effective_macs for c in result.costs.values())), fits=fits)


def _fold_or_none(graph: Graph, board: Board, target_ii: int, max_util: float):
    """The fold at ``target_ii``, or None when the scheduler refuses it."""
    from ..schedule.folding import fold
    try:
        return fold(graph, board, max_util=max_util, target_ii=target_ii)
    except EinhlsError:
        return None


def chain_graph(graphs: list[Graph], tokens: int) -> Graph:
    """The per-layer graphs as one streaming chain (ops renamed per layer; each layer reads the one
    before): the pipeline of units a configuration builds."""
    ops, previous = [], "input"
    for index, graph in enumerate(graphs):
        prefix = f"l{index}_"

        def renamed(tensor: str) -> str:
            return previous if tensor == "input" else prefix + tensor

        for op in graph.ops:
            ops.append(replace(op, name=prefix + op.name, inputs=tuple(renamed(t) for t in op.inputs)))
        previous = renamed(graph.output)
    first = graphs[0]
    return Graph(name="compressed_chain", input_type=first.input_type, input_size=first.input_size, ops=ops,
                 tokens=tokens, output=previous)


def capacity_bits(board: Board) -> int:
    return on_chip_memory_bits(board)


def reference_interval(total_dense_macs: int, board: Board, tokens: int, target_fps: float | None,
                       clock_mhz: float | None = None) -> int:
    """Cycles per token the search costs layers at: what --target-fps asks, else the interval at
    which the dense model would keep half the board's DSPs busy (one MAC per DSP per cycle)."""
    clock = (clock_mhz or board.clock_mhz) * 1e6
    if target_fps:
        return max(1, math.floor(clock / (target_fps * tokens)))
    return max(1, math.ceil(total_dense_macs / (0.5 * board.dsp)))


def board_of(name: str) -> Board:
    return get_board(name)
