"""Folding: choose every op's parallelism so the design fits the board and the stages balance.

Algorithm (in the spirit of FINN's SetFolding, but searching the target instead of taking it):

1. The candidate initiation intervals T are every compute-cycle count some op can reach
   (NF * KF for each feasible (simd, pe) of each Linear), plus the stream-beat counts.
2. For a given T every op takes the *cheapest* parallelism whose interval is <= T (fewest
   multipliers, then fewest padded slots); every stream gets ceil(size / T) lanes.  Stages thus
   balance at T and no op is faster than it needs to be.
3. The smallest T whose whole design fits ``max_util`` of the board's DSP, BRAM and LUT is chosen
   (resources grow as T shrinks, so a binary search over the sorted candidates finds it).
4. When even the slowest design does not fit, the error names the resource and the op using most.

What was asked and what was chosen are recorded in report.json; nothing is silently snapped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import EinhlsError
from ..ir.graph import GRAPH_INPUT, Graph, Linear, Op
from .boards import Board
from .calibration import FAMILY_OF_DSP
from .capacity import check_graph_capacity, check_sequence_buffers
from .choice import ShapeChooser
from .cost import HLS_WORD_LIMIT_BITS, OpCost, op_cost, place_roms
from .fifo_memory import fifo_depth, fifo_memory as placed_fifo_memory, fifo_shapes, place_memories
from .design import Design, OpSchedule, divisor_at_most

MAX_TOP_TDATA_BITS = 512  # widest AXI4-Stream an AXI DMA on these boards offers


def _fold_options(size: int, multiple: int = 1) -> list[int]:
    """Parallelism values worth trying: for each fold count, the smallest width that reaches it."""
    options = set()
    for folds in range(1, size + 1):
        width = math.ceil(size / folds)
        width = math.ceil(width / multiple) * multiple
        options.add(width)
    return sorted(options)


def _options_of(module: str, name: str):
    """The folding options function ``name`` of the schedule module ``module``, imported on first
    use (those modules import this one)."""
    def options(op: Op, board: Board) -> list[tuple[int, int, int]]:
        import importlib
        return getattr(importlib.import_module(module, __package__), name)(op)
    return options


def _actmatmul_options(op: Op, board: Board) -> list[tuple[int, int, int]]:
    from .attention_cost import actmatmul_options
    from .cost import URAM_WIDTH
    return actmatmul_options(op, URAM_WIDTH if getattr(board, "uram", 0) else 0)   # b rows in UltraRAM words


#: the units with multipliers whose parallelism the fold chooses: op kind -> (op, board) ->
#: [(cycles, simd, pe)], cheapest first (one entry per kind)
MAC_OPTIONS = {
    "linear": lambda op, board: linear_options(op),
    "contract": _options_of(".contraction", "stage_options"),
    "butterfly": _options_of(".butterfly", "butterfly_options"),
    "actmatmul": _actmatmul_options,
}


def mac_options(op: Op, board: Board) -> list[tuple[int, int, int]]:
    """Every useful (cycles, simd, pe) of a multiplying unit on ``board``, cheapest first."""
    return MAC_OPTIONS[op.kind](op, board)


def linear_options(op: Linear) -> list[tuple[int, int, int]]:
    """(cycles, simd, pe) for every useful parallelism of a Linear op whose words the HLS kernel can
    declare: a PE's weight word (its slots x bits), an input word (SIMD inputs) and an output row
    (PE outputs) each within Vitis HLS's ap_int limit, so a shape the scheduler picks always emits."""
    group = op.sparsity[1] if op.sparsity else 1
    simds = _fold_options(op.in_size, group)
    pes = _fold_options(op.out_size)
    slots = (lambda simd: simd // group * op.sparsity[0]) if op.sparsity else (lambda simd: simd)
    slot_bits = op.weight_type.bits + (max(1, math.ceil(math.log2(group))) if op.sparsity else 0)
    options = []
    for simd in simds:
        if simd * op.in_type.bits > HLS_WORD_LIMIT_BITS or slots(simd) * slot_bits > HLS_WORD_LIMIT_BITS:
            continue
        for pe in pes:
            if pe * op.out_type.bits > HLS_WORD_LIMIT_BITS:
                continue
            cycles = math.ceil(op.in_size / simd) * math.ceil(op.out_size / pe)
            options.append((cycles, pe * slots(simd), pe * simd, simd, pe))
    # cheapest first: fewest multipliers, then least padding
    options.sort(key=lambda o: (o[1], o[2], -o[4]))
    return [(c, simd, pe) for c, _, _, simd, pe in options]


@dataclass
class FoldResult:
    design: Design
    costs: dict[str, OpCost]
    target_ii: int
    totals: dict
    notes: list[str]


def _lanes(size: int, target: int) -> int:
    return max(1, min(size, math.ceil(size / target)))


def _butterfly_lanes(graph: Graph, lanes: dict[str, int]) -> None:
    """Lanes of the streams into and out of a butterfly unit become powers of two: it loads and
    drains words of 2P (a power of two) elements, and a lane count that does not divide 2P would
    cost a converter of lcm(lanes, 2P) lanes.  Rounded up (faster), but a top-level stream stays
    within MAX_TOP_TDATA_BITS (then rounded down)."""
    for op in graph.ops:
        if op.kind != "butterfly":
            continue
        for tensor in (op.inputs[0], op.outputs[0]):
            up = 1 << (lanes[tensor] - 1).bit_length()
            top = tensor in (GRAPH_INPUT, graph.output)
            if top and up * graph.tensor_type(tensor).bits > MAX_TOP_TDATA_BITS and up > lanes[tensor]:
                up //= 2
            lanes[tensor] = up


#: ops with a per-token serial step (a division, a square root) that sets a floor on their interval
SERIAL_KINDS = frozenset({"softmax", "layernorm"})

#: ops whose unit has one lane count on every port and passes beats straight through
ELEMENTWISE_KINDS = frozenset({"relu", "requant", "add", "mul", "fork", "gelu"})


def _aligned_lanes(op: Op, want: int) -> int:
    """Lanes of a Concat or Slice unit: they must divide every boundary where a token is cut or
    joined, so beats follow one another without re-alignment."""
    if op.kind == "concat":
        bound = 0
        for size in op.sizes:
            bound = math.gcd(bound, size)
    else:   # slice: the start, and the stop unless it is the token's end
        stop = op.start + op.out_size
        bound = math.gcd(op.start, stop if stop < op.in_size else op.in_size)
    return divisor_at_most(bound, want)


def token_counts(graph: Graph) -> dict[str, int]:
    """Vectors per frame of every tensor (the same everywhere unless a window or regroup changes it)."""
    counts = {GRAPH_INPUT: graph.tokens}
    for op in graph.ops:
        for t in op.outputs:
            counts[t] = op.out_tokens(counts[op.inputs[0]])
    return counts


def softmax_lanes(op: Op, lanes: int, target: int) -> int:
    """Lanes of a softmax unit: the fewest from ``lanes`` up (whole rows per beat where a token
    holds several rows) whose rows take at most ``target`` cycles per token; ``lanes`` when none
    does (the divisions alone take longer than the target: more lanes would buy little time for
    many multipliers)."""
    from .nonlinear_cost import softmax_row_cycles
    size = op.unit.size
    start = divisor_at_most(size, lanes) if op.rows > 1 else min(lanes, size)
    for n in range(start, size + 1):
        if (op.rows == 1 or size % n == 0) and op.rows * softmax_row_cycles(op.unit, n) <= target:
            return n
    return start


def _per_token(target: int, graph: Graph, tokens: int) -> int:
    """A target in cycles per graph-input token, restated per token of a tensor of ``tokens`` vectors
    a frame (the same number unless a window or regroup changed the count)."""
    return max(1, target * graph.tokens // tokens)


def fold_for_target(graph: Graph, target: int, options: dict[str, list],
                    chooser: ShapeChooser | None = None) -> dict[str, OpSchedule]:
    """Every op's parallelism for an interval of ``target`` cycles per token of the graph input (a
    Linear op's shape by ``chooser``, the calibrated shape search, where given; every token mean
    with one bank of sums: :func:`overlap_token_means` gives a second where it is needed)."""
    schedules = {}
    counts = token_counts(graph)
    lanes = {t: _lanes(graph.tensor_size(t), _per_token(target, graph, counts[t])) for t in graph.tensors()}
    _butterfly_lanes(graph, lanes)
    # an elementwise unit has one lane count: its streams are widened to the widest of them
    changed = True
    while changed:
        changed = False
        for op in graph.ops:
            if op.kind in ELEMENTWISE_KINDS or op.kind == "permute":
                tensors = list(op.inputs) + list(op.outputs)
                widest = max(lanes[t] for t in tensors)
                for t in tensors:
                    if lanes[t] != widest:
                        lanes[t], changed = widest, True
    for op in graph.ops:
        in_lanes, out_lanes = lanes[op.inputs[0]], lanes[op.outputs[0]]
        span = 0   # a contraction stage's span fold (schedule/contraction.py span_options)
        if op.name in options:   # a MAC unit (Linear, contraction stage): (cycles, simd, pe) options
            # the cheapest that meets the target; the fastest when the target is below the op's floor
            opts, op_target = options[op.name], _per_token(target, graph, counts[op.outputs[0]])
            if chooser is not None and op.kind == "linear":
                _, simd, pe = chooser.pick(op, opts, op_target, in_lanes, out_lanes)
            else:
                choice = next((o for o in opts if o[0] <= op_target), min(opts, key=lambda o: o[0]))
                _, simd, pe = choice
                span = getattr(choice, "span", 0)
        elif op.kind in ("window", "regroup", "tapmax"):   # lanes dividing the channels (schedule/conv_cost.py)
            from .conv_cost import regroup_lanes, tapmax_lanes, window_lanes
            chosen = window_lanes(op, target * graph.tokens) if op.kind == "window" else \
                regroup_lanes(op, in_lanes) if op.kind == "regroup" else tapmax_lanes(op, in_lanes)
            in_lanes = out_lanes = simd = pe = lanes[op.outputs[0]] = chosen
        elif op.kind in ("concat", "slice"):
            in_lanes = out_lanes = simd = pe = _aligned_lanes(op, max(in_lanes, out_lanes))
        elif op.kind == "softmax":
            # a beat never holds two heads' rows; the division after each row takes cycles the
            # stream's lanes (size / target) do not count: more lanes where the target needs them
            simd = pe = in_lanes = out_lanes = softmax_lanes(op, max(in_lanes, out_lanes),
                                                             _per_token(target, graph, counts[op.outputs[0]]))
        elif op.kind == "maskscores":   # the softmax's rule: a beat never holds two rows of keys
            simd = pe = in_lanes = out_lanes = divisor_at_most(op.tokens, max(in_lanes, out_lanes))
        elif op.kind in ELEMENTWISE_KINDS or op.kind == "permute":
            # one lane count on every port, also where a window / tapmax / regroup before it chose
            # its own lanes after the widening above (bench.fuzz: a Fork after a MaxPool was given
            # 3 lanes in and 1 out, C++ that did not compile and a wrong RTL design)
            simd = pe = out_lanes = in_lanes
            for t in op.outputs:
                lanes[t] = in_lanes
        else:
            simd = pe = in_lanes = out_lanes = max(in_lanes, out_lanes)
        schedules[op.name] = OpSchedule(op.name, simd, pe, in_lanes, out_lanes, span=span)
    return schedules


MEAN_KINDS = frozenset({"tokenmean", "maskedmean"})


def overlap_token_means(graph: Graph, target: int, schedules: dict[str, OpSchedule],
                        costs: dict[str, OpCost], cost_of) -> None:
    """A second bank of sums (``OpSchedule.overlap``) for every token mean whose one-bank unit sets
    the design's interval above ``target`` (cycles per graph-input token): with one bank the input
    waits while the means drain, one token's beats a sequence more than the stream's lanes give.
    Where another unit is at least as slow (a slice of lanes that must divide an odd size, say)
    the second bank would buy nothing, and it is not built.  Updates ``schedules`` and ``costs``
    (``cost_of(op, schedule)``) in place."""
    from .pooling_cost import mean_overlap
    counts = token_counts(graph)
    others = max((costs[op.name].ii * counts[op.outputs[0]] for op in graph.ops if op.kind not in MEAN_KINDS),
                 default=0)
    allowed = max(target * graph.tokens, others)
    for op in graph.ops:
        if op.kind not in MEAN_KINDS:
            continue
        sequences = counts[op.outputs[0]]
        if mean_overlap(op, schedules[op.name].in_lanes, allowed // sequences):
            schedules[op.name] = replace(schedules[op.name], overlap=1)
            costs[op.name] = cost_of(op, schedules[op.name])


def input_ready(op: Op, arrival: dict[str, int], interval: int) -> list[int]:
    """Cycle at which ``op`` reads the first beat of each input, given when each arrives.

    Most units read all inputs together, as soon as the last one arrives.  A unit with a
    ``sequence_input`` (an attention product's b, a score mask's mask) first buffers the whole
    sequence of that input (one token per ``interval``), then streams the other: it waits for that
    sequence, and the sequence input, with two banks, is read up to a sequence ahead of it."""
    times = [arrival[t] for t in op.inputs]
    if op.sequence_input is None:
        return [max(times)] * len(times)
    sequence = op.tokens * interval
    held = times[op.sequence_input]
    streamed = max(t for i, t in enumerate(times) if i != op.sequence_input)
    return [max(held, streamed - sequence) if i == op.sequence_input else max(streamed, held + sequence)
            for i in range(len(times))]


def held_cycles(graph: Graph, op, interval: int) -> int:
    """Cycles a fork that holds a sequence (codegen/passes/input_delay.py) keeps its input waiting:
    the sequence of keys the attention product after it loads first, at ``interval`` a token."""
    return graph.tokens * interval if op.kind == "fork" and getattr(op, "holds_sequence", False) else 0


def arrivals(graph: Graph, costs: dict[str, OpCost], interval: int | None = None) -> dict[str, int]:
    """Latency of every tensor: the longest path of unit latencies from the graph input (cycles);
    ``interval`` (default: each unit's own) paces the sequence buffers of attention products.

    A sliding window answers only once the first rows of its input are in: with ``interval``
    (cycles per graph-input token) those input tokens are counted at the design's rate."""
    arrival = {GRAPH_INPUT: 0}
    counts = token_counts(graph) if interval else {}
    for op in graph.ops:
        start = input_ready(op, arrival, interval or costs[op.name].ii)[0]
        wait = held_cycles(graph, op, interval or costs[op.name].ii)
        if interval and op.kind == "window":
            wait = math.ceil(op.first_output_tokens * interval * graph.tokens / counts[op.inputs[0]])
        for t in op.outputs:
            arrival[t] = start + costs[op.name].latency + wait
    return arrival


def fifo_depths(graph: Graph, costs: dict[str, OpCost], schedules: dict[str, OpSchedule],
                interval: int) -> dict[tuple[str, int], int]:
    """Depth (beats) of the FIFO in front of every input of an op where paths reconverge, and in
    front of a fork that holds a sequence (the delayed copy of an attention layer's input: a
    sequence at the design's rate, plus one token and two beats of slack).

    Where a join (Add, Mul, Concat) reads streams that left a common fork along paths of different
    latency, the early input must hold what arrives before the late one delivers: the latency
    difference in beats at the design's rate (``interval`` cycles per token), plus one token of the
    input and two beats of slack (a Concat reads its inputs one after the other within a token).
    Latency of a tensor = the longest path of unit latencies from the graph input.
    """
    arrival = arrivals(graph, costs, interval)
    counts = token_counts(graph)
    depths = {}
    for op in graph.ops:
        held = held_cycles(graph, op, max(interval, 1))
        if held:   # the one delayed copy of a layer's input: a sequence, plus a token and slack
            lanes = schedules[op.name].in_lanes
            beats = math.ceil(op.in_size / lanes)
            waiting = math.ceil(held * beats / _per_token(max(interval, 1), graph, counts[op.inputs[0]]))
            depths[(op.name, 0)] = fifo_depth(waiting + beats + 2, lanes * op.in_type.bits)
            continue
        if len(op.inputs) < 2:
            continue
        ready = input_ready(op, arrival, interval)
        lanes = schedules[op.name].in_lanes
        for index, (tensor, size) in enumerate(zip(op.inputs, op.input_sizes)):
            beats = math.ceil(size / lanes)
            waiting = math.ceil((ready[index] - arrival[tensor]) * beats
                                / _per_token(max(interval, 1), graph, counts[tensor]))
            depths[(op.name, index)] = fifo_depth(waiting + beats + 2, lanes * op.input_types[index].bits)
    return depths


def fifo_memory(graph: Graph, depths: dict[tuple[str, int], int],
                schedules: dict[str, OpSchedule]) -> tuple[float, int, int]:
    """(BRAM36, LUTs, bits) of the FIFOs of ``depths``, all outside UltraRAM (LUT RAM below a block
    RAM's worth; schedule/fifo_memory.py places and costs them with UltraRAM too)."""
    bram, _, lut, bits = placed_fifo_memory(fifo_shapes(graph, depths, schedules), {})
    return bram, lut, bits


def totals_of(costs: dict[str, OpCost]) -> dict:
    values = list(costs.values())
    return {"ii": max(c.ii for c in values), "latency": sum(c.latency for c in values),
            "dsp": sum(c.dsp for c in values), "bram36": sum(c.bram36 for c in values),
            "uram": sum(c.uram for c in values),
            "lut": sum(c.lut for c in values), "ff": sum(c.ff for c in values),
            "multipliers": sum(c.multipliers for c in values),
            "macs": sum(c.macs for c in values), "weight_bits": sum(c.weight_bits for c in values),
            "buffer_bits": sum(c.buffer_bits for c in values)}


def fits(totals: dict, board: Board, max_util: float) -> list[str]:
    """Resources over budget, as readable strings (empty when the design fits)."""
    over = []
    for key, limit in (("dsp", board.dsp), ("bram36", board.bram36), ("uram", board.uram),
                       ("lut", board.lut), ("ff", board.ff)):
        if totals.get(key, 0) > max_util * limit:
            over.append(f"{key.upper()} {totals[key]:g} > {max_util:.0%} of {limit}")
    return over


def fold(graph: Graph, board: Board, clock_mhz: float | None = None, max_util: float = 0.8,
         target_ii: int | None = None, overlap_means: bool = True) -> FoldResult:
    """Choose every op's parallelism (see module docstring).  ``overlap_means`` false keeps every
    token mean at one bank of sums (the calibration sweep's designs, measured that way)."""
    if not graph.ops:
        raise EinhlsError("the model computes nothing einhls can build (no layers after lowering)")
    check_graph_capacity(graph, board, max_util)
    check_sequence_buffers(graph, board, max_util)
    options = {op.name: mac_options(op, board) for op in graph.ops if op.kind in MAC_OPTIONS}
    # the top-level streams cannot be wider than the DMA: that bounds how fast a frame can enter
    counts = token_counts(graph)
    floor_ii = max(math.ceil(graph.input_size * graph.input_type.bits / MAX_TOP_TDATA_BITS),
                   math.ceil(graph.output_size * graph.output_type.bits * counts[graph.output]
                             / (MAX_TOP_TDATA_BITS * graph.tokens)), 1)
    floor_why = f"the stream floor of {floor_ii}"
    # no op can run faster than its fastest option (a contraction stage repeats R times per frame):
    # a target below that would fold the other ops for an interval the pipeline never reaches
    # option cycles are per token of the op's own tensors: restated per graph-input token
    options_at_input = {name: [(math.ceil(c * counts[name] / graph.tokens), simd, pe) for c, simd, pe in opts]
                        for name, opts in options.items()}
    fastest = {name: min(c for c, _, _ in opts) for name, opts in options_at_input.items()}
    bound = max(fastest, key=lambda name: fastest[name], default=None)
    if bound is not None and fastest[bound] > floor_ii:
        floor_ii = fastest[bound]
        floor_why = f"the floor of {floor_ii} that {bound!r} needs at full parallelism"
    candidates = {c for opts in options_at_input.values() for c, _, _ in opts}
    candidates |= {graph.input_size} | {op.out_size for op in graph.ops}
    # Softmax's division and LayerNorm's square root and reciprocal take a fixed number of cycles
    # per token whatever the lanes: an interval below that only buys idle hardware elsewhere
    unit_floor = max((op_cost(op, OpSchedule(op.name, op.in_size, op.in_size, op.in_size, op.in_size),
                              board.dsp_kind).ii for op in graph.ops if op.kind in SERIAL_KINDS), default=1)
    if any(op.kind in SERIAL_KINDS for op in graph.ops):
        candidates.add(unit_floor)
    # a sliding window sends at most all the channels of one tap per beat: its frame takes at least
    # max(pixels, windows x taps) beats, which bounds the interval of the whole pipeline
    from .conv_cost import window_frame_cycles
    window_floor = max((math.ceil(window_frame_cycles(op, op.channels) / graph.tokens)
                        for op in graph.ops if op.kind == "window"), default=1)
    if window_floor > max(floor_ii, unit_floor):
        candidates.add(window_floor)
        floor_why = f"the floor of {window_floor} cycles of the sliding windows (all channels of a tap per beat)"
    slowest = max(candidates)
    candidates = sorted(c for c in candidates if c >= max(floor_ii, unit_floor, window_floor)) or [slowest]
    notes = []
    b_sequences = 2      # sequences of keys / values each attention product holds
    chooser = ShapeChooser(board, counts) if board.dsp_kind in FAMILY_OF_DSP else None

    # the search builds the design at up to hundreds of intervals, and most ops keep their shape
    # from one interval to the next: each (op, shape) is costed once, and every build gets copies
    # (the placement steps below change them)
    cost_cache: dict[OpSchedule, OpCost] = {}

    def cost_of(op: Op, schedule: OpSchedule) -> OpCost:
        cost = cost_cache.get(schedule)
        if cost is None:
            cost = cost_cache[schedule] = op_cost(op, schedule, board.dsp_kind)
        return replace(cost)

    stage_shape_cache: dict = {}     # contraction buffers by schedule (schedule/contraction_memory.py)

    def build(target: int, b_sequences: int = 2) -> tuple[dict[str, OpSchedule], dict[str, OpCost], dict]:
        folded = fold_unplaced(target, b_sequences)
        built = build_placed(folded, b_sequences, False)
        if board.uram and any(item.startswith(("BRAM36", "URAM")) for item in fits(built[2], board, max_util)):
            # block RAM and UltraRAM are what the design runs out of: small memories to LUT RAM
            # (schedule/lutram.py), then the same placement of the rest
            return build_placed(folded, b_sequences, True)
        return built

    def fold_unplaced(target: int, b_sequences: int) -> tuple:
        """The schedules, their costs before any memory placement, the interval and the FIFOs:
        what both placements of :func:`build` start from."""
        schedules = fold_for_target(graph, target, options, chooser)
        costs = {op.name: cost_of(op, schedules[op.name]) for op in graph.ops}
        if b_sequences == 1:
            from .buffers import single_buffer_costs
            single_buffer_costs(graph, schedules, costs, board.dsp_kind)
        if chooser is not None:
            chooser.place(graph, schedules, costs)
        # a window's line buffer depends on the units around it (a slower reader): sized here
        from .conv_cost import couple_windows
        couple_windows(graph, schedules, costs, counts, board.dsp_kind)
        if overlap_means:   # against the other units' final intervals (token pairs set above)
            overlap_token_means(graph, target, schedules, costs, cost_of)
        # a stage's cycles per frame: its cycles per token times the tokens it handles (the ROM
        # placement below changes no cycles, so the interval and FIFOs are known before it)
        frame_interval = max(costs[op.name].ii * counts[op.outputs[0]] for op in graph.ops)
        ii = math.ceil(frame_interval / graph.tokens)
        # the FIFOs where paths reconverge are memories too (a sequence of queries for attention)
        shapes = fifo_shapes(graph, fifo_depths(graph, costs, schedules, ii), schedules)
        return schedules, costs, frame_interval, ii, shapes

    def build_placed(folded: tuple, b_sequences: int,
                     lutram: bool) -> tuple[dict[str, OpSchedule], dict[str, OpCost], dict]:
        schedules, unplaced, frame_interval, ii, shapes = folded
        costs = {name: replace(cost) for name, cost in unplaced.items()}   # the placement changes them
        fifo_bram, _, fifo_lut, _ = placed_fifo_memory(shapes, {})
        lutram_fifos, lutram_units, lutram_luts = frozenset(), frozenset(), 0
        if lutram:
            from .lutram import place_lutram
            lut_used = sum(c.lut for c in costs.values()) + fifo_lut
            lutram_fifos, lutram_units, lutram_luts = place_lutram(graph, schedules, costs, shapes, board, lut_used,
                                                      fifo_bram + sum(c.bram36 for c in costs.values()))
            fifo_bram = placed_fifo_memory(shapes, {}, lutram_fifos)[0]
        # only Linear units can hold their weights in URAM (the other units keep their memories,
        # which load the block RAM the weights are balanced against)
        linear = {op.name for op in graph.ops if op.kind == "linear"}
        place_roms({name: costs[name] for name in linear}, board,
                   fixed_bram36=fifo_bram + sum(c.bram36 for name, c in costs.items() if name not in linear))
        # then the long FIFOs, packed into UltraRAM words, where block RAM is still the fuller
        # with the key / value buffers of the attention products, by the same rule
        from .buffers import buffer_shapes, move_buffers_to_uram
        buffers = buffer_shapes(graph, schedules, b_sequences)
        # and the frame buffers of contraction stages and permutations (schedule/contraction_memory.py)
        from .contraction_memory import move_stage_buffers_to_uram, stage_buffer_shapes
        stage_buffers = stage_buffer_shapes(graph, schedules, stage_shape_cache) if board.uram else {}
        uram_fifos, uram_placed = place_memories({k: v for k, v in shapes.items() if k not in lutram_fifos},
                                                 {**buffers, **stage_buffers}, board,
                                                 fifo_bram + sum(c.bram36 for c in costs.values()),
                                                 sum(c.uram for c in costs.values()))
        uram_buffers = frozenset(name for name in uram_placed if name in buffers)
        uram_stage_buffers = frozenset(uram_placed - uram_buffers)
        move_buffers_to_uram(costs, buffers, uram_buffers)
        move_stage_buffers_to_uram(costs, stage_buffers, uram_stage_buffers)
        fifo_bram, fifo_uram, fifo_lut, fifo_bits = placed_fifo_memory(shapes, uram_fifos, lutram_fifos)
        totals = totals_of(costs)
        totals["frame_interval"], totals["ii"] = frame_interval, ii
        if b_sequences == 1:
            from .buffers import single_buffer_interval
            totals["frame_interval"] = single_buffer_interval(graph, costs, ii)
            totals["ii"] = math.ceil(totals["frame_interval"] / graph.tokens)
        totals["bram36"] += fifo_bram
        totals["uram"] += fifo_uram
        totals["lut"] += fifo_lut
        # the lane converters the Verilog top puts where a stream changes lanes between units
        from .lane_cost import converters_cost
        draft = Design(graph, schedules, board, 0.0)
        lanes_lut, lanes_ff = converters_cost(draft, board.dsp_kind)
        totals["lut"] += lanes_lut
        totals["ff"] += lanes_ff
        totals["converter_lut"], totals["converter_ff"] = lanes_lut, lanes_ff
        totals["buffer_bits"] += fifo_bits
        totals["fifo_bram36"] = fifo_bram
        totals["fifo_uram"] = fifo_uram
        totals["_uram_fifos"] = uram_fifos      # taken into the Design at the end
        totals["uram_fifos"] = len(uram_fifos)
        totals["_uram_buffers"] = uram_buffers
        totals["_lutram_fifos"], totals["_lutram_units"] = lutram_fifos, lutram_units
        totals["lutram_fifos"], totals["lutram_units"] = len(lutram_fifos), len(lutram_units)
        totals["lutram_luts"] = lutram_luts
        totals["uram_buffers"] = len(uram_buffers)
        totals["_uram_stage_buffers"] = uram_stage_buffers
        totals["uram_stage_buffers"] = len(uram_stage_buffers)
        totals["b_sequences"] = b_sequences
        totals["rate_ii"] = ii
        totals["tokens"] = graph.tokens
        return schedules, costs, totals

    if target_ii is not None:
        if target_ii < floor_ii and bound is not None and fastest[bound] == floor_ii:
            raise EinhlsError(f"target interval {target_ii} cycles is below what op {bound!r} can reach "
                              f"({floor_ii} cycles at full parallelism)")
        if target_ii < floor_ii:
            raise EinhlsError(f"target interval {target_ii} cycles is below what the top-level streams "
                              f"allow ({floor_ii} cycles at {MAX_TOP_TDATA_BITS}-bit AXI4-Stream)")
        chosen = target_ii
        schedules, costs, totals = build(chosen)
        over = fits(totals, board, max_util)
        if over:
            raise EinhlsError(f"the design at the requested interval of {target_ii} cycles does not fit "
                              f"{board.name}: {'; '.join(over)}")
        notes.append(f"interval {target_ii} cycles as requested")
    else:
        schedules, costs, totals = build(slowest)
        over = fits(totals, board, max_util)
        all_candidates = candidates
        single_over = ""

        def slowest_that_fits(b_sequences: int) -> int | None:
            # UltraRAM has one shape (72 x 4096): the narrow, deep ROMs of the slowest design waste
            # most of it, a faster design's wider words fill it, so memory is not monotonic in
            # the interval here; find the slowest candidate that fits (at most 256 tried)
            step = max(1, len(all_candidates) // 256)
            for index in range(len(all_candidates) - 1, -1, -step):
                if not fits(build(all_candidates[index], b_sequences)[2], board, max_util):
                    return index
            return None

        if over and board.uram:
            index = slowest_that_fits(b_sequences)
            if index is not None:
                notes.append(f"the slowest design ({slowest} cycles) does not fit {board.name} (its narrow "
                             f"ROMs waste UltraRAM); the slowest that fits: {candidates[index]} cycles")
                slowest, over = candidates[index], []
                candidates = candidates[:index + 1]
        if over and any(item.startswith(("BRAM36", "URAM")) for item in over) \
                and any(op.kind == "actmatmul" for op in graph.ops):
            # the attention products keep one sequence of keys / values instead of two: half their
            # buffers, and a sequence takes the load of b plus the rows (codegen/schedule/buffers.py)
            single = fits(build(slowest, 1)[2], board, max_util)
            index = len(candidates) - 1 if not single else (slowest_that_fits(1) if board.uram else None)
            if index is None:
                single_over = f"; with one sequence of keys / values per attention product: {'; '.join(single)}"
            else:
                b_sequences, over = 1, []
                notes.append(f"two sequences of keys / values per attention product do not fit {board.name} at "
                             f"any interval: each holds one (a sequence loads, then its rows run), the slowest "
                             f"design that fits then: {candidates[index]} cycles per token before the load")
                slowest = candidates[index]
                candidates = candidates[:index + 1]
        if over:
            memory = any(item.startswith(("BRAM36", "URAM")) for item in over)
            # the op that uses most of what is over: memory first when memory is over
            rank = (lambda name: (costs[name].bram36 + 8 * costs[name].uram, costs[name].dsp)) if memory else \
                (lambda name: (costs[name].dsp, costs[name].bram36 + 8 * costs[name].uram, costs[name].lut))
            worst = max(costs, key=rank)
            source = graph.op(worst).source
            split = ""
            if memory:
                kinds = {}
                for name, c in costs.items():
                    what = {"linear": "weights", "actmatmul": "key/value buffers"}.get(graph.op(name).kind, "other units")
                    kinds[what] = kinds.get(what, 0.0) + c.bram36 + 8 * c.uram
                kinds["FIFOs between paths"] = totals.get("fifo_bram36", 0.0) + 8 * totals.get("fifo_uram", 0)
                split = " (memory in BRAM36 equivalents, a URAM = 8: " + ", ".join(
                    f"{what} {amount:g}" for what, amount in sorted(kinds.items(), key=lambda kv: -kv[1]) if amount) + ")"
            raise EinhlsError(f"even the slowest design does not fit {board.name} at {max_util:.0%} "
                              f"utilisation: {'; '.join(over)}{split}{single_over}; the largest layer is "
                              f"{worst!r} (from {source!r})", node=source)
        lo, hi = 0, len(candidates) - 1   # candidates[hi] fits; find the smallest that fits
        while lo < hi:
            mid = (lo + hi) // 2
            if not fits(build(candidates[mid], b_sequences)[2], board, max_util):
                hi = mid
            else:
                lo = mid + 1
        chosen = candidates[hi]
        schedules, costs, totals = build(chosen, b_sequences)
        notes.append(f"smallest interval that fits {max_util:.0%} of {board.name}: {chosen} cycles "
                     f"(searched {len(candidates)} candidates down to {floor_why}"
                     + (f" and the {unit_floor}-cycle floor of the softmax / layernorm units)"
                        if unit_floor > floor_ii else ")"))
    if b_sequences == 1:
        notes.append(f"one sequence of keys / values per attention product: {totals['frame_interval']:,} cycles "
                     f"per sequence ({totals['ii']} per token) = the load of a sequence at {totals['rate_ii']} "
                     f"cycles per token, then its rows at the same rate (codegen/schedule/buffers.py)")
    elif totals["ii"] != chosen:   # a cost the options do not see (buffer beats, gaps): say so
        frame_cycles = {name: costs[name].ii * counts[graph.op(name).outputs[0]] for name in costs}
        slow = max(frame_cycles, key=frame_cycles.get)
        need = math.ceil(frame_cycles[slow] / graph.tokens)
        notes.append(f"the pipeline runs at {totals['ii']} cycles, not {chosen}: {slow!r} needs {need}")
    clock = clock_mhz or board.clock_mhz
    # first input beat of a frame to its last output beat, as RTL simulation measures it, of the
    # chosen design only (schedule/frame_latency.py; the FIFOs are sized from arrivals, the first
    # tokens' times)
    from .frame_latency import frame_latency
    totals["latency"] = frame_latency(Design(graph, schedules, board, 0.0), costs, totals["rate_ii"])
    # FIFO depths at the rate tokens arrive (with one sequence of b, during the load)
    depths = fifo_depths(graph, costs, schedules, totals["rate_ii"])
    rom_kinds = {name: c.rom_kind for name, c in costs.items() if c.rom_kind and graph.op(name).kind == "linear"}
    uram_fifos = totals.pop("_uram_fifos")
    uram_buffers = totals.pop("_uram_buffers")
    uram_stage_buffers = totals.pop("_uram_stage_buffers")
    lutram_fifos, lutram_units = totals.pop("_lutram_fifos"), totals.pop("_lutram_units")
    if lutram_fifos or lutram_units:
        notes.append(f"block RAM and UltraRAM do not hold the design: {len(lutram_fifos)} FIFOs and the small "
                     f"memories of {len(lutram_units)} units in LUT RAM, {totals['lutram_luts']:,} LUTs "
                     f"(codegen/schedule/lutram.py)")
    sequences = {op.name: 1 for op in graph.ops if op.kind == "actmatmul" and b_sequences == 1}
    design = Design(graph=graph, schedules=schedules, board=board, clock_mhz=clock, fifo_depths=depths,
                    rom_kinds=rom_kinds, buffer_sequences=sequences, uram_fifos=uram_fifos,
                    uram_buffers=uram_buffers, uram_stage_buffers=uram_stage_buffers,
                    lutram_fifos=lutram_fifos, lutram_units=lutram_units)
    return FoldResult(design, costs, chosen, totals, notes)
