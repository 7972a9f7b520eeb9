"""cocotb test bench of the einhls graph units (fork, add, mul, concat, slice), all in one wrapper.

Driven by tests/test_join_units.py, which renders the wrapper (``join_units_top.v.j2``: case c has
ports ``c<c>_s<i>_axis_*`` and ``c<c>_m<o>_axis_*``) and passes through the environment:

    JOIN_UNITS_CONFIG   JSON: {"seed": int, "cases": [{"name", "inputs": [{"bits", "lanes",
                        "tokens": [[codes]]}], "outputs": [{"bits", "signed", "lanes", "beats"}]}]}
                        ("beats": output beats over all tokens)
    JOIN_UNITS_RESULTS  JSON this test writes: per case, per phase, every output stream's lanes
                        (padding included, two's complement decoded) and the cycle of every input
                        and output handshake.

Every case runs at the same time, in two phases: (1) no pauses and always-ready outputs, (2) random
input gaps and output back-pressure (seeded).  The bench only packs, drives and records; the
comparison with the reference and the throughput check are the pytest side's.  Beats are packed as
every einhls unit expects: element e in beat e // lanes, bits [(e % lanes) * bits +: bits].
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

CLOCK_NS = 10
PAUSE_PROBABILITY = 0.3


def pack(codes: list[int], bits: int, lanes: int) -> list[int]:
    mask = (1 << bits) - 1
    words = []
    for start in range(0, len(codes), lanes):
        word = 0
        for lane, value in enumerate(codes[start:start + lanes]):
            word |= (int(value) & mask) << (lane * bits)
        words.append(word)
    return words


def unpack(words: list[int], bits: int, signed: bool, lanes: int) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for word in words:
        for lane in range(lanes):
            value = (int(word) >> (lane * bits)) & mask
            if signed and value >> (bits - 1):
                value -= 1 << bits
            out.append(value)
    return out


def random_pauses(rng: random.Random, probability: float):
    """Pause generator for cocotbext-axi: True on a cycle means 'stall now'."""
    while True:
        yield rng.random() < probability


class Case:
    """One unit instance: a source per input, a sink per output, handshake cycles of each."""

    def __init__(self, dut, index: int, spec: dict) -> None:
        self.spec = spec
        self.sources = [AxiStreamSource(AxiStreamBus.from_prefix(dut, f"c{index}_s{i}_axis"), dut.clk, dut.rst,
                                        byte_lanes=1) for i in range(len(spec["inputs"]))]
        self.sinks = [AxiStreamSink(AxiStreamBus.from_prefix(dut, f"c{index}_m{o}_axis"), dut.clk, dut.rst,
                                    byte_lanes=1) for o in range(len(spec["outputs"]))]
        self.in_handshakes = [(getattr(dut, f"c{index}_s{i}_axis_tvalid"), getattr(dut, f"c{index}_s{i}_axis_tready"))
                              for i in range(len(self.sources))]
        self.out_handshakes = [(getattr(dut, f"c{index}_m{o}_axis_tvalid"), getattr(dut, f"c{index}_m{o}_axis_tready"))
                               for o in range(len(self.sinks))]
        self.in_cycles: list[list[int]] = [[] for _ in self.sources]
        self.out_cycles: list[list[int]] = [[] for _ in self.sinks]

    def sample(self, cycle: int) -> None:
        for cycles, (valid, ready) in zip(self.in_cycles, self.in_handshakes):
            if int(valid.value) and int(ready.value):
                cycles.append(cycle)
        for cycles, (valid, ready) in zip(self.out_cycles, self.out_handshakes):
            if int(valid.value) and int(ready.value):
                cycles.append(cycle)

    def set_pauses(self, rng: random.Random | None) -> None:
        for port in [*self.sources, *self.sinks]:
            if rng is None:
                port.clear_pause_generator()
            else:
                port.set_pause_generator(random_pauses(rng, PAUSE_PROBABILITY))

    async def run(self) -> dict:
        """Send every token of every input, collect every output beat; returns the phase record."""
        self.in_cycles = [[] for _ in self.sources]
        self.out_cycles = [[] for _ in self.sinks]
        for source, stream in zip(self.sources, self.spec["inputs"]):
            words = [w for token in stream["tokens"] for w in pack(token, stream["bits"], stream["lanes"])]
            await source.send(AxiStreamFrame(words))      # no tlast: the unit counts beats
        outputs = []
        for sink, stream in zip(self.sinks, self.spec["outputs"]):
            words = []
            for _ in range(stream["beats"]):              # without tlast every beat is a frame
                frame = await sink.recv(compact=False)
                words += [int(w) for w in frame.tdata]
            outputs.append(unpack(words, stream["bits"], stream["signed"], stream["lanes"]))
        return {"outputs": outputs, "in_cycles": self.in_cycles, "out_cycles": self.out_cycles,
                "extra_beats": [sink.count() for sink in self.sinks]}


@cocotb.test()
async def test_join_units(dut) -> None:
    config = json.loads(Path(os.environ["JOIN_UNITS_CONFIG"]).read_text())
    results_path = Path(os.environ["JOIN_UNITS_RESULTS"])
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    cases = [Case(dut, i, spec) for i, spec in enumerate(config["cases"])]
    cycle = 0

    async def monitor() -> None:
        # mid-cycle, when drivers and design have settled: a handshake seen here completes at the
        # next rising edge
        nonlocal cycle
        while True:
            await FallingEdge(dut.clk)
            cycle += 1
            for case in cases:
                case.sample(cycle)

    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    cocotb.start_soon(monitor())

    longest = max(sum(len(t) for s in c["inputs"] for t in s["tokens"]) + sum(s["beats"] for s in c["outputs"])
                  for c in config["cases"])
    records = [[] for _ in cases]
    rng = random.Random(config["seed"])
    for phase in range(2):
        for case in cases:
            case.set_pauses(rng if phase == 1 else None)
        tasks = [cocotb.start_soon(case.run()) for case in cases]
        for record, task in zip(records, tasks):
            record.append(await with_timeout(task, (100 + 20 * longest) * CLOCK_NS, "ns"))
        await ClockCycles(dut.clk, 8)           # nothing may come out after the last token
        for record, case in zip(records, cases):
            record[-1]["extra_beats"] = [sink.count() for sink in case.sinks]
    results_path.write_text(json.dumps({"cases": [{"name": c["name"], "phases": r}
                                                  for c, r in zip(config["cases"], records)]}))
