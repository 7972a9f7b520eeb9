"""Key / value buffers of the attention products in UltraRAM.

* the placement (codegen/schedule/fifo_memory.py place_memories): a b buffer moves to UltraRAM,
  with the FIFOs, most BRAM36 saved per URAM288 first, while block RAM stays the fuller memory;
  without buffers it is exactly the FIFO placement;
* the scheduler places them and both back ends build them (einhls_actmatmul B_URAM = 1: the
  banks marked ram_style "ultra"; HLS: BIND_STORAGE impl=uram);
* a generated design with its keys in UltraRAM is bit-exact in RTL simulation and C-sim.

The unit alone in UltraRAM, both buffer depths, is in tests/test_attention_units.py (the *_uram
cases); Yosys's URAM288 count of a MiniLM-sized unit is bench/attention_units.py.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from codegen.schedule.boards import get_board
from codegen.schedule.fifo_memory import BufferShape, FifoShape, place_fifos, place_memories
from design_sim import assert_design_bit_exact, require_sim_tools
from test_encoder_buffers import attention_graph, packed_design


def test_minilm_key_buffer_shape() -> None:
    # the keys of one MiniLM layer at 128 tokens, one sequence, SIMD 8 x PE 4 (nt: 4 banks of
    # 12 heads x 32 column groups x 4 k groups = 1536 words of 8 centred 9-bit codes)
    shape = BufferShape(banks=4, depth=1536, width=72)
    assert shape.uram == 4                      # one 72 x 4096 URAM288 a bank
    assert shape.bram36 == 4 * 3                # 72 bits x 1536: three 512 x 72 BRAM36 a bank


def test_fifo_placement_moves_what_place_fifos_moves_and_what_lowers_the_fuller_memory() -> None:
    board = get_board("zcu104")   # 312 BRAM36, 96 URAM288
    fifos = {("amm", 0): FifoShape(384, 8, 1, 65536), ("add", 0): FifoShape(384, 8, 1, 65536),
             ("add2", 0): FifoShape(384, 8, 1, 512)}
    # block RAM stays the fuller after every move, or UltraRAM is the fuller from the start: the
    # two rules agree
    for bram, uram in ((300.0, 10), (40.0, 90)):
        assert place_memories(fifos, {}, board, bram, uram) == (place_fifos(fifos, board, bram, uram), frozenset())
    # block RAM over budget (318 of 312), UltraRAM at 93 of 96: the first move leaves UltraRAM the
    # fuller (95 / 96 = 99% against 302 / 312 = 97%) but lowers the fuller from 102%:
    # place_memories makes it, place_fifos does not; the second would raise UltraRAM to 101%
    assert place_fifos(fifos, board, 318.0, 93) == {}
    assert place_memories(fifos, {}, board, 318.0, 93) == ({("add", 0): 8}, frozenset())


def test_buffers_move_most_efficient_first_while_block_ram_is_fuller() -> None:
    board = get_board("kv260")   # 144 BRAM36, 64 URAM288
    keys = BufferShape(4, 1536, 72)             # 12 BRAM36 or 4 URAM288: 3 per URAM
    deep = BufferShape(1, 8192, 72)             # 16 BRAM36 or 2 URAM288: 8 per URAM
    fifo = {("amm", 0): FifoShape(384, 8, 1, 65536)}   # 16 BRAM36 or 2 URAM288 packed: 8 per URAM
    # block RAM full, UltraRAM nearly free: everything moves
    fifos, buffers = place_memories(fifo, {"keys": keys, "deep": deep}, board, bram_used=140.0, uram_used=0)
    assert fifos == {("amm", 0): 8} and buffers == {"keys", "deep"}
    # UltraRAM already well used: the efficient ones move (8 BRAM36 a URAM: the FIFO first, then
    # the deep buffer; block RAM 108 / 144 = 75%, UltraRAM 44 / 64), then the keys' 4 URAM288 would
    # put UltraRAM at 48 / 64 = 75%, no lower than block RAM now: they stay
    fifos, buffers = place_memories(fifo, {"keys": keys, "deep": deep}, board, bram_used=140.0, uram_used=40)
    assert fifos == {("amm", 0): 8} and buffers == {"deep"}
    # no UltraRAM on the board: nothing moves
    assert place_memories(fifo, {"keys": keys}, get_board("pynq-z2"), 200.0, 0) == ({}, frozenset())


def test_scheduler_puts_keys_in_uram_and_both_back_ends_build_them(tmp_path: Path) -> None:
    from codegen.emit.hls import emit_hls
    from codegen.emit.rtl import emit_rtl
    from codegen.schedule.folding import fold

    graph = attention_graph(tokens=512, heads=12, inner=32)
    zcu104 = get_board("zcu104")
    roomy = fold(graph, zcu104)
    assert roomy.design.uram_buffers == frozenset()      # block RAM is not the fuller: it stays
    # a board with little block RAM and the same UltraRAM: the keys go to UltraRAM
    small = dataclasses.replace(zcu104, bram36=40)
    tight = fold(graph, small)
    assert tight.design.uram_buffers == {"amm"}
    assert tight.totals["uram_buffers"] == 1 and tight.totals["bram36"] <= 0.8 * small.bram36
    assert tight.costs["amm"].uram > 0
    emit_rtl(tight.design, tmp_path / "rtl")
    top = next((tmp_path / "rtl").rglob("einhls_top.v")).read_text()
    assert ".B_URAM(1)" in top
    emit_hls(tight.design, tmp_path / "hls")
    params = "\n".join(p.read_text() for p in (tmp_path / "hls").rglob("params_*amm*.h"))
    assert "B_URAM = 1" in params
    # and the same graph without URAM on the board is refused or stays in block RAM
    no_uram = fold(graph, dataclasses.replace(zcu104, uram=0))
    assert no_uram.design.uram_buffers == frozenset()


@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.parametrize("b_sequences", [2, 1])
def test_design_with_keys_in_uram_is_bit_exact(tmp_path: Path, b_sequences: int) -> None:
    """The generated top (fork, the query FIFO packed in UltraRAM, the attention product with its
    keys in UltraRAM) is bit-exact in RTL simulation with random pauses and in C-sim."""
    require_sim_tools()
    design = packed_design(8, b_sequences)
    assert_keys_in_uram_bit_exact(design, tmp_path, vectors=5, seed=7)


def assert_keys_in_uram_bit_exact(design, out: Path, vectors: int, seed: int) -> None:
    """``design`` with its attention product's keys in UltraRAM: the top instantiates the URAM
    variant, and RTL sim (random pauses) and C-sim match the reference element by element."""
    design.uram_buffers = frozenset({"amm"})
    assert_design_bit_exact(design, out, vectors, seed)
    assert ".B_URAM(1)" in next(out.rglob("einhls_top.v")).read_text()
