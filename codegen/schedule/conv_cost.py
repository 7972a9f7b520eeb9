"""Cycle and resource estimates of the convolution units (rtl_kernels/einhls_window.v,
hls_kernels/einhls_window.h) and the lane policy of a sliding window.

Costs are per *output token* (one window), like every cost function; the scheduler multiplies by
the tokens of the op's output to get cycles per frame.

A window is also coupled with its neighbours (:func:`couple_windows`, called by the scheduler once
every op is costed): where the unit after it takes longer per window than the window's own beats,
the reader of the line buffer is slow, and at the end of a frame the writer may have to wait for it
(the next frame's rows overwrite rows the last output row still reads).  A small model of the unit
(:func:`coupled_frame_cycles`, pixel by pixel, the rules of rtl_kernels/einhls_window.v) gives the
frame's cycles for a number of buffered rows; the scheduler takes the fewest rows (a power of two)
at which the window runs at the pace of its slower side, and costs their memory.
"""
from __future__ import annotations

import dataclasses
import functools
import math

from ..ir.conv import Regroup, TapMax, Window
from ..ir.graph import Graph
from .cost import OpCost, bram36_for
from .design import OpSchedule, divisor_at_most

#: ops that pass every token on as it comes: the pace a window's output meets is the slowest of them
#: and the first unit after them
_PASS_THROUGH = frozenset({"fork", "relu", "requant"})
#: frames the coupling model runs (the steady state shows from the third on)
_MODEL_FRAMES = 4


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
    """A wire with a register slice: beats pass one per cycle (the slice's multiplexer takes about a
    LUT per bit of a beat: Yosys 16, 38, 70 LUT at 1, 4, 8 lanes of 8 bits)."""
    beats = op.group * math.ceil(op.in_size / s.in_lanes)
    return OpCost(cycles=beats, ii=beats, latency=2, multipliers=0, dense_multipliers=0, dsp=0,
                  bram36=0.0, lut=8 + s.in_lanes * op.in_type.bits, ff=s.in_lanes * op.in_type.bits + 2, macs=0, effective_macs=0,
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


@functools.lru_cache(maxsize=4096)
def _coupled(height: int, width: int, out_height: int, out_width: int, kernel: tuple[int, int],
             stride: tuple[int, int], pads: tuple[int, int, int, int], dilation: tuple[int, int],
             rows: int, pixel_cycles: int, window_cycles: int, beats: int, slack: int,
             frames: int) -> tuple[int, ...]:
    """Cycle at which each frame's last window leaves (see :func:`coupled_frame_cycles`)."""
    lows = [max(0, oy * stride[0] - pads[0]) for oy in range(out_height)]
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    pixels, windows = height * width, out_height * out_width
    # the last input pixel of its frame each window reads
    need_rel = [min(oy * stride[0] - pads[0] + extent[0] - 1, height - 1) * width
                + min(ox * stride[1] - pads[1] + extent[1] - 1, width - 1)
                for oy in range(out_height) for ox in range(out_width)]

    def first_row_reading_at_least(target: int) -> int:
        """The first output row (counted over frames) whose lowest input row is at least ``target``."""
        if target <= 0:
            return 0
        frame, rel = divmod(target, height)
        for oy, low in enumerate(lows):
            if low >= rel:
                return frame * out_height + oy
        return (frame + 1) * out_height

    total_pixels, total_windows = frames * pixels, frames * windows
    pixel_end = [0] * total_pixels
    pixel_start = [0] * total_pixels
    window_end = [0] * total_windows
    written = done = 0           # pixels written, windows emitted
    ready = previous_end = 0     # the producer's last pixel, the writer's last beat
    row_gate = None              # (row, output row it waits for) of the writer's current row
    while done < total_windows:
        moved = False
        # the writer: as many pixels as the reader's progress allows
        while written < total_pixels:
            row = written // width
            if row_gate is None or row_gate[0] != row:
                row_gate = (row, first_row_reading_at_least(row - rows + 1))
            k = row_gate[1]
            if k and done < k * out_width:
                break
            allowed = window_end[k * out_width - 1] if k else 0
            # the producer computes a pixel once it has room for it (``slack`` pixels ahead of the
            # writer), so after a stall the held pixels enter at one beat a cycle
            room = pixel_start[written - slack] if written >= slack else 0
            ready = max(ready, room) + pixel_cycles
            start = max(ready, allowed, previous_end)
            pixel_start[written] = start
            previous_end = pixel_end[written] = start + beats
            written += 1
            moved = True
        # the reader: every window whose pixels are in
        while done < total_windows:
            frame, index = divmod(done, windows)
            need = frame * pixels + need_rel[index]
            if need >= written:
                break
            last = window_end[done - 1] if done else 0
            window_end[done] = max(last, pixel_end[need]) + window_cycles
            done += 1
            moved = True
        if not moved:   # cannot happen with at least a window's rows plus a stride's buffered
            raise AssertionError("window model deadlocked")
    return tuple(window_end[(f + 1) * windows - 1] for f in range(frames))


def coupled_frame_cycles(op: Window, rows: int, pixel_cycles: int, window_cycles: int, beats: int = 1,
                         slack: int = 1) -> int:
    """Steady-state cycles between frames of a window unit with ``rows`` buffered input rows, fed one
    pixel every ``pixel_cycles`` (of ``beats`` beats) and read one window every ``window_cycles``:
    the writer waits on the reader by the unit's rule (a row may be written once the output row
    being read no longer needs the row it replaces), and its producer holds at most ``slack``
    finished pixels while it waits.  One held pixel (the default) is the pessimistic case the
    scheduler sizes for: a Linear unit's double-buffered output and the lane converters hold a few
    more (the depthwise model of tests/test_conv_depthwise.py measured 252 cycles at 4 rows in RTL
    sim; this model says 280 with one held pixel, 253 with four, and 225 at 8 rows with any)."""
    ends = _coupled(op.height, op.width, op.out_height, op.out_width, tuple(op.kernel), tuple(op.stride),
                    tuple(op.pads), tuple(op.dilation), rows, pixel_cycles, window_cycles, beats, slack,
                    _MODEL_FRAMES)
    return ends[-1] - ends[-2]


def _pace_after(graph: Graph, tensor: str, costs: dict[str, OpCost], counts: dict[str, int]) -> int:
    """Cycles per token the readers of ``tensor`` take (through ops that pass tokens on as they come)."""
    pace = 0
    for consumer, _ in graph.consumers(tensor):
        frame = costs[consumer.name].ii * counts[consumer.outputs[0]]
        pace = max(pace, math.ceil(frame / counts[tensor]))
        if consumer.kind in _PASS_THROUGH:
            for out in consumer.outputs:
                pace = max(pace, _pace_after(graph, out, costs, counts))
    return pace


def choose_window_rows(op: Window, lanes: int, pixel_cycles: int, window_cycles: int) -> tuple[int, int, int]:
    """(rows, frame cycles, frame cycles of the slower side alone): the fewest buffered rows (a power
    of two, from the minimum up to a frame's rows plus the minimum) at which the unit runs at the
    pace of its slower side, fed a pixel every ``pixel_cycles`` and read a window every
    ``window_cycles``; where none does, the rows of the fastest frame."""
    beats = math.ceil(op.channels / lanes)
    pixel_cycles = max(pixel_cycles, beats)
    window_cycles = max(window_cycles, op.kernel[0] * op.kernel[1] * beats)
    alone = max(op.height * op.width * pixel_cycles, op.out_height * op.out_width * window_cycles)
    rows, cap = op.min_buffer_rows, 1 << (op.height + op.min_buffer_rows - 1).bit_length()
    best = None
    while rows <= cap:
        frame = coupled_frame_cycles(op, rows, pixel_cycles, window_cycles, beats)
        if best is None or frame < best[1]:
            best = (rows, frame)
        if frame <= alone:
            break
        rows *= 2
    return best[0], best[1], alone


def couple_windows(graph: Graph, schedules: dict[str, OpSchedule], costs: dict[str, OpCost],
                   counts: dict[str, int], dsp_kind: str) -> None:
    """Size every window's line buffer for the units around it and cost the result (in place: the
    op's ``rows``, its entry in ``costs``).  Only a window whose readers are slower than its own
    output beats is coupled: otherwise it emits at its own pace and the minimum buffer keeps up."""
    for op in graph.ops:
        if not isinstance(op, Window):
            continue
        s = schedules[op.name]
        beats = math.ceil(op.channels / s.in_lanes)
        window_cycles = _pace_after(graph, op.outputs[0], costs, counts)
        op.rows = 0
        if window_cycles <= op.kernel[0] * op.kernel[1] * beats:
            costs[op.name] = window_cost(op, s, dsp_kind)
            continue
        producer = graph.producer(op.inputs[0])
        pixel_cycles = beats if producer is None else costs[producer.name].ii
        rows, frame, alone = choose_window_rows(op, s.in_lanes, pixel_cycles, window_cycles)
        op.rows = rows if rows > op.min_buffer_rows else 0
        cost = window_cost(op, s, dsp_kind)
        windows = op.out_height * op.out_width
        if frame > max(alone, cost.ii * windows):   # the coupling still costs cycles: the schedule says so
            cost = dataclasses.replace(cost, ii=math.ceil(frame / windows), cycles=math.ceil(frame / windows))
        costs[op.name] = cost
