"""Board descriptions (boards/*.json): part, resources, DSP kind, default clock, processing system."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import EinhlsError
from ..resources import resource_dir


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    part: str
    family: str          # zynq7000 | zynquplus
    yosys_family: str    # synth_xilinx -family value
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    dsp_kind: str        # DSP48E1 | DSP48E2
    clock_mhz: float
    ps: str              # processing_system7 | zynq_ultra_ps_e
    pynq_board: str
    board_part: str

    def to_json(self) -> dict:
        return asdict(self)


def boards_dir() -> Path:
    return resource_dir("boards")


def known_boards() -> dict[str, Board]:
    return {p.stem: Board(**json.loads(p.read_text())) for p in sorted(boards_dir().glob("*.json"))}


def get_board(name: str) -> Board:
    boards = known_boards()
    if name not in boards:
        raise EinhlsError(f"unknown board {name!r}; known boards: {', '.join(boards)}")
    return boards[name]
