"""Small IR graphs and designs built directly (no ONNX): golden-test material for each unit."""
from __future__ import annotations

import numpy as np

from .ir.build import make_linear, make_relu, make_requant
from .ir.graph import Graph
from .ir.types import QType
from .schedule.boards import get_board
from .schedule.design import Design, OpSchedule


def random_weight(rng: np.random.Generator, n_out: int, n_in: int, w_type: QType,
                  sparsity: tuple[int, int] | None, row_pairs: bool = False) -> np.ndarray:
    """Random weight codes over the full range of w_type; with (n, m) exactly n non-zeros per group
    (``row_pairs``: rows 2r and 2r+1 keep the same positions, one index pattern per row pair)."""
    w = rng.integers(w_type.min, w_type.max + 1, size=(n_out, n_in), dtype=np.int64)
    if sparsity is not None:
        n, m = sparsity
        for o in range(n_out):
            for g in range(0, n_in, m):
                width = min(m, n_in - g)
                if row_pairs and o % 2:
                    mask = w[o - 1, g:g + width] != 0   # the even row's positions
                else:
                    keep = rng.choice(width, size=min(n, width), replace=False)
                    mask = np.zeros(width, dtype=bool)
                    mask[keep] = True
                w[o, g:g + width][~mask] = 0
    return w


def linear_graph(n_in: int, n_out: int, in_type: QType, w_bits: int, out_type: QType | None,
                 sparsity: tuple[int, int] | None = None, relu: bool = False, seed: int = 0,
                 per_channel: bool = False, extreme_weights: bool = False, row_pairs: bool = False) -> Graph:
    """One Linear layer with random weights, bias and (per-tensor or per-channel) scales
    (``row_pairs``: an N:M mask shared by rows 2r and 2r+1, random_weight)."""
    rng = np.random.default_rng(seed)
    w_type = QType(signed=True, bits=w_bits, narrow=w_bits > 1)
    weight = random_weight(rng, n_out, n_in, w_type, sparsity, row_pairs=row_pairs)
    if extreme_weights:
        weight = np.where(weight != 0, np.where(weight > 0, w_type.max, w_type.min), 0)
    bias = rng.integers(-(1 << (w_bits + in_type.bits)), 1 << (w_bits + in_type.bits), size=n_out)
    w_scale = 2.0 ** rng.integers(-6, -2, size=n_out) if per_channel else 2.0 ** -4
    if per_channel:
        w_scale = w_scale * rng.uniform(0.6, 1.0, size=n_out)
    op = make_linear("layer0", "layer0", weight, bias, in_type, in_type.scale * np.asarray(w_scale),
                     out_type, relu=relu, sparsity=sparsity)
    return Graph(name="unit", input_type=in_type, input_size=n_in, ops=[op],
                 input_shape=(1, n_in), output_shape=(1, n_out))


def chain_graph(seed: int = 0) -> Graph:
    """Relu on the input, a requant, two Linear layers (2:4 and dense) with mixed widths."""
    rng = np.random.default_rng(seed)
    t_in = QType(True, 8, 2.0 ** -5)
    t_mid = QType(False, 6, 2.0 ** -3)
    t_out = QType(True, 8, 2.0 ** -4)
    relu = make_relu("relu_in", "relu_in", t_in, 24)
    rq = make_requant("rq_in", "rq_in", t_in, QType(True, 5, 2.0 ** -3), 24)
    w1 = random_weight(rng, 20, 24, QType(True, 4, narrow=True), (2, 4))
    l1 = make_linear("fc1", "fc1", w1, rng.integers(-50, 50, 20), rq.out_type, 2.0 ** -3 * 2.0 ** -3,
                     t_mid, relu=True, sparsity=(2, 4))
    w2 = random_weight(rng, 10, 20, QType(True, 8, narrow=True), None)
    l2 = make_linear("fc2", "fc2", w2, None, t_mid, 2.0 ** -3 * 0.0123, t_out)
    return Graph(name="chain", input_type=t_in, input_size=24, ops=[relu, rq, l1, l2],
                 input_shape=(1, 24), output_shape=(1, 10))


def manual_design(graph: Graph, schedules: dict[str, tuple[int, int, int, int]],
                  board: str = "pynq-z2") -> Design:
    """A Design with hand-chosen (simd, pe, in_lanes, out_lanes) per op, for unit tests."""
    b = get_board(board)
    return Design(graph=graph, board=b, clock_mhz=b.clock_mhz,
                  schedules={name: OpSchedule(name, *params) for name, params in schedules.items()})


def butterfly_graph(n: int, in_type: QType, t_bits: int, stage_types, out_type: QType | None,
                    stacks: int = 1, in_size: int | None = None, out_size: int | None = None,
                    strides=None, bias: bool = False, seed: int = 0, twiddles: str = "random",
                    name: str = "bfly") -> Graph:
    """One Butterfly op.  ``stage_types``: one QType for every inner stage, a list (None: exact),
    or None for exact stages; twiddles "random" (full t_bits range, extremes included),
    "identity" or "hadamard"."""
    from .ir.butterfly import hadamard_twiddles, identity_twiddles, make_butterfly, standard_strides

    rng = np.random.default_rng(seed)
    strides = tuple(strides) if strides is not None else standard_strides(n)
    stages, total = len(strides), n * stacks
    in_size = n if in_size is None else in_size
    out_size = total if out_size is None else out_size
    t_lo, t_hi = -(1 << (t_bits - 1)), (1 << (t_bits - 1)) - 1
    if twiddles == "identity":
        codes, t_scale = identity_twiddles(total, stages, t_hi), 1.0 / t_hi
    elif twiddles == "hadamard":
        codes, t_scale = hadamard_twiddles(total, stages), 1.0
    else:
        codes = rng.integers(t_lo, t_hi + 1, size=(stages, total // 2, 2, 2))
        codes[:, :3] = t_lo            # extremes in the first pairs
        codes[:, 3:5] = t_hi
        t_scale = 2.0 ** -(t_bits - 1)
    if stage_types is None or isinstance(stage_types, QType):
        stage_types = [stage_types] * (stages - 1)
    b = rng.normal(0, 4 * in_type.scale, size=out_size) if bias else None
    op = make_butterfly(name, name, n, stacks, strides, codes, t_scale, in_type, in_size, out_size,
                        list(stage_types), out_type, bias=b)
    return Graph(name="butterfly", input_type=in_type, input_size=in_size, ops=[op],
                 input_shape=(1, in_size), output_shape=(1, out_size))
