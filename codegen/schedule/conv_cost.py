"""Cycle and resource estimates of the convolution units (rtl_kernels/einhls_window.v,
hls_kernels/einhls_window.h) and the lane policy of a sliding window.

Costs are per *output token* (one window), like every cost function; the scheduler multiplies by
the tokens of the op's output to get cycles per frame.
"""
from __future__ import annotations

import math

from ..ir.conv import Regroup, TapMax, Window
from .cost import OpCost, bram36_for
from .design import OpSchedule, divisor_at_most


def window_lanes(op: Window, frame_target: int) -> int:
    """Channels per beat: the fewest (a divisor of C, so a pixel is whole beats) that emit every
    window of a frame within ``frame_target`` cycles; all C when even that is slower."""
    beats_needed = max(op.out_height * op.out_width * op.kernel[0] * op.kernel[1],
                       op.height * op.width)
    want = math.ceil(beats_needed * op.channels / max(frame_target, 1))
    for lanes in range(1, op.channels + 1):
        if op.channels % lanes == 0 and lanes >= want:
            return lanes
    return op.channels


def window_frame_cycles(op: Window, lanes: int) -> int:
    """Cycles per frame at one beat per cycle: the input side or the output side, whichever is longer
    (the line buffer lets them overlap)."""
    pixel_beats = math.ceil(op.channels / lanes)
    return max(op.height * op.width, op.out_height * op.out_width * op.kernel[0] * op.kernel[1]) * pixel_beats


def window_buffer_shape(op: Window, lanes: int) -> tuple[int, int]:
    """(word bits, words) of the line buffer."""
    return lanes * op.in_type.bits, op.buffer_rows * op.width * math.ceil(op.channels / lanes)


def window_cost(op: Window, s: OpSchedule, dsp_kind: str) -> OpCost:
    lanes = s.in_lanes
    frame = window_frame_cycles(op, lanes)
    windows = op.out_height * op.out_width
    width, depth = window_buffer_shape(op, lanes)
    bram = bram36_for(width, depth)
    lut = 200 + (0 if bram else width * math.ceil(depth / 64)) + width   # counters, address, pad mux
    pixel_beats = math.ceil(op.channels / lanes)
    latency = op.first_output_tokens * pixel_beats + op.kernel[0] * op.kernel[1] * pixel_beats + 2
    return OpCost(cycles=math.ceil(frame / windows), ii=math.ceil(frame / windows), latency=latency, multipliers=0,
                  dense_multipliers=0, dsp=0, bram36=bram, lut=lut, ff=width + 12 * 32, macs=0,
                  effective_macs=0, weight_bits=0, buffer_bits=width * depth)


def regroup_cost(op: Regroup, s: OpSchedule, dsp_kind: str) -> OpCost:
    """A wire with a register slice: beats pass one per cycle."""
    beats = op.group * math.ceil(op.in_size / s.in_lanes)
    return OpCost(cycles=beats, ii=beats, latency=2, multipliers=0, dense_multipliers=0, dsp=0,
                  bram36=0.0, lut=8, ff=s.in_lanes * op.in_type.bits + 2, macs=0, effective_macs=0,
                  weight_bits=0)


def regroup_lanes(op: Regroup, want: int) -> int:
    """Lanes dividing the features of an input token: the tokens then join without padding between."""
    return divisor_at_most(op.in_size, want)


def tapmax_cost(op: TapMax, s: OpSchedule, dsp_kind: str) -> OpCost:
    """Per lane a comparator and a running maximum of one beat per channel group."""
    lanes, bits = s.in_lanes, op.in_type.bits
    in_beats = op.taps * math.ceil(op.out_size / lanes)
    groups = math.ceil(op.out_size / lanes)
    return OpCost(cycles=in_beats, ii=in_beats, latency=in_beats + 2, multipliers=0, dense_multipliers=0, dsp=0,
                  bram36=0.0, lut=40 + lanes * bits * 2, ff=(groups + 1) * lanes * bits + 64, macs=0,
                  effective_macs=0, weight_bits=0)


def tapmax_lanes(op: TapMax, want: int) -> int:
    """Lanes dividing the channels: every beat of a window holds one tap's channels."""
    return divisor_at_most(op.out_size, want)
