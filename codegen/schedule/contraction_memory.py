"""Frame buffers of contraction stages and permutations in UltraRAM (einhls_permute ``URAM = 1``).

A permutation buffer (schedule/contraction.py PermuteLayout) is ``banks`` memories of two frames'
rows each, one element a word: in block RAM ``banks x bram36_for(bits, 2 x rows)``.  The URAM288
has one shape, 72 bits x 4096 words, so a bank of narrow elements in it would waste most of it;
einhls_permute (and einhls::permute) pack PACK consecutive rows of a bank into one word instead:

    SLOT = 9 x ceil(bits / 9)                  an element's slot: whole 9-bit URAM bytes
    PACK = 2^LOGP, the largest with PACK x SLOT <= 72, at most 2^RW (RW = the row counter's width,
           so the half, the top address bit, stays in the word address)
    words per bank = 2^(RW + 1) / PACK         (the Verilog declares 2^(RW + 1) rows)
    URAM288 per bank = ceil(PACK x SLOT / 72) x ceil(words / 4096)

A write sets one slot through the URAM's byte-write enables (one write per bank per cycle, as
before; no read-modify-write); a read takes the word and selects the slot, one register later.
An 8-bit bank of two 4,096-element frames thus takes one URAM288 (8 slots of 9 bits a word,
1,024 words) where block RAM needs two BRAM36.

:func:`stage_buffer_shapes` gives every such buffer of a design for the placement of
schedule/fifo_memory.py place_memories, which moves them with the FIFOs and the attention
products' key / value buffers, most BRAM36 saved per URAM288 first, while the move lowers the
utilisation of the fuller memory; :func:`move_stage_buffers_to_uram` restates the costs.  The slot
multiplexer and the write enables cost LUTs (``uram_lut``, an estimate: Yosys xcup measured -1 to
46 LUTs a bank more than the block RAM path on the buffers of tests/test_contraction_uram.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from .cost import URAM_WIDTH, OpCost, bram36_for, uram_for
from .design import OpSchedule

URAM_BYTE = 9   # a URAM288 byte-write enable covers 9 bits


def row_counter_bits(rows: int) -> int:
    """einhls_permute's RW: the width of a row address (at least 1)."""
    return 1 if rows <= 2 else math.ceil(math.log2(rows))


@dataclass(frozen=True)
class StageBufferShape:
    """One permutation buffer: ``banks`` memories of two frames of ``rows`` words of ``bits``."""
    banks: int
    rows: int
    bits: int
    #: the smallest buffer place_memories considers: a BRAM36 (no lane converters to pay for, unlike
    #: a FIFO; a half block would take a whole URAM288)
    min_bram36: float = 1.0

    @cached_property
    def slot_bits(self) -> int:
        return URAM_BYTE * math.ceil(self.bits / URAM_BYTE)

    @cached_property
    def log_pack(self) -> int:
        fit = 0
        while (2 << fit) * self.slot_bits <= URAM_WIDTH:
            fit += 1
        return min(fit, row_counter_bits(self.rows))

    @cached_property
    def pack(self) -> int:
        """Rows of a bank per UltraRAM word."""
        return 1 << self.log_pack

    @cached_property
    def uram_words(self) -> int:
        return 1 << (row_counter_bits(self.rows) + 1 - self.log_pack)

    @cached_property
    def bram36(self) -> float:
        """Block RAM of the buffer as schedule/contraction.py costs it (0 in LUT RAM)."""
        return self.banks * bram36_for(self.bits, 2 * self.rows)

    @cached_property
    def uram(self) -> int:
        return self.banks * uram_for(self.pack * self.slot_bits, self.uram_words)

    @cached_property
    def uram_lut(self) -> int:
        """LUTs the UltraRAM path adds: the slot multiplexer of each bank's read and its write
        enables (an estimate)."""
        if self.pack == 1:
            return 0
        return self.banks * (self.bits * math.ceil(self.pack / 4) + self.pack)


def stage_buffer_shapes(graph, schedules: dict[str, OpSchedule],
                        cache: dict[OpSchedule, StageBufferShape | None] | None = None) -> dict[str, StageBufferShape]:
    """The permutation buffer of every contraction stage with a gather and every permutation.
    ``cache``: shapes by schedule (an OpSchedule names its op), kept by the caller across the
    hundreds of designs one fold builds."""
    from .contraction import permute_layout, stage_layout
    #: op kind -> the layout of its permutation buffer (None: the stage needs none)
    layouts = {"contract": stage_layout,
               "permute": lambda op, s: permute_layout(op.transposition, s.in_lanes, s.out_lanes)}
    cache = {} if cache is None else cache
    shapes = {}
    for op in graph.ops:
        if op.kind not in layouts:
            continue
        s = schedules[op.name]
        if s not in cache:
            layout = layouts[op.kind](op, s)
            cache[s] = None if layout is None else StageBufferShape(layout.banks, layout.rows, op.in_type.bits)
        if cache[s] is not None:
            shapes[op.name] = cache[s]
    return shapes


def move_stage_buffers_to_uram(costs: dict[str, OpCost], shapes: dict[str, StageBufferShape], names) -> None:
    """Restate the memory of the stages / permutations in ``names``: their buffer in UltraRAM, not
    block RAM (the Linear unit's own block RAM stays).  Mutates ``costs``."""
    for name in names:
        c, shape = costs[name], shapes[name]
        c.bram36 -= shape.bram36
        c.uram += shape.uram
        c.lut += shape.uram_lut
