"""Contraction stages and permutations: buffer layout, folding options and cost (docs/hardware.md).

A :class:`~codegen.ir.contraction.ContractStage` is built as

    [permutation buffer, when the stage has a gather] -> Linear unit (K inputs, N outputs) run R times

and a :class:`~codegen.ir.contraction.Permute` as the permutation buffer alone.

Permutation buffer (``rtl_kernels/einhls_permute.v``, ``hls_kernels/einhls_contract.h``): a ping-pong
buffer of two frames in P banks (P a power of two).  Element e of the incoming frame (digits over
the Transposition's source shape, innermost first) is written to destination position

    pos(e) = sum_d digit_d(e) * stride_d                 (mixed-radix counters, one set per lane)
    row = pos >> log2(P),  col = pos mod P,  address = row,
    bank = col (SKEW 0),  (col + c * row) mod P (SKEW 1, c = SKEW_MUL),  or col XOR fold(row) (SKEW 2)

where fold(row) XORs the row's bits in groups of log2(P)
and the frame is read back in destination order, OUT_LANES consecutive positions per cycle
(OUT_LANES a power of two dividing P, so one read touches one row and OUT_LANES distinct banks).
The IN_LANES elements of an input beat must fall in distinct banks: :func:`permute_layout` picks,
for the lanes asked, the smallest P and a skew (none or +row) that make every beat of this
particular permutation conflict free - checked exhaustively, it is a static property - and lowers
the lanes when none does.  The skews are what make strided writes (a transpose) conflict free:
+c*row spreads strides that are multiples of P (c is searched: runs of contiguous elements
separated by a stride need c = the run length), the XOR fold any power-of-two stride.  For a
fixed row every skew permutes the columns, so reads stay conflict free.

Cycles: a stage computes R * NF * KF cycles per frame (one (nf, kf) step per cycle, repeated for
each r); its buffer accepts a frame in ceil(size / write lanes) cycles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..ir.contraction import ContractStage, Permute, Transposition
from ..ir.graph import Linear
from .cost import OpCost, PIPELINE_DEPTH, bram36_for, distributed_ram_luts, linear_cost
from .design import OpSchedule
from .lane_cost import LaneConverter
from .packing import DSP_B_BITS, DSP_PREADDER_BITS, lut_multipliers, signed_bits, weight_bits

MAX_BANKS = 64
COUNTER_LUTS_PER_DIGIT = 24   # compare, add, mux of one mixed-radix digit (estimate)


def pow2_at_least(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


@dataclass(frozen=True)
class PermuteLayout:
    """How one permutation buffer is built (see the module docstring)."""
    size: int
    write_lanes: int
    read_lanes: int
    banks: int
    skew: int                              # 0 none, 1 add skew_mul * row, 2 XOR fold of the row
    digits: tuple[tuple[int, int], ...]   # (extent, destination stride), innermost source digit first
    skew_mul: int = 1

    @property
    def rows(self) -> int:
        """Words per bank for one frame (the buffer holds two)."""
        return math.ceil(self.size / self.banks)

    @property
    def write_beats(self) -> int:
        return math.ceil(self.size / self.write_lanes)

    @property
    def read_beats(self) -> int:
        return math.ceil(self.size / self.read_lanes)

    def buffer_bits(self, bits: int) -> int:
        return 2 * self.banks * self.rows * bits

    def bank_of(self, pos: np.ndarray) -> np.ndarray:
        return bank_of(np.asarray(pos, dtype=np.int64), self.banks, self.skew, self.skew_mul)


def bank_of(pos: np.ndarray, banks: int, skew: int, mul: int = 1) -> np.ndarray:
    """The bank of buffer positions (see the module docstring)."""
    p = banks.bit_length() - 1
    col, row = pos & (banks - 1), pos >> p
    if skew == 0 or p == 0:
        return col
    if skew == 1:
        return (col + mul * row) & (banks - 1)
    fold = np.zeros_like(row)
    rest = row.copy()
    while np.any(rest > 0):
        fold ^= rest & (banks - 1)
        rest >>= p
    return col ^ fold


def _skews(banks: int) -> list[tuple[int, int]]:
    """(skew, multiplier) candidates, cheapest first."""
    return [(0, 1), (1, 1), (2, 1)] + [(1, c) for c in range(2, banks)]


def _conflict_free(scatter: np.ndarray, lanes: int, banks: int, skew: int, mul: int = 1) -> bool:
    beats = math.ceil(scatter.size / lanes)
    pos = np.full(beats * lanes, -1, dtype=np.int64)
    pos[:scatter.size] = scatter
    bank = bank_of(np.maximum(pos, 0), banks, skew, mul)
    bank = np.where(pos < 0, -1 - np.arange(pos.size) % lanes, bank).reshape(beats, lanes)
    s = np.sort(bank, axis=1)
    return not bool(np.any(s[:, 1:] == s[:, :-1]))


@lru_cache(maxsize=256)
def _layout(shape: tuple[int, ...], axes: tuple[int, ...], write_lanes: int, read_lanes: int) -> PermuteLayout:
    t = Transposition(shape, axes)
    scatter = t.scatter()
    read = pow2_at_least(read_lanes)
    for lanes in range(max(1, write_lanes), 0, -1):
        for banks in (pow2_at_least(max(lanes, read)) << k for k in range(4)):
            if banks > MAX_BANKS and banks > read:
                break
            for skew, mul in _skews(banks):
                if _conflict_free(scatter, lanes, banks, skew, mul):
                    return PermuteLayout(t.size, lanes, read, banks, skew, tuple(t.digits()), mul)
    raise AssertionError("one lane is always conflict free")


def permute_layout(t: Transposition, write_lanes: int, read_lanes: int) -> PermuteLayout:
    """The buffer layout for writing ``write_lanes`` (at most) and reading ``read_lanes`` per cycle."""
    t = t.simplified()
    return _layout(t.shape, t.axes, int(write_lanes), int(read_lanes))


# --------------------------------------------------------------------------- folding

class StageOption(tuple):
    """(cycles per frame, simd, pe) of a contraction stage; ``span`` is OpSchedule.span (the
    outputs of one repeat for a span fold, 0 for one repeat after another)."""
    span: int

    def __new__(cls, cycles: int, simd: int, pe: int, span: int = 0) -> "StageOption":
        option = super().__new__(cls, (cycles, simd, pe))
        option.span = span
        return option


def pairs_impossible(op: ContractStage) -> bool:
    """Whether no shape of this stage can hold PE pairs (packing.py pack_config), whatever its
    fold: an input wider than the DSP's 18-bit port, or already row 0's products (row 0 is the
    low field of a pair in every shape) too wide for a second weight in the widest pre-adder
    (w_bits + S + 1 <= 27).  Such stages take span folds of any PE; the others only with an even
    PE and an even N (span_options), so a span fold (whose groups may otherwise split a pair
    between two repeats) never replaces a design that packs two products a DSP by one that does
    not."""
    lin = op.as_linear()
    x_bits = lin.in_type.bits + (0 if lin.in_type.signed else 1)
    if x_bits > DSP_B_BITS or lut_multipliers(lin):
        return True
    row0 = lin.weight[:1].astype(np.int64)
    lo = int(np.minimum(row0 * lin.in_type.min, row0 * lin.in_type.max).min(initial=0))
    hi = int(np.maximum(row0 * lin.in_type.min, row0 * lin.in_type.max).max(initial=0))
    return weight_bits(lin) + max(2, signed_bits(lo, hi)) + 1 > max(DSP_PREADDER_BITS.values())


#: the most MAC-array steps a frame of a span fold takes.  Its weight ROM holds the tiled layer,
#: one word a step (R times one repeat's words), and its input banks a whole frame: up to 64 words
#: a LUT ROM costs what a shallower one of the same width does (one LUT6 a bit column), and the
#: banks stay small LUT RAMs.  Above that a stage has intervals of fine grain one repeat at a time
#: (R x NF x KF with NF x KF large), so nothing is lost.
SPAN_MAX_STEPS = 64


def span_options(op: ContractStage) -> list[StageOption]:
    """The span folds of a stage: PE slots over the R repeats' outputs flattened (R*N outputs in
    ceil(R*N / PE) groups of KF steps, a group's outputs reading one repeat or the next), for every
    PE below N that does not divide it.  One repeat at a time a stage takes R x NF x KF cycles, so
    only R times a fold count is reachable and any other interval pays a padded fold (R = 16, K = N
    = 16 at 48 cycles: SIMD 6 or PE 6, 96 product slots for 85.3 MACs a cycle); a span fold reaches
    48 at SIMD 8 x PE 11 (88 slots: 24 groups of 11 outputs, the last with 3).  A group spans at
    most two repeats (PE < N).  Where the stage may pack PE pairs (not pairs_impossible) only an even
    PE with an even N is offered: its groups never split a pair, so the span fold packs as the
    regular one does and the options' order by multipliers stays an order by DSPs."""
    from .folding import linear_options
    # at full parallelism (SIMD = K, PE = N - 1) a frame still takes ceil(R*N / (N - 1)) steps:
    # a stage of many repeats never has a span fold within SPAN_MAX_STEPS (and is not tiled)
    if op.repeats < 2 or op.n < 3 or math.ceil(op.repeats * op.n / (op.n - 1)) > SPAN_MAX_STEPS:
        return []
    odd_ok = pairs_impossible(op)
    if not odd_ok and op.n % 2:
        return []
    return [StageOption(c, simd, pe, op.n) for c, simd, pe in linear_options(op.as_span_linear())
            if pe < op.n and op.n % pe and (odd_ok or pe % 2 == 0) and c <= SPAN_MAX_STEPS]


def stage_options(op: ContractStage) -> list[tuple[int, int, int]]:
    """(cycles per frame, simd, pe) of every useful parallelism, cheapest first: one repeat at a
    time, and the span folds (StageOption.span) that need fewer multipliers."""
    from .folding import linear_options
    options = [StageOption(op.repeats * c, simd, pe) for c, simd, pe in linear_options(op.as_linear())]
    options += span_options(op)
    options.sort(key=lambda o: (o[1] * o[2], -o[2]))   # linear_options' order, kept for ties (stable)
    return options


def stage_folds(op: ContractStage, s: OpSchedule) -> tuple[int, int]:
    """(groups, KF) of one repeat's Linear unit; with a span fold, the groups of the whole frame."""
    if s.span:
        return math.ceil(op.repeats * op.n / s.pe), math.ceil(op.k / s.simd)
    return math.ceil(op.n / s.pe), math.ceil(op.k / s.simd)


def stage_cycles(op: ContractStage, s: OpSchedule) -> int:
    """MAC-array cycles of a frame: R x NF x KF, or a span fold's groups x KF."""
    nf, kf = stage_folds(op, s)
    return nf * kf if s.span else op.repeats * nf * kf


def _divisor_at_least(size: int, need: int) -> int:
    """The smallest divisor of ``size`` that is >= need (size itself at worst)."""
    return next(d for d in range(max(1, need), size + 1) if size % d == 0)


def linear_in_lanes(op: ContractStage, s: OpSchedule) -> int:
    """Elements per beat into the Linear unit of a stage: enough to load the next repeat's K inputs
    while the current one computes (a span fold: all R repeats while the frame computes), and a
    divisor of K, so that R repeats of K elements packed one after another (the stage's stream)
    are exactly R frames of the Linear unit (a span fold: R frames fill one input bank)."""
    nf, kf = stage_folds(op, s)
    return _divisor_at_least(op.k, math.ceil(op.k * (op.repeats if s.span else 1) / (nf * kf)))


def linear_out_lanes(op: ContractStage, s: OpSchedule) -> int:
    """Elements per beat out of the Linear unit: keeps up with N outputs per NF*KF cycles (a span
    fold: R*N per frame), divides N."""
    nf, kf = stage_folds(op, s)
    return _divisor_at_least(op.n, math.ceil(op.n * (op.repeats if s.span else 1) / (nf * kf)))


def stage_linear(op: ContractStage, s: OpSchedule) -> tuple[Linear, OpSchedule]:
    """The Linear unit a stage builds and its schedule: one repeat's (op.as_linear), or with a span
    fold the R repeats' outputs as one layer (op.as_span_linear, OpSchedule.span = N)."""
    inner = OpSchedule(s.op, s.simd, s.pe, linear_in_lanes(op, s), linear_out_lanes(op, s), span=s.span)
    return (op.as_span_linear() if s.span else op.as_linear()), inner


def stage_layout(op: ContractStage, s: OpSchedule) -> PermuteLayout | None:
    """The permutation buffer of a stage with a gather (reads a power of two >= the Linear's lanes)."""
    if op.gather is None:
        return None
    return permute_layout(op.gather, s.in_lanes, linear_in_lanes(op, s))


def stage_converters(op: ContractStage | Permute, s: OpSchedule) -> dict[str, LaneConverter]:
    """The lane converters inside a contraction op, by place: "wlanes" (the stream into the
    permutation buffer's write lanes), "klanes" (into the Linear unit's input lanes), "olanes"
    (from the last unit to the op's output lanes), and those einhls_linear builds inside itself,
    "simd" (its input lanes into SIMD words) and "rq" (its requantized lanes out).  One place
    decides them: codegen/emit/contraction.py rtl_stages instantiates the first three, and the
    stage's and permutation's costs count them all (schedule/lane_cost.py)."""
    from .packing import requant_lanes
    out: dict[str, LaneConverter] = {}
    bits, lanes = op.in_type.bits, s.in_lanes

    def convert(tag: str, to: int, size: int, el_bits: int, where: str) -> None:
        nonlocal lanes
        if to != lanes:
            out[tag] = LaneConverter(where, size, el_bits, lanes, to)
            lanes = to
    layout = stage_layout(op, s) if isinstance(op, ContractStage) else \
        permute_layout(op.transposition, s.in_lanes, s.out_lanes)
    if layout is not None:
        convert("wlanes", layout.write_lanes, op.in_size, bits, f"{op.name} buffer input")
        lanes = layout.read_lanes
    if isinstance(op, ContractStage):
        lin, inner = stage_linear(op, s)
        convert("klanes", inner.in_lanes, op.in_size, bits, f"{op.name}: K = {op.k} inputs per repeat")
        if inner.in_lanes != s.simd:
            out["simd"] = LaneConverter(f"{op.name} Linear input", op.k, bits, inner.in_lanes, s.simd)
        rq = requant_lanes(s.pe, math.ceil(op.k / s.simd))
        if rq != inner.out_lanes:
            out["rq"] = LaneConverter(f"{op.name} Linear output", lin.out_size, op.out_type.bits, rq,
                                      inner.out_lanes)
        lanes = inner.out_lanes
    convert("olanes", s.out_lanes, op.out_size, op.out_type.bits, f"{op.name} output")
    return out


def converters_fabric(op: ContractStage | Permute, s: OpSchedule) -> tuple[int, int]:
    """(LUT, FF) of stage_converters, first order (lane_cost.first_order): they are part of the
    stage's first-order cost, which the calibration scales as a whole (group "contract"), so
    they must not move with the fit of the converters between units (group "lanes")."""
    from .lane_cost import first_order
    lut = ff = 0
    for c in stage_converters(op, s).values():
        dl, df = first_order(c)
        lut, ff = lut + dl, ff + df
    return lut, ff


# --------------------------------------------------------------------------- cost

def _buffer_cost(layout: PermuteLayout, bits: int) -> tuple[float, int, int]:
    """(BRAM36, LUT, FF) of a permutation buffer and its address counters."""
    depth = 2 * layout.rows
    bram = layout.banks * bram36_for(bits, depth)
    lut = layout.write_lanes * len(layout.digits) * COUNTER_LUTS_PER_DIGIT
    lut += layout.banks * bits * math.ceil(layout.write_lanes / 4)      # write multiplexers
    lut += layout.read_lanes * bits * math.ceil(layout.banks / 4)       # read rotation
    if bram == 0:
        lut += layout.buffer_bits(bits) // 32                             # LUT RAM
    ff = layout.write_lanes * sum(max(1, (e - 1).bit_length()) for e, _ in layout.digits) + 64
    return bram, lut, ff


def stage_cost(op: ContractStage, s: OpSchedule, dsp_kind: str) -> OpCost:
    """A ContractStage: the Linear unit's cost for one repeat, its cycles times R (a span fold: the
    tiled layer's, its groups' cycles, plus span_fold_fabric), the buffer and the lane converters
    inside the op (stage_converters)."""
    lin, inner = stage_linear(op, s)
    layout = stage_layout(op, s)
    c = linear_cost(lin, inner, dsp_kind)
    nf, kf = stage_folds(op, s)
    cycles = stage_cycles(op, s)
    out_beats = math.ceil(op.out_size / s.out_lanes)
    # the Linear unit's input banks: two repeats' words, a span fold's two frames' (read twice a
    # step: each group reads its first repeat and the next)
    row_buffer = 2 * kf * s.simd * op.in_type.bits * (2 * op.repeats if s.span else 1)
    bram, lut, ff = c.bram36, c.lut, c.ff
    if layout is not None:
        in_beats = layout.write_beats
        b_bram, b_lut, b_ff = _buffer_cost(layout, op.in_type.bits)
        bram, lut, ff = bram + b_bram, lut + b_lut, ff + b_ff
        buffer_bits = layout.buffer_bits(op.in_type.bits) + row_buffer
        # the buffer fills while the producer computes: from its last input, the stage computes all
        # R repeats, then drains the last one
        latency = cycles + PIPELINE_DEPTH + 3 + math.ceil(op.n / s.out_lanes)
    else:
        in_beats = math.ceil(op.in_size / s.in_lanes)
        buffer_bits = row_buffer
        latency = max(in_beats, cycles) + PIPELINE_DEPTH + math.ceil(op.n / s.out_lanes)
    conv_lut, conv_ff = converters_fabric(op, s)
    lut, ff = lut + conv_lut, ff + conv_ff
    if s.span:   # the frame computes once all R repeats are in the Linear unit's bank
        latency += math.ceil(op.in_size / inner.in_lanes)
        span_lut, span_ff = span_fold_fabric(op, s)
        # cost.linear_cost counts the tiled layer's rows as registers (2 x NF x PE outputs): they
        # pass its LUT-RAM FIFO (in span_fold_fabric), so only one repeat's rows are kept here
        ff -= 2 * (nf - math.ceil(op.n / s.pe)) * s.pe * op.out_type.bits
        lut, ff = lut + span_lut, ff + span_ff
    return OpCost(cycles=cycles, ii=max(cycles, in_beats, out_beats), latency=latency,
                  multipliers=c.multipliers, dense_multipliers=c.dense_multipliers, dsp=c.dsp,
                  bram36=bram, lut=lut, ff=ff, macs=op.macs, effective_macs=c.multipliers * cycles,
                  weight_bits=c.weight_bits, buffer_bits=buffer_bits)


def span_fold_fabric(op: ContractStage, s: OpSchedule) -> tuple[int, int]:
    """(LUT, FF) a span fold adds to its tiled Linear unit's estimate (which counts input banks of
    one repeat): the banks of R repeats read at two addresses a step (LUT RAM has one read port,
    so synthesis builds them twice), each PE's choice between the two words (a 2:1 multiplexer a
    bit, two bits a LUT6), the row FIFO of a whole frame's groups in LUT RAM, the second word's
    register and the group's repeat and start counters."""
    kf = math.ceil(op.k / s.simd)
    groups = math.ceil(op.repeats * op.n / s.pe)
    word = s.simd * op.in_type.bits
    lut = 2 * distributed_ram_luts(word, 2 * op.repeats * kf) + math.ceil(s.pe * word / 2)
    # the row FIFO holds a frame's groups (einhls_linear FIFO_DEPTH: the next power of two)
    lut += distributed_ram_luts(s.pe * (op.acc_type.bits + 1), 1 << max(1, math.ceil(math.log2(groups + 4))))
    ff = word + 2 * (max(1, (op.repeats - 1).bit_length()) + max(1, (op.n + s.pe).bit_length()) + 1)
    return lut, ff


def permute_cost(op: Permute, s: OpSchedule, dsp_kind: str) -> OpCost:
    layout = permute_layout(op.transposition, s.in_lanes, s.out_lanes)
    bram, lut, ff = _buffer_cost(layout, op.in_type.bits)
    conv_lut, conv_ff = converters_fabric(op, s)
    lut, ff = lut + conv_lut, ff + conv_ff
    beats = max(layout.write_beats, layout.read_beats)
    # the buffer fills while the producer streams; from the last input the frame is read out
    return OpCost(cycles=beats, ii=beats, latency=layout.read_beats + 3, multipliers=0,
                  dense_multipliers=0, dsp=0, bram36=bram, lut=lut, ff=ff, macs=0, effective_macs=0,
                  weight_bits=0, buffer_bits=layout.buffer_bits(op.in_type.bits))
