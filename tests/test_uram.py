"""Weight memories in LUTs, block RAM or UltraRAM: the placement decision, the emitted RTL / HLS,
Yosys counts on an UltraScale+ family, and one MiniLM feed-forward block compiled for kv260."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from codegen.emit.hls import emit_hls
from codegen.emit.rtl import emit_rtl
from codegen.examples import linear_graph, manual_design
from codegen.ir.types import QType
from codegen.project import CompileOptions, compile_model
from codegen.schedule.boards import get_board
from codegen.schedule.cost import OpCost, bram36_for, place_roms, uram_for
from codegen.schedule.folding import fits

sys.path.insert(0, str(Path(__file__).parent))
from models.minilm_ffn import minilm_ffn  # noqa: E402

QUIET = {"progress": lambda *a: None}


def _rom(width: int, depth: int) -> OpCost:
    bram = bram36_for(width, depth)
    return OpCost(cycles=depth, ii=depth, latency=depth, multipliers=1, dense_multipliers=1, dsp=0,
                  bram36=bram, lut=0, ff=0, macs=0, effective_macs=0, weight_bits=width * depth,
                  rom_kind="bram" if bram else "lutram", rom_width=width, rom_depth=depth)


def test_uram_shape() -> None:
    assert uram_for(72, 4096) == 1
    assert uram_for(73, 4096) == 2 and uram_for(72, 4097) == 2
    assert uram_for(224, 2640) == 4    # four 72-bit columns, one 4096-word row


def test_placement_moves_large_roms_only_while_block_ram_is_the_scarcer() -> None:
    board = get_board("kv260")     # 144 BRAM36, 64 URAM288
    costs = {"big_a": _rom(288, 4096), "big_b": _rom(288, 4096), "small": _rom(36, 1024), "lut": _rom(8, 32),
             "half": _rom(18, 1024)}
    assert costs["big_a"].bram36 == 32 and costs["small"].bram36 == 1 and costs["lut"].rom_kind == "lutram"
    assert costs["half"].bram36 == 0.5     # fits one RAMB18
    place_roms(costs, board)
    # 65.5 BRAM36 of 144 (45%) before: moving a big ROM (32 BRAM36 -> 4 URAM288, 6% of the URAMs)
    # lowers the busier memory; after both moved, BRAM is at 1% and the 1-BRAM ROM would cost
    # 1 URAM (1.6%): it stays
    assert [costs[n].rom_kind for n in ("big_a", "big_b", "small", "lut", "half")] == \
        ["uram", "uram", "bram", "lutram", "bram"]
    assert (costs["big_a"].uram, costs["big_a"].bram36) == (4, 0.0)
    assert costs["small"].bram36 == 1 and costs["small"].uram == 0


def test_no_uram_on_boards_without_it() -> None:
    costs = {"big": _rom(288, 4096)}
    place_roms(costs, get_board("zcu102"))
    assert costs["big"].rom_kind == "bram" and costs["big"].uram == 0


def test_fits_counts_uram_against_its_budget() -> None:
    board = get_board("kv260")
    totals = {"dsp": 0, "bram36": 0, "uram": 60, "lut": 0, "ff": 0}
    assert fits(totals, board, 0.8) == ["URAM 60 > 80% of 64"]
    assert fits({**totals, "uram": 51}, board, 0.8) == []


def test_emitted_rtl_and_hls_carry_the_rom_kind(tmp_path: Path) -> None:
    graph = linear_graph(64, 32, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=3)
    design = manual_design(graph, {"layer0": (8, 4, 8, 4)}, board="kv260")
    design.rom_kinds = {"layer0": "uram"}
    emit_rtl(design, tmp_path)
    emit_hls(design, tmp_path)
    top = (tmp_path / "rtl" / f"{design.top_name}.v").read_text()
    assert ".ROM_KIND(2)" in top
    assert "input  wire [31:0]         u0_layer0_w_load_addr" in top
    assert ".w_load_en(u0_layer0_w_load_en)" in top
    params = next((tmp_path / "hls").glob("*layer0*.h")).read_text()
    assert "ROM_KIND = 2" in params
    design.rom_kinds = {"layer0": "bram"}
    emit_rtl(design, tmp_path / "b")
    top = (tmp_path / "b" / "rtl" / f"{design.top_name}.v").read_text()
    assert ".ROM_KIND(1)" in top and ".w_load_en(1'd0)" in top and "w_load_addr," not in top


@pytest.mark.rtl
def test_yosys_maps_the_uram_weights_to_uram288(tmp_path: Path) -> None:
    """64 x 64 int8 at SIMD 8 x PE 4: a 256-bit x 128-word ROM, four URAM288 columns (estimate and
    Yosys agree); the same layer with its ROM in block RAM uses no URAM."""
    from codegen.verify.yosys import synth_counts
    graph = linear_graph(64, 64, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=5)
    design = manual_design(graph, {"layer0": (8, 4, 8, 4)}, board="kv260")
    design.rom_kinds = {"layer0": "uram"}
    emit_rtl(design, tmp_path / "u")
    counts = synth_counts(tmp_path / "u" / "rtl", design.top_name, "xcup", tmp_path / "yu")
    assert counts["URAM"] == uram_for(8 * 4 * 8, 128) == 4
    assert counts["BRAM"] == 0


@pytest.mark.rtl
def test_yosys_counts_row_packed_uram_as_estimated(tmp_path: Path) -> None:
    """A 4-bit dense layer at SIMD 1 x PE 1 (4-bit words, 33,024 steps): 9 URAM288 with one word
    per row, 1 with 9 words per 36-bit row (cost.py uram_packing); Yosys maps the packed memory
    to exactly that one URAM288 (about 15 s)."""
    from codegen.verify.yosys import synth_counts
    from test_uram_packing import packed_design
    from codegen.schedule.cost import uram_packing
    design = packed_design("dense_w4_9_per_row")
    emit_rtl(design, tmp_path / "u")
    assert ".WORDS_PER_ROW(9)" in (tmp_path / "u" / "rtl" / f"{design.top_name}.v").read_text()
    counts = synth_counts(tmp_path / "u" / "rtl", design.top_name, "xcup", tmp_path / "yu")
    assert uram_for(4, 33024) == 9
    assert counts["URAM"] == uram_packing(4, 33024).uram == 1


def test_minilm_ffn_compiles_for_kv260_and_zcu104_in_uram_and_verifies(tmp_path: Path) -> None:
    """384 -> 1536 -> 384 int8 (1.18 MB of weights): refused when only block RAM counted ("BRAM36
    288 > 80% of 144"); now the ROMs go to UltraRAM, the design fits kv260 and zcu104, and the
    kv260 design is bit-exact in C-sim."""
    from codegen.verify.runner import verify
    model = minilm_ffn(tmp_path / "ffn.onnx")
    projects = {}
    for board in ("kv260", "zcu104"):
        project = projects[board] = compile_model(model, tmp_path / board, CompileOptions(board=board), **QUIET)
        report = project.report
        kinds = {layer["name"]: layer["rom_kind"] for layer in report["layers"] if layer["kind"] == "linear"}
        assert "uram" in kinds.values(), kinds
        t = report["totals"]
        b = get_board(board)
        assert 0 < t["uram"] <= 0.8 * b.uram and t["bram36"] <= 0.8 * b.bram36
        assert t["uram"] == sum(layer["uram"] for layer in report["layers"])
        assert project.design.rom_kinds == kinds
        top = (tmp_path / board / "rtl" / f"{project.design.top_name}.v").read_text()
        assert top.count(".ROM_KIND(2)") == list(kinds.values()).count("uram")
    results = verify(projects["kv260"], ("csim",), vectors=4, seed=3, **QUIET)
    assert len(results) == 1 and results[0].passed, results[0].line()


def test_weights_beyond_on_chip_memory_are_refused_before_folding(tmp_path: Path, capsys) -> None:
    """Two 768 x 768 int8 layers (9.4 Mb) on pynq-z2 (140 BRAM36 + a LUT share: 5.9 Mb): one
    clear line naming the sizes, exit code 2, no output folder."""
    import numpy as np
    from codegen.cli import main
    from models.qdq_helper import QdqBuilder, save
    rng = np.random.default_rng(4)
    b = QdqBuilder([1, 768])
    x = b.qdq("x", 2**-4)
    for name in ("fc_a", "fc_b"):
        x = b.node("MatMul", [x, b.weight(rng.integers(-127, 128, size=(768, 768)), 2**-9)], name)
        x = b.qdq(x, 2**-3)
    model = save(b.model(x), tmp_path / "big.onnx")
    out = tmp_path / "out"
    assert main(["compile", str(model), "--board", "pynq-z2", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("einhls: error: ")
    # non-zero codes x 8 bits (codes span -127..127): a lower bound of what any folding stores
    assert "the weights do not fit on chip" in err[0] and "bits in 2 layers) > 80% of the 0.75 MB pynq-z2 " \
        "offers (140 BRAM36, 0 URAM288, 25% of 53200 LUTs as ROM)" in err[0]
    assert "(shape 768x768," in err[0]
    assert not out.exists()


def test_capacity_lower_bound_counts_nonzero_codes_at_their_span() -> None:
    import numpy as np
    from codegen.schedule.capacity import _stored_bits_lower_bound, check_graph_capacity
    codes = np.array([[0, 3, -4, 0], [1, 0, 0, 2]], dtype=np.int8)      # span -4..3: 3 bits
    assert _stored_bits_lower_bound(codes, None) == 4 * 3
    assert _stored_bits_lower_bound(codes.astype(np.uint8) + 8, np.array(8, dtype=np.uint8)) == 4 * 3
    assert _stored_bits_lower_bound(codes, np.array([1, 2])) == 0       # per-axis: not counted
    # the graph check agrees with what the scheduler stores: 64 x 32 int8 fits every board
    graph = linear_graph(64, 32, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=3)
    check_graph_capacity(graph, get_board("pynq-z2"), 0.8)


@pytest.mark.slow
@pytest.mark.rtl
def test_minilm_ffn_kv260_rtlsim_bit_exact(tmp_path: Path) -> None:
    """The kv260 MiniLM block (weights in UltraRAM, preloaded in simulation) in Verilator: about
    a minute of CPU (4.5 minutes wall on a busy 2-core machine)."""
    from codegen.verify.runner import verify
    model = minilm_ffn(tmp_path / "ffn.onnx")
    project = compile_model(model, tmp_path / "kv260", CompileOptions(board="kv260"), **QUIET)
    assert "uram" in project.design.rom_kinds.values()
    results = verify(project, ("rtlsim",), vectors=2, seed=3, **QUIET)
    assert len(results) == 1 and results[0].passed, results[0].line()
    assert results[0].measured["interval_cycles"] <= project.report["totals"]["ii"] + 2
