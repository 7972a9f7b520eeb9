"""Unit tests of the scheduler: cost model, folding, board budgets."""
import math

import numpy as np
import pytest

from codegen.errors import EinhlsError
from codegen.examples import chain_graph, linear_graph
from codegen.ir.types import QType
from codegen.schedule.boards import get_board, known_boards
from codegen.schedule.cost import HLS_WORD_LIMIT_BITS, bram36_for, linear_cost, op_cost, uram_packing
from codegen.schedule.design import OpSchedule, StreamFormat
from codegen.schedule.folding import fits, fold, linear_options

REQUIRED = {"pynq-z2", "ultra96-v2", "kv260", "zcu104"}


def test_boards_describe_required_fields():
    boards = known_boards()
    assert REQUIRED <= set(boards)
    for b in boards.values():
        assert b.part and b.lut > 0 and b.ff > 0 and b.bram36 > 0 and b.dsp > 0 and b.clock_mhz > 0
        if b.open_flow:   # Lattice ECP5: no processing system, a UART host link, pins for the board top
            assert (b.family, b.dsp_kind, b.lut_kind, b.bram_kind) == ("ecp5", "MULT18X18D", "LUT4", "DP16KD")
            assert b.ps == "none" and b.bram36 == b.bram_blocks / 2
            assert b.nextpnr_device and b.package == "CABGA381" and b.oscillator["mhz"] == b.clock_mhz
            assert b.uart["rx_site"] and b.uart["tx_site"] and b.uart["baud"] > 0
            continue
        assert b.dsp_kind in ("DSP48E1", "DSP48E2")
        assert b.ps in ("processing_system7", "zynq_ultra_ps_e")
        assert (b.family == "zynq7000") == (b.ps == "processing_system7") == (b.dsp_kind == "DSP48E1")


def test_unknown_board_is_bad_input():
    with pytest.raises(EinhlsError, match="unknown board"):
        get_board("zedboard-9000")


def test_stream_pack_roundtrip_signed_and_padding():
    fmt = StreamFormat(size=7, bits=5, signed=True, lanes=3)
    codes = np.array([-16, 15, -1, 0, 7, -8, 3])
    beats = fmt.pack(codes)
    assert len(beats) == 3 and fmt.beats == 3
    assert beats[2] >> 5 == 0  # padding lanes are zero
    assert np.array_equal(fmt.unpack(beats), codes)
    assert fmt.tdata_bits == 16


def test_sparse_layer_uses_half_the_multipliers_at_same_cycles():
    in_t = QType(True, 8, 2.0 ** -4)
    dense = linear_graph(64, 64, in_t, 8, QType(True, 8, 2.0 ** -3), seed=1).ops[0]
    sparse = linear_graph(64, 64, in_t, 8, QType(True, 8, 2.0 ** -3), sparsity=(2, 4), seed=1).ops[0]
    s = OpSchedule("layer0", simd=8, pe=8, in_lanes=8, out_lanes=8)
    cd, cs = linear_cost(dense, s, "DSP48E1"), linear_cost(sparse, s, "DSP48E1")
    assert cd.cycles == cs.cycles == 64
    assert cs.multipliers * 2 == cd.multipliers == 64
    assert cs.dense_multipliers == cd.multipliers


def test_linear_options_respect_group_multiple():
    op = linear_graph(13, 7, QType(True, 8), 4, None, sparsity=(2, 4)).ops[0]
    for cycles, simd, pe in linear_options(op):
        assert simd % 4 == 0
        assert cycles == math.ceil(13 / simd) * math.ceil(7 / pe)


def test_linear_options_stay_within_the_hls_word_limit():
    """A BERT-base 2:4 int4 feed-forward layer folded for zcu104 once took SIMD 768 x PE 3 (a
    768-input word of 6,144 bits), which the HLS emitter then refused: no option may exceed the
    limit, per PE weight word, input word or output row."""
    op = linear_graph(3072, 768, QType(True, 8, 2.0 ** -4), 4, QType(True, 8, 2.0 ** -3), sparsity=(2, 4)).ops[0]
    options = linear_options(op)
    assert options and all(simd // 4 * 2 * (4 + 2) <= HLS_WORD_LIMIT_BITS and simd * 8 <= HLS_WORD_LIMIT_BITS
                           and pe * 8 <= HLS_WORD_LIMIT_BITS for _, simd, pe in options)
    assert max(simd for _, simd, _ in options) == 512   # 256 slots x 6 bits = 1536 <= 4096 < 3072 x 8
    # a packed UltraRAM row is one ap_uint too
    assert all(p.row_bits <= HLS_WORD_LIMIT_BITS for p in (uram_packing(w, 20000) for w in (7, 70, 700, 3000)))


def test_bram_model():
    assert bram36_for(8, 64) == 0  # 512 bits: LUTs
    assert bram36_for(64, 64) == 0  # shallow: LUTs
    assert bram36_for(64, 1024) == 2
    assert bram36_for(512, 512) == 8  # 512/72 -> 8 wide at depth 512


@pytest.mark.parametrize("board", sorted(REQUIRED))
def test_fold_fits_and_balances(board):
    g = chain_graph()
    r = fold(g, get_board(board))
    assert not fits(r.totals, get_board(board), 0.8)
    for op in g.ops:
        assert r.costs[op.name].ii <= r.target_ii
    # every stream edge is consistent between producer and consumer
    scheds = [r.design.schedules[op.name] for op in g.ops]
    for a, b in zip(scheds, scheds[1:]):
        assert a.out_lanes == b.in_lanes


def test_fold_smaller_board_is_not_faster():
    g = linear_graph(256, 128, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=3)
    small = fold(g, get_board("pynq-z2"))
    big = fold(g, get_board("zcu104"))
    assert big.target_ii <= small.target_ii
    assert small.totals["dsp"] <= 0.8 * get_board("pynq-z2").dsp


def test_fold_target_ii_is_honoured_or_refused():
    g = linear_graph(64, 64, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3))
    r = fold(g, get_board("pynq-z2"), target_ii=64)
    assert r.target_ii == 64 and r.totals["ii"] <= 64
    with pytest.raises(EinhlsError, match="does not fit"):
        fold(g, get_board("pynq-z2"), target_ii=1)


def test_over_budget_design_names_the_layer():
    g = linear_graph(4096, 4096, QType(True, 16, 2.0 ** -4), 16, QType(True, 16, 2.0 ** -3))
    with pytest.raises(EinhlsError, match="layer0") as info:
        fold(g, get_board("pynq-z2"), max_util=0.001)
    # 256 Mb of weights: refused by the capacity check before folding
    assert "the weights do not fit on chip" in str(info.value)


def test_requant_costs_no_dsp_for_power_of_two():
    g = chain_graph()
    op = g.op("rq_in")
    c = op_cost(op, OpSchedule(op.name, 4, 4, 4, 4), "DSP48E1")
    assert c.dsp == 0
