"""One delayed copy of an attention layer's input (codegen/passes/input_delay.py).

* the pass alone: each layer's input fork keeps the key and value paths and feeds one held fork
  (its input a sequence deep) that feeds the query projection and the residual Add; the integer
  reference is unchanged, element by element; a graph without attention is left alone;
* the schedule: the FIFO of a sequence sits in front of the held fork, the FIFOs in front of
  Q K^T and the residual Add shrink to the paths' latency difference, and the FIFOs store less.

The generated designs with the pass are bit-exact in C-sim (kv260) and RTL sim (zcu104) in
tests/test_minilm_e2e.py (MiniLM layer 0 at 16 tokens, the measured interval within the
schedule's); tests/test_encoder_buffers.py's two-layer 64-token encoder (slow) likewise.
"""
from __future__ import annotations

import numpy as np
import pytest

from codegen.ir.reference import random_inputs, run_reference
from codegen.passes.graph import insert_forks
from codegen.passes.input_delay import share_input_delay
from codegen.schedule.boards import get_board
from codegen.schedule.folding import fold


@pytest.fixture(scope="module")
def layer_graphs(minilm_layer):
    """MiniLM layer 0 at 16 tokens with its forks, without and with the pass."""
    from codegen.frontend import load_graph

    before = insert_forks(load_graph(minilm_layer))
    return before, share_input_delay(before)


def _readers(graph):
    return {t: op for op in graph.ops for t in op.inputs}


def test_the_layer_input_is_delayed_once_for_queries_and_residual(layer_graphs) -> None:
    before, after = layer_graphs
    held = [op for op in after.ops if op.kind == "fork" and op.holds_sequence]
    assert len(held) == 1 and held[0].copies == 2
    readers = _readers(after)
    first = next(op for op in after.ops if op.kind == "fork" and held[0].inputs[0] in op.outputs)
    # the first fork: keys, values, the held fork (was: keys, values, queries, residual)
    old = next(op for op in before.ops if op.name == first.name)
    assert (old.copies, first.copies) == (4, 3)
    assert [readers[t].kind for t in first.outputs].count("linear") == 2
    # the held fork: the query projection and the residual Add
    assert sorted(readers[t].kind for t in held[0].outputs) == ["add", "linear"]
    assert len(after.ops) == len(before.ops) + 1
    after.check()


def test_the_reference_is_unchanged(layer_graphs) -> None:
    before, after = layer_graphs
    inputs = random_inputs(before, 3, seed=5)
    np.testing.assert_array_equal(np.asarray(run_reference(after, inputs)), np.asarray(run_reference(before, inputs)))


def test_a_graph_without_attention_is_left_alone() -> None:
    from test_encoder_buffers import attention_graph   # a fork into Q K^T only: no residual

    graph = insert_forks(attention_graph(8))
    assert share_input_delay(graph) is graph


def test_one_sequence_fifo_instead_of_two(layer_graphs) -> None:
    before, after = layer_graphs
    board = get_board("zcu104")
    old, new = fold(before, board), fold(after, board)
    held = next(op for op in after.ops if op.kind == "fork" and op.holds_sequence)
    scores = next(op for op in after.ops if op.kind == "actmatmul" and op.layout == "nt")
    add = next(_readers(after)[t] for t in held.outputs if _readers(after)[t].kind == "add")
    lanes = new.design.schedule(held).in_lanes
    sequence = after.tokens * -(-held.in_size // lanes)
    assert new.design.fifo_depths[(held.name, 0)] >= sequence
    residual = (add.name, next(i for i, t in enumerate(add.inputs) if t in held.outputs))
    query = (scores.name, 0)
    # before: the queries waited a sequence (and the residual the whole attention path)
    old_lanes = old.design.schedule(scores).in_lanes
    assert old.design.fifo_depths[query] >= after.tokens * -(-scores.in_size // old_lanes)
    # after: the queries wait for the difference of the paths' latencies only, the residual for
    # the attention path's latency less the sequence the held fork took
    new_lanes = new.design.schedule(scores).in_lanes
    assert new.design.fifo_depths[query] < after.tokens * -(-scores.in_size // new_lanes)
    assert new.design.fifo_depths[residual] < old.design.fifo_depths[residual]
    assert new.totals["buffer_bits"] < old.totals["buffer_bits"]
