"""One sequence of keys / values per attention product: what it saves and what it costs a pipeline.

Each attention product (einhls_actmatmul) buffers its input b, the keys of Q K^T or the values of
P V, for a whole sequence before its first row.  With two sequence banks (the default) the next
sequence's b loads while this one's rows run, and the pipeline keeps its rate.  With one
(``B_SEQS = 1``) the bank is free only after the sequence's last row, so the unit alternates:

* load: TOKENS tokens of b, at the rate the pipeline delivers them (``rate`` cycles per token:
  b comes from a Linear unit paced like every other unit);
* rows: TOKENS rows of a; each row's outputs go on through the units after the product (softmax,
  P V, the output projection, the FFN ...), which take ``rate`` cycles per token, so the rows take
  TOKENS x max(rate, the unit's own cycles per row).

While a unit loads, nothing leaves it; while it runs its rows, the Linear unit feeding b stalls,
and with it the fork that also feeds the queries, the values and the residual.  A sequence thus
takes TOKENS x (rate + max(rate, rows)) cycles: twice the pipeline's rate when the MAC array is
faster than the units around it.  Successive layers alternate (one loads while the one before runs
its rows), so the layers do not add up.  The scheduler (folding.fold) chooses this only when two
sequences do not fit at any interval.

The unit alone, its streams at full rate, is measured in RTL simulation and C-sim
(tests/test_attention_units.py: the rows plus the load, exactly); the pipeline formula here was
checked on two small encoder layers at 64 tokens (tests/test_encoder_buffers.py, slow): 126,925
cycles a sequence measured in RTL simulation against 131,072 estimated (the rate alone: 65,536).
No MiniLM-sized layer with one-sequence buffers was simulated.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir.graph import Graph
from .attention_cost import actmatmul_cost
from .cost import OpCost
from .design import OpSchedule

if TYPE_CHECKING:   # fifo_memory imports this module
    from .fifo_memory import BufferShape


def single_buffer_costs(graph: Graph, schedules: dict[str, OpSchedule], costs: dict[str, OpCost],
                        dsp_kind: str) -> None:
    """Restate every attention product's memory for one sequence of b (bram36, lut, buffer_bits);
    ``ii`` stays the unit's rate (the sequence interval is :func:`single_buffer_interval`).
    Mutates ``costs``; the difference of the two estimates is applied, so a calibration of the
    unit's LUTs (op_cost) is kept."""
    for op in graph.ops:
        if op.kind != "actmatmul":
            continue
        s = schedules[op.name]
        one, two = actmatmul_cost(op, s, dsp_kind, 1), actmatmul_cost(op, s, dsp_kind, 2)
        c = costs[op.name]
        c.bram36 += one.bram36 - two.bram36
        c.lut += one.lut - two.lut
        c.buffer_bits = one.buffer_bits


def single_buffer_interval(graph: Graph, costs: dict[str, OpCost], rate: int) -> int:
    """Cycles per sequence of a pipeline running at ``rate`` cycles per token whose attention
    products hold one sequence of b each (the module docstring); an attention product's cycles
    per row are its cost's ``cycles``."""
    rows = max((costs[op.name].cycles for op in graph.ops if op.kind == "actmatmul"), default=0)
    return graph.tokens * (rate + max(rate, rows))


def buffer_shapes(graph: Graph, schedules: dict[str, OpSchedule], b_sequences: int) -> dict[str, BufferShape]:
    """The b buffer of every attention product, ``b_sequences`` sequences deep (for the placement
    of schedule/fifo_memory.py place_memories)."""
    from ..emit.attention import folding
    from .attention_cost import b_banks
    from .fifo_memory import BufferShape
    shapes = {}
    for op in graph.ops:
        if op.kind == "actmatmul":
            shapes[op.name] = BufferShape(*b_banks(op, folding(op, schedules[op.name]), b_sequences))
    return shapes


def move_buffers_to_uram(costs: dict[str, OpCost], shapes: dict[str, BufferShape], names) -> None:
    """Restate the memory of the attention products in ``names``: their b buffer in UltraRAM, not
    block RAM (the rest of the unit's block RAM, the a rows and the output FIFO, stays).  Mutates
    ``costs``."""
    for name in names:
        c, shape = costs[name], shapes[name]
        c.bram36 -= shape.bram36
        c.uram += shape.uram
