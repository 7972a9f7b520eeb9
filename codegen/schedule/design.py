"""A scheduled design: the IR graph plus the parallelism of every op and the stream layout.

This is what the emitters (HLS C++, Verilog, testbench, driver) read.  All stream geometry lives
here so that every back end packs elements identically.

Stream layout (the same on internal streams and at the AXI4-Stream top level): element ``e`` of a
frame travels in beat ``e // lanes``, lane ``e % lanes``, in bits ``[lane*bits, (lane+1)*bits)`` of
the beat, two's complement when signed.  Lanes after the last element of the frame are zero.  At the
top level ``tdata`` is rounded up to whole bytes (unused high bits zero) and ``tlast`` marks the
last beat of a frame; internally frames are delimited by counting beats.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..ir.graph import GRAPH_INPUT, Graph, Linear, Op


@dataclass(frozen=True)
class OpSchedule:
    """Parallelism of one op.

    For ``Linear``: ``simd`` inputs x ``pe`` outputs per cycle (for N:M sparse ops ``simd`` is a
    multiple of M and each PE has simd*N/M multipliers); for elementwise ops simd = pe = lanes.
    ``in_lanes`` / ``out_lanes``: elements per beat on the op's input and output streams.
    """
    op: str
    simd: int
    pe: int
    in_lanes: int
    out_lanes: int
    # Linear only: 2 when two consecutive tokens share every weight read (einhls_linear
    # TOKEN_PACK; schedule/packing.py token_pair_config), so NF*KF cycles make two tokens
    token_pack: int = 1
    # Linear only: 4 when PEs 4q..4q+3 share one DSP for one vector (einhls_linear PACK = 4;
    # schedule/packing.py pe_quad_config): a choice of the scheduler, never implied by the shape
    pe_pack: int = 1
    # TokenMean / MaskedTokenMean only: 1 when the unit has two banks of sums, so a sequence's means
    # drain while the next accumulates (einhls_tokenmean OVERLAP; schedule/pooling_cost.py
    # mean_overlap): TOKENS x BEATS cycles a sequence instead of (TOKENS + 1) x BEATS
    overlap: int = 0
    # ContractStage only: the outputs of one repeat (N) when the stage's PE slots run over the R
    # repeats' outputs flattened, R*N of them in ceil(R*N / PE) groups, output o reading repeat
    # o // N (a span fold: einhls_linear REPS; schedule/contraction.py span_options); 0: one
    # repeat after another, R*ceil(N/PE) groups
    span: int = 0


@dataclass(frozen=True)
class StreamFormat:
    size: int      # elements per frame (all tokens)
    bits: int      # bits per element
    signed: bool
    lanes: int     # elements per beat (divides the features per token when a frame has several tokens)

    @property
    def beats(self) -> int:
        return math.ceil(self.size / self.lanes)

    @property
    def width(self) -> int:
        """Packed width of one beat inside the design."""
        return self.lanes * self.bits

    @property
    def tdata_bits(self) -> int:
        """AXI4-Stream tdata width at the top level (whole bytes)."""
        return math.ceil(self.width / 8) * 8

    def pack(self, codes: np.ndarray) -> list[int]:
        """One frame of codes -> list of beat integers (unsigned, as on the wire)."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1)
        assert codes.size == self.size
        mask = (1 << self.bits) - 1
        beats = []
        for b in range(self.beats):
            word = 0
            for lane, value in enumerate(codes[b * self.lanes:(b + 1) * self.lanes]):
                word |= (int(value) & mask) << (lane * self.bits)
            beats.append(word)
        return beats

    def unpack(self, beats: list[int]) -> np.ndarray:
        """List of beat integers -> one frame of codes."""
        mask = (1 << self.bits) - 1
        out = []
        for word in beats:
            for lane in range(self.lanes):
                value = (int(word) >> (lane * self.bits)) & mask
                if self.signed and value >> (self.bits - 1):
                    value -= 1 << self.bits
                out.append(value)
        return np.asarray(out[: self.size], dtype=np.int64)

    def to_json(self) -> dict:
        return {**asdict(self), "beats": self.beats, "tdata_bits": self.tdata_bits,
                "layout": "element e -> beat e//lanes, bits [(e%lanes)*bits, (e%lanes+1)*bits), "
                          "two's complement if signed, little-endian lanes, zero padding"}


def divisor_at_most(size: int, lanes: int) -> int:
    """The largest divisor of ``size`` that is at most ``lanes``."""
    return max(d for d in range(1, max(1, min(size, lanes)) + 1) if size % d == 0)


@dataclass
class Design:
    """The graph (forks explicit: every tensor has one reader), every op's parallelism, and the
    depth of the FIFO in front of every op input (``fifo_depths[(op, input index)]``, beats;
    absent: no FIFO beyond the units' own registers)."""
    graph: Graph
    schedules: dict[str, OpSchedule]
    board: "object"   # codegen.schedule.boards.Board
    clock_mhz: float
    top_name: str = "einhls_top"
    fifo_depths: dict[tuple[str, int], int] = field(default_factory=dict)
    # where each Linear op's weight ROM lives ("lutram" | "bram" | "uram"; schedule/cost.py:
    # place_roms); absent: the emitters derive it from the ROM's shape (LUTs or block RAM)
    rom_kinds: dict[str, str] = field(default_factory=dict)
    # sequences of b each attention product holds (1 or 2; absent: 2, the ping-pong buffer;
    # schedule/attention_cost.py: 1 only where two do not fit)
    buffer_sequences: dict[str, int] = field(default_factory=dict)
    # FIFOs in front of op inputs placed in UltraRAM, lane-packed (schedule/fifo_memory.py)
    uram_fifos: dict[tuple[str, int], int] = field(default_factory=dict)
    # attention products whose key / value (b) buffer is in UltraRAM (schedule/fifo_memory.py:
    # place_memories); the others keep it in block RAM or LUT RAM
    uram_buffers: frozenset[str] = frozenset()
    # contraction stages and permutations whose frame buffer is in UltraRAM, rows packed into
    # 72-bit words (schedule/contraction_memory.py); the others keep it in block RAM or LUT RAM
    uram_stage_buffers: frozenset[str] = frozenset()
    # FIFOs in front of op inputs, and units whose small memories (a Linear unit's input buffer, a
    # LayerNorm or Softmax unit's row buffers), placed in LUT RAM where block RAM is what the
    # design runs out of (schedule/lutram.py)
    lutram_fifos: frozenset[tuple[str, int]] = frozenset()
    lutram_units: frozenset[str] = frozenset()

    def schedule(self, op: Op) -> OpSchedule:
        return self.schedules[op.name]

    def input_format(self, op: Op, index: int = 0) -> StreamFormat:
        """One token of input ``index`` as the op's unit reads it."""
        s = self.schedules[op.name]
        t = op.input_types[index]
        return StreamFormat(op.input_sizes[index], t.bits, t.signed, s.in_lanes)

    def output_format(self, op: Op) -> StreamFormat:
        """One token of the op's output as its unit writes it."""
        s = self.schedules[op.name]
        return StreamFormat(op.out_size, op.out_type.bits, op.out_type.signed, s.out_lanes)

    def tensor_format(self, tensor: str) -> StreamFormat:
        """One token of ``tensor`` as its producer writes it (the graph input: as the top delivers it)."""
        producer = self.graph.producer(tensor)
        if producer is None:
            t = self.graph.input_type
            return StreamFormat(self.graph.input_size, t.bits, t.signed, self.top_input.lanes)
        return self.output_format(producer)

    def _top_format(self, size: int, qtype, lanes: int, tokens: int) -> StreamFormat:
        if tokens > 1:   # lanes dividing the features: tokens follow one another without padding
            lanes = divisor_at_most(size, lanes)
        return StreamFormat(size * tokens, qtype.bits, qtype.signed, lanes)

    @property
    def top_input(self) -> StreamFormat:
        graph = self.graph
        first = graph.consumers(GRAPH_INPUT)[0][0]
        return self._top_format(graph.input_size, graph.input_type, self.schedules[first.name].in_lanes,
                                graph.tokens)

    @property
    def top_output(self) -> StreamFormat:
        graph = self.graph
        producer = graph.producer(graph.output)
        return self._top_format(graph.output_size, graph.output_type, self.schedules[producer.name].out_lanes,
                                graph.output_tokens)


def linear_folds(op: Linear, s: OpSchedule) -> tuple[int, int]:
    """(NF, KF): output folds and input folds; one (nf, kf) step per cycle, NF*KF cycles a frame
    (a pair of tokens when ``s.token_pack`` is 2)."""
    return math.ceil(op.out_size / s.pe), math.ceil(op.in_size / s.simd)
