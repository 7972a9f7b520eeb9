"""The BERT-base-sized encoder (tests/models/bert_base.py) against the boards: its contraction
stages' buffers go to UltraRAM on zcu104, and the compressed whole encoder fits zcu102.

* default run: a 2-layer cut (two-core tensor trains of rank 2, ``FITTING``) scheduled for zcu104:
  within 80% of every resource, with some stage buffers in UltraRAM, each costed as moved;
* slow: the whole 12-layer encoder fits zcu102 (block RAM only) and is refused for zcu104, its
  memory named (the buffers in UltraRAM do not make up for the URAM288's 72 x 4096 shape on
  buffers of 3,072 to 8,192 elements: README, "BERT-base size compressed to fit").
"""
from __future__ import annotations

from pathlib import Path

import pytest

from codegen.errors import EinhlsError
from codegen.project import CompileOptions, lower
from codegen.schedule.boards import get_board
from codegen.schedule.contraction_memory import stage_buffer_shapes
from codegen.schedule.folding import fits, fold

from models.bert_base import FITTING, export_bert_base


def _encoder(tmp_path: Path, layers: int, board: str):
    path = tmp_path / f"bert_base_{layers}.onnx"
    if not path.exists():
        export_bert_base(path, layers=layers, **FITTING)
    return lower(path, CompileOptions(board=board))   # the board's DSPs steer the contraction paths


def test_two_layer_cut_fits_zcu104_with_stage_buffers_in_uram(tmp_path: Path) -> None:
    graph = _encoder(tmp_path, 2, "zcu104")
    board = get_board("zcu104")
    result = fold(graph, board)
    totals = result.totals
    assert fits(totals, board, 0.8) == []
    assert totals["bram36"] <= 0.8 * board.bram36 and totals["uram"] <= 0.8 * board.uram
    moved = result.design.uram_stage_buffers
    assert moved and totals["uram_stage_buffers"] == len(moved)
    shapes = stage_buffer_shapes(graph, result.design.schedules)
    for name in moved:   # each moved buffer's UltraRAM is in its stage's cost
        assert result.costs[name].uram >= shapes[name].uram > 0
    # the buffers left in block RAM: what the placement chose not to move
    assert set(moved) < set(shapes)


@pytest.mark.slow
def test_whole_encoder_fits_zcu102_and_not_zcu104(tmp_path: Path) -> None:
    graph = _encoder(tmp_path, 12, "zcu102")
    zcu102 = get_board("zcu102")
    result = fold(graph, zcu102)
    assert fits(result.totals, zcu102, 0.8) == []
    assert result.totals["uram"] == 0
    with pytest.raises(EinhlsError, match=r"does not fit zcu104.*(BRAM36|URAM)"):
        fold(_encoder(tmp_path, 12, "zcu104"), get_board("zcu104"))
