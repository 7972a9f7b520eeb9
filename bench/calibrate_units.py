"""One-unit designs of the graph and Transformer units for the calibration sweep (bench/calibrate.py).

Each point is a small graph around one unit of the kind (with the forks and slices that feed a
two-input unit from the one graph input), folded by the compiler's own ``fold`` at a target
interval on zcu104, so the unit gets the lanes the scheduler would give it.  The schedules the fold
chose are stored with the measurements; tests/test_calibration.py checks a rebuilt point still has
them (a change of the fold would otherwise compare an estimate with another design's counts).

Also here: token-pair Linear points (einhls_linear TOKEN_PACK = 2, the shapes of bench/token_pairs)
and what the scheduler adds to the per-op costs of a design (the FIFOs where paths reconverge, the
lane converters between units, the frame interval and the latency along the longest path), so the
estimate of a point is the scheduler's estimate of the whole one-unit design.
"""
from __future__ import annotations

import dataclasses
import math

#: unit kind of the sweep -> the targets (cycles per graph-input token) it is folded at
GRAPH_UNIT_TARGETS: dict[str, tuple[int, ...]] = {
    "relu": (64, 16, 4, 1),
    "mul": (64, 16, 4, 1, 8, 32),
    "concat": (32, 8, 2, 1),
    "slice": (64, 32, 16, 4),
    "window": (128, 64, 32, 16),
    "regroup": (16, 4, 2, 1),
    "tapmax": (72, 36, 18, 8),
    "actmatmul": (256, 64, 32, 16, 8, 4, 2),
    "maskscores": (17, 8, 4, 2),
    "tokenmean": (64, 16, 4, 1),
    "maskedmean": (65, 16, 4, 2),
}

#: token-pair Linear points (dense and 2:4 int8 64x64, a sequence of 2 tokens): (sparsity, simd, pe)
TOKEN_PAIR_SHAPES = [((2, 4), 8, 4), ((2, 4), 16, 2), ((2, 4), 4, 8), ((2, 4), 16, 4), ((2, 4), 8, 2),
                     (None, 8, 4), (None, 16, 2), (None, 4, 4), (None, 8, 8), (None, 4, 2)]


def _int8(scale: float = 0.05, zero_point: int = 0):
    from codegen.ir.types import QType
    return QType(True, 8, scale, zero_point)


def unit_graph(kind: str):
    """The graph of one unit of ``kind`` (its size is fixed; the sweep varies the interval)."""
    from codegen.ir.build import make_relu
    from codegen.ir.graph import GRAPH_INPUT, Graph
    from codegen.ir.joins import make_concat, make_mul, make_slice
    from codegen.passes.graph import insert_forks

    t = _int8()
    if kind == "relu":
        op = make_relu("relu", "relu", t, 64)
        return Graph(name="unit", input_type=t, input_size=64, ops=[op], input_shape=(1, 64),
                     output_shape=(1, 64), output_is_float=False)
    if kind == "mul":
        op = dataclasses.replace(make_mul("mul", "mul", t, _int8(0.07), _int8(0.1), 64), inputs=(GRAPH_INPUT, GRAPH_INPUT))
        return insert_forks(Graph(name="unit", input_type=t, input_size=64, ops=[op], input_shape=(1, 64),
                                  output_shape=(1, 64), output_is_float=False))
    if kind == "concat":
        op = dataclasses.replace(make_concat("cat", "cat", t, [32, 32]), inputs=(GRAPH_INPUT, GRAPH_INPUT))
        return insert_forks(Graph(name="unit", input_type=t, input_size=32, ops=[op], input_shape=(1, 32),
                                  output_shape=(1, 64), output_is_float=False))
    if kind == "slice":
        op = make_slice("slice", "slice", t, 64, 16, 48)
        return Graph(name="unit", input_type=t, input_size=64, ops=[op], input_shape=(1, 64),
                     output_shape=(1, 32), output_is_float=False)
    if kind in ("window", "regroup", "tapmax"):
        return _conv_graph(kind)
    if kind == "actmatmul":
        from codegen.ir.attention import make_actmatmul
        heads, inner, tokens = 2, 16, 8
        op = make_actmatmul("scores", "scores", t, _int8(0.04), heads, inner, tokens, tokens, "nt", _int8(0.5),
                            0.05 * 0.04 / 0.5, inputs=(GRAPH_INPUT, GRAPH_INPUT))
        return insert_forks(Graph(name="unit", input_type=t, input_size=heads * inner, ops=[op],
                                  input_shape=(1, tokens, heads * inner), output_shape=(1, tokens, heads * tokens),
                                  output_is_float=False, tokens=tokens))
    if kind == "maskscores":
        from codegen.ir.mask import make_mask_scores
        heads, tokens = 2, 8
        scores = make_slice("scores", "scores", t, heads * tokens + 1, 0, heads * tokens)
        mask = make_slice("mask", "mask", t, heads * tokens + 1, heads * tokens, heads * tokens + 1)
        scores, mask = (dataclasses.replace(op, inputs=(GRAPH_INPUT,)) for op in (scores, mask))
        op = make_mask_scores("masked", "masked", t, t, heads, tokens, inputs=("scores", "mask"))
        return insert_forks(Graph(name="unit", input_type=t, input_size=heads * tokens + 1, ops=[scores, mask, op],
                                  input_shape=(1, tokens, heads * tokens + 1),
                                  output_shape=(1, tokens, heads * tokens), output_is_float=False, tokens=tokens))
    if kind == "tokenmean":
        from codegen.ir.pooling import make_token_mean
        op = make_token_mean("mean", "mean", t, 64, 16)
        return Graph(name="unit", input_type=t, input_size=64, ops=[op], input_shape=(1, 16, 64),
                     output_shape=(1, 64), output_is_float=False, tokens=16)
    if kind == "maskedmean":
        from codegen.ir.pooling import make_masked_token_mean
        size, tokens = 64, 16
        x = dataclasses.replace(make_slice("x", "x", t, size + 1, 0, size), inputs=(GRAPH_INPUT,))
        mask = dataclasses.replace(make_slice("mask", "mask", t, size + 1, size, size + 1), inputs=(GRAPH_INPUT,))
        op = make_masked_token_mean("mean", "mean", t, t, size, tokens, inputs=("x", "mask"))
        return insert_forks(Graph(name="unit", input_type=t, input_size=size + 1, ops=[x, mask, op],
                                  input_shape=(1, tokens, size + 1), output_shape=(1, size), output_is_float=False,
                                  tokens=tokens))
    raise ValueError(kind)


def _conv_graph(kind: str):
    """8x8 pixels of 8 channels: a 3x3 window (padded), a regroup of 4 pixels, or the largest of 9 taps."""
    from codegen.ir.conv import make_regroup, make_tapmax, make_window
    from codegen.ir.graph import Graph

    t = _int8(0.1, -3)
    if kind == "window":
        op = make_window("win", "win", t, 8, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
        return Graph(name="unit", input_type=t, input_size=8, ops=[op], input_shape=(1, 8, 8, 8),
                     output_shape=(1, op.out_size, 8, 8), output_is_float=False, tokens=64)
    if kind == "regroup":
        op = make_regroup("group", "group", t, 8, 4)
        return Graph(name="unit", input_type=t, input_size=8, ops=[op], input_shape=(1, 64, 8),
                     output_shape=(1, 16, 32), output_is_float=False, tokens=64)
    op = make_tapmax("max", "max", t, 8, 9)
    return Graph(name="unit", input_type=t, input_size=72, ops=[op], input_shape=(1, 64, 72),
                 output_shape=(1, 64, 8), output_is_float=False, tokens=64)


#: the board each kind's points are folded for (default zcu104): the attention product on a board
#: without UltraRAM, where its options keep the fewest-multipliers order (with UltraRAM the slow
#: targets all take the shape whose key words fill a URAM row, SIMD 8, and the sweep would measure
#: one design three times)
GRAPH_UNIT_BOARDS = {"actmatmul": "zcu102"}


def graph_unit_design(kind: str, target: int):
    """The point's design.  Its token means keep one bank of sums (the fold would give every one of
    these points two, a sequence of 16 tokens taking 17 tokens' beats with one): the sweep measured
    that unit; the two-bank unit is measured by bench/tokenmean_overlap.py."""
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold
    return fold(unit_graph(kind), get_board(GRAPH_UNIT_BOARDS.get(kind, "zcu104")), target_ii=target,
                overlap_means=False).design


def token_pair_design(params: dict):
    """A 64x64 int8 Linear over 2 tokens with token pairs at SIMD x PE, its weight ROM where the
    cost model puts it (as bench/token_pairs does)."""
    from codegen.examples import linear_graph, manual_design
    from codegen.ir.types import QType
    from codegen.schedule.cost import COST_FUNCTIONS
    from codegen.schedule.design import OpSchedule

    sparsity = tuple(params["nm"]) if params.get("nm") else None
    # the types of tests/test_token_pairs.py (bench/token_pairs measured the same layers on xc7)
    graph = linear_graph(64, 64, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0), seed=3, sparsity=sparsity)
    graph = dataclasses.replace(graph, tokens=2, input_shape=(1, 2, 64), output_shape=(1, 2, 64))
    design = manual_design(graph, {"layer0": (params["simd"], params["pe"], 1, 1)})
    design.schedules["layer0"] = OpSchedule("layer0", params["simd"], params["pe"], 1, 1, 2)
    # the ROM kind is the uncalibrated model's choice, as the point was measured (it must not move
    # with a refit)
    design.rom_kinds["layer0"] = COST_FUNCTIONS["linear"](graph.ops[0], design.schedules["layer0"], "DSP48E1").rom_kind
    return design


def design_extras(design, costs: dict, dsp_kind: str, model: dict | None = None,
                  calibrated: bool = True) -> dict:
    """What the scheduler estimates beyond the per-op costs for ``design`` (``costs``: op name ->
    OpCost of the DSP family ``dsp_kind``): the FIFOs in front of joins (LUT RAM / block RAM /
    UltraRAM as placed), the lane converters between units (schedule/lane_cost.py: calibrated, or
    their first-order count), the frame interval and the latency (schedule/frame_latency.py: first
    input beat of a frame to its last output beat, as the harness measures it)."""
    from codegen.schedule.lane_cost import converter_cost, first_order, lane_converters

    from codegen.schedule.fifo_memory import fifo_memory as placed_fifo_memory
    from codegen.schedule.fifo_memory import fifo_shapes
    from codegen.schedule.folding import fifo_depths, token_counts
    from codegen.schedule.frame_latency import frame_latency

    graph = design.graph
    counts = token_counts(graph)
    frame_interval = max(costs[op.name].ii * counts[op.outputs[0]] for op in graph.ops)
    ii = math.ceil(frame_interval / graph.tokens)
    shapes = fifo_shapes(graph, fifo_depths(graph, costs, design.schedules, ii), design.schedules)
    bram, uram, lut, _ = placed_fifo_memory(shapes, design.uram_fifos)
    converters = lane_converters(design)
    lanes = [converter_cost(c, dsp_kind, model) if calibrated else first_order(c) for c in converters]
    return {"fifo_lut": lut, "fifo_bram36": bram, "fifo_uram": uram, "frame_interval": frame_interval,
            "latency": frame_latency(design, costs, ii), "converters": converters,
            "lanes_lut": sum(x for x, _ in lanes), "lanes_ff": sum(y for _, y in lanes)}
