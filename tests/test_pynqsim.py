"""PYNQ simulation: the generated driver, unchanged, drives the Verilated RTL through cocotbpynq.

Stand-in accelerators (testbench/pynq/standin_top.v.j2: an elementwise ReLU with einhls' ports
and stream layout) exercise the DMA adapters on beat widths below and above the 32-bit DMA word,
with padded frames, and the driver's timeouts on a stalled design; the generated Verilog of real
designs then runs end to end.  Each run builds with Verilator (10-40 s) and simulates in seconds.
"""
from __future__ import annotations

import hashlib
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jinja2
import numpy as np
import pytest

from codegen.emit.driver import DRIVER_DIR, emit_driver
from codegen.emit.rtl import emit_rtl
from codegen.emit.vivado import DMA_BASE, DMA_INSTANCE, dma_frame, emit_vivado
from codegen.examples import chain_graph, manual_design
from codegen.ir.build import make_relu
from codegen.ir.graph import Graph
from codegen.ir.reference import random_inputs, run_reference
from codegen.ir.types import QType
from codegen.resources import resource_dir
from codegen.schedule.design import Design
from codegen.verify.pynqsim import render_sim_hwh, run_pynqsim, sim_module

pytestmark = [pytest.mark.rtl, pytest.mark.skipif(
    __import__("importlib").util.find_spec("cocotbpynq") is None, reason="cocotbpynq not installed")]


def write_meta(out: Path, design: Design) -> None:
    """The part of einhls.json the PYNQ simulation reads."""
    (out / "einhls.json").write_text(json.dumps({"top": design.top_name, "board": design.board.to_json(),
                                                 "clock_mhz": design.clock_mhz}))


def standin_project(out: Path, size: int, bits: int, signed: bool, lanes: int, zp: int,
                    mode: str = "ok") -> Design:
    qtype = QType(signed, bits, 0.25, zp)
    graph = Graph(name="standin", input_type=qtype, input_size=size, ops=[make_relu("relu", "relu", qtype, size)],
                  input_shape=(1, size), output_shape=(1, size))
    design = manual_design(graph, {"relu": (lanes, lanes, lanes, lanes)})
    fmt = design.top_input
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("testbench") / "pynq")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    rtl = out / "rtl"
    rtl.mkdir(parents=True)
    (rtl / f"{design.top_name}.v").write_text(env.get_template("standin_top.v.j2").render(
        top=design.top_name, size=fmt.size, bits=fmt.bits, signed=fmt.signed, lanes=fmt.lanes,
        beats=fmt.beats, tdata_bits=fmt.tdata_bits, zp=zp, mode=mode))
    (rtl / "filelist.f").write_text(f"{design.top_name}.v\n")
    write_meta(out, design)
    emit_vivado(design, out)
    emit_driver(design, out)
    return design


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("size,bits,signed,lanes,zp", [
    (7, 5, True, 3, -2),      # 15-bit elements: 2-byte beats, frames of 6 bytes + 2 pad
    (13, 8, False, 6, 9),     # 6-byte beats (wider than a DMA word), 18 bytes + 2 pad
])
def test_standin_bit_exact(size: int, bits: int, signed: bool, lanes: int, zp: int, tmp_path: Path) -> None:
    out = tmp_path / "out"
    design = standin_project(out, size, bits, signed, lanes, zp)
    assert dma_frame(design.top_input).pad_bytes == 2
    inputs = random_inputs(design.graph, 40, seed=size)
    expected = run_reference(design.graph, inputs)
    before = folder_digest(out / DRIVER_DIR)
    result = run_pynqsim(out, inputs, expected, tmp_path / "work")
    assert result.passed, result.line()
    assert result.line() == "pynqsim: bit-exact on 40 vectors"
    assert np.array_equal(result.outputs, expected)
    assert result.measured["sim_cycles"] > 0 and result.measured["poll_cycles"] > 0
    assert folder_digest(out / DRIVER_DIR) == before       # the driver ran as generated
    assert "cocotbpynq" not in sys.modules                 # GPL code only inside the simulator
    # a wrong expectation is reported at its first element
    wrong = expected.copy()
    wrong[3, 2] += 1
    again = run_pynqsim(out, inputs, wrong, tmp_path / "work")   # reuses the Verilator build
    assert again.mismatch is not None and (again.mismatch.vector, again.mismatch.element) == (3, 2)


def test_stalled_accelerator_times_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    design = standin_project(out, 7, 5, True, 3, -2, mode="stall_output")
    work = tmp_path / "work"
    # one frame fits in the adapters' buffers: all input is read, no output comes
    one = random_inputs(design.graph, 1, seed=0)
    result = run_pynqsim(out, one, run_reference(design.graph, one), work, timeout_s=1.0)
    assert not result.passed and result.error.startswith("DmaTimeout: DMA timeout after 1 s: S2MM stalled")
    assert "MM2S is idle" in result.error
    # many frames back up into the DMA: both channels stall
    many = random_inputs(design.graph, 20, seed=0)
    result = run_pynqsim(out, many, run_reference(design.graph, many), work, timeout_s=1.0)
    assert "S2MM stalled waiting for output frame 1 of 20" in result.error
    assert "MM2S is stalled too" in result.error


def test_generated_rtl_bit_exact(tmp_path: Path) -> None:
    """The Verilog back end's chain design (ReLU, requant, 2:4-sparse and dense Linear)."""
    design = manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                           "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)})
    out = tmp_path / "out"
    emit_rtl(design, out)
    emit_vivado(design, out)
    emit_driver(design, out)
    write_meta(out, design)
    inputs = random_inputs(design.graph, 48, seed=7)
    result = run_pynqsim(out, inputs, run_reference(design.graph, inputs), tmp_path / "work")
    assert result.passed, result.line()


def test_compiled_demo_project(demo_project) -> None:
    """A model compiled by einhls, verified through the `einhls verify --pynq-sim` path."""
    from codegen.verify.runner import run_check

    inputs, expected = demo_project.stored_vectors()
    result = run_check(demo_project, "pynqsim", inputs, expected)
    assert result.passed, result.line()


def test_sim_hwh_describes_the_dma_path() -> None:
    design = manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                           "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)}, board="kv260")
    meta = {"top": design.top_name, "board": design.board.to_json(), "clock_mhz": design.clock_mhz}
    root = ET.fromstring(render_sim_hwh(meta).encode())
    accel = root.find(f"./MODULES/MODULE[@MODTYPE='{sim_module(design.top_name)}']")
    assert accel is not None
    assert accel.find("./PORTS/PORT[@SIGIS='clk']").get("NAME") == "clk"
    assert accel.find("./PORTS/PORT[@SIGIS='clk']").get("CLKFREQUENCY") == "200000000"
    assert accel.find("./PORTS/PORT[@SIGIS='rst']").get("POLARITY") == "ACTIVE_LOW"
    dma = root.find(f"./MODULES/MODULE[@INSTANCE='{DMA_INSTANCE}']")
    buses = {b.get("NAME"): b.get("BUSNAME") for b in dma.findall("./BUSINTERFACES/BUSINTERFACE")}
    ours = {b.get("NAME"): b for b in accel.findall("./BUSINTERFACES/BUSINTERFACE")}
    assert ours["s_axis"].get("BUSNAME") == buses["M_AXIS_MM2S"] and ours["s_axis"].get("TYPE") == "TARGET"
    assert ours["m_axis"].get("BUSNAME") == buses["S_AXIS_S2MM"] and ours["m_axis"].get("TYPE") == "INITIATOR"
    maps = {m.get("LOGICAL"): m.get("PHYSICAL") for m in ours["m_axis"].findall("./PORTMAPS/PORTMAP")}
    assert maps == {"TDATA": "m_axis_tdata", "TVALID": "m_axis_tvalid", "TREADY": "m_axis_tready",
                    "TLAST": "m_axis_tlast"}
    ps = root.find("./MODULES/MODULE[@MODTYPE='processing_system7']")
    memrange = ps.find("./MEMORYMAP/MEMRANGE")
    assert memrange.get("INSTANCE") == DMA_INSTANCE
    assert int(memrange.get("BASEVALUE"), 16) == DMA_BASE["zynquplus"]


def test_missing_board_files_are_reported(tmp_path: Path) -> None:
    design = manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                           "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)})
    out = tmp_path / "out"
    emit_rtl(design, out)
    write_meta(out, design)
    inputs = random_inputs(design.graph, 2, seed=0)
    result = run_pynqsim(out, inputs, run_reference(design.graph, inputs), tmp_path / "work")
    assert result.error and "driver" in result.error
    emit_driver(design, out)
    result = run_pynqsim(out, inputs, run_reference(design.graph, inputs), tmp_path / "work")
    assert result.error and "DMA adapters" in result.error and "recompile" in result.error
