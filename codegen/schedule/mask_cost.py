"""Cycle and resource estimates of the padding-mask unit (rtl_kernels/einhls_mask.v,
hls_kernels/einhls_mask.h): one beat per cycle through a comparator-free select.

Per token it passes HEADS x L / LANES score beats and takes one mask beat (read into the bank of
the next sequence while this one's scores pass), so its interval per token is the score beats;
latency is one beat through the output register after the mask of the sequence is in.  Resources:
two banks of L mask bits, the bank counters, and per lane a multiplexer onto the widened code.
"""
from __future__ import annotations

import math

from ..ir.mask import MaskScores
from .cost import OpCost
from .design import OpSchedule


def maskscores_cost(op: MaskScores, s: OpSchedule, dsp_kind: str) -> OpCost:
    del dsp_kind   # no multipliers
    beats = math.ceil(op.in_size / s.in_lanes)
    lanes = s.in_lanes
    lut = 40 + lanes * (op.out_type.bits + 2) + 2 * op.tokens // 4
    ff = 2 * op.tokens + lanes * op.out_type.bits + 3 * max(1, (op.tokens * beats).bit_length()) + 16
    return OpCost(cycles=beats, ii=beats, latency=beats + 2, multipliers=0, dense_multipliers=0, dsp=0,
                  bram36=0.0, lut=lut, ff=ff, macs=0, effective_macs=0, weight_bits=0,
                  buffer_bits=2 * op.tokens)
