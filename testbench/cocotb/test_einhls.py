"""cocotb test bench of an einhls accelerator top level (AXI4-Stream in, AXI4-Stream out).

Copied into OUT/tb/cocotb/ by einhls together with ``einhls_tb.json`` (the top's name and the
stream formats).  It is driven by ``einhls verify --rtlsim`` (codegen/verify/rtlsim.py), which
passes through the environment:

    EINHLS_INPUTS    .npy file, [vectors, input size] integer codes
    EINHLS_EXPECTED  .npy file, [vectors, output size] codes from the PyTorch reference (optional)
    EINHLS_RESULTS   JSON file this test writes (outputs, first mismatch, measured cycles)
    EINHLS_SEED      seed of the random pauses of phase 2

A watchdog stops the run when no output beat arrives for ``stall_cycles`` (from the schedule):
the results then name the streams that hold a beat their reader does not take (the stall).

Phase 1 sends every vector back to back with no pauses and an always-ready sink, and measures the
latency (clock edges from the one accepting the first input beat to the one delivering the last
output beat of frame 0) and the steady-state interval (the median number of cycles between the
completions of consecutive frames).  Phase 2 sends every vector again with random input gaps and random
output back-pressure.  Every element of every vector of both phases is compared.

The beat layout is einhls' (codegen/schedule/design.py, StreamFormat): element e of a frame is in
beat e // lanes, bits [(e % lanes) * bits, +bits), two's complement, zero padding.
"""
from __future__ import annotations

import json
import os
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

CONFIG_FILE = Path(__file__).with_name("einhls_tb.json")
CLOCK_NS = 10


@dataclass(frozen=True)
class Format:
    """One stream's layout (the fields of einhls' StreamFormat)."""
    size: int
    bits: int
    signed: bool
    lanes: int
    tdata_bits: int

    @property
    def beats(self) -> int:
        return -(-self.size // self.lanes)

    def pack(self, codes) -> list[int]:
        mask = (1 << self.bits) - 1
        words = []
        for b in range(self.beats):
            word = 0
            for lane, value in enumerate(codes[b * self.lanes:(b + 1) * self.lanes]):
                word |= (int(value) & mask) << (lane * self.bits)
            words.append(word)
        return words

    def unpack(self, words: list[int]) -> list[int]:
        mask = (1 << self.bits) - 1
        out = []
        for word in words:
            for lane in range(self.lanes):
                value = (int(word) >> (lane * self.bits)) & mask
                if self.signed and value >> (self.bits - 1):
                    value -= 1 << self.bits
                out.append(value)
        return out[:self.size]

    @staticmethod
    def from_json(d: dict) -> "Format":
        return Format(d["size"], d["bits"], bool(d["signed"]), d["lanes"], d["tdata_bits"])


def random_pauses(rng: random.Random, probability: float):
    """Pause generator for cocotbext-axi: True on a cycle means 'stall now'."""
    while True:
        yield rng.random() < probability


class TB:
    """The DUT with an AXI-Stream source and sink and a cycle-accurate handshake monitor."""

    def __init__(self, dut, in_fmt: Format, out_fmt: Format) -> None:
        self.dut = dut
        self.in_fmt = in_fmt
        self.out_fmt = out_fmt
        cocotb.start_soon(Clock(dut.ap_clk, CLOCK_NS, unit="ns").start())
        # byte_lanes=1: one frame element of cocotbext-axi is one whole beat (an integer)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk,
                                      dut.ap_rst_n, reset_active_level=False, byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk,
                                  dut.ap_rst_n, reset_active_level=False, byte_lanes=1)
        self.cycle = 0
        self.first_input_cycle: int | None = None
        self.frame_done_cycles: list[int] = []
        self.extra_beats = 0
        self.last_output_cycle = 0
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        # Sample mid-cycle, when the drivers' and the design's values have settled: a handshake
        # seen here completes at the next rising edge (cycle number self.cycle).
        while True:
            await FallingEdge(self.dut.ap_clk)
            self.cycle += 1
            if int(self.dut.s_axis_tvalid.value) and int(self.dut.s_axis_tready.value):
                if self.first_input_cycle is None:
                    self.first_input_cycle = self.cycle
            if int(self.dut.m_axis_tvalid.value) and int(self.dut.m_axis_tready.value):
                self.last_output_cycle = self.cycle
                if int(self.dut.m_axis_tlast.value):
                    self.frame_done_cycles.append(self.cycle)

    async def reset(self) -> None:
        self.dut.ap_rst_n.value = 0
        self.dut.s_axis_tlast.value = 0
        await ClockCycles(self.dut.ap_clk, 8)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 4)

    def start_measuring(self) -> None:
        self.first_input_cycle = None
        self.frame_done_cycles = []

    def blocked_streams(self, streams: list[dict]) -> list[dict]:
        """Streams whose writer offers a beat that the reader does not take (valid and not ready)."""
        blocked = []
        for st in streams:
            try:
                valid = int(getattr(self.dut, f"{st['wire']}_tvalid").value)
                ready = int(getattr(self.dut, f"{st['wire']}_tready").value)
            except (AttributeError, ValueError):
                continue
            if valid and not ready:
                blocked.append(st)
        return blocked

    async def run(self, vectors: np.ndarray, stall_cycles: int) -> list[list[int]]:
        """Send every vector as one frame and return the output frames as element lists; raises
        Stalled when no output beat arrives for ``stall_cycles``."""
        for vector in vectors:
            await self.source.send(AxiStreamFrame(self.in_fmt.pack(vector)))
        outputs = []
        self.last_output_cycle = self.cycle
        for _ in range(len(vectors)):
            while self.sink.empty():
                await ClockCycles(self.dut.ap_clk, 16)
                if self.cycle - self.last_output_cycle > stall_cycles:
                    raise Stalled(self.cycle - self.last_output_cycle, len(outputs))
            frame = self.sink.recv_nowait(compact=False)
            beats = [int(b) for b in frame.tdata]
            if len(beats) != self.out_fmt.beats:
                raise AssertionError(f"output frame {len(outputs)} has {len(beats)} beats between "
                                     f"tlast markers, expected {self.out_fmt.beats}")
            outputs.append(self.out_fmt.unpack(beats))
        return outputs


class Stalled(Exception):
    """No output beat for too long: the design is deadlocked or starved."""

    def __init__(self, cycles: int, frames_done: int) -> None:
        super().__init__(f"no output beat for {cycles} cycles after {frames_done} frames")
        self.cycles, self.frames_done = cycles, frames_done


def first_mismatch(expected: np.ndarray | None, got: list[list[int]]) -> dict | None:
    if expected is None:
        return None
    got_arr = np.asarray(got, dtype=np.int64)
    diff = np.argwhere(got_arr != expected)
    if not diff.size:
        return None
    v, e = (int(i) for i in diff[0])
    return {"vector": v, "element": e, "expected": int(expected[v, e]), "got": int(got_arr[v, e])}


@cocotb.test()
async def test_einhls_top(dut) -> None:
    config = json.loads(CONFIG_FILE.read_text())
    in_fmt = Format.from_json(config["input"])
    out_fmt = Format.from_json(config["output"])
    inputs = np.load(os.environ["EINHLS_INPUTS"]).astype(np.int64).reshape(-1, in_fmt.size)
    expected_path = os.environ.get("EINHLS_EXPECTED", "")
    expected = (np.load(expected_path).astype(np.int64).reshape(-1, out_fmt.size)
                if expected_path else None)
    results_path = Path(os.environ.get("EINHLS_RESULTS", "results.json"))
    seed = int(os.environ.get("EINHLS_SEED", "0"))
    count = len(inputs)
    timeout = config["timeout_cycles"] + count * config["cycles_per_frame_bound"] * 4

    stall_cycles = config.get("stall_cycles", timeout)
    tb = TB(dut, in_fmt, out_fmt)
    await tb.reset()

    async def guarded(phase: str, run):
        try:
            return await run
        except Stalled as exc:
            blocked = tb.blocked_streams(config.get("streams", []))
            results_path.write_text(json.dumps({"stall": {"phase": phase, "cycles": exc.cycles,
                                                          "frames_done": exc.frames_done, "blocked": blocked}}))
            raise AssertionError(f"{phase}: stalled, {exc}; blocked streams: {blocked}") from None

    # phase 1: back to back, no pauses; latency and interval
    tb.start_measuring()
    outputs = await guarded("back to back", tb.run(inputs, stall_cycles))
    done = tb.frame_done_cycles[:count]
    latency = done[0] - tb.first_input_cycle if done and tb.first_input_cycle is not None else None
    gaps = [b - a for a, b in zip(done, done[1:])]
    interval = int(statistics.median(gaps)) if gaps else None
    # units that keep several frames in flight (the butterfly) deliver frames in bursts: the mean
    # is their throughput, the median would show the gap inside a burst
    mean_interval = round((done[-1] - done[0]) / (len(done) - 1), 2) if len(done) > 1 else None
    mismatch = first_mismatch(expected, outputs)

    # phase 2: random input gaps and output back-pressure, seeded
    rng = random.Random(seed)
    tb.source.set_pause_generator(random_pauses(rng, 0.3))
    tb.sink.set_pause_generator(random_pauses(rng, 0.3))
    outputs_bp = await guarded("random pauses", tb.run(inputs, stall_cycles * 4))
    mismatch_bp = first_mismatch(expected, outputs_bp)

    results = {"vectors": count, "outputs": outputs, "outputs_backpressure": outputs_bp,
               "mismatch": mismatch, "mismatch_backpressure": mismatch_bp,
               "latency_cycles": latency, "interval_cycles": interval, "mean_interval_cycles": mean_interval,
               "frame_gaps": gaps, "seed": seed}
    results_path.write_text(json.dumps(results))
    assert mismatch is None, f"phase 1 (no pauses): {mismatch}"
    assert mismatch_bp is None, f"phase 2 (random pauses): {mismatch_bp}"
