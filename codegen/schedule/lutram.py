"""Block RAM traded for LUT RAM where block RAM is what a design runs out of.

Small memories take a block RAM each whatever their size: a FIFO of 512 words of 8 bits (4 Kb) a
RAMB18, a Linear unit's input buffer of 128 words of 64 bits (8 Kb) a RAMB36, a LayerNorm unit's
row buffer and gamma / beta ROMs 1.5 BRAM36, a Softmax unit's row buffers 0.5, an attention
product's a row buffer (2 x 64 words of 72 bits) 1.  The 128-token MiniLM encoder has 54 such
FIFOs (27 BRAM36), 36 such buffers (36 BRAM36), 12 LayerNorm units (18 BRAM36), 6 Softmax units
(3 BRAM36) and 12 attention products (12 BRAM36) beside its key / value buffers and layer-input
delays, which need the block RAM.  Where the design does not fit its
block RAM and UltraRAM otherwise (folding.fold builds each design without this first),
:func:`place_lutram` moves them to LUT RAM (einhls_fifo LUTRAM = 1, einhls_linear XBUF_LUTRAM = 1,
einhls_layernorm and einhls_softmax LUTRAM = 1, einhls_actmatmul A_LUTRAM = 1: ram_style
"distributed" on their RAMs), most block RAM saved per LUT first, while

* block RAM stays the fuller of the two (the same balance as codegen/schedule/cost.py place_roms),
* the LUT RAM stays within ``LUTRAM_SHARE`` of the board's LUTs (only the SLICEM half of the
  LUTs of a Zynq UltraScale+ can be memory; the share leaves room for the logic placed there).

LUTs of a memory in LUT RAM (:func:`lutram_luts`): a RAM64M8 (8 LUTs) holds 7 bits x 64 words
with one write port and seven read ports, the simple dual port these memories need, so
ceil(width / 7) of them per 64 words; deeper memories add a multiplexer over the 64-word banks
(a LUT6 is a 4:1 multiplexer: (banks - 1) / 3 LUTs per bit).  bench/results/fifo_yosys.md
compares it with Yosys (synth_xilinx -family xcup).  The HLS back end gives its FIFOs the same
storage (BIND_STORAGE impl=lutram); its Linear input buffer is partitioned by lane already.
"""
from __future__ import annotations

import math

from .cost import OpCost, bram36_for

#: the share of the board's LUTs that may be LUT RAM
LUTRAM_SHARE = 0.4
#: the most block RAM (BRAM36) one move frees: more would cost a thousand LUTs and more a move
MAX_BRAM36 = 1.5
LUTRAM_WORDS = 64     # words of a RAM64M8 bank
LUTRAM_BITS = 7       # read ports of a RAM64M8 used for data in simple dual port mode


def lutram_luts(width: int, depth: int) -> int:
    """LUT6s of a simple dual-port memory of ``depth`` x ``width`` bits in LUT RAM (module
    docstring)."""
    banks = math.ceil(depth / LUTRAM_WORDS)
    return 8 * math.ceil(width / LUTRAM_BITS) * banks + width * math.ceil((banks - 1) / 3)


def input_buffer_shape(op, schedule) -> tuple[int, int]:
    """(width, words) of einhls_linear's input buffer: two banks of 2**ceil(log2(KF)) words of SIMD
    inputs (its address is {bank, kf})."""
    kf = math.ceil(op.in_size / schedule.simd)
    return schedule.simd * op.in_type.bits, 2 * (1 << max(1, (kf - 1).bit_length()))


def layernorm_luts(op, lanes: int) -> int:
    """LUTs einhls_layernorm's memories take in LUT RAM (LUTRAM = 1): the row buffer of three
    tokens (simple dual port) and the gamma and beta ROMs (one LUT6 per bit per 64 words, as
    distributed ROM).  ``op``: the graph op or its unit (codegen/ir/nonlinear.py)."""
    op = getattr(op, "unit", op)
    beats = math.ceil(op.size / lanes)
    roms = lanes * (op.gamma_bits + op.beta_bits) * math.ceil(beats / LUTRAM_WORDS)
    return lutram_luts(lanes * op.in_type.bits, 3 * beats) + roms


def softmax_luts(op, lanes: int) -> int:
    """LUTs einhls_softmax's row buffers take in LUT RAM (LUTRAM = 1): two tokens of codes and two
    of exponentials, simple dual port.  ``op``: the graph op or its unit."""
    op = getattr(op, "unit", op)
    beats = math.ceil(op.size / lanes)
    return lutram_luts(lanes * op.in_type.bits, 2 * beats) + lutram_luts(lanes * op.exp_max.bit_length(), 2 * beats)


def a_buffer_shape(op, schedule) -> tuple[int, int]:
    """(width, words) of einhls_actmatmul's a row buffer: two rows of HEADS x KF words of SIMD
    centred codes, 2 x 2**ceil(log2(HEADS x KF)) words (attention_cost.actmatmul_cost's a_depth)."""
    from ..emit.attention import folding
    f = folding(op, schedule)
    words = 2 * (1 << max(1, math.ceil(math.log2(max(op.heads * (op.inner // f.simd), 2)))))
    return f.simd * (op.in_type.bits + 1), words


def _linear_memory(op, schedule, cost: OpCost) -> tuple[float, int]:
    """The input buffer of a Linear unit (not of a token-pair unit: its two read ports)."""
    if schedule.token_pack != 1:
        return 0.0, 0
    return cost.input_bram36, lutram_luts(*input_buffer_shape(op, schedule))


def _actmatmul_memory(op, schedule, cost: OpCost) -> tuple[float, int]:
    width, words = a_buffer_shape(op, schedule)
    return bram36_for(width, words), lutram_luts(width, words)


#: op kind -> (block RAM, LUTs in LUT RAM) of the unit's small memories that can move; the order
#: breaks ties between kinds
UNIT_MEMORIES = {
    "linear": _linear_memory,
    "layernorm": lambda op, schedule, cost: (cost.bram36, layernorm_luts(op, schedule.in_lanes)),
    "softmax": lambda op, schedule, cost: (cost.bram36, softmax_luts(op, schedule.in_lanes)),
    "actmatmul": _actmatmul_memory,
}


def place_lutram(graph, schedules, costs: dict[str, OpCost], fifo_shapes: dict, board, lut_used: float,
                 bram_used: float) -> tuple[frozenset, frozenset, int]:
    """(FIFOs, units whose small memories) to put in LUT RAM (the module docstring), and the LUTs
    they take.
    ``lut_used`` / ``bram_used``: the design's totals before the move, every memory in block RAM.
    Mutates the moved units' ``costs`` (bram36, input_bram36, lut); the FIFOs' memory is counted
    by fifo_memory.fifo_memory."""
    candidates = []
    for key, shape in fifo_shapes.items():
        if 0 < shape.bram36 <= MAX_BRAM36:
            candidates.append((shape.bram36, lutram_luts(shape.width, shape.depth), 0, key))
    order = list(UNIT_MEMORIES)
    for op in graph.ops:
        if op.kind in UNIT_MEMORIES:
            bram, luts = UNIT_MEMORIES[op.kind](op, schedules[op.name], costs[op.name])
            if 0 < bram <= MAX_BRAM36:
                candidates.append((bram, luts, 1 + order.index(op.kind), op.name))
    candidates.sort(key=lambda item: (-item[0] / item[1], item[2], str(item[3])))
    budget = LUTRAM_SHARE * board.lut
    fifos, inputs, spent = set(), set(), 0
    for bram, luts, kind, key in candidates:
        if spent + luts > budget or (lut_used + luts) / board.lut >= (bram_used - bram) / board.bram36:
            continue
        spent += luts
        lut_used += luts
        bram_used -= bram
        if kind == 0:
            fifos.add(key)
            continue
        c = costs[key]
        c.bram36 -= bram
        c.input_bram36 = 0.0
        c.lut += luts
        inputs.add(key)
    return frozenset(fifos), frozenset(inputs), spent
