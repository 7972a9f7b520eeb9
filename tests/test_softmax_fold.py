"""The fold gives a softmax unit the lanes its target needs, counting the division after each row.

A softmax row takes its beats and then the division of its sum (one quotient bit a cycle, which
the beats do not hide).  Lanes chosen from the stream alone (size / target) left a softmax over
12 heads x 128 keys at 1,980 cycles per token when 1,536 was asked: the interval was missed
although two lanes reach it.  The expected numbers here come from the unit's row timing
(beats + quotient bits + 4), written out, not from the scheduler.  (A token mean, which wrote
its result while its input waited and so missed a target by one token's beats a sequence, gets a
second bank of sums where that happens: tests/test_mean_overlap.py.)
"""
from __future__ import annotations

import math

import pytest

from codegen.ir.graph import Graph
from codegen.ir.nonlinear import graph_op, make_softmax
from codegen.ir.types import QType
from codegen.schedule.boards import get_board
from codegen.schedule.folding import fold, softmax_lanes


def _softmax_graph(heads: int, keys: int) -> Graph:
    t = QType(True, 16, 2.0 ** -10)
    op = graph_op("sm", "sm", make_softmax(keys, t, QType(False, 8, 1 / 256)), features=heads * keys)
    return Graph(name="softmax", input_type=t, input_size=heads * keys, ops=[op],
                 input_shape=(1, heads * keys), output_shape=(1, heads * keys), output_is_float=False)


def _row_cycles(op, lanes: int) -> int:
    return math.ceil(op.unit.size / lanes) + op.unit.numerator.bit_length() + 4


@pytest.mark.parametrize("target", [1536, 1300, 800, 500])
def test_softmax_over_heads_meets_the_requested_interval(target: int) -> None:
    graph = _softmax_graph(12, 128)
    op = graph.ops[0]
    result = fold(graph, get_board("zcu104"), target_ii=target)
    lanes = result.design.schedules["sm"].in_lanes
    # the fewest whole-row lanes (divisors of 128) whose 12 rows fit the target
    want = min(n for n in (1, 2, 4, 8, 16, 32, 64, 128) if 12 * _row_cycles(op, n) <= target)
    assert lanes == want
    assert result.totals["ii"] == 12 * _row_cycles(op, lanes) <= target
    # the stream alone would have asked for ceil(1536 / target) lanes: one, too few at 1536
    if target == 1536:
        assert 12 * _row_cycles(op, math.ceil(1536 / target)) > target


def test_softmax_lanes_keep_the_stream_lanes_when_they_suffice_and_cap_at_the_row() -> None:
    op = _softmax_graph(12, 128).ops[0]
    assert softmax_lanes(op, 4, 10 ** 6) == 4              # a slow target: the stream's lanes stay
    assert softmax_lanes(op, 3, 10 ** 6) == 2              # whole rows a beat: a divisor of 128
    assert softmax_lanes(op, 1, 1) == 1                    # nothing meets it: the stream's lanes
    assert softmax_lanes(op, 3, 1) == 2
    one_row = _softmax_graph(1, 96).ops[0]                 # one row a token: any lane count
    target = _row_cycles(one_row, 5)
    assert softmax_lanes(one_row, 1, target) == min(n for n in range(1, 97) if _row_cycles(one_row, n) <= target)

