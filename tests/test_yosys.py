"""Yosys resource counts (codegen/verify/yosys.py) on a small generated design."""
from __future__ import annotations

from pathlib import Path

import pytest

from codegen.emit.rtl import emit_rtl
from codegen.examples import linear_graph, manual_design
from codegen.ir.types import QType
from codegen.verify.yosys import YosysError, count_cells, synth_counts

pytestmark = pytest.mark.rtl


def test_synth_counts_small_linear(tmp_path: Path) -> None:
    # int8 x int8, SIMD 4 x PE 2: eight products per cycle, the two PEs share DSPs (two products
    # each, see einhls_linear PACK), so four DSP48E1
    graph = linear_graph(16, 8, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=1)
    design = manual_design(graph, {"layer0": (4, 2, 4, 2)})
    emit_rtl(design, tmp_path)
    counts = synth_counts(tmp_path / "rtl", design.top_name, "xc7", tmp_path / "yosys")
    assert counts["DSP"] == 4
    assert counts["LUT"] > 0 and counts["FF"] > 0 and counts["CARRY"] > 0
    assert counts["family"] == "xc7" and counts["yosys"].startswith("Yosys ")
    assert counts["cells"]["DSP48E1"] == 4


def test_synth_failure_carries_the_tool_message(tmp_path: Path) -> None:
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "broken.v").write_text("module broken(input wire a, output wire y);\n  assign y = a &;\nendmodule\n")
    with pytest.raises(YosysError, match="syntax error"):
        synth_counts(rtl, "broken", "xc7", tmp_path / "yosys")


def test_count_cells_groups_xilinx_primitives() -> None:
    counts = count_cells({"LUT2": 3, "LUT6": 2, "RAM32M": 2, "FDRE": 5, "FDSE": 1, "DSP48E2": 4,
                          "RAMB18E2": 3, "RAMB36E2": 1, "CARRY8": 2, "MUXF7": 9, "URAM288": 3})
    assert counts == {"LUT": 5, "LUT_MEM": 8, "FF": 6, "DSP": 4, "BRAM": 2.5, "CARRY": 2, "URAM": 3}
