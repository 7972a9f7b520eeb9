"""Cycle and resource estimates of the token-mean unit (rtl_kernels/einhls_tokenmean.v).

Per output token (one per sequence) it takes TOKENS x BEATS input beats, one a cycle, then writes
BEATS beats while the input waits: ii = (TOKENS + 1) x BEATS.  Resources: per lane one adder of
ACC bits and the accumulators (BEATS words of LANES x ACC bits, LUT RAM), and einhls_requant's
multiplier per lane.
"""
from __future__ import annotations

import math

from ..ir.pooling import MaskedTokenMean, TokenMean
from .cost import OpCost, multiplier_dsps
from .design import OpSchedule


def tokenmean_cost(op: TokenMean, s: OpSchedule, dsp_kind: str) -> OpCost:
    lanes = s.in_lanes
    beats = math.ceil(op.in_size / lanes)
    cycles = (op.tokens + 1) * beats
    acc = op.acc_type.bits
    dsp = lanes * multiplier_dsps(acc, op.requant.multiplier_bits, dsp_kind)
    ram_luts, acc_regs = accumulator_storage(lanes, beats, acc)
    return OpCost(cycles=cycles, ii=cycles, latency=cycles + 4, multipliers=0, dense_multipliers=0, dsp=dsp,
                  bram36=0.0, lut=60 + lanes * (acc + 2 * op.out_type.bits) + ram_luts,
                  ff=lanes * (acc + op.out_type.bits) * 2 + 32 + acc_regs, macs=0, effective_macs=0, weight_bits=0,
                  buffer_bits=beats * lanes * acc)


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
    lane for acc x M[n] (the requantizer's is then 1)."""
    lanes = s.in_lanes
    beats = math.ceil(op.in_size / lanes)
    cycles = (op.tokens + 1) * beats
    acc = op.acc_type.bits
    dsp = lanes * multiplier_dsps(acc, op.multiplier_bits, dsp_kind)
    ram_luts, acc_regs = accumulator_storage(lanes, beats, acc)
    return OpCost(cycles=cycles, ii=cycles, latency=cycles + 4, multipliers=0, dense_multipliers=0, dsp=dsp,
                  bram36=0.0, lut=80 + lanes * (acc + 2 * op.out_type.bits) + ram_luts
                  + op.tokens * op.multiplier_bits // 8,
                  ff=lanes * (acc + op.out_type.bits) * 2 + 48 + acc_regs, macs=0, effective_macs=0, weight_bits=0,
                  buffer_bits=beats * lanes * acc)
