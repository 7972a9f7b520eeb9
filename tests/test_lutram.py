"""Small memories in LUT RAM where block RAM is what a design runs out of (schedule/lutram.py).

* the placement: nothing moves on a board whose memory holds the design; on one whose block RAM
  does not, the residual FIFO, the Linear unit's input buffer and the LayerNorm unit's memories
  move to LUT RAM, block RAM falls by what they took and the LUTs rise by lutram_luts;
* a generated block (fork -> Linear -> Add with the residual -> LayerNorm) with those memories in
  LUT RAM: the parameters in both back ends, and bit-exact in RTL simulation (random pauses) and
  C-sim (the RTL attribute changes no behaviour; the simulation checks that the emitted design is
  still the reference's); an attention product with its a row buffer in LUT RAM, the same in RTL
  simulation.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from codegen.schedule.boards import get_board
from design_sim import assert_design_bit_exact, require_sim_tools

FEATURES = 384       # MiniLM's hidden size: a Linear input buffer of 2 x 64 words of 64 bits at SIMD 8


def residual_block(tokens: int = 4, features: int = FEATURES):
    """x -> Fork -> {Linear, Add} -> LayerNorm: the block after attention, one Linear of it."""
    from codegen.examples import random_weight
    from codegen.ir.build import make_linear
    from codegen.ir.graph import Graph
    from codegen.ir.joins import make_add, make_fork
    from codegen.ir.nonlinear import graph_op, make_layernorm
    from codegen.ir.types import QType

    rng = np.random.default_rng(5)
    x = QType(True, 8, 0.05, 3)
    mid = QType(True, 8, 0.07, -4)
    fork = make_fork("fork", "Fork_0", x, features, 2)
    weight = random_weight(rng, 16, features, QType(True, 4, narrow=True), None)
    weight = np.concatenate([weight] * (features // 16))       # features x features, cheap to draw
    lin = make_linear("lin", "Linear_0", weight, rng.integers(-300, 300, features), x, 0.05 * 2.0 ** -6, mid)
    lin = dataclasses.replace(lin, inputs=(fork.outputs[0],))
    add = make_add("add", "Add_0", x, mid, QType(True, 8, 0.09, 1), features)
    add = dataclasses.replace(add, inputs=(fork.outputs[1], lin.outputs[0]))
    unit = make_layernorm(features, add.out_type, QType(True, 8, 0.03, -2), rng.uniform(0.5, 1.5, features),
                          rng.uniform(-1, 1, features))
    norm = dataclasses.replace(graph_op("norm", "LayerNorm_0", unit), inputs=(add.outputs[0],))
    graph = Graph("block", x, features, [fork, lin, add, norm], tokens=tokens,
                  input_shape=(1, tokens, features), output_shape=(1, tokens, features))
    graph.check()
    return graph


def test_small_memories_move_to_lut_ram_only_where_block_ram_runs_out() -> None:
    from codegen.schedule.fifo_memory import fifo_shapes
    from codegen.schedule.folding import fold
    from codegen.schedule.lutram import input_buffer_shape, layernorm_luts, lutram_luts

    graph = residual_block(tokens=128)
    interval = 18_432                             # 384 x 384 weights at 8 products a cycle
    kv260 = fold(graph, get_board("kv260"), target_ii=interval)
    assert kv260.design.lutram_fifos == frozenset() and kv260.design.lutram_units == frozenset()
    # the same LUTs and UltraRAM, one block RAM: the weights stay in UltraRAM, the rest must move;
    # with no utilisation limit nothing moves (the shapes are the board's choice either way)
    tight = dataclasses.replace(get_board("kv260"), bram36=1)
    roomy = fold(graph, tight, target_ii=interval, max_util=100.0)
    assert roomy.design.lutram_fifos == frozenset() and roomy.design.lutram_units == frozenset()
    lin, norm = roomy.costs["lin"], roomy.costs["norm"]
    assert lin.input_bram36 > 0 and norm.bram36 == 1.5              # memories worth moving
    fifos = fifo_shapes(graph, roomy.design.fifo_depths, roomy.design.schedules)
    assert roomy.design.rom_kinds["lin"] == "uram"
    moved = fold(graph, tight, target_ii=interval, max_util=1.0)
    assert moved.design.schedules == roomy.design.schedules
    assert moved.design.lutram_units == frozenset({"lin", "norm"})
    assert moved.design.lutram_fifos == frozenset(key for key, shape in fifos.items() if shape.bram36)
    assert moved.totals["bram36"] == 0 < roomy.totals["bram36"]
    assert roomy.totals["bram36"] == lin.input_bram36 + norm.bram36 + sum(shape.bram36 for shape in fifos.values())
    luts = lutram_luts(*input_buffer_shape(graph.op("lin"), moved.design.schedule(graph.op("lin")))) \
        + layernorm_luts(graph.op("norm"), 1) + sum(lutram_luts(f.width, f.depth) for f in fifos.values() if f.bram36)
    assert moved.totals["lut"] - roomy.totals["lut"] == luts
    # 2 x 64 words of 64 bits: 10 RAM64M8 (7 bits each) per 64 words, a 2:1 multiplexer per bit
    assert lutram_luts(64, 128) == 8 * 10 * 2 + 64


def lutram_design(tokens: int = 4):
    from codegen.examples import manual_design

    graph = residual_block(tokens)
    design = manual_design(graph, {"fork": (1, 1, 1, 1), "lin": (8, 1, 1, 1), "add": (1, 1, 1, 1),
                                   "norm": (1, 1, 1, 1)}, board="kv260")
    design.fifo_depths[("add", 0)] = 700          # not a power of two either
    design.lutram_fifos = frozenset({("add", 0)})
    design.lutram_units = frozenset({"lin", "norm"})
    return design


def test_lut_ram_is_emitted_in_both_back_ends(tmp_path: Path) -> None:
    from codegen.emit.hls import emit_hls
    from codegen.emit.rtl import emit_rtl

    design = lutram_design()
    emit_rtl(design, tmp_path / "rtl_out")
    top = next((tmp_path / "rtl_out").rglob("einhls_top.v")).read_text()
    assert top.count(".XBUF_LUTRAM(1)") == 1 and top.count(".LUTRAM(1)") == 2 and ".DEPTH(700)" in top
    emit_hls(design, tmp_path / "hls_out")
    text = "\n".join(p.read_text() for p in (tmp_path / "hls_out").rglob("*.cpp"))
    assert text.count("type=fifo impl=lutram") == 1 and "depth=700" in text


@pytest.mark.rtl
@pytest.mark.csim
def test_lut_ram_block_is_bit_exact(tmp_path: Path) -> None:
    assert_design_bit_exact(lutram_design(), tmp_path, vectors=3, seed=4)


@pytest.mark.rtl
@pytest.mark.csim
def test_attention_product_with_its_a_buffer_in_lut_ram_is_bit_exact(tmp_path: Path) -> None:
    """tests/test_encoder_buffers.py's generated attention design (fork, packed query FIFO,
    attention product) with the product's a row buffer in LUT RAM (A_LUTRAM = 1): RTL sim with
    random pauses and C-sim, element by element."""
    from test_encoder_buffers import packed_design

    from codegen.emit.cocotb_tb import emit_cocotb_tb
    from codegen.emit.rtl import emit_rtl
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.verify.rtlsim import run_rtlsim

    require_sim_tools()
    design = packed_design(8, 2)
    design.lutram_units = frozenset({"amm"})
    emit_rtl(design, tmp_path)
    assert ".A_LUTRAM(1)" in (tmp_path / "rtl" / "einhls_top.v").read_text()
    emit_cocotb_tb(design, tmp_path)
    inputs = random_inputs(design.graph, 4, seed=8)
    expected = run_reference(design.graph, inputs)
    rtl = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work_rtl")
    assert rtl.passed, rtl.line()
