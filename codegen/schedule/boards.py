"""Board descriptions (boards/*.json): part, resources, DSP kind, default clock, processing system.

Two vendors: AMD/Xilinx Zynq boards (Vivado flow, PYNQ driver: ``vendor`` "xilinx") and Lattice
ECP5 boards (open flow: Yosys synth_ecp5, nextpnr-ecp5, ecppack; UART host link: ``vendor``
"lattice").  On ECP5 ``lut`` counts LUT4s, ``dsp`` MULT18X18D multipliers and ``bram36`` is the
block RAM in 36 Kb equivalents (``bram_blocks`` DP16KD of 18 Kb, two per equivalent), so the
scheduler compares like with like.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import EinhlsError
from ..resources import resource_dir


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    part: str
    family: str          # zynq7000 | zynquplus | ecp5
    yosys_family: str    # synth_xilinx -family value (xc7, xcup), or ecp5 for synth_ecp5
    lut: int
    ff: int
    bram36: float        # 36 Kb block RAM equivalents
    uram: int
    dsp: int
    dsp_kind: str        # DSP48E1 | DSP48E2 | MULT18X18D
    clock_mhz: float
    ps: str              # processing_system7 | zynq_ultra_ps_e | none
    pynq_board: str
    board_part: str
    vendor: str = "xilinx"      # xilinx (Vivado flow) | lattice (open flow)
    lut_kind: str = "LUT6"
    bram_kind: str = "RAMB36"
    bram_blocks: float = 0      # native block RAMs (DP16KD on ECP5); 0: bram36 is the native count
    # open flow only (lattice): nextpnr --<device> --package --speed, the pins the board top uses
    nextpnr_device: str = ""
    package: str = ""
    speed: str = ""
    oscillator: dict = field(default_factory=dict)   # {"port", "site", "mhz"}
    uart: dict = field(default_factory=dict)         # {"rx_port", "rx_site", "tx_port", "tx_site", "baud", "bridge"}
    pins: list = field(default_factory=list)         # other outputs the board top drives: [{"port", "site", ...}]
    programmer: str = ""                             # command that loads a bitstream

    @property
    def open_flow(self) -> bool:
        """True for boards built with the open tools (Yosys, nextpnr) instead of Vivado."""
        return self.vendor == "lattice"

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
