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
* the other units (Linear, butterfly, attention product, score mask, softmax, layernorm, GELU) count
  their latency from the first beat of their input, as before; the contraction stages and permute
  from the end of theirs (each stage takes the whole vector first).
* each lane converter on a wire adds a register (one cycle).
"""
from __future__ import annotations

import math

from ..ir.graph import GRAPH_INPUT, Graph
from .cost import OpCost

#: streaming units: one beat in, one beat out, a fixed pipeline between
STREAMING_KINDS = frozenset({"relu", "requant", "add", "mul", "fork", "slice", "concat"})
#: units over a frame of many tokens whose latency is one output token's (or the frame's, for the
#: token means): the same rule, their depth from that
FRAME_KINDS = frozenset({"window", "regroup", "tapmax", "tokenmean", "maskedmean"})
#: units that take their whole input vector before the first step
STORE_KINDS = frozenset({"contract", "permute"})


def frame_latency(design, costs: dict[str, OpCost], interval: int) -> int:
    """The design's latency (module docstring): cycles from the first input beat of a frame to the
    last output beat of that frame.  ``interval``: cycles per graph-input token (paces the
    sequence waits of attention products, as folding.arrivals does)."""
    from .folding import held_cycles, input_ready, token_counts
    from .lane_cost import lane_converters

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
        conv = [int(f"{op.name} input {i}" in converted) for i in range(len(op.inputs))]
        f_in = [first[t] + c for t, c in zip(op.inputs, conv)]
        e_in = [last[t] + c for t, c in zip(op.inputs, conv)]
        out_tokens = counts[op.outputs[0]]
        out_beats = math.ceil(op.out_size / s.out_lanes)
        if op.kind in STREAMING_KINDS or op.kind in FRAME_KINDS:
            in_beats = [math.ceil(size / s.in_lanes) for size in op.input_sizes]
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
        else:
            starts = e_in if op.kind in STORE_KINDS else \
                input_ready(op, dict(zip(op.inputs, [clock[t] + c for t, c in zip(op.inputs, conv)])), interval)
            ready = max(starts) if op.kind in STORE_KINDS else starts[0]
            end = ready + cost.latency + held_cycles(graph, op, interval)
            out_clock = end
            out_last = end - 1
            out_first = out_last - (out_beats - 1)
        for tensor in op.outputs:
            first[tensor], last[tensor], clock[tensor] = out_first, out_last, out_clock
    output_converter = int("output" in converted)
    return last[graph.output] + output_converter + 1
