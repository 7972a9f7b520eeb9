"""Frame buffers of contraction stages and permutations in UltraRAM (codegen/schedule/contraction_memory.py,
rtl_kernels/einhls_permute.v URAM = 1, hls_kernels/einhls_contract.h PermuteRegion<P, true>).

* the packing arithmetic, from the URAM288's shape (72 bits x 4096 words, 9-bit byte enables);
* the scheduler moves stage buffers to UltraRAM where block RAM is the fuller memory on a board
  with URAM (never on zcu102), and both back ends build them; a buffer left in block RAM is
  emitted exactly as before the option (no URAM parameter);
* a tensor-train layer with every stage buffer in UltraRAM (packs of 8, 4 and 2 rows a word) is
  bit-exact in RTL simulation (back to back, then random pauses on both sides) and C-sim, the
  extremes included (random_inputs' first two vectors are the input type's minimum and maximum);
* Yosys ``-family xcup`` maps a buffer to URAM288 where chosen, as many as estimated, and the
  block RAM path's BRAM36 as estimated;
* the URAM variant is Verilator ``-Wall`` clean at every packing.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import onnx
import pytest

from codegen.project import CompileOptions, lower
from codegen.schedule.boards import get_board
from design_sim import assert_design_bit_exact, require_sim_tools
from codegen.schedule.contraction_memory import StageBufferShape, stage_buffer_shapes
from codegen.schedule.folding import fold

from models.einsum_models import tt_model


@pytest.fixture(scope="module")
def tt_graph(tmp_path_factory):
    """768 -> 768 as 8 x 8 x 12 both sides, rank 4 (a BERT-base attention projection as a tensor
    train): stage intermediates of 8, 17 and 26 bits, buffers of 3,072 elements."""
    path = tmp_path_factory.mktemp("tt_uram") / "tt.onnx"
    onnx.save(tt_model((8, 8, 12), (8, 8, 12), (4, 4), seed=5), str(path))
    return lower(path, CompileOptions(board="zcu104"))


def test_packing_follows_the_uram288_shape() -> None:
    # 8-bit elements: 9-bit slots, 8 a 72-bit word; two frames of 4096 rows = 8192 rows, 1024
    # words: one URAM288 (block RAM: 8192 x 8 bits = two BRAM36 of 4096 x 9)
    eight = StageBufferShape(banks=1, rows=4096, bits=8)
    assert (eight.slot_bits, eight.pack, eight.uram_words, eight.uram, eight.bram36) == (9, 8, 1024, 1, 2.0)
    # 17 bits: 18-bit slots, 4 a word; 26 / 27 bits: 27-bit slots, 2 a word (54 of 72 bits)
    assert (StageBufferShape(4, 1024, 17).pack, StageBufferShape(4, 1024, 17).uram) == (4, 4)
    wide = StageBufferShape(1, 8192, 27)
    assert (wide.slot_bits, wide.pack, wide.uram_words, wide.uram) == (27, 2, 8192, 2)
    # wider than 36 bits: one element a word; a 2-row bank keeps its half bit in the address
    assert StageBufferShape(2, 4096, 40).pack == 1 and StageBufferShape(2, 4096, 40).uram == 4
    assert StageBufferShape(1, 2, 8).pack == 2


def _stage_names(graph, schedules) -> frozenset[str]:
    return frozenset(stage_buffer_shapes(graph, schedules))


def test_scheduler_moves_stage_buffers_where_block_ram_is_scarce(tt_graph, tmp_path: Path) -> None:
    from codegen.emit.hls import emit_hls
    from codegen.emit.rtl import emit_rtl

    zcu104 = get_board("zcu104")
    slow = 1024      # four banks of 768 rows a buffer: 4 to 8 BRAM36 each, or 4 URAM288
    roomy = fold(tt_graph, zcu104, target_ii=slow)
    # 12.5 of 312 BRAM36 (4%): a buffer's 4 URAM288 would put UltraRAM higher (4 of 96)
    assert roomy.design.uram_stage_buffers == frozenset()
    emit_rtl(roomy.design, tmp_path / "roomy")
    roomy_top = next((tmp_path / "roomy").rglob("einhls_top.v")).read_text()
    assert "einhls_permute" in roomy_top and ".URAM(" not in roomy_top

    tight_board = dataclasses.replace(zcu104, bram36=12)
    tight = fold(tt_graph, tight_board, target_ii=slow)
    moved = tight.design.uram_stage_buffers
    assert moved and moved <= _stage_names(tt_graph, tight.design.schedules)
    assert tight.totals["uram_stage_buffers"] == len(moved) and tight.totals["uram"] > 0
    shapes = stage_buffer_shapes(tt_graph, tight.design.schedules)
    for name in moved:   # the stage's block RAM lost the buffer's, its UltraRAM gained the packed one
        before = roomy.costs[name]
        assert tight.costs[name].uram == before.uram + shapes[name].uram
        assert tight.costs[name].bram36 == before.bram36 - shapes[name].bram36
    assert tight.totals["bram36"] <= 0.8 * tight_board.bram36
    emit_rtl(tight.design, tmp_path / "tight")
    top = next((tmp_path / "tight").rglob("einhls_top.v")).read_text()
    assert top.count(".URAM(1)") == len(moved)
    emit_hls(tight.design, tmp_path / "hls")
    params = [p.read_text() for p in (tmp_path / "hls").rglob("*_perm.h")]
    assert sum("URAM = 1," in text for text in params) == len(moved)

    # zcu102 has no UltraRAM: nothing moves
    zcu102 = fold(tt_graph, get_board("zcu102"), target_ii=slow)
    assert zcu102.design.uram_stage_buffers == frozenset()


@pytest.mark.rtl
@pytest.mark.csim
def test_tt_layer_with_every_stage_buffer_in_uram_is_bit_exact(tt_graph, tmp_path: Path) -> None:
    require_sim_tools()
    design = fold(tt_graph, get_board("zcu104")).design      # the fastest that fits: several lanes
    shapes = stage_buffer_shapes(tt_graph, design.schedules)
    assert {shape.pack for shape in shapes.values()} >= {8, 4, 2}
    design.uram_stage_buffers = frozenset(shapes)
    assert_design_bit_exact(design, tmp_path, vectors=6, seed=11)
    assert next(tmp_path.rglob("einhls_top.v")).read_text().count(".URAM(1)") == len(shapes)


def _permute_top(folder: Path, size: int, bits: int, lanes: int, banks: int, uram: int) -> None:
    """einhls_permute alone (an identity order, ``lanes`` elements a beat into ``banks`` banks)."""
    from codegen.resources import resource_dir

    folder.mkdir(parents=True)
    for name in ("einhls_permute.v", "einhls_fifo.v"):
        shutil.copy(resource_dir("rtl_kernels") / name, folder / name)
    width = lanes * bits
    (folder / "top.v").write_text(
        f"module top(input wire clk, input wire rst, input wire [{width - 1}:0] s_axis_tdata,\n"
        f"  input wire s_axis_tvalid, output wire s_axis_tready, output wire [{width - 1}:0] m_axis_tdata,\n"
        f"  output wire m_axis_tvalid, input wire m_axis_tready);\n"
        f"  einhls_permute #(.SIZE({size}), .BITS({bits}), .IN_LANES({lanes}), .OUT_LANES({lanes}),\n"
        f"    .BANKS({banks}), .DIGITS(1), .EXTENTS(256'd{size}), .STRIDES(256'd1), .URAM({uram})) u (\n"
        f"    .clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),\n"
        f"    .s_axis_tready(s_axis_tready), .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid),\n"
        f"    .m_axis_tready(m_axis_tready));\nendmodule\n")


#: (size, bits, lanes, banks): buffers of the BERT-base-sized encoder's stages (8, 17, 26 bits; 3,072
#: elements: two frames are 6,144 rows, the Verilog declares 8,192)
#: (4096, 17, 4, 4), the longest synthesis (about 90 s), runs with the slow tests: (3072, 8, 4, 4)
#: has the same four banks of four lanes in the default run
YOSYS_BUFFERS = [(3072, 26, 1, 1), pytest.param(4096, 17, 4, 4, marks=pytest.mark.slow), (3072, 8, 4, 4)]


@pytest.mark.parametrize("size, bits, lanes, banks", YOSYS_BUFFERS)
def test_yosys_xcup_counts_match_the_estimate(tmp_path: Path, size, bits, lanes, banks) -> None:
    from codegen.verify.yosys import YosysError, synth_counts

    shape = StageBufferShape(banks, -(-size // banks), bits)
    counts = {}
    for uram in (0, 1):
        folder = tmp_path / f"uram{uram}"
        _permute_top(folder, size, bits, lanes, banks, uram)
        try:
            counts[uram] = synth_counts(folder, "top", "xcup", folder / "synth")
        except YosysError as exc:
            if "not found" in str(exc):
                pytest.skip(str(exc))
            raise
    assert counts[1]["URAM"] == shape.uram and counts[1]["BRAM"] == 0
    assert counts[0]["URAM"] == 0 and counts[0]["BRAM"] == shape.bram36


#: einhls_permute URAM = 1 at each packing (8-bit: 8 rows a word, 17: 4, 26: 2, 40: 1), a buffer of
#: two rows (the packing capped by the row counter), and skewed banks with several lanes
URAM_LINT = [["-GBITS=8"], ["-GBITS=17"], ["-GBITS=26"], ["-GBITS=40"], ["-GBITS=9", "-GSIZE=2"],
             ["-GBITS=17", "-GSIZE=96", "-GIN_LANES=4", "-GOUT_LANES=2", "-GBANKS=4", "-GSKEW=2",
              "-GDIGITS=2", "-GEXTENTS=256'h0000000c00000008", "-GSTRIDES=256'h0000000100000008"]]


@pytest.mark.parametrize("params", URAM_LINT, ids=lambda p: " ".join(p))
def test_uram_variant_lint_clean(params) -> None:
    import subprocess

    from codegen.emit.rtl import LINT_WAIVERS
    from codegen.resources import resource_dir
    from codegen.verify.tools import verilator_bin

    folder = verilator_bin()
    if folder is None or not (folder / "verilator").exists():
        pytest.skip("verilator not installed")
    kernels = resource_dir("rtl_kernels")
    proc = subprocess.run([str(folder / "verilator"), "--lint-only", "-Wall", str(kernels / LINT_WAIVERS),
                           str(kernels / "einhls_fifo.v"), str(kernels / "einhls_permute.v"),
                           "--top-module", "einhls_permute", "-GURAM=1", *params], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
