"""Board flow back end: Vivado block design and bitstream scripts, DMA adapters, OUT/Makefile.

Python decides every number (DMA frame geometry, addresses, clock, part, IP names); the Jinja2
templates in ``templates/vivado/`` hold all Tcl, Verilog and make text.

Output layout::

    OUT/Makefile                       `make bitstream [VARIANT=hls|rtl]`: runs the tools below
    OUT/vivado/build_bitstream.tcl     Vivado: project, block design, synthesis, implementation,
                                       bitstream; copies <top>.bit and <top>.hwh into OUT/deploy/
    OUT/vivado/block_design.tcl        the block design (sourced by build_bitstream.tcl)
    OUT/vivado/package_rtl_ip.tcl      Vivado: packages rtl/ + the DMA adapters as an IP (RTL variant)
    OUT/vivado/<top>_dma_adapters.v    32-bit DMA words <-> accelerator beats (both directions)
    OUT/vivado/<top>_dma.v             <top> between the two adapters (RTL variant, PYNQ simulation)

The DMA byte layout is the one convention shared by these files, the driver (``emit/driver.py``)
and the PYNQ simulation (``verify/pynqsim.py``); :func:`dma_frame` is its single definition.
Everything depends only on the Design, so the same design gives the same bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import __version__
from ..resources import resource_dir
from ..schedule.design import Design, StreamFormat

VIVADO_DIR = "vivado"
DEPLOY_DIR = "deploy"
MAKEFILE = "Makefile"
BUILD_SCRIPT = "build_bitstream.tcl"
BLOCK_DESIGN_SCRIPT = "block_design.tcl"
PACKAGE_SCRIPT = "package_rtl_ip.tcl"

# The AXI DMA side of the design: 32-bit stream words without tkeep (what PYNQ's simple-mode DMA
# driver and cocotbpynq both handle), memory-mapped side 32 bits too, so that every output frame
# can start at any 4-byte offset of the receive buffer without the DMA's realignment engine.
DMA_WORD_BYTES = 4
DMA_INSTANCE = "axi_dma_0"
# Width of the DMA's buffer-length register: 26 bits is the maximum (64 MiB - 1 per transfer);
# Vivado's default of 14 bits would cap a transfer at 16 KiB.
DMA_LENGTH_WIDTH = 26
DMA_MAX_TRANSFER_BYTES = (1 << DMA_LENGTH_WIDTH) - 1
# Where PYNQ images put AXI-Lite peripherals: the Zynq-7000 M_AXI_GP0 window (PYNQ's own DMA
# overlays use 0x40400000) and the Zynq UltraScale+ M_AXI_HPM0_FPD window.
DMA_BASE = {"zynq7000": 0x4040_0000, "zynquplus": 0xA000_0000}
DMA_RANGE = 0x1_0000
BD_NAME = "einhls_bd"
# Vendor and library of the IP package_rtl_ip.tcl makes (the HLS variant uses Vitis HLS' own VLNV).
RTL_IP_VENDOR = "einhls.org"
RTL_IP_LIBRARY = "einhls"


@dataclass(frozen=True)
class DmaFrame:
    """One frame of an accelerator stream as the DMA sees it (docs/board_flow.md).

    The frame's beats, ``beat_bytes`` each (tdata_bits / 8, little-endian), are concatenated and
    followed by ``pad_bytes`` zero bytes so that the frame is ``words`` whole 32-bit DMA words.
    """
    beats: int
    beat_bytes: int

    @property
    def payload_bytes(self) -> int:
        return self.beats * self.beat_bytes

    @property
    def words(self) -> int:
        return math.ceil(self.payload_bytes / DMA_WORD_BYTES)

    @property
    def frame_bytes(self) -> int:
        return self.words * DMA_WORD_BYTES

    @property
    def pad_bytes(self) -> int:
        return self.frame_bytes - self.payload_bytes

    @property
    def last_bytes(self) -> int:
        """Payload bytes in the frame's last DMA word (1..4)."""
        return DMA_WORD_BYTES - self.pad_bytes

    def to_json(self) -> dict:
        return {"beats": self.beats, "beat_bytes": self.beat_bytes, "payload_bytes": self.payload_bytes,
                "pad_bytes": self.pad_bytes, "words": self.words, "frame_bytes": self.frame_bytes}


def dma_frame(fmt: StreamFormat) -> DmaFrame:
    return DmaFrame(beats=fmt.beats, beat_bytes=fmt.tdata_bits // 8)


def adapters_file(top: str) -> str:
    return f"{top}_dma_adapters.v"


def dma_top_file(top: str) -> str:
    return f"{top}_dma.v"


def dma_top_module(top: str) -> str:
    return f"{top}_dma"


def bitstream_name(top: str) -> str:
    """<top>.bit / <top>.hwh: PYNQ's Overlay finds the .hwh beside the .bit by name."""
    return f"{top}.bit"


@dataclass(frozen=True)
class BoardPlan:
    """Everything the Vivado templates need; derived from the Design alone."""
    version: str
    top: str
    board: object          # codegen.schedule.boards.Board
    clock_mhz: float
    inp: DmaFrame
    outp: DmaFrame
    dma_base: int
    dma_addr_width: int
    bd_name: str = BD_NAME
    dma_instance: str = DMA_INSTANCE
    dma_range: int = DMA_RANGE
    dma_length_width: int = DMA_LENGTH_WIDTH
    rtl_ip_vendor: str = RTL_IP_VENDOR
    rtl_ip_library: str = RTL_IP_LIBRARY

    @property
    def adapters_file(self) -> str:
        return adapters_file(self.top)

    @property
    def dma_top_file(self) -> str:
        return dma_top_file(self.top)

    @property
    def dma_top(self) -> str:
        return dma_top_module(self.top)

    @property
    def bitfile(self) -> str:
        return bitstream_name(self.top)

    @property
    def clock_text(self) -> str:
        """The clock in MHz as Vivado properties take it (no trailing .0)."""
        return f"{self.clock_mhz:g}"


def plan_board(design: Design) -> BoardPlan:
    board = design.board
    if board.ps not in ("processing_system7", "zynq_ultra_ps_e"):
        raise ValueError(f"board {board.name}: unknown processing system {board.ps!r}")
    return BoardPlan(
        version=__version__, top=design.top_name, board=board, clock_mhz=float(design.clock_mhz),
        inp=dma_frame(design.top_input), outp=dma_frame(design.top_output),
        dma_base=DMA_BASE[board.family],
        # UltraScale+ DDR reaches above 4 GiB; the Zynq-7000 address map is 32 bits
        dma_addr_width=64 if board.family == "zynquplus" else 32)


def _environment(folder: str = "vivado") -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates") / folder)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["hex32"] = lambda value: f"0x{int(value):08X}"
    env.filters["tcl_quote"] = _tcl_quote
    return env


def _tcl_quote(text: str) -> str:
    """A Tcl word in braces; board names and parts never contain braces or backslashes."""
    text = str(text)
    if any(c in text for c in "{}\\\n"):
        raise ValueError(f"cannot quote {text!r} for Tcl")
    return "{" + text + "}"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))   # bytes: no platform newline translation


def render_adapters(plan: BoardPlan) -> tuple[str, str]:
    """(adapters, <top>_dma wrapper) Verilog text."""
    env = _environment()
    return (env.get_template("dma_adapters.v.j2").render(**_context(plan)),
            env.get_template("dma_top.v.j2").render(**_context(plan)))


def _context(plan: BoardPlan) -> dict:
    return {"plan": plan, "version": plan.version, "top": plan.top, "inp": plan.inp,
            "outp": plan.outp, "adapters_file": plan.adapters_file,
            "deploy_dir": DEPLOY_DIR, "build_script": BUILD_SCRIPT,
            "block_design_script": BLOCK_DESIGN_SCRIPT, "package_script": PACKAGE_SCRIPT}


def emit_vivado(design: Design, out: Path) -> None:
    """Write OUT/vivado/ (Tcl + DMA adapters) and OUT/Makefile for ``design``'s board."""
    plan = plan_board(design)
    out = Path(out)
    folder = out / VIVADO_DIR
    env = _environment()
    adapters, dma_top = render_adapters(plan)
    _write(folder / plan.adapters_file, adapters)
    _write(folder / plan.dma_top_file, dma_top)
    ctx = _context(plan)
    _write(folder / BUILD_SCRIPT, env.get_template("build_bitstream.tcl.j2").render(**ctx))
    _write(folder / BLOCK_DESIGN_SCRIPT, env.get_template("block_design.tcl.j2").render(**ctx))
    _write(folder / PACKAGE_SCRIPT, env.get_template("package_rtl_ip.tcl.j2").render(**ctx))
    _write(out / MAKEFILE, env.get_template("Makefile.j2").render(**ctx))
