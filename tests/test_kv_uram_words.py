"""Attention-product foldings whose key / value words fill an UltraRAM row.

A b bank of einhls_actmatmul in UltraRAM keeps its word (WC centred codes of B_BITS + 1 bits) and
takes ceil(width / 72) x ceil(depth / 4096) URAM288 (schedule/fifo_memory.py BufferShape).  At
SIMD 1 x PE 1 a MiniLM key buffer is one bank of 9-bit words: 24 URAM288 for two sequences of 128
tokens, of which an eighth is used.  Where the board has UltraRAM, actmatmul_options puts the
foldings whose word fills a row (8 codes) first, so the scheduler's slowest design keeps its keys
in 3.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from codegen.ir.attention import make_actmatmul
from codegen.ir.types import QType
from codegen.schedule.attention_cost import actmatmul_options, b_banks
from codegen.schedule.boards import get_board
from codegen.schedule.cost import bram36_for, uram_for
from codegen.schedule.design import OpSchedule
from codegen.emit.attention import folding
from design_sim import require_sim_tools
from test_encoder_buffers import attention_graph
from test_kv_uram import assert_keys_in_uram_bit_exact


def _minilm_keys(layout: str = "nt"):
    """Q K^T (nt) or P V (nn) of one MiniLM layer at 128 tokens: 12 heads of 32, 8-bit codes."""
    x = QType(True, 8, 0.05, 3)
    inner, cols = (32, 128) if layout == "nt" else (128, 32)
    return make_actmatmul("amm", "MatMul_0", x, x, 12, inner, cols, 128, layout, QType(True, 8, 0.05, -2),
                          0.002, inputs=("a", "b"))


def _buffer_uram(op, simd: int, pe: int) -> int:
    banks, depth, width = b_banks(op, folding(op, OpSchedule(op.name, simd, pe, 1, 1)), 2)
    return banks * uram_for(width, depth)


def test_minilm_keys_at_simd_1_waste_seven_eighths_of_each_uram() -> None:
    op = _minilm_keys()
    # two sequences of 128 tokens x 384 codes of 9 bits, in URAM288 rows of 72 bits x 4096
    ideal = math.ceil(2 * 128 * 384 * 9 / (72 * 4096))
    assert ideal == 3
    assert _buffer_uram(op, 1, 1) == 8 * ideal       # 9-bit words: one code a 72-bit row
    assert _buffer_uram(op, 8, 1) == ideal           # 8 codes a row
    # in block RAM the two shapes take the same blocks (9 x 4096 and 72 x 512)
    blocks = []
    for simd in (1, 8):
        banks, depth, width = b_banks(op, folding(op, OpSchedule("amm", simd, 1, 1, 1)), 2)
        blocks.append(banks * bram36_for(width, depth))
    assert blocks == [24, 24]


def test_options_put_words_that_fill_a_uram_row_first_only_where_asked() -> None:
    for layout, word in (("nt", 1), ("nn", 2)):
        op = _minilm_keys(layout)
        plain = actmatmul_options(op)
        assert plain[0][1:] == (1, 1)                # fewest multipliers first, as before
        filled = actmatmul_options(op, uram_word=72)
        assert sorted(filled) == sorted(plain)       # the same foldings, reordered
        first = filled[0]
        assert first[word] * 9 >= 72 and first[1] * first[2] == 8    # the cheapest with a full word
        # every folding with a full word comes before every folding without
        full = [o[word] * 9 >= 72 for o in filled]
        assert full == sorted(full, reverse=True)
        simd, pe = first[1:]
        assert _buffer_uram(op, simd, pe) == 3


def test_scheduler_folds_keys_into_full_uram_words_on_a_board_with_uram() -> None:
    from codegen.schedule.folding import fold

    graph = attention_graph(tokens=128, heads=12, inner=32)
    kv260 = get_board("kv260")
    slowest_interval = 12 * 32 * 128                # heads x inner x cols at SIMD 1 x PE 1
    with_uram = fold(graph, kv260, max_util=100.0, target_ii=slowest_interval).design.schedules["amm"]
    assert with_uram.simd * 9 >= 72                  # nt: a word is SIMD codes
    # without UltraRAM on the board the fewest multipliers win, as before
    no_uram = fold(graph, dataclasses.replace(kv260, uram=0), max_util=100.0,
                   target_ii=slowest_interval).design.schedules["amm"]
    assert (no_uram.simd, no_uram.pe) == (1, 1)


@pytest.mark.rtl
@pytest.mark.csim
def test_design_folded_for_full_uram_words_is_bit_exact(tmp_path: Path) -> None:
    """The scheduler's slowest design of a small attention graph on kv260 (its keys' word widened
    to fill a URAM row: SIMD 8 where the fewest multipliers were SIMD 1), keys placed in UltraRAM,
    is bit-exact in RTL simulation with random pauses and in C-sim."""
    from codegen.schedule.folding import fold

    require_sim_tools()
    graph = attention_graph(tokens=8, heads=2, inner=8)
    design = fold(graph, get_board("kv260"), max_util=100.0, target_ii=2 * 8 * 8).design
    s = design.schedules["amm"]
    assert (s.simd, s.pe) == (8, 1)
    assert_keys_in_uram_bit_exact(design, tmp_path, vectors=4, seed=11)
