"""Memory of the attention buffers and of the FIFOs between paths at long sequences.

* FIFOs packed into UltraRAM words (codegen/schedule/fifo_memory.py): the shapes, the placement
  by memory balance, and a generated design whose query FIFO is packed in UltraRAM, bit-exact in
  RTL simulation (random pauses) and C-sim;
* one sequence of keys / values per attention product (codegen/schedule/buffers.py): chosen by
  the scheduler only when two do not fit, with the interval it costs; the same generated design
  with a one-sequence unit, bit-exact, its measured interval equal to the unit's formula.

The units alone (both buffer depths, every layout) are tests/test_attention_units.py.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from codegen.schedule.boards import get_board
from design_sim import assert_design_bit_exact, require_sim_tools
from codegen.schedule.fifo_memory import FifoShape, fifo_memory, place_fifos


def test_a_sequence_long_fifo_packs_into_two_urams() -> None:
    # the query FIFO of a MiniLM layer at 128 tokens and one 8-bit lane: 65,536 beats
    shape = FifoShape(size=384, bits=8, lanes=1, depth=65536)
    assert shape.bram36 == 16
    assert shape.packed_lanes == 8                 # 64 bits: 9 lanes do not divide 384
    assert shape.packed_depth == 8192 and shape.uram == 2
    # as it streams (8 bits wide) the same FIFO would cascade 16 URAM288
    from codegen.schedule.cost import uram_for
    assert uram_for(8, 65536) == 16
    # a stream already 72 bits wide is not packed further
    wide = FifoShape(size=72, bits=8, lanes=9, depth=4096)
    assert wide.packed_lanes == 9 and wide.packed_depth == 4096


def test_fifos_move_to_uram_only_while_block_ram_is_fuller() -> None:
    board = get_board("zcu104")   # 312 BRAM36, 96 URAM288
    long = {("amm", 0): FifoShape(384, 8, 1, 65536), ("add", 0): FifoShape(384, 8, 1, 65536)}
    short = {("add2", 0): FifoShape(384, 8, 1, 512)}
    # block RAM far fuller than UltraRAM: both long FIFOs move, the short one stays
    placed = place_fifos({**long, **short}, board, bram_used=300.0, uram_used=10)
    assert placed == {("amm", 0): 8, ("add", 0): 8}
    bram, uram, lut, bits = fifo_memory({**long, **short}, placed)
    assert uram == 4 and bram == FifoShape(384, 8, 1, 512).bram36 and bits == 8 * (2 * 65536 + 512)
    # UltraRAM already the fuller: nothing moves
    assert place_fifos(long, board, bram_used=40.0, uram_used=90) == {}
    # no UltraRAM on the board
    assert place_fifos(long, get_board("pynq-z2"), bram_used=200.0, uram_used=0) == {}


def attention_graph(tokens: int, heads: int = 2, inner: int = 3):
    """x -> Fork -> ActMatMul(x, x) (nt): the scores of a sequence against itself."""
    from codegen.ir.attention import make_actmatmul
    from codegen.ir.graph import Graph
    from codegen.ir.joins import make_fork
    from codegen.ir.types import QType

    x = QType(True, 8, 0.05, 3)
    fork = make_fork("fork", "Fork_0", x, heads * inner, 2)
    amm = make_actmatmul("amm", "MatMul_0", x, x, heads, inner, tokens, tokens, "nt", QType(True, 8, 0.05, -2),
                         0.002, inputs=(fork.outputs[0], fork.outputs[1]))
    return Graph("xxt", x, heads * inner, [fork, amm], tokens=tokens, input_shape=(1, tokens, heads * inner),
                 output_shape=(1, tokens, heads * tokens))


def test_scheduler_holds_one_sequence_only_when_two_do_not_fit() -> None:
    from codegen.schedule.folding import fold

    from codegen.schedule.attention_cost import actmatmul_cost

    graph = attention_graph(tokens=512, heads=12, inner=32)
    roomy = dataclasses.replace(get_board("zcu104"), uram=0)
    result = fold(graph, roomy)
    assert result.totals["b_sequences"] == 2 and result.design.buffer_sequences == {}
    # the slowest design (one MAC): its block RAM with two sequences of keys, and what one saves
    amm = graph.ops[1]
    slowest = fold(graph, roomy, target_ii=amm.heads * amm.inner * amm.cols)
    s = slowest.design.schedule(amm)
    saved = actmatmul_cost(amm, s, roomy.dsp_kind, 2).bram36 - actmatmul_cost(amm, s, roomy.dsp_kind, 1).bram36
    assert saved > 0
    # a board whose block RAM (at 80%) holds the slowest design with one sequence but not with two
    small = dataclasses.replace(roomy, bram36=(slowest.totals["bram36"] - saved / 2) / 0.8)
    tight = fold(graph, small)
    assert tight.totals["b_sequences"] == 1 and tight.design.buffer_sequences == {"amm": 1}
    assert tight.totals["bram36"] <= 0.8 * small.bram36
    # a sequence loads at the pipeline's rate, then its rows run at that rate at best
    rate = tight.totals["rate_ii"]
    assert tight.totals["frame_interval"] == graph.tokens * (rate + max(rate, tight.costs["amm"].cycles))
    assert any("one sequence of keys / values" in note for note in tight.notes)
    # nothing at all fits: the refusal says what one sequence would still need
    from codegen.errors import EinhlsError
    with pytest.raises(EinhlsError, match="with one sequence of keys / values per attention product: BRAM36"):
        fold(graph, dataclasses.replace(roomy, bram36=80))


def packed_design(tokens: int, b_sequences: int):
    """The graph above at hand-chosen parallelism, its query FIFO a sequence deep, in UltraRAM
    (packed 6 lanes a word), the unit holding ``b_sequences`` sequences of keys."""
    from codegen.examples import manual_design

    graph = attention_graph(tokens)
    design = manual_design(graph, {"fork": (2, 2, 2, 2), "amm": (3, 2, 2, 4)}, board="zcu104")
    depth = 1 << (tokens * 3 + 4 - 1).bit_length()    # a sequence of 3 beats a token, and slack
    design.fifo_depths[("amm", 0)] = depth
    design.uram_fifos[("amm", 0)] = FifoShape(6, 8, 2, depth).packed_lanes
    if b_sequences == 1:
        design.buffer_sequences["amm"] = 1
    return design


def test_packed_fifo_is_emitted_in_both_back_ends(tmp_path: Path) -> None:
    from codegen.emit.hls import emit_hls
    from codegen.emit.rtl import emit_rtl

    design = packed_design(8, 1)
    emit_rtl(design, tmp_path / "rtl_out")
    top = next((tmp_path / "rtl_out").rglob("einhls_top.v")).read_text()
    assert ".URAM(1)" in top and top.count("einhls_lanes") >= 2 and ".B_SEQS(1)" in top
    emit_hls(design, tmp_path / "hls_out")
    text = "\n".join(p.read_text() for p in (tmp_path / "hls_out").rglob("*.cpp"))
    assert "type=fifo impl=uram" in text
    params = "\n".join(p.read_text() for p in (tmp_path / "hls_out").rglob("params_*amm*.h"))
    assert "B_SEQS = 1" in params


@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.parametrize("b_sequences", [2, 1])
def test_packed_fifo_and_one_sequence_are_bit_exact(tmp_path: Path, b_sequences: int) -> None:
    """The generated top (fork, the query FIFO packed in UltraRAM, the attention product) is
    bit-exact in RTL simulation with random pauses and in C-sim; with one sequence of keys its
    measured interval is the load after the rows (measured 84 cycles a sequence of 8 tokens,
    the unit's formula 82, 88 without the converter's prefetch)."""
    from codegen.schedule.attention_cost import actmatmul_cost, folding, sequence_cycles

    design = packed_design(8, b_sequences)
    rtl = assert_design_bit_exact(design, tmp_path, vectors=5, seed=3)
    amm = design.graph.ops[1]
    s = design.schedule(amm)
    if b_sequences == 1:
        # between the unit's formula with its b stream at full rate (the converter in front of the
        # loader holds a few beats of the next sequence; measured exact for the unit alone) and the
        # same without that prefetch: here the fork also feeds the query FIFO, so fewer wait
        f = folding(amm, s)
        rows = amm.tokens * amm.heads * (amm.inner // f.simd) * (amm.cols // f.pe)
        no_prefetch = rows + amm.tokens * max(amm.in_size_b // f.b_lanes, amm.in_size_b // f.simd)
        assert sequence_cycles(amm, f, 1) <= rtl.measured["interval_cycles"] <= no_prefetch, rtl.measured
    else:
        assert rtl.measured["interval_cycles"] == amm.tokens * actmatmul_cost(amm, s, "DSP48E2").ii, rtl.measured


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.csim
def test_small_encoder_with_one_sequence_buffers_is_bit_exact(tmp_path: Path, monkeypatch) -> None:
    """Two BERT encoder layers (hidden 32, 2 heads, FFN 64, random weights, the attention mask
    input; tests/models/minilm_mask.py) at 64 tokens on a zcu104 whose block RAM (no UltraRAM)
    holds one sequence of keys / values per attention product but not two: the scheduler chooses
    one, and the design is bit-exact in RTL sim (back to back and with random pauses) and C-sim;
    the measured interval is at least the pipeline's rate per token and at most the schedule's
    estimate (load, then rows, each at that rate: schedule/buffers.py)."""
    import codegen.project as project_module
    from codegen.project import CompileOptions, compile_model, lower
    from codegen.schedule.attention_cost import actmatmul_cost
    from codegen.schedule.folding import fold
    from codegen.verify.runner import verify
    from models import minilm_mask

    require_sim_tools()
    tokens = 64
    path = minilm_mask.export_small_masked_layer(tmp_path / "small.onnx", tokens, 32, layers=2)
    roomy = dataclasses.replace(get_board("zcu104"), uram=0)
    graph = lower(path, CompileOptions(board="zcu104"))
    slowest = fold(graph, roomy, target_ii=10 ** 6)      # every op at its cheapest folding
    saved = 0.0
    for op in graph.ops:
        if op.kind == "actmatmul":
            s = slowest.design.schedule(op)
            saved += actmatmul_cost(op, s, roomy.dsp_kind, 2).bram36 - actmatmul_cost(op, s, roomy.dsp_kind, 1).bram36
    assert saved > 0
    small = dataclasses.replace(roomy, bram36=(slowest.totals["bram36"] - saved / 2) / 0.8)
    monkeypatch.setattr(project_module, "get_board", lambda name: small)
    project = compile_model(path, tmp_path / "out", CompileOptions(board="zcu104"), progress=lambda *_: None)
    totals = project.report["totals"]
    assert totals["b_sequences"] == 1 and set(project.report["buffer_sequences"].values()) == {1}
    (rtl,) = verify(project, ("rtlsim",), vectors=3, stored=2, progress=lambda *_: None)
    assert rtl.passed, rtl.line()
    measured = rtl.measured["interval_cycles"]
    print(f"one-sequence encoder: measured {measured} cycles a sequence, rate {totals['rate_ii']} x {tokens} = "
          f"{totals['rate_ii'] * tokens}, estimate {totals['frame_interval']}; latency {rtl.measured.get('latency_cycles')}")
    assert tokens * totals["rate_ii"] <= measured <= totals["frame_interval"], (rtl.measured, totals)
    (csim,) = verify(project, ("csim",), vectors=3, stored=2, progress=lambda *_: None)
    assert csim.passed, csim.line()
