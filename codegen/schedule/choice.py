"""The shape search of a Linear unit: which SIMD x PE and which weight-ROM kind reach an interval
most cheaply, by the calibrated cost model (codegen/schedule/calibration.py).

Fewest multipliers is not cheapest: at 64 multipliers a dense 64x64 int8 layer measured (Yosys
xc7) 6,259 LUT at SIMD 1 x PE 64 and 435-3,000 at other shapes, and a 64-word weight ROM built
from LUTs costs about four LUTs per 64 bits where a block RAM costs none.  So for an interval T
the candidates are every (simd, pe) whose fold count is <= T with at most ``SLACK`` times the
fewest multipliers that reach T (more multipliers than that only buys idle hardware), each with
its ROM in LUTs or in block RAM, and the cheapest is chosen by

    (the largest share of any board resource the unit takes, its DSPs, LUTs, FFs, BRAM36)

i.e. first what makes the unit hard to fit, then the scarcest fabric it uses (a ROM that may move
to UltraRAM counts at the smaller of its block-RAM and UltraRAM shares).  The ranking assumes DSP
packing wherever it is possible in principle (the exact check scans the weights); the chosen shape
is then costed exactly.

Token pairs: where the op's tensor has an even number of tokens a frame and the layer's ranges
allow it (packing.py token_pair_config), the shapes whose NF*KF steps make two tokens within 2T
(one weight read for two tokens: one DSP, two products, N:M layers included) compete with the
plain ones by the same key; the chosen one is recorded with its ROM kind and set on the schedule
in ``place``.

PE quads: where a dense layer of <= 4-bit operands proves four PEs' products exact on one DSP for
one vector (packing.py pe_quad_config), the plain shapes with a PE that is a multiple of four
compete once more as PE quads (``pe_pack`` 4: a quarter of the DSPs of a PE per slot, no LUT
multipliers), by the same key; the choice is set on the schedule in ``place`` like token pairs.
"""
from __future__ import annotations

import math
from itertools import islice
from dataclasses import replace

from ..ir.graph import Linear, Op
from .boards import Board
from .calibration import apply as apply_calibration
from .cost import OpCost, bram36_for, linear_cost, uram_packing
from .design import OpSchedule
from .packing import (QUAD_PES, pack_config, pair_shape, pe_quad_config, quad_config, requant_lanes,
                      token_pack_config, token_pair_config)

SLACK = 1.25          # candidates: at most this many times the fewest multipliers reaching T
MAX_CANDIDATES = 48   # bound on the shapes costed per op and interval (compile time on large layers)
ROM_KINDS = ("lutram", "bram")


def rom_kinds_for(op: Linear, s: OpSchedule, board: Board) -> tuple[str, ...]:
    """ROM kinds worth trying: LUTs only for shallow or small ROMs (a deep ROM of LUTs is never
    the cheaper one), block RAM where the board has it."""
    cost = linear_cost(op, s, board.dsp_kind, assume_packing=False)
    kinds = []
    if bram36_for(cost.rom_width, cost.rom_depth) == 0:
        kinds.append("lutram")
    if board.bram36:
        kinds.append("bram")
    return tuple(kinds) or ("lutram",)


def pair_cycles(op: Linear, simd: int, pe: int) -> int:
    """Cycles a token of a Linear unit with token pairs: half the NF*KF steps of a pair, or the
    requantizer's drain of both tokens' rows where that is slower (KF = 1; cost.py)."""
    nf, kf = math.ceil(op.out_size / pe), math.ceil(op.in_size / simd)
    return max(math.ceil(nf * kf / 2), nf * math.ceil(pe / requant_lanes(pe, kf, 2)))


def _key(cost: OpCost, board: Board) -> tuple:
    memory = cost.bram36 / max(board.bram36, 1)
    if board.uram and cost.rom_kind == "bram":
        # place_roms may move this ROM to UltraRAM, row-packed (one 72 x 4096 shape: narrow words share rows)
        # (the input buffer, cost.input_bram36, stays in block RAM)
        memory = min(memory, max(cost.input_bram36 / max(board.bram36, 1),
                                 uram_packing(cost.rom_width, cost.rom_depth).uram / board.uram))
    shares = [cost.dsp / max(board.dsp, 1), cost.lut / max(board.lut, 1), memory, cost.ff / max(board.ff, 1)]
    return (round(max(shares), 4), cost.dsp, cost.lut, cost.ff, cost.bram36)


class ShapeChooser:
    """Picks (simd, pe) and the ROM kind of every Linear op for the folding search of one board."""

    def __init__(self, board: Board, tokens: dict[str, int] | None = None) -> None:
        self.board = board
        self.tokens = tokens or {}      # vectors per frame of every tensor (folding.token_counts)
        self.rom_kind: dict[tuple[str, int, int], str] = {}
        self.token_pack: dict[tuple[str, int, int], int] = {}
        self.pe_pack: dict[tuple[str, int, int], int] = {}      # 4: chosen with PE quads
        self._cache: dict[tuple, tuple] = {}
        self._packs: dict[str, bool] = {}
        self._pairs: dict[str, bool] = {}
        self._quads: dict[str, bool] = {}
        self._picks: dict[tuple[str, int, int, int], tuple] = {}
        self._paired: dict[str, list[tuple[int, int, int]]] = {}
        self._exact: dict[tuple[OpSchedule, str], OpCost] = {}

    def pairs_possible(self, op: Linear) -> bool:
        """Whether two tokens may share the weight reads of ``op``: an even number of tokens a frame
        (a last unpaired token is not built) and a proven offset (one check per op)."""
        tokens = self.tokens.get(op.outputs[0], 1)
        if tokens < 2 or tokens % 2:
            return False
        if op.name not in self._pairs:
            probe = OpSchedule(op.name, 1, 1, 1, 1, token_pack=2)
            # narrow operands pair tokens only with PE pairs too (four products a DSP: the
            # proof depends on the PE count, so it is probed at PE 2 and rechecked per shape)
            quad_probe = OpSchedule(op.name, 1, 2, 1, 1, token_pack=2)
            self._pairs[op.name] = bool(token_pair_config(op, probe, self.board.dsp_kind)[0]) or \
                bool(quad_config(op, quad_probe, self.board.dsp_kind)[0])
        return self._pairs[op.name]

    def quads_possible(self, op: Linear) -> bool:
        """Whether PE quads are proven for ``op`` (at PE 4 and SIMD 2: the proof is the same at every
        PE multiple of four and even SIMD; odd SIMDs are rechecked per shape)."""
        if op.name not in self._quads:
            probe = OpSchedule(op.name, 2, QUAD_PES, 1, 1, pe_pack=QUAD_PES)
            self._quads[op.name] = bool(pe_quad_config(op, probe, self.board.dsp_kind)[0])
        return self._quads[op.name]

    def packing_hint(self, op: Linear, s: OpSchedule) -> bool:
        """Whether two PEs share a DSP, from the weights at one shape (one scan per op)."""
        if op.name not in self._packs:
            # a shape that cannot hold PE pairs (one PE; an odd PE of an N:M layer) is probed at PE 2
            probe = s if pair_shape(op, s) else OpSchedule(op.name, s.simd, 2, 1, 1)
            self._packs[op.name] = bool(pack_config(op, probe, self.board.dsp_kind)[0])
        return self._packs[op.name]

    def estimate(self, op: Linear, s: OpSchedule, rom_kind: str, exact: bool = False) -> OpCost:
        packing = None if exact or s.token_pack == 2 or s.pe_pack == QUAD_PES else self.packing_hint(op, s)
        cost = linear_cost(op, s, self.board.dsp_kind, rom_kind=rom_kind, assume_packing=packing)
        apply_calibration(op.kind, op, s, self.board.dsp_kind, cost, assume_packing=packing)
        return cost

    def pick(self, op: Op, options: list[tuple[int, int, int]], target: int, in_lanes: int,
             out_lanes: int) -> tuple[int, int, int]:
        """The option (cycles, simd, pe) for ``target``; ``options`` cheapest-first by multipliers."""
        if not isinstance(op, Linear):
            return next((o for o in options if o[0] <= target), None) or min(options, key=lambda o: o[0])
        # the folding search asks again for the same op, target and lanes at every interval it
        # tries: the answer (and the ROM kind and token pairing it sets) is kept
        memo = (op.name, target, in_lanes, out_lanes)
        if memo not in self._picks:
            self._picks[memo] = self._pick(op, options, target, in_lanes, out_lanes)
        choice, kind, token_pack, pe_pack = self._picks[memo]
        if kind is not None:
            self.rom_kind[(op.name, choice[1], choice[2])] = kind
            self.token_pack[(op.name, choice[1], choice[2])] = token_pack
            self.pe_pack[(op.name, choice[1], choice[2])] = pe_pack
        return choice

    def _pick(self, op: Linear, options: list[tuple[int, int, int]], target: int, in_lanes: int,
              out_lanes: int) -> tuple[tuple[int, int, int], str | None, int, int]:
        """pick's search: (option, ROM kind, token pack, PE pack); no ROM kind when no shape was
        ranked."""
        # the first MAX_CANDIDATES * 4 options that reach the target are all the search ranks
        reachable = list(islice((o for o in options if o[0] <= target), MAX_CANDIDATES * 4))
        if not reachable:
            return min(options, key=lambda o: o[0]), None, 1, 1
        slots = (lambda simd: simd // op.sparsity[1] * op.sparsity[0]) if op.sparsity else (lambda simd: simd)
        best = None
        # plain shapes (NF*KF steps a token), then token-pair shapes (NF*KF steps two tokens), then
        # PE quads (the plain shapes whose PE is a multiple of four)
        passes = [(1, 1, reachable)]
        if self.pairs_possible(op):
            if op.name not in self._paired:   # every token-pair shape, cheapest first (once per op)
                self._paired[op.name] = sorted(((pair_cycles(op, simd, pe), simd, pe) for _, simd, pe in options),
                                               key=lambda o: (o[2] * slots(o[1]), o[0]))
            # filtering the stably sorted list keeps the order sorting the filtered one gives
            passes.append((2, 1, [o for o in self._paired[op.name] if o[0] <= target]))
        if self.quads_possible(op):
            passes.append((1, QUAD_PES, [o for o in reachable if o[2] % QUAD_PES == 0]))
        for token_pack, pe_pack, shapes in passes:
            if not shapes:
                continue
            # both lists are sorted by multipliers first (linear_options, above): the first is the fewest
            fewest = shapes[0][2] * slots(shapes[0][1])
            for cycles, simd, pe in shapes[:MAX_CANDIDATES * 4]:
                if pe * slots(simd) > SLACK * fewest:
                    break
                key = (op.name, simd, pe, in_lanes, out_lanes, token_pack, pe_pack)
                sched = OpSchedule(op.name, simd, pe, in_lanes, out_lanes, token_pack, pe_pack)
                if pe_pack == QUAD_PES and not pe_quad_config(op, sched, self.board.dsp_kind)[0]:
                    continue    # PE quads are not exact at this shape (an odd SIMD pairs other slots)
                if token_pack == 2 and not token_pack_config(op, OpSchedule(op.name, simd, pe, in_lanes, out_lanes, 2),
                                                             self.board.dsp_kind)[1]:
                    continue    # neither token pairs nor four products a DSP are exact at this shape
                if key not in self._cache:
                    s = sched
                    self._cache[key] = min((_key(self.estimate(op, s, kind), self.board), kind)
                                           for kind in rom_kinds_for(op, s, self.board))
                rank, kind = self._cache[key]
                if best is None or rank < best[0]:
                    best = (rank, (cycles, simd, pe), kind, token_pack, pe_pack)
        if best is None:
            return reachable[0], None, 1, 1
        _, choice, kind, token_pack, pe_pack = best
        return choice, kind, token_pack, pe_pack

    def place(self, graph, schedules: dict[str, OpSchedule], costs: dict[str, OpCost]) -> None:
        """Recost every Linear op with the ROM kind its shape was chosen with, and set token pairs
        and PE quads on the schedules of the ops chosen with them (both in place)."""
        for op in graph.ops:
            if not isinstance(op, Linear):
                continue
            s = schedules[op.name]
            if self.token_pack.get((op.name, s.simd, s.pe), 1) == 2:
                s = schedules[op.name] = replace(s, token_pack=2)
            if self.pe_pack.get((op.name, s.simd, s.pe), 1) == QUAD_PES and s.token_pack == 1:
                s = schedules[op.name] = replace(s, pe_pack=QUAD_PES)
            kind = self.rom_kind.get((op.name, s.simd, s.pe))
            if kind is not None:
                if (s, kind) not in self._exact:
                    self._exact[(s, kind)] = self.estimate(op, s, kind, exact=True)
                costs[op.name] = replace(self._exact[(s, kind)])   # a copy: placement changes it
