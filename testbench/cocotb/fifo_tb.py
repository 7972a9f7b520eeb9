"""cocotb test bench of einhls_fifo at several depths, powers of two and others, in one wrapper.

Driven by tests/test_fifo_depth.py, which renders the wrapper (``join_units_top.v.j2``: case c has
ports ``c<c>_s0_axis_*`` and ``c<c>_m0_axis_*``) and passes through the environment:

    FIFO_CONFIG    JSON: {"seed": int, "cases": [{"name", "depth", "width"}]}
    FIFO_RESULTS   JSON this test writes: per case and phase the words sent, the words received
                   and the cycle of every input and output handshake.

Every case runs at the same time through four phases: (1) "fill": input always valid, output never
ready, for DEPTH + 20 cycles (how many words the FIFO takes); (2) "drain": output ready, no input;
(3) "full rate": input always valid and output always ready; (4) "random": seeded random input
gaps and output back-pressure.  The words are all-zero and all-one first, then pseudo-random.

The bench drives the ports directly: on each falling edge it reads s_axis_tready, m_axis_tvalid and
m_axis_tdata (registered outputs of einhls_fifo, stable until the next rising edge), chooses this
cycle's s_axis_tvalid / tdata and m_axis_tready, and so knows which handshakes the rising edge
completes.  The comparison with what was sent is the pytest side's.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

CLOCK_NS = 10
PAUSE_PROBABILITY = 0.3


def words(count: int, width: int, rng: random.Random) -> list[int]:
    mask = (1 << width) - 1
    return ([0, mask] + [rng.getrandbits(width) for _ in range(count)])[:count]


class Port:
    """One FIFO's ports and the cycle count of its driver."""

    def __init__(self, dut, index: int) -> None:
        self.clk = dut.clk
        self.s_data = getattr(dut, f"c{index}_s0_axis_tdata")
        self.s_valid = getattr(dut, f"c{index}_s0_axis_tvalid")
        self.s_ready = getattr(dut, f"c{index}_s0_axis_tready")
        self.m_data = getattr(dut, f"c{index}_m0_axis_tdata")
        self.m_valid = getattr(dut, f"c{index}_m0_axis_tvalid")
        self.m_ready = getattr(dut, f"c{index}_m0_axis_tready")
        self.cycle = 0

    async def phase(self, send: list[int], cycles: int | None, in_gap, out_stall, until_idle: int = 0) -> dict:
        """Drive ``send`` in, take outputs; stop after ``cycles`` cycles, or when everything was sent
        and nothing came out for ``until_idle`` cycles."""
        sent, got, in_cycles, out_cycles, idle, start = 0, [], [], [], 0, self.cycle
        while True:
            await FallingEdge(self.clk)
            self.cycle += 1
            ready, valid, data = int(self.s_ready.value), int(self.m_valid.value), int(self.m_data.value)
            want = sent < len(send) and not in_gap()
            take = not out_stall()
            self.s_valid.value = int(want)
            self.s_data.value = send[sent] if want else 0
            self.m_ready.value = int(take)
            if want and ready:
                in_cycles.append(self.cycle)
                sent += 1
            if valid and take:
                out_cycles.append(self.cycle)
                got.append(data)
                idle = 0
            else:
                idle += 1
            if cycles is not None and self.cycle - start >= cycles:
                break
            if cycles is None and sent == len(send) and idle >= until_idle:
                break
        await FallingEdge(self.clk)
        self.cycle += 1
        self.s_valid.value = 0
        self.m_ready.value = 0
        return {"sent": send[:sent], "got": got, "in_cycles": in_cycles, "out_cycles": out_cycles}


@cocotb.test()
async def test_fifo(dut) -> None:
    config = json.loads(Path(os.environ["FIFO_CONFIG"]).read_text())
    results_path = Path(os.environ["FIFO_RESULTS"])
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    ports = []
    for index, case in enumerate(config["cases"]):
        port = Port(dut, index)
        port.s_valid.value = 0
        port.m_ready.value = 0
        ports.append(port)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    async def run(index: int, case: dict, port: Port) -> dict:
        rng = random.Random(config["seed"] + index)
        depth, width = case["depth"], case["width"]
        never, always = (lambda: False), (lambda: True)
        fill = await port.phase(words(depth + 20, width, rng), depth + 20, never, always)
        drain = await port.phase([], None, never, never, until_idle=10)
        full_rate = await port.phase(words(3 * depth + 10, width, rng), None, never, never, until_idle=10)
        pause = random.Random(config["seed"] * 7919 + index)
        gap = lambda: pause.random() < PAUSE_PROBABILITY                     # noqa: E731
        rand = await port.phase(words(4 * depth + 50, width, rng), None, gap, gap, until_idle=40)
        return {"fill": fill, "drain": drain, "full_rate": full_rate, "random": rand}

    tasks = [cocotb.start_soon(run(i, c, p)) for i, (c, p) in enumerate(zip(config["cases"], ports))]
    records = [await task for task in tasks]
    results_path.write_text(json.dumps({"cases": [{"name": c["name"], "phases": r}
                                                  for c, r in zip(config["cases"], records)]}))
