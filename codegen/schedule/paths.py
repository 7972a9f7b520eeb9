"""Contraction paths of an einsum with one activation operand and constant operands.

A path is a plain list of operand-index pairs, as in opt_einsum: each step removes the two operands
from the list and appends their contraction.  A step whose operands are both constants is done once
at compile time (it merges weights); a step that touches the activation is a hardware stage run for
every frame.  Paths are enumerated by small pure functions and costed separately:

* exhaustive for up to ``EXHAUSTIVE_MAX`` operands (at most 2,700 orders for 6 operands);
* beyond, a beam search keeps the ``BEAM`` partial paths of fewest total MACs at each step, and
  opt_einsum's greedy path is added to the final candidates, so the result is never worse than
  the greedy path (the stated bound; the optimum is not guaranteed beyond 6 operands).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

EXHAUSTIVE_MAX = 6
BEAM = 64
OBJECTIVES = ("macs", "latency", "resources", "product")


@dataclass(frozen=True)
class Step:
    pair: tuple[int, int]        # positions in the current operand list (opt_einsum convention)
    left: str                    # index letters of the two operands
    right: str
    result: str                  # index letters kept after the step
    macs: int                    # product of the sizes of every index the step touches
    online: bool                 # touches the activation: a per-frame hardware stage


@dataclass
class PathCost:
    path: list[tuple[int, int]]
    steps: list[Step]
    macs: int                    # per-frame MACs (online steps only)
    offline_macs: int            # compile-time MACs of constant-constant merges
    weight_elems: int            # constants the hardware stores (after merges)
    buffer_elems: int            # largest intermediate between online stages
    stage_macs: list[int] = field(default_factory=list)

    def latency(self, multipliers: int) -> float:
        """Cycles of one frame through the stages, with multipliers shared in proportion to MACs."""
        stages = max(len(self.stage_macs), 1)
        return stages * self.macs / max(multipliers, 1)

    def resources(self, weight_bits: int, act_bits: int) -> int:
        """Memory bits: stored weights plus the double-buffered widest intermediate."""
        return self.weight_elems * weight_bits + 2 * self.buffer_elems * act_bits

    def score(self, objective: str, multipliers: int = 64, weight_bits: int = 8, act_bits: int = 16) -> float:
        if objective == "macs":
            return self.macs
        if objective == "latency":
            return self.latency(multipliers)
        if objective == "resources":
            return self.resources(weight_bits, act_bits)
        if objective == "product":
            return self.latency(multipliers) * self.resources(weight_bits, act_bits)
        raise ValueError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")


def _size(indices: str, sizes: dict[str, int]) -> int:
    return math.prod(sizes[i] for i in indices)


def apply_step(operands: list[str], online: list[bool], pair: tuple[int, int], output: str,
               sizes: dict[str, int]) -> tuple[list[str], list[bool], Step]:
    i, j = sorted(pair)
    a, b = operands[i], operands[j]
    rest = [op for k, op in enumerate(operands) if k not in (i, j)]
    needed = set(output).union(*rest) if rest else set(output)
    touched = "".join(dict.fromkeys(a + b))
    result = "".join(ch for ch in touched if ch in needed)
    step = Step((i, j), a, b, result, _size(touched, sizes), online[i] or online[j])
    return rest + [result], [o for k, o in enumerate(online) if k not in (i, j)] + [online[i] or online[j]], step


def cost_path(inputs: list[str], output: str, sizes: dict[str, int], path: list[tuple[int, int]],
              activation: int = 0) -> PathCost:
    operands = list(inputs)
    online = [k == activation for k in range(len(inputs))]
    steps, weights = [], 0
    for pair in path:
        i, j = sorted(pair)
        constant_side = [operands[k] for k in (i, j) if not online[k]]
        operands, online, step = apply_step(operands, online, pair, output, sizes)
        if step.online:  # the constant operand of a hardware stage is stored on chip
            weights += sum(_size(c, sizes) for c in constant_side)
        steps.append(step)
    stage_macs = [s.macs for s in steps if s.online]
    buffers = [_size(s.result, sizes) for s in steps if s.online]
    return PathCost(list(path), steps, sum(stage_macs), sum(s.macs for s in steps if not s.online),
                    weights, max(buffers[:-1], default=0), stage_macs)


def enumerate_paths(n: int) -> list[list[tuple[int, int]]]:
    """Every pairwise contraction order of n operands (n <= EXHAUSTIVE_MAX)."""
    if n <= 1:
        return [[]]
    paths = []
    for pair in itertools.combinations(range(n), 2):
        for rest in enumerate_paths(n - 1):
            paths.append([pair] + rest)
    return paths


def best_path(inputs: list[str], output: str, sizes: dict[str, int], objective: str = "macs",
              activation: int = 0, max_weight_elems: int | None = None, **score_args) -> PathCost:
    """The cheapest path for the objective (ties broken by MACs, then buffer size).

    ``max_weight_elems`` bounds the constants stored on chip: merging constants offline can cut
    MACs but may undo the compression (merging every TT core gives back the dense matrix).  The
    compiler passes the size of the constants as given, so a path never stores more than the model.
    """
    def key(c: PathCost):
        over = max_weight_elems is not None and c.weight_elems > max_weight_elems
        return (over, c.score(objective, **score_args), c.macs, c.buffer_elems)
    if len(inputs) <= EXHAUSTIVE_MAX:
        return min((cost_path(inputs, output, sizes, p, activation) for p in enumerate_paths(len(inputs))), key=key)
    beam: list[list[tuple[int, int]]] = [[]]
    for remaining in range(len(inputs), 1, -1):
        grown = [p + [pair] for p in beam for pair in itertools.combinations(range(remaining), 2)]
        scored = sorted(grown, key=lambda p: _partial_key(inputs, output, sizes, p, activation))
        beam = scored[:BEAM]
    import opt_einsum

    shapes = [tuple(sizes[c] for c in op) for op in inputs]
    greedy, _ = opt_einsum.contract_path(",".join(inputs) + "->" + output, *shapes, shapes=True,
                                         optimize="greedy")
    beam.append([tuple(pair) for pair in greedy])
    return min((cost_path(inputs, output, sizes, p, activation) for p in beam), key=key)


def _partial_key(inputs, output, sizes, path, activation) -> tuple[int, int]:
    operands = list(inputs)
    online = [k == activation for k in range(len(inputs))]
    macs = 0
    for pair in path:
        operands, online, step = apply_step(operands, online, pair, output, sizes)
        macs += step.macs
    return macs, sum(_size(o, sizes) for o in operands)
