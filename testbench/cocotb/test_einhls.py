"""cocotb test bench of an einhls accelerator top level (AXI4-Stream in, AXI4-Stream out).

Copied into OUT/tb/cocotb/ by einhls together with ``einhls_tb.json`` (the top's name and the
stream formats).  It is driven by ``einhls verify --rtlsim`` (codegen/verify/rtlsim.py), which
passes through the environment:

    EINHLS_INPUTS    .npy file, [vectors, input size] integer codes
    EINHLS_EXPECTED  .npy file, [vectors, output size] codes from the PyTorch reference (optional)
    EINHLS_RESULTS   JSON file this test writes (outputs, first mismatch, measured cycles)
    EINHLS_SEED      seed of the random pauses of phase 2
    EINHLS_PAUSED_VECTORS  how many of the vectors (the first ones) phase 2 sends (default all)

A watchdog stops the run when no output beat arrives for ``stall_cycles`` (from the schedule):
the results then name the streams that hold a beat their reader does not take (the stall).

Phase 1 sends every vector back to back with no pauses and an always-ready sink, and measures the
latency (clock edges from the one accepting the first input beat to the one delivering the last
output beat of frame 0) and the steady-state interval (the median number of cycles between the
completions of consecutive frames).  Phase 2 sends the vectors again (all, or the first
EINHLS_PAUSED_VECTORS) with random input gaps and random output back-pressure.  Every element of
every vector of both phases is compared.  The drivers run Python per beat, not per cycle (TB).

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
from typing import Iterator

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

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


def random_gaps(rng: random.Random, probability: float) -> Iterator[int]:
    """Idle cycles before each beat: a cycle is skipped with ``probability`` (a geometric count),
    the same pattern as a per-cycle pause that holds a beat back."""
    while True:
        gap = 0
        while rng.random() < probability:
            gap += 1
        yield gap


def random_pauses(rng: random.Random, probability: float) -> Iterator[bool]:
    """True on a cycle means 'not ready now'."""
    while True:
        yield rng.random() < probability


def cycle_now() -> int:
    """The number of the current clock edge (the clock starts at time 0)."""
    return round(get_sim_time("ns") / CLOCK_NS)


class TB:
    """The DUT with its own lean AXI-Stream source and sink.

    Python runs once per beat, not once per cycle: while the design does not take the input
    (tready low) or offers no output (tvalid low), the drivers wait for that signal's rising edge,
    not for every clock edge; cycle numbers come from the simulation time.  A long layer spends
    thousands of cycles per token between beats, where per-cycle Python cost more than the
    Verilated model itself (the 128-token MiniLM layer, 3.2 million cycles: 158 s with a per-cycle
    monitor and source, 27 s without).

    Sampling follows cocotbext-axi: a handshake signal read right after a rising clock edge has
    its value at that edge, and a value written there takes effect for the next edge.
    """

    def __init__(self, dut, in_fmt: Format, out_fmt: Format) -> None:
        self.dut = dut
        self.in_fmt = in_fmt
        self.out_fmt = out_fmt
        cocotb.start_soon(Clock(dut.ap_clk, CLOCK_NS, unit="ns").start())
        self.clock_edge = RisingEdge(dut.ap_clk)
        self.first_input_cycle: int | None = None
        self.frame_done_cycles: list[int] = []
        self.last_output_cycle = 0

    async def reset(self) -> None:
        self.dut.ap_rst_n.value = 0
        self.dut.s_axis_tvalid.value = 0
        self.dut.s_axis_tlast.value = 0
        self.dut.m_axis_tready.value = 0
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

    async def send(self, vectors: np.ndarray, gaps: Iterator[int] | None) -> None:
        """Every vector as one frame on s_axis; tvalid drops only for the gaps asked for."""
        dut = self.dut
        ready_rise = RisingEdge(dut.s_axis_tready)
        for vector in vectors:
            words = self.in_fmt.pack(vector)
            for index, word in enumerate(words):
                gap = next(gaps) if gaps is not None else 0
                if gap:
                    dut.s_axis_tvalid.value = 0
                    await ClockCycles(dut.ap_clk, gap)
                dut.s_axis_tdata.value = word
                dut.s_axis_tlast.value = int(index == len(words) - 1)
                dut.s_axis_tvalid.value = 1
                await self.clock_edge
                while not dut.s_axis_tready.value:
                    await ready_rise          # the design takes nothing until tready rises
                    await self.clock_edge
                if self.first_input_cycle is None:
                    self.first_input_cycle = cycle_now()
        dut.s_axis_tvalid.value = 0
        dut.s_axis_tlast.value = 0

    async def receive(self, count: int, stall_cycles: int, pauses: Iterator[bool] | None) -> list[list[int]]:
        """``count`` frames from m_axis as element lists; tready drops only on the pauses asked
        for (decided on each cycle that offers a beat).  Raises Stalled when no output beat
        arrives for ``stall_cycles``."""
        dut = self.dut
        valid_rise = RisingEdge(dut.m_axis_tvalid)
        outputs: list[list[int]] = []
        beats: list[int] = []
        self.last_output_cycle = cycle_now()
        ready = 1
        dut.m_axis_tready.value = ready
        while len(outputs) < count:
            await self.clock_edge
            now = cycle_now()
            if dut.m_axis_tvalid.value:
                if ready:
                    beats.append(int(dut.m_axis_tdata.value))
                    self.last_output_cycle = now
                    if dut.m_axis_tlast.value:
                        if len(beats) != self.out_fmt.beats:
                            raise AssertionError(f"output frame {len(outputs)} has {len(beats)} beats between "
                                                 f"tlast markers, expected {self.out_fmt.beats}")
                        outputs.append(self.out_fmt.unpack(beats))
                        self.frame_done_cycles.append(now)
                        beats = []
                if pauses is not None:
                    ready = int(not next(pauses))
                    dut.m_axis_tready.value = ready
                continue
            # nothing offered: sleep until tvalid rises, or until the design counts as stalled
            left = stall_cycles - (now - self.last_output_cycle)
            if left <= 0:
                raise Stalled(now - self.last_output_cycle, len(outputs))
            woken = await First(valid_rise, Timer(left * CLOCK_NS, "ns"))
            if woken is not valid_rise and not dut.m_axis_tvalid.value:
                now = cycle_now()
                raise Stalled(now - self.last_output_cycle, len(outputs))
        dut.m_axis_tready.value = 0
        return outputs

    async def run(self, vectors: np.ndarray, stall_cycles: int, gaps: Iterator[int] | None = None,
                  pauses: Iterator[bool] | None = None) -> list[list[int]]:
        """Send every vector as one frame and return the output frames; raises Stalled when no
        output beat arrives for ``stall_cycles``."""
        sender = cocotb.start_soon(self.send(vectors, gaps))
        try:
            outputs = await self.receive(len(vectors), stall_cycles, pauses)
        except BaseException:
            sender.cancel()
            raise
        await sender        # the last input beat went in before the last output beat came out
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
    paused_count = min(count, int(os.environ.get("EINHLS_PAUSED_VECTORS") or count))
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
    paused_inputs = inputs[:paused_count]
    outputs_bp = await guarded("random pauses", tb.run(paused_inputs, stall_cycles * 4,
                                                        gaps=random_gaps(rng, 0.3), pauses=random_pauses(rng, 0.3)))
    mismatch_bp = first_mismatch(None if expected is None else expected[:paused_count], outputs_bp)

    results = {"vectors": count, "paused_vectors": paused_count, "outputs": outputs, "outputs_backpressure": outputs_bp,
               "mismatch": mismatch, "mismatch_backpressure": mismatch_bp,
               "latency_cycles": latency, "interval_cycles": interval, "mean_interval_cycles": mean_interval,
               "frame_gaps": gaps, "seed": seed}
    results_path.write_text(json.dumps(results))
    assert mismatch is None, f"phase 1 (no pauses): {mismatch}"
    assert mismatch_bp is None, f"phase 2 (random pauses): {mismatch_bp}"
