"""Open-flow back end for Lattice ECP5 boards (ULX3S): board top, constraints, Makefile, UART driver.

Output layout (next to rtl/, hls/, tb/ that every board gets)::

    OUT/ecp5/<top>_board.v        the board's top: oscillator (and PLL when --clock-mhz differs),
                                  power-on reset, einhls_uart_bridge in front of <top>, status LEDs
    OUT/ecp5/einhls_uart.v        the UART link (copied from rtl_kernels/)
    OUT/ecp5/<board>.lpf          pins and clock of the board (from boards/<board>.json)
    OUT/ecp5/flow.json            what codegen/verify/openflow.py runs: device, package, clock...
    OUT/Makefile                  `make bitstream`: Yosys synth_ecp5 -> nextpnr-ecp5 -> ecppack
    OUT/driver/                   the host driver (pyserial): predict, predict_codes, throughput

The bridge's serial timing (clock cycles per bit) is fixed here from the clock and the board's
baud rate; the host must open the port at that rate (the driver reads it from its interface file).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import __version__
from ..errors import EinhlsError
from ..resources import resource_dir
from ..schedule.design import Design
from .driver import DRIVER_DIR, INTERFACE_FILE, INTERFACE_FORMAT, README   # one driver folder layout

ECP5_DIR = "ecp5"
FLOW_FILE = "flow.json"
UART_KERNEL = "einhls_uart.v"
MAKEFILE = "Makefile"
DRIVER_MODULES = {"uart/__init__.py.j2": "__init__.py", "layout.py.j2": "layout.py",
                  "uart/link.py.j2": "link.py", "uart/__main__.py.j2": "__main__.py"}
# the frame format of rtl_kernels/einhls_uart.v
FRAME_OVERHEAD = {"request": 6, "response": 7}   # sync 2 + seq + len 2 + crc (+ status)
UART_MAX_RATE_ERROR = 0.02      # a receiver sampling mid-bit tolerates about 4% over ten bits
TIMEOUT_BYTES = 64              # a request that stops for this many byte times is answered (status 3)

# ECP5 EHXPLLL limits (Lattice TN1263): phase detector, VCO and output ranges in MHz
PLL_PFD_MHZ = (3.125, 400.0)
PLL_VCO_MHZ = (400.0, 800.0)
PLL_OUT_MHZ = (3.125, 400.0)


def board_top_name(top: str) -> str:
    return f"{top}_board"


def bitstream_name(top: str) -> str:
    return f"{top}.bit"


@dataclass(frozen=True)
class Pll:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    in_mhz: float

    @property
    def out_mhz(self) -> float:
        return self.in_mhz * self.clkfb_div / self.clki_div

    @property
    def vco_mhz(self) -> float:
        return self.out_mhz * self.clkop_div

    @property
    def clkop_cphase(self) -> int:
        return (self.clkop_div - 1) // 2


def plan_pll(in_mhz: float, want_mhz: float) -> Pll:
    """The EHXPLLL dividers whose output is closest to ``want_mhz`` (fed back from CLKOP)."""
    if not PLL_OUT_MHZ[0] <= want_mhz <= PLL_OUT_MHZ[1]:
        raise EinhlsError(f"--clock-mhz {want_mhz:g}: the ECP5 PLL makes {PLL_OUT_MHZ[0]:g} to "
                          f"{PLL_OUT_MHZ[1]:g} MHz")
    best = None
    for clki_div in range(1, 129):
        pfd = in_mhz / clki_div
        if not PLL_PFD_MHZ[0] <= pfd <= PLL_PFD_MHZ[1]:
            continue
        for clkfb_div in range(1, 81):
            out = pfd * clkfb_div
            if not PLL_OUT_MHZ[0] <= out <= PLL_OUT_MHZ[1]:
                continue
            for clkop_div in range(1, 129):
                if not PLL_VCO_MHZ[0] <= out * clkop_div <= PLL_VCO_MHZ[1]:
                    continue
                # closest frequency, then the VCO nearest the middle of its range
                key = (abs(out - want_mhz), abs(out * clkop_div - 600.0))
                if best is None or key < best[0]:
                    best = (key, Pll(clki_div, clkfb_div, clkop_div, in_mhz))
    if best is None:
        raise EinhlsError(f"--clock-mhz {want_mhz:g}: no ECP5 PLL setting reaches it from {in_mhz:g} MHz")
    return best[1]


@dataclass(frozen=True)
class OutputPort:
    name: str
    width: int
    role: str      # status (LEDs: heartbeat, frame done, error) | tie_high


def board_outputs(pins: list[dict]) -> list[OutputPort]:
    """The board pins as top-level output ports: led[0]..led[7] become one 8-bit port."""
    widths: dict[str, int] = {}
    roles: dict[str, str] = {}
    for pin in pins:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?", pin["port"])
        if not match:
            raise ValueError(f"board pin {pin['port']!r} is not a Verilog port name")
        name, index = match.group(1), match.group(2)
        widths[name] = max(widths.get(name, 0), int(index) + 1 if index is not None else 1)
        roles[name] = pin.get("role", "status")
    return [OutputPort(name, widths[name], roles[name]) for name in widths]


@dataclass(frozen=True)
class OpenFlowPlan:
    top: str
    board: object                # Board
    clock_mhz: float             # the accelerator's clock as built (the PLL's output when there is one)
    requested_mhz: float
    pll: Pll | None
    baud: int
    clks_per_bit: int
    timeout_clks: int
    in_tdata_bits: int
    in_beats: int
    out_tdata_bits: int
    out_beats: int

    @property
    def board_top(self) -> str:
        return board_top_name(self.top)

    @property
    def lpf(self) -> str:
        return f"{self.board.name}.lpf"

    @property
    def baud_error(self) -> float:
        return abs(self.clock_mhz * 1e6 / self.clks_per_bit - self.baud) / self.baud

    @property
    def in_frame_bytes(self) -> int:
        return self.in_beats * self.in_tdata_bits // 8

    @property
    def out_frame_bytes(self) -> int:
        return self.out_beats * self.out_tdata_bits // 8

    def flow_json(self) -> dict:
        b = self.board
        return {"top": self.board_top, "accelerator": self.top, "board": b.name, "part": b.part,
                "device": b.nextpnr_device, "package": b.package, "speed": b.speed, "lpf": self.lpf,
                "clock_mhz": self.clock_mhz, "requested_mhz": self.requested_mhz,
                "oscillator_mhz": b.oscillator["mhz"],
                "pll": None if self.pll is None else {"clki_div": self.pll.clki_div, "clkfb_div": self.pll.clkfb_div,
                                                       "clkop_div": self.pll.clkop_div, "vco_mhz": self.pll.vco_mhz},
                "sources": [f"../{ECP5_DIR}/{UART_KERNEL}", f"../{ECP5_DIR}/{self.board_top}.v"],
                "bitstream": bitstream_name(self.top), "programmer": b.programmer}


def plan_open_flow(design: Design) -> OpenFlowPlan:
    board = design.board
    if not board.open_flow:
        raise ValueError(f"board {board.name} is not built with the open flow")
    osc = float(board.oscillator["mhz"])
    requested = float(design.clock_mhz)
    pll = None if abs(requested - osc) < 1e-9 else plan_pll(osc, requested)
    clock = osc if pll is None else pll.out_mhz
    baud = int(board.uart["baud"])
    clks_per_bit = max(4, round(clock * 1e6 / baud))
    fin, fout = design.top_input, design.top_output
    plan = OpenFlowPlan(top=design.top_name, board=board, clock_mhz=clock, requested_mhz=requested, pll=pll,
                        baud=baud, clks_per_bit=clks_per_bit, timeout_clks=TIMEOUT_BYTES * 10 * clks_per_bit,
                        in_tdata_bits=fin.tdata_bits, in_beats=fin.beats,
                        out_tdata_bits=fout.tdata_bits, out_beats=fout.beats)
    if plan.baud_error > UART_MAX_RATE_ERROR:
        raise EinhlsError(f"--clock-mhz {requested:g}: {clock:g} MHz makes {baud} baud only within "
                          f"{plan.baud_error:.1%} ({clks_per_bit} cycles per bit); choose a clock that is "
                          f"a multiple of about {baud / 1e6:g} MHz")
    if max(plan.in_frame_bytes, plan.out_frame_bytes) >= 1 << 16:
        raise EinhlsError("a frame of more than 65535 bytes does not fit the UART link's 16-bit length")
    return plan


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def render_board_top(plan: OpenFlowPlan) -> str:
    return _environment().get_template("ecp5/board_top.v.j2").render(
        version=__version__, plan=plan, board=plan.board, outputs=board_outputs(plan.board.pins))


def render_lpf(plan: OpenFlowPlan) -> str:
    return _environment().get_template("ecp5/board.lpf.j2").render(
        version=__version__, plan=plan, board=plan.board, pins=plan.board.pins)


def driver_interface(design: Design, plan: OpenFlowPlan) -> dict:
    graph = design.graph
    return {
        "format": INTERFACE_FORMAT, "einhls_version": __version__, "top": design.top_name,
        "bitfile": bitstream_name(design.top_name),
        "board": {"name": plan.board.name, "part": plan.board.part, "programmer": plan.board.programmer},
        "clock_mhz": plan.clock_mhz,
        "uart": {"baud": plan.baud, "clks_per_bit": plan.clks_per_bit, "bits_per_byte": 10,
                 "request_overhead_bytes": FRAME_OVERHEAD["request"],
                 "response_overhead_bytes": FRAME_OVERHEAD["response"],
                 "timeout_byte_times": TIMEOUT_BYTES,
                 "frame": "request A5 5A seq len[2] payload crc8; response 5A A5 status seq len[2] payload crc8; "
                          "CRC-8 poly 0x07 init 0 over the bytes after the sync bytes; little-endian"},
        "input": design.top_input.to_json(), "output": design.top_output.to_json(),
        "input_type": graph.input_type.to_json(), "output_type": graph.output_type.to_json(),
        "input_shape": list(graph.input_shape), "output_shape": list(graph.output_shape),
        "output_is_float": bool(graph.output_is_float),
    }


def emit_uart_driver(design: Design, plan: OpenFlowPlan, out: Path) -> None:
    folder = Path(out) / DRIVER_DIR
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "driver")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    ctx = {"version": __version__, "top": design.top_name, "board": design.board.name}
    for template, name in DRIVER_MODULES.items():
        _write(folder / name, env.get_template(template).render(**ctx))
    spec = driver_interface(design, plan)
    _write(folder / INTERFACE_FILE, json.dumps(spec, indent=1, sort_keys=True) + "\n")
    _write(folder / README, env.get_template("uart/README.md.j2").render(
        version=__version__, top=design.top_name, plan=plan, board=plan.board, spec=spec,
        input=design.top_input, output=design.top_output))


def emit_open_flow(design: Design, out: Path) -> OpenFlowPlan:
    """Write OUT/ecp5/, OUT/Makefile and the UART driver OUT/driver/ for an ECP5 board."""
    plan = plan_open_flow(design)
    out = Path(out)
    folder = out / ECP5_DIR
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resource_dir("rtl_kernels") / UART_KERNEL, folder / UART_KERNEL)
    _write(folder / f"{plan.board_top}.v", render_board_top(plan))
    _write(folder / plan.lpf, render_lpf(plan))
    _write(folder / FLOW_FILE, json.dumps(plan.flow_json(), indent=1, sort_keys=True) + "\n")
    _write(out / MAKEFILE, _environment().get_template("ecp5/Makefile.j2").render(
        version=__version__, plan=plan, board=plan.board, python=sys.executable, ecp5_dir=ECP5_DIR))
    emit_uart_driver(design, plan, out)
    return plan
