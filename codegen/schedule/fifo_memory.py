"""Where the FIFOs between paths live: LUT RAM, block RAM, or UltraRAM packed into wide words.

A FIFO in front of a join holds the beats that arrive before the other input delivers
(folding.fifo_depths).  In front of an attention product and of the Add after attention that is
a whole sequence of tokens: at 128 tokens and one 8-bit lane, 49,538 words of 8 bits, 13 BRAM36
(einhls_fifo takes any depth; as the next power of two, 65,536 words, it took 16; Yosys maps the
49,538 to 12.5, bench/results/fifo_yosys.md).  UltraRAM has one shape, 72 bits x 4096 words, so
the same FIFO stored as it streams would take 13 URAM288 (a cascade of 8-bit-wide blocks); packed into words of K lanes (K x bits <= 72, K a
multiple of the stream's lanes dividing the features per token) by a lane converter in front and
one behind (einhls_lanes; HLS: the top's re-pack processes), it takes depth / K words: 2 URAM288
for that FIFO.

:func:`place_fifos` moves such FIFOs to UltraRAM as :func:`codegen.schedule.cost.place_roms` moves
weight ROMs: the longest first (most BRAM36 saved per URAM288), each while block RAM stays the
more loaded of the two after the move, and only FIFOs worth at least ``MIN_BRAM36`` blocks (a
short FIFO costs two lane converters for little memory).

The key / value buffers of the attention products (the b buffer of einhls_actmatmul: NB banks of
B_SEQS x D words of WC centred codes) are the other long memories: :func:`place_memories` places
them with the FIFOs by the same rule, most BRAM36 saved per URAM288 first.  A bank in UltraRAM
keeps its word and depth (the unit's read is registered either way, which the URAM288 needs), so
it takes ceil(width / 72) x ceil(depth / 4096) blocks; no converter.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from .cost import URAM_WIDTH, bram36_for, uram_for

#: the smallest FIFO (in BRAM36) worth packing into UltraRAM
MIN_BRAM36 = 4.0


@lru_cache(maxsize=4096)
def _packed_lanes(size: int, bits: int, stream_lanes: int) -> int:
    # a pure function of the shape, asked for every FIFO at every interval the scheduler tries
    best = stream_lanes
    for lanes in range(stream_lanes, min(size, URAM_WIDTH // max(bits, 1)) + 1, stream_lanes):
        if size % lanes == 0:
            best = lanes
    return best


def fifo_depth(need: int, width: int, blocks: Callable[[int, int], float] = bram36_for) -> int:
    """The depth of a FIFO of ``width``-bit words that must hold ``need`` words: the next power of
    two (einhls_fifo's cheapest pointers, and the slack is free where the blocks have it), or
    ``need`` itself where the power of two would take more ``blocks`` (block RAM by default,
    ``uram_for`` for a packed FIFO; einhls_fifo wraps at any depth: a sequence of 49,538 beats of 8
    bits takes 13 BRAM36 exactly, 16 as 65,536)."""
    power = 1 << max(1, (need - 1).bit_length())
    return need if blocks(width, need) < blocks(width, power) else power


@dataclass(frozen=True)
class FifoShape:
    """One FIFO: ``width`` = lanes x bits per beat, ``depth`` beats; in UltraRAM ``packed_lanes``
    lanes a word, ``packed_depth`` words, ``uram`` blocks."""
    size: int
    bits: int
    lanes: int
    depth: int

    @property
    def width(self) -> int:
        return self.lanes * self.bits

    @property
    def bram36(self) -> float:
        return bram36_for(self.width, self.depth)

    @property
    def packed_lanes(self) -> int:
        """The widest word of lanes (a multiple of the stream's, dividing the features per token)
        that fits one URAM288 row."""
        return _packed_lanes(self.size, self.bits, self.lanes)

    @property
    def packed_depth(self) -> int:
        """Words of the packed FIFO: the beats it holds, in packed words (the depth has its slack
        already, folding.fifo_depths; the converters add a word each), as a power of two unless
        that takes more URAM288 than the words themselves (einhls_fifo wraps at any depth)."""
        return fifo_depth(math.ceil(self.depth * self.lanes / self.packed_lanes), self.packed_lanes * self.bits,
                          uram_for)

    @property
    def uram(self) -> int:
        return uram_for(self.packed_lanes * self.bits, self.packed_depth)

    @property
    def converter_luts(self) -> int:
        """LUTs of the two lane converters around the packed FIFO (a register per packed bit and
        its select, each side)."""
        return 2 * self.packed_lanes * self.bits


def fifo_shapes(graph, depths: dict[tuple[str, int], int], schedules) -> dict[tuple[str, int], FifoShape]:
    """The shape of every FIFO of ``depths`` (keyed by (op, input index) as the Design's)."""
    shapes = {}
    for (name, index), depth in depths.items():
        op = graph.op(name)
        shapes[(name, index)] = FifoShape(op.input_sizes[index], op.input_types[index].bits,
                                          schedules[name].in_lanes, depth)
    return shapes


def place_fifos(shapes: dict[tuple[str, int], FifoShape], board, bram_used: float,
                uram_used: float) -> dict[tuple[str, int], int]:
    """FIFOs moved to UltraRAM, each with its packed lanes (the module docstring).  ``bram_used``
    and ``uram_used``: every other memory of the design, the FIFOs counted in block RAM."""
    if not getattr(board, "uram", 0):
        return {}
    movable = [(key, shape) for key, shape in shapes.items()
               if shape.bram36 >= MIN_BRAM36 and shape.packed_lanes > 0]
    movable.sort(key=lambda item: (-item[1].bram36 / item[1].uram, -item[1].bram36, item[0]))
    placed = {}
    for key, shape in movable:
        if (uram_used + shape.uram) / board.uram >= (bram_used - shape.bram36) / board.bram36:
            continue
        bram_used -= shape.bram36
        uram_used += shape.uram
        placed[key] = shape.packed_lanes
    return placed


@dataclass(frozen=True)
class BufferShape:
    """The b buffer of one attention product: ``banks`` memories of ``depth`` words of ``width``
    bits (schedule/attention_cost.py b_banks)."""
    banks: int
    depth: int
    width: int

    @property
    def bram36(self) -> float:
        return self.banks * bram36_for(self.width, self.depth)

    @property
    def uram(self) -> int:
        return self.banks * uram_for(self.width, self.depth)


def place_memories(shapes: dict[tuple[str, int], FifoShape], buffers: dict[str, BufferShape], board,
                   bram_used: float, uram_used: float) -> tuple[dict[tuple[str, int], int], frozenset[str]]:
    """(FIFOs moved to UltraRAM with their packed lanes, attention products whose b buffer moves to
    UltraRAM): both kinds in one list, most BRAM36 saved per URAM288 first, each moved when the
    move lowers the utilisation of the fuller of the two memories (the one that decides whether the
    design fits).  ``bram_used`` / ``uram_used``: every memory of the design, the FIFOs and the
    buffers counted in block RAM.  This moves at least what :func:`place_fifos` moves (whose rule,
    block RAM still the fuller after the move, implies this one) and also a memory after which
    UltraRAM is the fuller but less full than block RAM was."""
    if not getattr(board, "uram", 0):
        return {}, frozenset()
    movable = [(0, key, shape.bram36, shape.uram) for key, shape in shapes.items()
               if shape.bram36 >= MIN_BRAM36 and shape.packed_lanes > 0]
    # a buffer kind may set its own threshold (a stage buffer needs no lane converters)
    movable += [(1, name, shape.bram36, shape.uram) for name, shape in buffers.items()
                if shape.bram36 >= getattr(shape, "min_bram36", MIN_BRAM36)]
    movable.sort(key=lambda item: (-item[2] / item[3], -item[2], item[0], item[1]))
    fifos, placed_buffers = {}, set()
    for kind, key, bram, uram in movable:
        before = max(uram_used / board.uram, bram_used / board.bram36)
        if max((uram_used + uram) / board.uram, (bram_used - bram) / board.bram36) >= before:
            continue
        bram_used -= bram
        uram_used += uram
        if kind == 0:
            fifos[key] = shapes[key].packed_lanes
        else:
            placed_buffers.add(key)
    return fifos, frozenset(placed_buffers)


def fifo_memory(shapes: dict[tuple[str, int], FifoShape], uram_fifos: dict[tuple[str, int], int],
                lutram_fifos: frozenset = frozenset()) -> tuple[float, int, int, int]:
    """(BRAM36, URAM288, LUTs, bits) of the FIFOs: LUT RAM below a block RAM's worth, block RAM,
    packed UltraRAM for those in ``uram_fifos``, or LUT RAM for those in ``lutram_fifos``
    (schedule/lutram.py)."""
    from .lutram import lutram_luts
    bram, uram, lut, bits = 0.0, 0, 0, 0
    for key, shape in shapes.items():
        bits += shape.width * shape.depth
        if key in uram_fifos:
            uram += shape.uram
            lut += shape.converter_luts
            continue
        if key in lutram_fifos:
            lut += lutram_luts(shape.width, shape.depth)
            continue
        blocks = shape.bram36
        bram += blocks
        lut += 0 if blocks else shape.width * math.ceil(shape.depth / 64)
    return bram, uram, lut, bits
