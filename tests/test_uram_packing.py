"""Narrow weight ROMs packed into UltraRAM rows: the cost model (schedule/cost.py uram_packing),
the packed ROM image of the Verilog and HLS emitters, and bit-exact RTL sim and C-sim of packed
Linear units (dense 4-bit, N:M 1:8 and 2:8, word widths that do not divide 72) against the
reference."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from codegen.emit.hls import emit_csim_testbench, emit_hls
from codegen.emit.rtl import emit_rtl
from codegen.emit.cocotb_tb import emit_cocotb_tb
from codegen.examples import linear_graph, manual_design
from codegen.ir.reference import random_inputs, run_reference
from codegen.ir.types import QType
from codegen.schedule.boards import get_board
from codegen.schedule.cost import OpCost, bram36_for, place_roms, uram_for, uram_packing
from codegen.schedule.design import Design, linear_folds

from test_hls_units import needs_csim


def _s(bits: int, scale: float = 2.0 ** -4) -> QType:
    return QType(True, bits, scale)


# name: (K, N, weight bits, N:M, (SIMD, PE, IN_LANES, OUT_LANES), weight word bits, words per row).
# The depths (NF x KF steps) are the smallest that make the packing worth its rows: a URAM288 is
# 4096 rows deep, so packing saves blocks only beyond 4096 steps.
PACKED = {
    # 4-bit dense, SIMD 1 x PE 1: a 4-bit word, 33,024 steps: 9 URAM288 unpacked, 1 with 9 words
    # (36 bits) per row
    "dense_w4_9_per_row": (258, 128, 4, None, (1, 1, 6, 4), 4, 9),
    # 1:8 4-bit at SIMD 8: one slot of 4 + 3 index bits = 7 bits (72 / 7 is not whole), 20,480
    # steps: 5 blocks unpacked, 1 with 5 words (35 bits) per row
    "sparse_1_8_7bit_5_per_row": (1024, 160, 4, (1, 8), (8, 1, 16, 4), 7, 5),
    # 2:8 4-bit at SIMD 8: two 7-bit slots = 14 bits, 10,240 steps: 3 blocks, 1 with 3 per row
    "sparse_2_8_14bit_3_per_row": (512, 160, 4, (2, 8), (8, 1, 8, 4), 14, 3),
    # 2:8 4-bit at SIMD 16 x PE 1: 28 bits, 4,290 steps: 2 blocks, 1 with 2 per row
    "sparse_2_8_28bit_2_per_row": (520, 130, 4, (2, 8), (16, 1, 8, 2), 28, 2),
    # 1:8 4-bit at SIMD 8 x PE 3: a 21-bit word of three PEs, 32 x 134 = 4,288 steps (N = 400 is
    # not a multiple of PE): 2 blocks, 1 with 2 steps of all three PEs per row
    "sparse_1_8_pe3_2_per_row": (256, 400, 4, (1, 8), (8, 3, 8, 3), 21, 2),
}


def packed_design(name: str) -> Design:
    k, n, w_bits, sparsity, schedule, _, _ = PACKED[name]
    graph = linear_graph(k, n, _s(8), w_bits, _s(8, 2.0 ** -2), sparsity=sparsity, seed=41,
                         per_channel=sparsity == (2, 8))
    design = manual_design(graph, {"layer0": schedule}, board="kv260")
    design.rom_kinds = {"layer0": "uram"}
    return design


def test_packing_counts_rows_not_words() -> None:
    # 7-bit words of a 1:8 4-bit layer at PE 1: unpacked each URAM288 holds 4096 x 7 of its 72 x 4096
    assert uram_for(7, 16384) == 4
    p = uram_packing(7, 16384)
    assert (p.words_per_row, p.rows, p.row_bits, p.uram) == (4, 4096, 28, 1)
    p = uram_packing(7, 20480)      # deeper: 5 words (35 bits) per row, not a power of two
    assert (p.words_per_row, p.rows, p.row_bits, p.uram) == (5, 4096, 35, 1)
    # a 2:8 4-bit attention projection of MiniLM at SIMD 8 x PE 1 (14 bits x 18,432): 2 blocks at
    # any power of two, 1 at 5 words per row
    assert uram_for(14, 18432) == 5
    assert uram_for(4 * 14, 18432 // 4) == uram_for(8 * 14, 18432 // 8) == 2
    assert uram_packing(14, 18432).words_per_row == 5 and uram_packing(14, 18432).uram == 1
    # a 144-bit row (two blocks side by side) where that packs better: 48-bit words 12,288 deep,
    # 3 blocks unpacked, 2 with three words per row
    p = uram_packing(48, 12288)
    assert (p.words_per_row, p.row_bits, p.uram) == (3, 144, 2) and uram_for(48, 12288) == 3
    # packing that saves no block is not done (a narrow but shallow ROM, a wide word)
    assert uram_packing(7, 4096).words_per_row == 1 and uram_packing(7, 4096).uram == 1
    assert uram_packing(256, 4096).words_per_row == 1
    # ties keep fewer words per row: 36-bit words 8192 deep need 1 block at k = 2 and at k = 4 (2 columns x 2048)
    assert uram_packing(36, 8192).words_per_row == 2
    # the select multiplexer: none for one word per row, about (k - 1) / 3 LUT6 per word bit
    assert uram_packing(7, 4096).select_luts == 0
    assert uram_packing(7, 16384).select_luts == 7 * 1 and uram_packing(7, 20480).select_luts == 7 * 2
    for name, (*_, word_bits, per_row) in PACKED.items():
        design = packed_design(name)
        op = design.graph.ops[0]
        nf, kf = linear_folds(op, design.schedule(op))
        assert uram_packing(word_bits, nf * kf).words_per_row == per_row, name
        assert uram_packing(word_bits, nf * kf).uram < uram_for(word_bits, nf * kf), name


def _rom(width: int, depth: int) -> OpCost:
    bram = bram36_for(width, depth)
    return OpCost(cycles=depth, ii=depth, latency=depth, multipliers=1, dense_multipliers=1, dsp=0,
                  bram36=bram, lut=0, ff=0, macs=0, effective_macs=0, weight_bits=width * depth,
                  rom_kind="bram" if bram else "lutram", rom_width=width, rom_depth=depth)


def test_placement_uses_the_packed_count() -> None:
    """A narrow deep ROM (7 bits x 32768: 7 BRAM36 of 1 x 32768) moves to UltraRAM at its packed
    cost (1 URAM288 with 8 words per row, not the 8 blocks of one word per row) and pays the
    select multiplexer in LUTs."""
    costs = {"narrow": _rom(7, 32768)}
    assert costs["narrow"].bram36 == 7
    place_roms(costs, get_board("kv260"))
    c = costs["narrow"]
    assert (c.rom_kind, c.uram, c.bram36, c.rom_words_per_row) == ("uram", 1, 0.0, 8)
    assert c.lut == 7 * 3


def test_packed_rom_image_holds_consecutive_words(tmp_path: Path) -> None:
    """Row r of the packed .mem file holds words r*k .. r*k+k-1 of the unpacked image (word i at
    bits [i * width, ...)), the tail zero; the HLS header holds the same rows."""
    name = "sparse_2_8_28bit_2_per_row"
    design = packed_design(name)
    *_, word_bits, per_row = PACKED[name]
    emit_rtl(design, tmp_path / "uram")
    unpacked_design = packed_design(name)
    unpacked_design.rom_kinds = {"layer0": "bram"}
    emit_rtl(unpacked_design, tmp_path / "bram")
    words = [int(w, 16) for w in (tmp_path / "bram" / "rtl" / "layer0_weights.mem").read_text().split()]
    rows = [int(w, 16) for w in (tmp_path / "uram" / "rtl" / "layer0_weights.mem").read_text().split()]
    assert len(rows) == math.ceil(len(words) / per_row)
    padded = words + [0] * (len(rows) * per_row - len(words))
    for r, row in enumerate(rows):
        assert row == sum(padded[r * per_row + i] << (i * word_bits) for i in range(per_row)), r
    top = (tmp_path / "uram" / "rtl" / f"{design.top_name}.v").read_text()
    assert ".WORDS_PER_ROW(2)" in top and ".ROM_KIND(2)" in top
    assert f"input  wire [{per_row * word_bits - 1}:0]" in top   # w_load_data carries a row
    assert "WORDS_PER_ROW" not in (tmp_path / "bram" / "rtl" / f"{design.top_name}.v").read_text()

    emit_hls(design, tmp_path / "uram")
    header = next((tmp_path / "uram" / "hls").glob("*layer0*.h")).read_text()
    assert "WORDS_PER_ROW = 2;" in header and "ROM_BANKS = 1," in header and "LIMB_BITS = 8;" in header
    start = header.index("weights[cfg::ROM_BANKS]")
    body = header[start:header.index("bias[", start)]
    limbs = [[int(h, 16) for h in re.findall(r"0x([0-9a-f]+)", group)] for group in re.findall(r"\{(0x[^{}]*)\}", body)]
    assert [sum(v << (8 * j) for j, v in enumerate(limb)) for limb in limbs] == rows


# RTL sim takes 25-35 s per case here (mostly the Verilator build): three in the default run, the
# other two (also in the default C-sim run) marked slow
RTL_SLOW = {"sparse_2_8_14bit_3_per_row", "sparse_2_8_28bit_2_per_row"}


@pytest.mark.rtl
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in RTL_SLOW else n for n in PACKED])
def test_packed_uram_linear_rtlsim_bit_exact(name: str, tmp_path: Path) -> None:
    from codegen.verify.rtlsim import run_rtlsim
    design = packed_design(name)
    emit_rtl(design, tmp_path)
    emit_cocotb_tb(design, tmp_path)
    assert f".WORDS_PER_ROW({PACKED[name][-1]})" in (tmp_path / "rtl" / f"{design.top_name}.v").read_text()
    inputs = random_inputs(design.graph, 3, seed=7)
    expected = run_reference(design.graph, inputs)
    result = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work", seed=7)
    assert result.passed, result.line()
    np.testing.assert_array_equal(result.outputs, expected)
    op = design.graph.ops[0]
    nf, kf = linear_folds(op, design.schedule(op))
    assert nf * kf <= result.measured["interval_cycles"] <= nf * kf + 2   # the packing costs no cycles


@needs_csim
@pytest.mark.parametrize("name", PACKED)
def test_packed_uram_linear_csim_bit_exact(name: str, tmp_path: Path) -> None:
    from codegen.verify.csim import run_csim
    design = packed_design(name)
    emit_hls(design, tmp_path)
    emit_csim_testbench(design, tmp_path)
    header = next((tmp_path / "hls").glob("*layer0*.h")).read_text()
    assert f"WORDS_PER_ROW = {PACKED[name][-1]};" in header and "ROM_KIND = 2" in header
    inputs = random_inputs(design.graph, 6, seed=9)
    expected = run_reference(design.graph, inputs)
    result = run_csim(tmp_path, inputs, expected, tmp_path / "work")
    assert result.passed, result.line()
    np.testing.assert_array_equal(result.outputs, expected)


def test_placement_counts_the_block_ram_of_other_memories() -> None:
    """A 72 x 600 ROM (2 BRAM36, 1.4% of the kv260's; 1 URAM288, 1.6%) stays in block RAM on its
    own, and moves to UltraRAM when FIFOs and buffers already take 100 BRAM36 (block RAM at 71%)."""
    board = get_board("kv260")
    alone = {"rom": _rom(72, 600)}
    place_roms(alone, board)
    assert (alone["rom"].rom_kind, alone["rom"].bram36) == ("bram", 2)
    crowded = {"rom": _rom(72, 600)}
    place_roms(crowded, board, fixed_bram36=100)
    assert (crowded["rom"].rom_kind, crowded["rom"].uram, crowded["rom"].bram36) == ("uram", 1, 0.0)
