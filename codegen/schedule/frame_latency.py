"""A design's latency: one definition for every unit kind, the one the RTL-simulation harness measures.

    latency = cycles from the first input beat of a frame to the last output beat of that frame,
              the design idle before it and its input offered at one beat a cycle.

(codegen/verify: the unit-test harness counts from the first input beat accepted to the first
frame's last output beat.)  The report's latency and the calibration sweep's latency estimate are
this number (``frame_latency``).  The FIFOs where paths reconverge are sized from another quantity,
``folding.arrivals``: when the first token of each stream arrives, which a FIFO must bridge; that
one is unchanged here (so no FIFO depth moves with this estimate).

Each stream of the frame is followed by two times: its first beat (F) and its last beat (E).  The
graph input's beats arrive one a cycle.  A unit then:

* streaming units (ReLU, requant, Add, Mul, Fork, Slice, Concat) and the units that take a frame of
  many tokens (sliding window, regroup, tap maximum, token means): the first output beat leaves
  ``depth`` cycles after the first input beat, the last one ``depth`` after the later of its last
  input beat and the unit's own time for the frame (its interval times its tokens); ``depth`` is the
  unit's latency less the input beats it counts for one output token.  A Slice's last kept beat
  comes before the input's last beat (the beats after its stop are dropped); a Concat reads its
  inputs one after the other, so its last beat also waits for the later inputs' beats;
* the units that read a whole sequence of one input before their first row (attention product:
  the keys of Q K^T, the values of P V; score mask: the mask) wait for that sequence's last beat,
  which comes at the pace its producer delivers it (a Linear of the keys: its interval a token),
  not at the design's interval from its first beat: the first row starts ``load`` cycles after it
  (``sequence_timing``; an attention product already holds the row of a, so that row's latency
  less its load), or when its row comes; the other rows follow at the unit's interval, the last no
  earlier than its own input's last beat allows (then the unit's latency less one row's input);
* the other units (Linear, butterfly, softmax, layernorm, GELU) count their latency from the first
  beat of their input, as before, for the first token; over a frame of many tokens the last token
  leaves the unit's interval per token later (a token pair: per pair), and no earlier than the
  last input beat plus the latency less one token's input (a slower unit before it sets the pace);
  the contraction stages and permute from the end of their input (each stage takes the whole
  vector first).
* each lane converter on a wire adds a register (one cycle).

Measured (bench/results/calibration.md, tests/test_calibration.py; bench/results/minilm.md): the
one-unit attention product 782 estimated = 782 measured, the score mask 209 against 211; the
MiniLM layer at 16 tokens on zcu104 39,596 against 37,312, at 128 tokens on kv260 1,005,133
against 1,002,825 (the earlier estimates counted the sequence wait at the design's interval from
the first key and the units after it for one token: 29,418 and 535,147).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ir.graph import GRAPH_INPUT, Graph, Op
from .cost import OpCost
from .design import OpSchedule

if TYPE_CHECKING:
    from ..emit.attention import Folding

#: streaming units: one beat in, one beat out, a fixed pipeline between
STREAMING_KINDS = frozenset({"relu", "requant", "add", "mul", "fork", "slice", "concat"})
#: units over a frame of many tokens whose latency is one output token's (or the frame's, for the
#: token means): the same rule, their depth from that
FRAME_KINDS = frozenset({"window", "regroup", "tapmax", "tokenmean", "maskedmean"})
#: units that take their whole input vector before the first step
STORE_KINDS = frozenset({"contract", "permute"})


def sequence_timing(op: Op, schedule: OpSchedule) -> tuple[int, int]:
    """(load, preload) of a unit that reads a whole sequence of one input before its first row (an
    attention product's keys / values, a score mask's mask): ``load``, cycles from the last beat
    of that sequence at the unit's port to the first row it allows; ``preload``, the cycles of a
    row's latency (``OpCost.latency``, counted from the row's first beat) the unit spends on its
    other input before the sequence is in (an attention product loads up to two rows of a while
    the keys load, so a row that waited starts at its MAC array)."""
    if op.kind == "actmatmul":
        from ..emit.attention import folding
        from .attention_cost import BUFFER_WRITE
        f = folding(op, schedule)
        word = f.simd if op.layout == "nt" else f.pe
        # the converter to words of WC codes registers the last word, the loader writes it and
        # sets the sequence's full flag with it, the array issues the row's first step after that
        return int(f.b_lanes != word) + BUFFER_WRITE + 1, row_load_cycles(op, f)
    if op.kind == "maskscores":
        # einhls_mask: the flag of a whole mask is a register set the cycle after its last beat
        return 1, 0
    raise ValueError(f"no sequence timing for a {op.kind} unit ({op.name}): add it here")


def row_load_cycles(op: Op, f: "Folding") -> int:
    """Cycles an attention product takes to load a row of a into its row buffer (the a converter
    emits one word of SIMD codes a cycle): the first term of its latency."""
    return max(op.in_size // f.a_lanes, op.heads * (op.inner // f.simd))


def stream_times(design, costs: dict[str, OpCost], interval: int) -> tuple[dict[str, int], dict[str, int]]:
    """(first, last): every stream's first and last beat of a frame (module docstring), cycles from
    the first input beat.  ``interval``: cycles per graph-input token."""
    from .folding import input_ready, token_counts
    from .lane_cost import input_place, lane_converters

    graph: Graph = design.graph
    counts = token_counts(graph)
    converted = {c.where for c in lane_converters(design)}
    top = design.top_input
    first = {GRAPH_INPUT: 0}
    last = {GRAPH_INPUT: math.ceil(graph.input_size / top.lanes) * graph.tokens - 1}
    # when the latency of an Other unit starts counting (folding.arrivals' arrival)
    clock = {GRAPH_INPUT: 0}
    for op in graph.ops:
        s = design.schedules[op.name]
        cost = costs[op.name]
        conv = [int(input_place(op, i) in converted) for i in range(len(op.inputs))]
        f_in = [first[t] + c for t, c in zip(op.inputs, conv)]
        e_in = [last[t] + c for t, c in zip(op.inputs, conv)]
        out_tokens = counts[op.outputs[0]]
        out_beats = math.ceil(op.out_size / s.out_lanes)
        in_beats = [math.ceil(size / s.in_lanes) for size in op.input_sizes]
        if op.kind in STREAMING_KINDS or op.kind in FRAME_KINDS:
            # input beats one output token of the unit counts in its latency (a Concat reads its
            # inputs one after the other, the other joins side by side)
            beats = sum(in_beats) if op.kind == "concat" else max(in_beats)
            per_token = beats * counts[op.inputs[0]] // max(out_tokens, 1)
            depth = max(cost.latency - per_token, 0)
            start = max(f_in)
            frame = cost.ii * out_tokens
            end_in = max(e_in)
            if op.kind == "slice":
                # the beats of the last token after the slice's stop come after its last kept beat
                stop_beats = math.ceil((op.start + op.out_size) / s.in_lanes)
                rate = max(1.0, (e_in[0] - f_in[0] + 1) / (in_beats[0] * counts[op.inputs[0]]))
                dropped = math.ceil((in_beats[0] - stop_beats) * rate)
                end_in -= dropped
                frame -= dropped
            if op.kind == "concat":
                # one input after the other in a token: the later inputs' beats follow the last one
                end_in = max(e + sum(in_beats[i + 1:]) for i, e in enumerate(e_in))
            out_first = start + depth
            out_last = max(end_in, start + frame - 1) + depth
            out_clock = out_first
        elif op.sequence_input is not None:
            # the whole sequence first, as it arrives (its producer's pace), then the rows: the
            # first when the sequence is in (and its row has come), one every interval of the
            # unit after it, the last no earlier than its row's last beat allows
            held = op.sequence_input
            streamed = [i for i in range(len(op.inputs)) if i != held]
            load, preload = sequence_timing(op, s)
            loaded = e_in[held] + load
            row_first = max(f_in[i] for i in streamed)
            first_end = max(loaded + cost.latency - preload, row_first + cost.latency)
            tail = cost.latency - max(in_beats[i] for i in streamed)
            out_last = max(first_end + (out_tokens - 1) * cost.ii, max(e_in[i] for i in streamed) + tail + 1) - 1
            out_first = first_end - out_beats
            out_clock = first_end
        else:
            if op.kind in STORE_KINDS:
                # the whole first vector first: its last beat, the frame's beats spread evenly
                # over its tokens (the frame's last beat where the frame is one token)
                in_tokens = counts[op.inputs[0]]
                ready = max(f + math.ceil((e - f + 1) / in_tokens) - 1 for f, e in zip(f_in, e_in))
                tail = cost.latency - 1     # counted from the cycle after the last beat
            else:
                ready = input_ready(op, dict(zip(op.inputs, [clock[t] + c for t, c in zip(op.inputs, conv)])),
                                    interval)[0]
                tail = max(cost.latency - max(in_beats) * s.token_pack, 0)
            end = ready + cost.latency
            out_clock = end
            out_first = end - out_beats
            # a frame of many tokens: the last leaves an interval of the unit per token after the
            # first, and no earlier than its own input's last beat allows (``tail`` after it).  A
            # token pair's latency is the pair's (both tokens loaded, both left): steps of pairs
            pack = s.token_pack
            later = (math.ceil(out_tokens / pack) - 1) * pack * cost.ii
            out_last = max(end - 1 + later, max(e_in) + tail)
        for tensor in op.outputs:
            first[tensor], last[tensor], clock[tensor] = out_first, out_last, out_clock
    return first, last


def frame_latency(design, costs: dict[str, OpCost], interval: int) -> int:
    """The design's latency (module docstring): cycles from the first input beat of a frame to the
    last output beat of that frame.  ``interval``: cycles per graph-input token."""
    from .lane_cost import TOP_OUTPUT, lane_converters

    _, last = stream_times(design, costs, interval)
    output_converter = int(TOP_OUTPUT in {c.where for c in lane_converters(design)})
    return last[design.graph.output] + output_converter + 1
