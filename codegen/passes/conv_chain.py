"""Decomposed convolutions with no quantizer between their factors: the factor chain, or the kernel
rebuilt from the factors, whichever the scheduler says is cheaper.

A low-rank / CP / Tucker convolution exported factor by factor (a chain of 1x1, kxk and depthwise
convs) lowers to a chain of window + Linear units.  Where an exporter quantizes every factor's
output (QDQ ``quantize_static``, Brevitas with output quantizers) the chain is the model: rebuilding
the kernel would drop those roundings.  Where nothing sits between two factors (Brevitas
``QuantConv2d`` layers with weight quantizers only, the default), the first factor's Linear keeps
its exact accumulator (no rounding, one scale) and the product of the factors is an exact integer
kernel: the pair can be one unit.

:func:`rebuild_conv_chains` merges every such pair - a pointwise Linear A with an exact output
into the Linear B reading it, directly or through a sliding window - into one Linear over A's
input (the window moved in front of it), with the integer kernel ``W_B · W_A`` per tap and the
bias ``b_B + W_B · b_A``, keeping B's requantization, so every output equals the chain's.  A padded
window is merged only when A maps the input's code of real 0 to 0 (no bias of its own: padding
the input then equals padding A's output).  Two windows are never merged (a CP separable conv's
kx1 and 1xk factors stay two units).

:func:`choose_conv_chains` folds both graphs for the board at one interval and keeps the cheaper:
the interval asked for (``target_ii``), else the smaller of the two graphs' own smallest fitting
intervals; a graph that does not fit there loses; otherwise the lower resource score (the sum over
DSP, LUT, FF, BRAM36 and URAM of the fraction of the board used) wins, the chain on a tie.  The
decision and both costs are written into the ``source`` of the ops it concerns, so the report
carries them.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import EinhlsError
from ..ir.conv import Window
from ..ir.graph import Graph, Linear, Op
from ..ir.sparsity import detect_nm
from ..ir.types import QType, bits_for_range, dot_product_range

#: resources of the score, as named in the scheduler's totals and on a board
_SCORED = ("dsp", "lut", "ff", "bram36", "uram")


def _exact_output(op: Op) -> bool:
    """A Linear whose output is its accumulator unchanged (no scale, no clamp, no ReLU)."""
    if not isinstance(op, Linear):
        return False
    r = op.requant
    if set(r.multiplier) != {1} or r.shift or r.zero_point or op.out_type.zero_point:
        return False
    lo, hi = dot_product_range(op.weight, op.bias, op.in_type.min, op.in_type.max)
    return r.lo <= lo and r.hi >= hi


def _only_reader(graph: Graph, tensor: str) -> Op | None:
    readers = graph.consumers(tensor)
    if len(readers) != 1 or tensor == graph.output:
        return None
    return readers[0][0]


def _saves(pattern: tuple[int, int] | None, k: int) -> tuple[int, int] | None:
    if pattern is None:
        return None
    n, m = pattern
    return pattern if n * math.ceil(k / m) < k else None


def _merged_linear(first: Linear, second: Linear, taps: int, inputs: tuple[str, ...], source: str) -> Linear:
    """``second`` reading ``taps`` copies of ``first``'s output, as one Linear over ``first``'s input."""
    rank = first.out_size
    w_b = second.weight.reshape(second.out_size, taps, rank)
    weight = np.einsum("otr,rc->otc", w_b, first.weight).reshape(second.out_size, taps * first.in_size)
    bias = second.bias + w_b.sum(axis=1) @ first.bias
    in_type = first.in_type
    lo, hi = dot_product_range(weight, bias, in_type.min, in_type.max)
    w_lo, w_hi = int(min(weight.min(), 0)), int(max(weight.max(), 0))
    acc_bits = max(bits_for_range(min(lo, -1), hi), second.acc_type.bits, 2)
    return dataclasses.replace(
        second, inputs=inputs, source=source, in_type=in_type, in_size=taps * first.in_size, weight=weight,
        bias=bias.astype(np.int64), weight_type=QType(signed=w_lo < 0, bits=bits_for_range(w_lo, w_hi)),
        acc_type=dataclasses.replace(second.acc_type, bits=acc_bits),
        sparsity=_saves(detect_nm(weight), weight.shape[1]))


def _merge_once(graph: Graph) -> tuple[Graph, str] | None:
    """The graph with the first mergeable pair merged, and what was merged; None when none is."""
    for first in graph.ops:
        if not _exact_output(first):
            continue
        reader = _only_reader(graph, first.outputs[0])
        window = None
        if isinstance(reader, Window) and reader.pad_code == 0:
            window, reader = reader, _only_reader(graph, reader.outputs[0])
        if not isinstance(reader, Linear):
            continue
        if window is not None and any(window.pads):
            # padding A's output with 0 must equal padding A's input with its code of real 0
            pad = first.in_type.zero_point
            if np.any(first.bias + first.weight.sum(axis=1) * pad):
                continue
        names = [first.name] + ([window.name] if window else []) + [reader.name]
        source = " + ".join(dict.fromkeys([first.source] + ([window.source] if window else []) + [reader.source]))
        ops, replaced = [], {}
        if window is not None:
            moved = dataclasses.replace(window, inputs=first.inputs, in_type=first.in_type, out_type=first.in_type,
                                        in_size=first.in_size, out_size=window.kernel[0] * window.kernel[1]
                                        * first.in_size, pad_code=first.in_type.zero_point, rows=0)
            merged = _merged_linear(first, reader, window.kernel[0] * window.kernel[1], moved.outputs, source)
            replaced = {window.name: moved, reader.name: merged}
        else:
            replaced = {reader.name: _merged_linear(first, reader, 1, first.inputs, source)}
        for op in graph.ops:
            if op.name != first.name:
                ops.append(replaced.get(op.name, op))
        return dataclasses.replace(graph, ops=ops), " -> ".join(names)
    return None


def rebuild_conv_chains(graph: Graph) -> tuple[Graph, list[str]]:
    """Every exact factor pair merged (see module docstring); the merges made, in order."""
    merges = []
    while (step := _merge_once(graph)) is not None:
        graph, what = step
        merges.append(what)
    return graph, merges


@dataclasses.dataclass
class ChainChoice:
    """The two graphs' costs at one interval and the one kept."""
    interval: int
    merges: list[str]
    chain: dict | None          # the scheduler's totals (None: does not fit at the interval)
    rebuilt: dict | None
    chain_score: float | None
    rebuilt_score: float | None
    chosen: str                 # "chain" | "rebuilt"

    def line(self) -> str:
        def say(totals, score):
            if totals is None:
                return "does not fit"
            return (f"{totals['dsp']:g} DSP, {totals['lut']:g} LUT, {totals['bram36']:g} BRAM36, "
                    f"{totals['macs']} MACs a token, score {score:.4f}")
        return (f"{self.chosen} kept at {self.interval} cycles: factor chain {say(self.chain, self.chain_score)}; "
                f"rebuilt kernel {say(self.rebuilt, self.rebuilt_score)}")


def resource_score(totals: dict, board) -> float:
    """Sum over DSP, LUT, FF, BRAM36 and URAM of the fraction of ``board`` the design uses."""
    return sum(totals.get(key, 0) / getattr(board, key) for key in _SCORED if getattr(board, key, 0))


def _fold_at(graph: Graph, board, max_util: float, interval: int | None):
    from ..schedule.folding import fold
    try:
        return fold(graph, board, max_util=max_util, target_ii=interval)
    except EinhlsError:
        return None


def compare_conv_chains(graph: Graph, board, max_util: float = 0.8,
                        target_ii: int | None = None) -> tuple[Graph, ChainChoice | None]:
    """(the rebuilt graph, the comparison); (graph, None) when nothing can be rebuilt."""
    rebuilt, merges = rebuild_conv_chains(graph)
    if not merges:
        return graph, None
    interval = target_ii
    if interval is None:
        own = [result.totals["ii"] for result in (_fold_at(graph, board, max_util, None),
                                             _fold_at(rebuilt, board, max_util, None)) if result is not None]
        if not own:
            return rebuilt, ChainChoice(0, merges, None, None, None, None, "chain")
        interval = min(own)
    chain_fold = _fold_at(graph, board, max_util, interval)
    rebuilt_fold = _fold_at(rebuilt, board, max_util, interval)
    chain_score = None if chain_fold is None else resource_score(chain_fold.totals, board)
    rebuilt_score = None if rebuilt_fold is None else resource_score(rebuilt_fold.totals, board)
    wins = rebuilt_score is not None and (chain_score is None or rebuilt_score < chain_score)
    choice = ChainChoice(interval, merges, None if chain_fold is None else chain_fold.totals,
                         None if rebuilt_fold is None else rebuilt_fold.totals, chain_score, rebuilt_score,
                         "rebuilt" if wins else "chain")
    return rebuilt, choice


def choose_conv_chains(graph: Graph, board, max_util: float = 0.8, target_ii: int | None = None) -> Graph:
    """The factor chain or the rebuilt kernel, whichever is cheaper (module docstring); the ops
    concerned carry the decision in their ``source``."""
    rebuilt, choice = compare_conv_chains(graph, board, max_util, target_ii)
    if choice is None:
        return graph
    kept = rebuilt if choice.chosen == "rebuilt" else graph
    other = graph if choice.chosen == "rebuilt" else rebuilt
    shared = {id(op) for op in other.ops}
    untouched = {op.name for op in kept.ops if id(op) in shared}
    note = f" [{choice.line()}]"
    ops = [op if op.name in untouched or op.kind not in ("linear", "window")
           else dataclasses.replace(op, source=op.source + note) for op in kept.ops]
    return dataclasses.replace(kept, ops=ops)
