"""cocotb test module of einhls' PYNQ simulation: the generated board driver, unchanged, on the RTL.

Run by ``codegen/verify/pynqsim.py`` (through cocotb's runner) inside the simulator.  cocotbpynq
(GPL-3.0, a test-only dependency: only this file imports it) stands in for the ``pynq`` package:
``Overlay`` reads the .hwh einhls wrote for the simulation, ``allocate`` gives plain arrays, and
the DMA channels drive the simulated top's AXI4-Stream ports.

Two adaptations, both here and none in the driver:
  * ``sys.modules["pynq"]`` is a small module holding cocotbpynq's classes, so the driver's
    ``import pynq`` finds them;
  * cocotbpynq's DMA channel has no ``idle`` property (PYNQ's reads the DMA status register);
    the one added here lets POLL_CYCLES clock cycles pass, then reports whether the channel's
    transfer finished.  The driver polls ``idle`` against a wall-clock deadline, so its timeout
    path runs in simulation exactly as on the board.

Configuration: the JSON file named by $EINHLS_PYNQSIM_CONFIG (driver folder, bitfile, inputs,
outputs, timeout, result file).  The result file gets {"ok", "error", "cycles", "frames",
"poll_cycles"}.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
import types
from pathlib import Path

import numpy as np
from cocotb.task import resume
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

import cocotbpynq
from cocotbpynq.dma import DMA_Channel

POLL_CYCLES = 16
# cocotbpynq's clock: Clock(clk, 1000, "step")
CLOCK_PERIOD_STEPS = 1000
DRIVER_MODULE = "einhls_board_driver"


def _install_pynq() -> None:
    shim = types.ModuleType("pynq")
    shim.__doc__ = "cocotbpynq standing in for PYNQ (einhls PYNQ simulation)"
    for name in ("Overlay", "allocate", "MMIO", "DefaultIP", "PL"):
        setattr(shim, name, getattr(cocotbpynq, name))
    sys.modules["pynq"] = shim


@resume
async def _poll_idle(channel: DMA_Channel) -> bool:
    await ClockCycles(channel.cpbus.cpdut.clk, POLL_CYCLES)
    return channel.is_idle.is_set()


@resume
async def _now_steps() -> int:
    return int(get_sim_time("step"))


def _load_driver(folder: Path) -> types.ModuleType:
    """The driver package from its folder, under a fixed name (it uses relative imports only)."""
    spec = importlib.util.spec_from_file_location(DRIVER_MODULE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[DRIVER_MODULE] = module
    spec.loader.exec_module(module)
    return module


_install_pynq()
DMA_Channel.idle = property(_poll_idle)


def main(dut=None) -> None:
    config = json.loads(Path(os.environ["EINHLS_PYNQSIM_CONFIG"]).read_text())
    result: dict = {"ok": False, "error": None, "cycles": None, "frames": None, "poll_cycles": POLL_CYCLES}
    try:
        driver = _load_driver(Path(config["driver_dir"]))
        inputs = np.load(config["inputs"])
        accel = driver.EinhlsOverlay(config["bitfile"], timeout_s=float(config["timeout_s"]))
        start = _now_steps()
        outputs = accel.predict_codes(inputs)
        result["cycles"] = (_now_steps() - start) // CLOCK_PERIOD_STEPS
        result["frames"] = int(inputs.shape[0])
        np.save(config["outputs"], outputs)
        result["ok"] = True
    except Exception as exc:  # reported to einhls as the check's error
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
        raise
    finally:
        Path(config["result"]).write_text(json.dumps(result))


main = cocotbpynq.synctest(main)
