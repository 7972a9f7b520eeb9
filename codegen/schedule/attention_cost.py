"""Cycle and resource estimates of the attention product unit (rtl_kernels/einhls_actmatmul.v).

One a token (row) costs HEADS x INNER/SIMD x COLS/PE MAC-array cycles; a sequence is TOKENS rows.
The unit's other rates are one beat per cycle on each stream, so the interval per token is

    ii = max(HEADS * KF * NF, a beats, b beats, output beats)       (KF = INNER/SIMD, NF = COLS/PE)

b beats count per token because b of the next sequence loads (one beat per cycle) while the rows
of this one compute: a sequence takes TOKENS * ii cycles at steady state.  tests/test_attention_units.py
measures both in RTL simulation: consecutive rows start exactly ii cycles apart when the MAC array
is the bound (no overhead per row, none between sequences), and TOKENS rows take TOKENS * ii cycles
whichever stream is the bound.

Latency (``OpCost.latency``): cycles from the first a beat of a row to the last output beat of that
row, with b of its sequence already in the buffer and the unit otherwise idle:

    max(a beats, HEADS*KF a words) + HEADS*KF*NF + adder-tree registers + DRAIN
            + (beats of the row's last group of PE outputs - 1)
            + 1 for each lane converter on the way (a -> SIMD, PE -> requant lanes, requant lanes
              -> output lanes)

(DRAIN measured in RTL simulation: the a-buffer flag before the first step; memory read,
operands, products, accumulator, FIFO, requant and the output register after the last; the last
group leaves at the slower of its requant lanes and its output lanes).  Three cases of the unit
test (a gather, a split and no converter in front of the array) measure it exactly.

b's sequence load adds to it for the first row of a sequence when b arrives late: that row cannot
start before the TOKENS x (b beats) cycles of loading b are over (plus BUFFER_WRITE).  So the first
row of a sequence whose keys / values arrive with its queries waits for the whole sequence of b:
the cost of holding K / V on chip; the a stream must be buffered that long in front of the unit
(a FIFO of a sequence of a tokens).  A design's latency counts that wait from the last b beat as
b's producer delivers it, then the rows at ``ii`` (schedule/frame_latency.py ``sequence_timing``).

One sequence of b (``b_sequences = 1``, the scheduler's choice only where two do not fit): the
next sequence's b loads only after this sequence's last row, so with its streams at full rate a
sequence takes

    TOKENS * HEADS*KF*NF + max(TOKENS * b words, TOKENS * b beats - prefetch) + SINGLE_GAP

cycles (b words = b features / WC: the loader writes one a cycle; prefetch: the beats of the next
sequence the lane converter in front of the loader already holds when the buffer is released,
one word of each of its stages, einhls_lanes; the rows, then the load; SINGLE_GAP measured in
RTL simulation, tests/test_attention_units.py), and ``ii`` is that over TOKENS, rounded up.  Inside a pipeline the load runs at the pipeline's
rate, not one beat per cycle: codegen/schedule/buffers.py models that.

Resources:

* multipliers: SIMD x PE products, each (A_BITS+1) x (B_BITS+1) bits (centred codes).  DSPs per
  product from ``multiplier_dsps`` at those widths; products with an operand of at most 4 bits
  are built from LUTs (the convention of schedule/packing.py, ``lut_products``).  One product per
  DSP: both operands are activations, so the packing of einhls_linear (two weights sharing one
  input, proven exact from the weights) is not built here.  Plus the requant multipliers
  (RQ_LANES of them, none when the multiplier is 1).
* b buffer: 2 (or 1) sequences x TOKENS x b features x (B_BITS+1) bits, in NB banks (PE banks for
  nt, SIMD for nn) of 2*HEADS*KF*NF (or HEADS*KF*NF) words of WC*(B_BITS+1) bits; block RAM or LUT RAM per bank by
  ``bram36_for``.  a row buffer: 2 rows, output FIFO: FIFO_DEPTH groups of PE accumulators.
* LUT / FF: first order, the widths of the adders, accumulators, rounding and registers; with DSP
  products the operand and product registers are counted in the DSPs (Yosys maps them there).
  bench/results/attention_units.md compares them with Yosys at MiniLM sizes (DSP and BRAM36 equal,
  LUT and FF within about a third).
"""
from __future__ import annotations

import math

from ..emit.attention import (Folding, fifo_depth, folding, lut_products, requant_lanes, steps_per_row,
                              tree_registers)
from ..ir.attention import ActMatMul
from .cost import OpCost, bram36_for, lut_multiplier, multiplier_dsps
from .design import OpSchedule

DRAIN = 8            # see the module docstring (measured: tests/test_attention_units.py)
BUFFER_WRITE = 1     # last b beat -> its sequence usable (b_full is set with the last write)
# one sequence of b: cycles per sequence beyond the load and the rows (measured, the unit test:
# the buffer is released with the last row's last step and the next load starts the cycle after)
SINGLE_GAP = 0
CONTROL_LUT = 60     # counters, address walks, credits, handshakes (fitted to Yosys, bench/attention_units.py)
CONTROL_FF = 120


def _memory(width: int, depth: int) -> tuple[float, int]:
    """(BRAM36, LUTs) of a memory of depth x width bits (LUT RAM: one LUT per bit per 64 words)."""
    brams = bram36_for(width, depth)
    return brams, (0 if brams else width * math.ceil(depth / 64))


def b_banks(op: ActMatMul, f: Folding, b_sequences: int = 2) -> tuple[int, int, int]:
    """(banks, words per bank, bits per word) of the b buffer, every sequence bank included."""
    nb, wc = (f.pe, f.simd) if op.layout == "nt" else (f.simd, f.pe)
    return nb, b_sequences * steps_per_row(op, f), wc * (op.in_type_b.bits + 1)


def converter_beats(in_lanes: int, out_lanes: int) -> int:
    """Input beats an einhls_lanes converter holds when its output stalls, less the cycle its queue
    adds where the lane counts do not divide each other: one word of each stage of a gather or a
    split (a plain wire when the lane counts are equal)."""
    if in_lanes == out_lanes:
        return 0
    if out_lanes % in_lanes == 0:        # gather only
        return out_lanes // in_lanes
    if in_lanes % out_lanes == 0:        # split only: one beat
        return 1
    # neither divides the other: einhls_lanes' queue (in + 2 out - 2 lanes) takes a beat while it
    # has room for its lanes, i.e. while it holds at most 2 out - 2, and its last one leaves a
    # cycle after the last beat in
    return (2 * out_lanes - 2) // in_lanes


def load_cycles(op: ActMatMul, f: Folding) -> int:
    """Cycles a sequence of b takes to load after the buffer is released, its stream at full rate:
    one word of WC codes written a cycle, one beat of b_lanes codes arriving a cycle, less the
    beats already waiting in the lane converter."""
    wc = f.simd if op.layout == "nt" else f.pe
    beats, words = op.tokens * op.in_size_b // f.b_lanes, op.tokens * op.in_size_b // wc
    return max(words, beats - converter_beats(f.b_lanes, wc))


def sequence_cycles(op: ActMatMul, f: Folding, b_sequences: int = 2) -> int:
    """Cycles between sequences with every stream at full rate (the module docstring)."""
    compute = steps_per_row(op, f)
    if b_sequences == 2:
        return op.tokens * max(compute, op.in_size // f.a_lanes, op.in_size_b // f.b_lanes,
                               op.out_size // f.out_lanes)
    return op.tokens * compute + load_cycles(op, f) + SINGLE_GAP


def actmatmul_cost(op: ActMatMul, s: OpSchedule, dsp_kind: str, b_sequences: int = 2) -> OpCost:
    """The estimate of one einhls_actmatmul at schedule ``s`` (b at ``s.in_lanes`` like a),
    holding ``b_sequences`` sequences of b."""
    f = folding(op, s)
    compute = steps_per_row(op, f)
    kf = op.inner // f.simd
    a_beats = op.in_size // f.a_lanes
    b_beats = op.in_size_b // f.b_lanes
    out_beats = op.out_size // f.out_lanes
    a_bits, b_bits = op.in_type.bits + 1, op.in_type_b.bits + 1
    acc_bits = op.acc_type.bits + (0 if op.acc_type.signed else 1)
    rq = op.requant
    rq_lanes = requant_lanes(op, f)
    products = f.simd * f.pe

    lut_mul = lut_products(op)
    per_product = 0 if lut_mul else multiplier_dsps(a_bits, b_bits, dsp_kind)
    requant_dsp = 0 if rq.multiplier[0] == 1 else rq_lanes * multiplier_dsps(acc_bits, rq.multiplier_bits, dsp_kind)
    dsp = products * per_product + requant_dsp

    nb, b_depth, b_width = b_banks(op, f, b_sequences)
    b_bram, b_lut = _memory(b_width, b_depth)
    a_depth = 2 * (1 << max(1, math.ceil(math.log2(max(op.heads * kf, 2)))))
    a_bram, a_lut = _memory(f.simd * a_bits, a_depth)
    depth = fifo_depth(op, f)
    fifo_bram, fifo_lut = _memory(f.pe * acc_bits, depth)
    bram = nb * b_bram + a_bram + fifo_bram

    wc = f.simd if op.layout == "nt" else f.pe
    lut = CONTROL_LUT + nb * b_lut + a_lut + fifo_lut
    lut += products * lut_multiplier(a_bits, b_bits) if lut_mul or per_product == 0 else 0
    lut += f.pe * max(f.simd - 1, 0) * acc_bits                  # adder trees
    lut += f.pe * acc_bits                                        # accumulators
    lut += (f.simd * a_bits + wc * b_bits) // 2                   # centring subtractors
    lut += rq_lanes * (op.out_type.bits + acc_bits // 2 + 8)      # rounding, clamp
    # pipeline registers; with DSP products the operand and product registers are the DSPs' own
    # (A/B/M) and the b words the block RAMs' output registers (Yosys counts them there)
    ff = CONTROL_FF + f.pe * acc_bits * (2 + tree_registers(f.simd)) \
        + rq_lanes * (2 * acc_bits + rq.multiplier_bits) + f.out_lanes * op.out_type.bits * 2
    # the operand registers: Yosys leaves them in the fabric for these narrow products; a (one
    # word of SIMD codes) is shared by the PE columns, b is each product's own
    ff += products * b_bits + f.simd * a_bits + nb * b_width * 2 + f.simd * a_bits * 2
    if per_product == 0:
        ff += products * (a_bits + min(a_bits + b_bits, acc_bits)) - f.simd * a_bits

    ii = max(compute, a_beats, b_beats, out_beats) if b_sequences == 2 else \
        math.ceil(sequence_cycles(op, f, 1) / op.tokens)
    converters = (f.a_lanes != f.simd) + (f.pe != rq_lanes) + (rq_lanes != f.out_lanes)
    group_beats = max(math.ceil(f.pe / f.out_lanes), f.pe // rq_lanes)
    row_in = max(a_beats, op.heads * kf)     # the a converter emits one word of SIMD codes a cycle
    latency = row_in + converters + compute + tree_registers(f.simd) + DRAIN + group_beats - 1
    buffer_bits = b_sequences * op.tokens * op.in_size_b * b_bits + a_depth * f.simd * a_bits
    return OpCost(cycles=compute, ii=ii, latency=latency, multipliers=products, dense_multipliers=products,
                  dsp=dsp, bram36=bram, lut=lut, ff=ff, macs=op.macs, effective_macs=products * compute,
                  weight_bits=0, buffer_bits=buffer_bits)


def actmatmul_options(op: ActMatMul, uram_word: int = 0) -> list[tuple[int, int, int]]:
    """(cycles per token, simd, pe) for every folding of ``op``: simd divides inner, pe divides cols;
    cheapest first (fewest multipliers, then fewer b banks of wider words: more PE than SIMD in nn,
    where a word is PE codes, more SIMD than PE in nt, where it is SIMD codes).  The same products
    cost the same adders either way (a PE's adder tree of SIMD leaves replaces SIMD accumulators),
    and a wide word fills a block RAM or an UltraRAM (72 bits) where a 9-bit word of SIMD 1 takes
    a whole URAM288 a bank.

    ``uram_word`` (the board's UltraRAM word, 0 on a board without): a b bank in UltraRAM keeps its
    word (einhls_actmatmul B_URAM: ``mem [0:B_SEQS*D-1]`` of WC*DB bits, ceil(width / 72) blocks
    wide), so a bank of 9-bit words uses an eighth of each URAM288 it takes.  Where the board has
    UltraRAM, foldings whose b word fills at least one URAM row come first: at MiniLM's 128 tokens
    the slowest folding (SIMD 1 x PE 1) puts a sequence of keys in 12 URAM288 a bank, SIMD 8 in 2,
    for 7 more DSPs; in block RAM both take the same blocks (9 x 4096 and 72 x 512 shapes)."""
    simds = [d for d in range(1, op.inner + 1) if op.inner % d == 0]
    pes = [d for d in range(1, op.cols + 1) if op.cols % d == 0]
    options = [(op.heads * (op.inner // simd) * (op.cols // pe), simd, pe) for simd in simds for pe in pes]
    word = 1 if op.layout == "nt" else 2       # the index of the word's codes in an option
    code_bits = op.in_type_b.bits + 1          # centred codes
    options.sort(key=lambda o: (o[word] * code_bits < uram_word, o[1] * o[2], -o[word]))
    return options
