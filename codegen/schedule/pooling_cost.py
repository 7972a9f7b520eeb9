"""Cycle and resource estimates of the token-mean units (rtl_kernels/einhls_tokenmean.v,
einhls_maskedmean.v).

Per output token (one per sequence) a unit takes TOKENS x BEATS input beats, one a cycle, then
writes BEATS beats.  With one bank of sums (OVERLAP 0) the input waits while they drain:
ii = (TOKENS + 1) x BEATS, one token's beats more than the units around it take for the same
sequence at an interval of BEATS a token.  With two banks (OVERLAP 1, ``OpSchedule.overlap``) the
next sequence accumulates into one while the other drains: ii = TOKENS x BEATS; the fold asks for
it only where the plain unit misses the interval (:func:`mean_overlap`).

Resources: per lane one adder of ACC bits and the accumulators (BEATS words of LANES x ACC bits a
bank, LUT RAM), and einhls_requant's multiplier per lane; two banks double the accumulator words and
add the bank flags and the two bank offsets of the addresses.  Measured by Yosys 0.70 (yowasp,
``python -m bench.tokenmean_overlap``, bench/results/tokenmean_overlap.md; 64 int8 features, 16
tokens), two banks, LUT (with LUT RAM) / FF measured against the calibrated estimate, xc7:

    token mean  1 lane:     83 / 62 against 78 / 62       (one bank measured 54 / 59)
                4 lanes:   147 / 152 against 156 / 159    (141 / 149)
               16 lanes:   548 / 530 against 511 / 549    (541 / 527)
               64 lanes: 2,061 / 3,596 against 1,942 / 3,353   (1,286 / 2,825: two one-word banks
                         are registers and a multiplexer, not LUT RAM)
    masked mean (with its slices and converters), 1 to 32 lanes: within 9.8%

every design of both families within 9.8% (tests/test_mean_overlap.py checks 15% against the stored
counts).
"""
from __future__ import annotations

import math

from ..ir.pooling import MaskedTokenMean, TokenMean
from .cost import OpCost, multiplier_dsps
from .design import OpSchedule


def mean_interval(op: TokenMean | MaskedTokenMean, lanes: int, overlap: int) -> int:
    """Cycles a sequence of the token-mean unit of ``lanes`` lanes (one or two banks of sums)."""
    beats = math.ceil(op.in_size / lanes)
    return op.tokens * beats + (0 if overlap else beats)


def mean_overlap(op: TokenMean | MaskedTokenMean, lanes: int, target: int) -> int:
    """1 where the unit with one bank of sums takes more than ``target`` cycles a sequence and two
    banks bring it within (or closer: the lanes are the stream's, chosen for the target), else 0:
    the second bank costs LUT RAM and is only built where the interval needs it."""
    return int(mean_interval(op, lanes, 0) > target)


def _sums_storage(lanes: int, beats: int, acc_bits: int, overlap: int) -> tuple[int, int]:
    """(LUTs, FFs) of the banks of sums: :func:`accumulator_storage` of all their words, but two
    banks of one word each are registers (Yosys leaves a 2-word memory in FFs: 3,596 FF against
    2,825 with one bank at 64 lanes x 12 bits) read through a 2:1 multiplexer a bit."""
    if overlap and beats == 1:
        return lanes * acc_bits, 2 * lanes * acc_bits
    return accumulator_storage(lanes, beats * (2 if overlap else 1), acc_bits)


def _control(overlap: int, beats: int) -> tuple[int, int]:
    """(LUTs, FFs) the second bank adds besides its words: two bank flags and the bank pointers
    (FFs), the bank offsets of the two addresses and the bank selects (LUTs)."""
    if not overlap:
        return 0, 0
    bits = max(1, math.ceil(math.log2(max(beats, 2)))) + 1
    return 2 * bits + 6, 4


def tokenmean_cost(op: TokenMean, s: OpSchedule, dsp_kind: str) -> OpCost:
    lanes = s.in_lanes
    beats = math.ceil(op.in_size / lanes)
    cycles = mean_interval(op, lanes, s.overlap)
    acc = op.acc_type.bits
    dsp = lanes * multiplier_dsps(acc, op.requant.multiplier_bits, dsp_kind)
    ram_luts, acc_regs = _sums_storage(lanes, beats, acc, s.overlap)
    ctl_lut, ctl_ff = _control(s.overlap, beats)
    # the last beat leaves BEATS cycles after the last input beat either way
    latency = (op.tokens + 1) * beats + 4
    return OpCost(cycles=cycles, ii=cycles, latency=latency, multipliers=0, dense_multipliers=0, dsp=dsp,
                  bram36=0.0, lut=60 + lanes * (acc + 2 * op.out_type.bits) + ram_luts + ctl_lut,
                  ff=lanes * (acc + op.out_type.bits) * 2 + 32 + acc_regs + ctl_ff, macs=0, effective_macs=0,
                  weight_bits=0, buffer_bits=beats * lanes * acc * (2 if s.overlap else 1))


def accumulator_storage(lanes: int, beats: int, acc_bits: int) -> tuple[int, int]:
    """(LUTs as distributed RAM, FFs) of the running sums, ``beats`` words of ``lanes`` x
    ``acc_bits``: Yosys puts several words in LUT RAM, about one LUT per bit of a word per 64 words
    (LUT_MEM of the calibration sweep: 48 at 4 lanes x 12 bits, 192 at 16 lanes), and one word in
    registers."""
    if beats == 1:
        return 0, lanes * acc_bits
    return lanes * acc_bits * math.ceil(beats / 64), 0


def maskedmean_cost(op: MaskedTokenMean, s: OpSchedule, dsp_kind: str) -> OpCost:
    """As the token mean, plus the count, the multiplier table (TOKENS words) and a multiplier per
    lane for acc x M[n] (the requantizer's is then 1); two banks also hold a count each."""
    lanes = s.in_lanes
    beats = math.ceil(op.in_size / lanes)
    cycles = mean_interval(op, lanes, s.overlap)
    acc = op.acc_type.bits
    dsp = lanes * multiplier_dsps(acc, op.multiplier_bits, dsp_kind)
    ram_luts, acc_regs = _sums_storage(lanes, beats, acc, s.overlap)
    ctl_lut, ctl_ff = _control(s.overlap, beats)
    if s.overlap:   # the count of each bank's sequence, and its select
        count_bits = math.ceil(math.log2(op.tokens + 1))
        ctl_lut, ctl_ff = ctl_lut + count_bits, ctl_ff + 2 * count_bits
    latency = (op.tokens + 1) * beats + 4
    return OpCost(cycles=cycles, ii=cycles, latency=latency, multipliers=0, dense_multipliers=0, dsp=dsp,
                  bram36=0.0, lut=80 + lanes * (acc + 2 * op.out_type.bits) + ram_luts + ctl_lut
                  + op.tokens * op.multiplier_bits // 8,
                  ff=lanes * (acc + op.out_type.bits) * 2 + 48 + acc_regs + ctl_ff, macs=0, effective_macs=0,
                  weight_bits=0, buffer_bits=beats * lanes * acc * (2 if s.overlap else 1))
