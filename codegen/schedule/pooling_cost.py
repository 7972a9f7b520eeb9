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
    return OpCost(cycles=cycles, ii=cycles, latency=cycles + 4, multipliers=0, dense_multipliers=0, dsp=dsp,
                  bram36=0.0, lut=60 + lanes * (acc + 2 * op.out_type.bits) + beats * lanes * acc // 32,
                  ff=lanes * (acc + op.out_type.bits) * 2 + 32, macs=0, effective_macs=0, weight_bits=0,
                  buffer_bits=beats * lanes * acc)


def maskedmean_cost(op: MaskedTokenMean, s: OpSchedule, dsp_kind: str) -> OpCost:
    """As the token mean, plus the count, the multiplier table (TOKENS words) and a multiplier per
    lane for acc x M[n] (the requantizer's is then 1)."""
    lanes = s.in_lanes
    beats = math.ceil(op.in_size / lanes)
    cycles = (op.tokens + 1) * beats
    acc = op.acc_type.bits
    dsp = lanes * multiplier_dsps(acc, op.multiplier_bits, dsp_kind)
    return OpCost(cycles=cycles, ii=cycles, latency=cycles + 4, multipliers=0, dense_multipliers=0, dsp=dsp,
                  bram36=0.0, lut=80 + lanes * (acc + 2 * op.out_type.bits) + beats * lanes * acc // 32
                  + op.tokens * op.multiplier_bits // 8,
                  ff=lanes * (acc + op.out_type.bits) * 2 + 48, macs=0, effective_macs=0, weight_bits=0,
                  buffer_bits=beats * lanes * acc)
