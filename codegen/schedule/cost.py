"""Cycle and resource estimates of each hardware unit, as built by rtl_kernels/ and hls_kernels/.

These are first-order models used to fold the design to a board; Yosys counts of the generated RTL
(``einhls report --synth``) are the measured check on them.  Every number is per op, and a design's
total is the sum (resources) or the maximum (initiation interval).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..ir.graph import Linear, Op, Requant
from .design import OpSchedule
from .packing import (LUT_MULT_MAX_BITS, pack_config, pair_shape, pe_quad_config, quad_config, requant_lanes,
                      token_pair_config)

PIPELINE_DEPTH = 6        # ROM read, operand select, multiply, adder tree, accumulate, requant
# a Linear unit's frame latency beyond its input, compute and last-row drain, from RTL simulation
# (bench/calibrate.py --cycles: 9 to 11 cycles at SIMD x PE 1x64, 8x8, 4x4 and 2:4 8x8; the
# largest is used so that FIFO depths sized from latency differences never come out short)
LINEAR_PIPELINE_DEPTH = 11
# (width, depth) shapes of one 36 Kb block RAM, and of one 18 Kb half (a RAMB18, 0.5 BRAM36)
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
LUTRAM_MAX_BITS = 2048    # small ROMs are left to LUTs (distributed memory)
LUTRAM_MAX_DEPTH = 64     # shallow ROMs too: a BRAM this shallow wastes 94% of its bits
# one URAM288: 72 bits x 4096 words, fixed shape; deeper memories cascade (UG573 / UG949)
URAM_WIDTH, URAM_DEPTH = 72, 4096
# a narrow ROM in UltraRAM stores up to this many consecutive words per physical row (the units
# count the row and the word within it alongside the step, so any number works without a divider;
# the bound keeps the word-select multiplexer small)
URAM_MAX_WORDS_PER_ROW = 16
# the widest ap_int Vitis HLS declares (AP_INT_MAX_W at most 4096): every word the HLS kernels
# build must fit, so the scheduler offers no shape or packing that needs a wider one
HLS_WORD_LIMIT_BITS = 4096
#: where a weight ROM lives, as the RTL parameter ROM_KIND and the HLS cfg::ROM_KIND encode it
ROM_KINDS = {"lutram": 0, "bram": 1, "uram": 2}

# Lattice ECP5 (the open flow).  Its multiplier has no pre-adder, so no two int8 products share
# one (codegen/emit/rtl.py pack_config); its block RAM is the 18 Kb DP16KD, counted here in 36 Kb
# equivalents like the Xilinx RAMB36; its LUTs have four inputs.
ECP5_MULTIPLIER = "MULT18X18D"
DP16KD_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
# LUT4s per LUT6 of the Xilinx estimate: the ratio of Yosys 0.70 synth_ecp5 to synth_xilinx
# (xc7) LUT counts of the same generated RTL, 1.67 and 1.86 on a two-layer int8 MLP at two foldings
ECP5_LUT4_PER_LUT6 = 1.75


@dataclass
class OpCost:
    cycles: int           # compute cycles per frame
    ii: int               # initiation interval: max(compute, input beats, output beats)
    latency: int          # first input beat to last output beat, one frame alone
    multipliers: int
    dense_multipliers: int  # what the same throughput costs without sparsity
    dsp: int
    bram36: float
    lut: int
    ff: int
    macs: int             # dense-equivalent MACs per frame
    effective_macs: int   # MACs the hardware really performs (non-zero slots)
    weight_bits: int      # stored weight memory, including N:M indices
    buffer_bits: int = 0  # on-chip activation buffers (contraction stages: ping-pong frames)
    uram: int = 0         # UltraRAM blocks (URAM288)
    rom_kind: str = ""    # where the weight ROM lives (a key of ROM_KINDS); "" when the op has none
    rom_width: int = 0    # weight ROM word width (bits) and depth (words), for memory placement
    rom_depth: int = 0
    rom_words_per_row: int = 1  # weight words packed in one UltraRAM row (uram_packing)
    input_bram36: float = 0.0   # of bram36: a Linear unit's input buffer (input_buffer_bram36)

    def to_json(self) -> dict:
        return asdict(self)


def bram36_for(width: int, depth: int) -> float:
    """Block RAMs for a ROM of depth x width bits (0 when it fits in LUTs), in 36 Kb units; a ROM
    that fits one 18 Kb half (RAMB18) counts 0.5."""
    if width * depth <= LUTRAM_MAX_BITS or depth <= LUTRAM_MAX_DEPTH:
        return 0.0
    if any(width <= w and depth <= d for w, d in BRAM18_SHAPES):
        return 0.5
    best = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM36_SHAPES)
    return float(best)


def uram_for(width: int, depth: int) -> int:
    """UltraRAM blocks for a memory of depth x width bits: the URAM288 has one shape, 72 x 4096."""
    return math.ceil(width / URAM_WIDTH) * math.ceil(depth / URAM_DEPTH)


@dataclass(frozen=True)
class UramPacking:
    """How a ROM of ``depth`` words of ``width`` bits is laid out in UltraRAM: ``words_per_row``
    consecutive words share one physical row (word i at bits [i * width, (i + 1) * width)), so the
    memory is ``rows`` deep and ``row_bits`` wide, ``uram`` URAM288 blocks in all."""
    words_per_row: int
    rows: int
    row_bits: int
    uram: int

    @property
    def select_luts(self) -> int:
        """LUT6s of the multiplexer that picks a word out of the row (a LUT6 is a 4:1 mux, so a
        k:1 mux of one bit takes about (k - 1) / 3 of them; none when a row holds one word)."""
        return self.row_bits // self.words_per_row * math.ceil((self.words_per_row - 1) / 3)


def uram_packing(width: int, depth: int) -> UramPacking:
    """The row packing of a ROM in UltraRAM with the fewest URAM288 blocks.  The URAM288 is always
    72 x 4096, so a narrow deep ROM (a 7-bit word of a 1:8 4-bit layer at PE 1) would use a tenth
    of each block's bits; k = 2, 3, .. URAM_MAX_WORDS_PER_ROW words per row (a row of k x width
    bits over ceil(k x width / 72) blocks side by side: 72-bit rows, 144-bit ones and wider)
    divides the depth by k.  Any k, not only powers of two: 14-bit words 18,432 deep (a 2:8 4-bit
    attention projection of MiniLM at SIMD 8 x PE 1) need 2 blocks at k = 4 or 8 and 1 at k = 5.
    Ties keep the fewer words per row (a smaller select multiplexer).  The emitters
    (codegen/emit/rtl.py, hls.py) lay the ROM out by this same function."""
    best = UramPacking(1, depth, width, uram_for(width, depth))
    words = 2
    # the HLS kernel reads a packed row as one ap_uint, within Vitis HLS's 4096-bit limit
    while words <= min(URAM_MAX_WORDS_PER_ROW, depth) and words * width <= HLS_WORD_LIMIT_BITS:
        rows = math.ceil(depth / words)
        blocks = uram_for(words * width, rows)
        if blocks < best.uram:
            best = UramPacking(words, rows, words * width, blocks)
        words += 1
    return best


def multiplier_dsps(a_bits: int, b_bits: int, dsp_kind: str) -> int:
    """DSP slices for one a x b multiply (DSP48E1: 25x18, DSP48E2: 27x18, ECP5 MULT18X18D: 18x18)."""
    if min(a_bits, b_bits) <= LUT_MULT_MAX_BITS:
        return 0
    wide = {"DSP48E1": 25, "DSP48E2": 27, ECP5_MULTIPLIER: 18}[dsp_kind]
    small, large = sorted((a_bits, b_bits))
    return math.ceil(small / 18) * math.ceil(large / wide)


def lut_multiplier(a_bits: int, b_bits: int) -> int:
    return math.ceil(a_bits * b_bits * 0.6)


def bram36_forced(width: int, depth: int) -> float:
    """Block RAMs for a ROM placed in block RAM whatever its size (RAMB18 halves or RAMB36)."""
    half = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM18_SHAPES) / 2
    full = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM36_SHAPES)
    return float(min(half, full))


def input_buffer_bram36(op: Linear, s: OpSchedule) -> float:
    """Block RAM of a Linear unit's double-buffered input memory (einhls_linear ``xbuf``: 2 x KF
    words of SIMD inputs, one write and one synchronous read port), 0 where synthesis keeps it in
    LUTs or registers.  Yosys maps it as it maps a ROM of that shape (bram36_for): xcup, 1:8 768
    -> 16 at SIMD 8 x PE 1 (KF 96: 192 words of 64 bits) measured 1.5 BRAM36 (the ROM's 0.5 and
    this buffer's 1), 270 LUT + 16 LUT_MEM and 322 FF, where the register-and-multiplexer model
    of the buffer said 2,239 LUT and 3,526 FF (tests/test_input_buffer_ram.py); every unit of
    the calibration sweep has a buffer of at most 64 x 2 words or 2,048 bits, left in LUTs.
    Token pairs read two words a step: that buffer stays in LUT RAM (token_pair_memory_luts)."""
    if s.token_pack == 2:
        return 0.0
    kf = math.ceil(op.in_size / s.simd)
    return bram36_for(s.simd * op.in_type.bits, 2 * kf)


def linear_cost(op: Linear, s: OpSchedule, dsp_kind: str, rom_kind: str | None = None,
                assume_packing: bool | None = None, input_ram: bool = True) -> OpCost:
    """``rom_kind`` "lutram" or "bram" places the weight ROM there (None: by size, bram36_for).
    ``assume_packing`` skips the weight scan of pack_config (the shape search ranks thousands of
    shapes of a large layer; the chosen one is costed exactly).  With token pairs
    (``s.token_pack`` 2) every count is per token: the NF*KF steps make two tokens.  PE quads
    (``s.pe_pack`` 4) are costed by _pe_quad_cost where the proof holds (else as the emitter would
    refuse them: the plain unit's cost)."""
    if s.pe_pack == 4:
        quad = pe_quad_config(op, s, dsp_kind)
        if quad[0]:
            return _pe_quad_cost(op, s, dsp_kind, rom_kind, quad)
        s = replace(s, pe_pack=1)
    if s.token_pack == 2:
        quad = quad_config(op, s, dsp_kind)
        if quad[0]:
            return _quad_cost(op, s, dsp_kind, rom_kind, quad)
        return _token_pair_cost(op, s, dsp_kind, rom_kind)
    nf, kf = math.ceil(op.out_size / s.pe), math.ceil(op.in_size / s.simd)
    cycles = nf * kf
    in_beats = math.ceil(op.in_size / s.in_lanes)
    out_beats = math.ceil(op.out_size / s.out_lanes)
    a_bits, w_bits = op.in_type.bits, op.weight_type.bits
    if op.sparsity:
        n, m = op.sparsity
        slots = s.simd // m * n
        index_bits = max(1, math.ceil(math.log2(m)))
        word_bits = s.pe * slots * (w_bits + index_bits)
    else:
        n, m = 1, 1
        slots = s.simd
        index_bits = 0
        word_bits = s.pe * s.simd * w_bits
    multipliers = s.pe * slots
    # count what the RTL emitter builds: its packing and requant decisions are functions of the op
    per_mult_dsp = multiplier_dsps(a_bits, w_bits, dsp_kind)
    if assume_packing is not None:
        packed = bool(assume_packing and per_mult_dsp and pair_shape(op, s))
    else:
        packed, _ = pack_config(op, s, dsp_kind) if per_mult_dsp else (0, 1)
    dsp_products = math.ceil(s.pe / 2) * slots if packed else multipliers  # two PEs share a DSP
    rq = op.requant
    requant_dsp = 0 if (not rq.per_channel and rq.multiplier[0] == 1) else \
        requant_lanes(s.pe, kf) * multiplier_dsps(op.acc_type.bits, rq.multiplier_bits, dsp_kind)
    dsp = dsp_products * per_mult_dsp + requant_dsp
    lut = 120  # control, counters, handshakes
    if per_mult_dsp == 0:
        lut += multipliers * lut_multiplier(a_bits, w_bits)
    lut += s.pe * max(slots - 1, 0) * op.acc_type.bits           # adder trees
    lut += s.pe * op.acc_type.bits                                 # accumulators
    if op.sparsity:
        # M:1 operand multiplexers, one per PE pair where the pair shares an index pattern (packed)
        lut += (multipliers // 2 if packed else multipliers) * a_bits * math.ceil(m / 4)
    # the input buffer in block RAM (input_buffer_bram36) has its read port inside the RAM
    input_bram = input_buffer_bram36(op, s) if input_ram else 0.0
    if not input_bram:
        lut += s.simd * a_bits * math.ceil(kf / 4)                 # input buffer read port
    lut += s.pe * (op.out_type.bits + 8)                           # rounding, clamp
    weight_rom = bram36_for(word_bits, cycles)
    if rom_kind == "lutram":
        weight_rom = 0.0
    elif rom_kind == "bram" or weight_rom:
        # in block RAM, placed or by size alike: RAMB18 halves where fewer (Yosys: a 160-bit x 128
        # ROM took five RAMB18, 2.5, not three RAMB36)
        weight_rom = bram36_forced(word_bits, cycles)
    if weight_rom == 0:
        lut += word_bits * math.ceil(cycles / 64)  # one LUT6 per bit per 64 words
    ff = (0 if input_bram else 2 * kf * s.simd * a_bits) + 2 * nf * s.pe * op.out_type.bits \
        + multipliers * (a_bits + w_bits) + s.pe * op.acc_type.bits * 2 + word_bits + 64
    weight_bits = word_bits * cycles
    return OpCost(cycles=cycles, ii=max(cycles, in_beats, out_beats),
                  # the frame's last row leaves PE / OUT_LANES beats after it is computed; an
                  # output-bound unit instead drains the whole frame from its first row (KF cycles)
                  latency=in_beats + max(cycles + math.ceil(s.pe / s.out_lanes), kf + out_beats)
                  + LINEAR_PIPELINE_DEPTH,
                  multipliers=multipliers, dense_multipliers=s.pe * s.simd, dsp=dsp,
                  bram36=weight_rom + input_bram, lut=lut, ff=ff, macs=op.macs,
                  effective_macs=multipliers * cycles, weight_bits=weight_bits, input_bram36=input_bram,
                  rom_kind="bram" if weight_rom else "lutram", rom_width=word_bits, rom_depth=cycles)


def token_pair_memory_luts(op: Linear, s: OpSchedule) -> int:
    """LUTs (as distributed RAM) that token pairs add to a Linear unit, on top of the single-token
    model (whose input-read term stays: it covers the read logic): the input buffer with its two
    read ports (two tokens' words are read each step; LUT RAM has one read port, so synthesis builds
    the buffer twice) and token 1's row FIFO, which holds a whole frame of PE sums while token 0's
    rows drain.  A RAM32M is 4 LUTs for 6 bits x 32 words (a RAM64M 3 bits x 64).  On eight
    64x64 int8 layers with token pairs (dense and 2:4, SIMD x PE 4x4 to 16x4) the estimate with
    these terms was within 11% of Yosys xc7 LUT + LUT_MEM (bench/results/token_pairs.md)."""
    nf, kf = math.ceil(op.out_size / s.pe), math.ceil(op.in_size / s.simd)
    fifo_depth = 1 << max(1, math.ceil(math.log2(nf + 2 + math.ceil(8 / kf))))
    return (2 * distributed_ram_luts(s.simd * op.in_type.bits, 4 * kf)
            + distributed_ram_luts(s.pe * (op.acc_type.bits + 1), fifo_depth))


def distributed_ram_luts(width: int, depth: int) -> int:
    """LUTs of a LUT RAM of ``width`` x ``depth`` with one read port: a RAM32M is 4 LUTs for 6 bits
    x 32 words, a RAM64M 3 bits x 64."""
    if depth <= 32:
        return 4 * math.ceil(width / 6)
    return 4 * math.ceil(width / 3) * math.ceil(depth / 64)


def _token_pair_cost(op: Linear, s: OpSchedule, dsp_kind: str, rom_kind: str | None) -> OpCost:
    """A Linear unit with token pairs (einhls_linear TOKEN_PACK = 2), per token.  One DSP per
    multiplier gives two products (w * (x_t1 * 2^S + x_t0)), for N:M layers too; the fabric pays for
    what the second token adds: its input buffer and read port, its N:M multiplexers, the
    activation pre-add (x_t1 * 2^S + x_t0, about one LUT per bit of x), a second adder tree and
    accumulator row per PE and a second row FIFO.  The interval is NF*KF / 2 per token; the
    latency grows by one token's input (the pair is loaded before the fold starts) and by one
    token's output (token 1 leaves after token 0)."""
    single = linear_cost(op, replace(s, token_pack=1), dsp_kind, rom_kind=rom_kind, assume_packing=False,
                         input_ram=False)
    nf, kf = math.ceil(op.out_size / s.pe), math.ceil(op.in_size / s.simd)
    pair_steps = nf * kf
    cycles = math.ceil(pair_steps / 2)
    in_beats = math.ceil(op.in_size / s.in_lanes)
    out_beats = math.ceil(op.out_size / s.out_lanes)
    a_bits, w_bits, acc_bits = op.in_type.bits, op.weight_type.bits, op.acc_type.bits
    x_bits = a_bits + (0 if op.in_type.signed else 1)
    shift, chain = token_pair_config(op, s, dsp_kind)
    shift = shift or 16
    slots = single.multipliers // s.pe
    multipliers = single.multipliers
    rq = op.requant
    rq_lanes = requant_lanes(s.pe, kf, 2)
    requant_dsp = 0 if (not rq.per_channel and rq.multiplier[0] == 1) else \
        rq_lanes * multiplier_dsps(acc_bits, rq.multiplier_bits, dsp_kind)
    dsp = multipliers * multiplier_dsps(x_bits + shift + 1, w_bits, dsp_kind) + requant_dsp
    leaves = math.ceil(slots / chain)
    lut = single.lut
    lut += multipliers * (x_bits + 1)                              # the activation pre-add
    lut += s.pe * max(leaves - 1, 0) * acc_bits                    # token 1's adder trees
    lut -= s.pe * max(slots - 1, 0) * acc_bits - s.pe * max(leaves - 1, 0) * acc_bits  # chains halve the trees
    lut += s.pe * acc_bits                                         # token 1's accumulators
    if op.sparsity:
        lut += multipliers * a_bits * math.ceil(op.sparsity[1] / 4)  # token 1's M:1 multiplexers
    lut += token_pair_memory_luts(op, s)     # the input buffer's two read ports and token 1's FIFO
    ff = single.ff + 2 * kf * s.simd * a_bits + multipliers * (a_bits + shift) \
        + s.pe * acc_bits * 2
    # the requantizer takes a row of PE sums every PE / RQ_LANES cycles, and a pair makes two rows
    # per KF steps: at KF = 1 no divisor of PE keeps up and the drain, not the fold, sets the pace
    drain = nf * math.ceil(s.pe / rq_lanes)
    return replace(single, cycles=cycles, ii=max(cycles, in_beats, out_beats, drain),
                   latency=2 * in_beats + max(pair_steps + math.ceil(s.pe / s.out_lanes), kf + out_beats)
                   + out_beats + LINEAR_PIPELINE_DEPTH,
                   dsp=dsp, lut=max(lut, 0), ff=ff, effective_macs=multipliers * pair_steps // 2)


def _quad_cost(op: Linear, s: OpSchedule, dsp_kind: str, rom_kind: str | None,
               quad: tuple[int, int, int]) -> OpCost:
    """A Linear unit with PE pairs and token pairs at once (einhls_linear PACK = 2 with
    TOKEN_PACK = 2, schedule/packing.py quad_config), per token: one DSP per slot of a PE pair
    gives four products, so the fabric builds no multiplier, only the packing pre-adds (the weight
    pair w1 * 2^T + w0 and the token pair x1 * 2^S + x0, about one LUT per bit each), the field
    extraction (wiring: a field is its bits with the top one inverted) and what token pairs add
    anyway: a second adder tree, accumulator row and row FIFO, and the input buffer's second
    read port.  Built on the token-pair model of the same shape with its LUT multipliers taken
    out (the single-token model builds narrow products from LUTs) and its trees at this chain.
    The tree width and the register count were set looking at five Yosys xc7 points
    (bench/results/int4_packing.md), so they are checked there, not validated."""
    t_shift, s_shift, chain = quad
    base = _token_pair_cost(op, s, dsp_kind, rom_kind)
    slots = base.multipliers // s.pe
    dsps = s.pe // 2 * slots
    a_bits, w_bits, acc_bits = op.in_type.bits, op.weight_type.bits, op.acc_type.bits
    x_bits = a_bits + (0 if op.in_type.signed else 1)
    lut = base.lut
    lut -= base.multipliers * lut_multiplier(a_bits, w_bits)     # no LUT multipliers
    lut -= base.multipliers * (x_bits + 1)                        # the token model's x pre-add ...
    lut += slots * (x_bits + 1) + dsps * (w_bits + 1)             # ... shared by the PEs; w pre-add
    # both tokens' trees: the base counts SIMD - 1 adders of ACC_BITS per PE; a chain halves the
    # leaves, and a leaf (a field: a sum of ``chain`` narrow products) is far narrower than the
    # accumulator, so the adders are counted at a leaf's width plus the carry
    leaves = math.ceil(slots / chain)
    leaf_bits = min(acc_bits, w_bits + x_bits + chain)
    lut -= 2 * s.pe * max(slots - 1, 0) * acc_bits
    lut += 2 * s.pe * max(leaves - 1, 0) * leaf_bits
    if base.rom_kind == "lutram" and base.rom_depth:
        # a ROM in logic as the calibrated model counts it (calibration.py rom_lut: one LUT per
        # word bit up to 16 words, then one per 16 stored bits), not one LUT per bit per 64 words
        lut += round(base.rom_width * max(1.0, base.rom_depth / 16)) - base.rom_width * math.ceil(base.rom_depth / 64)
    rq = op.requant
    kf = math.ceil(op.in_size / s.simd)
    requant_dsp = 0 if (not rq.per_channel and rq.multiplier[0] == 1) else \
        requant_lanes(s.pe, kf, 2) * multiplier_dsps(acc_bits, rq.multiplier_bits, dsp_kind)
    # registers outside the DSPs (their A/B/M/P registers hold the operands and products): the
    # ROM word and its operand copy, both tokens' input words and operands, both tokens'
    # accumulators and tree registers, and the control and requantizer (about 250)
    word_bits = base.rom_width
    ff = 2 * word_bits + 4 * s.simd * x_bits + 4 * s.pe * acc_bits + 250
    return replace(base, dsp=dsps + requant_dsp, lut=max(lut, 0), ff=ff)


def _pe_quad_cost(op: Linear, s: OpSchedule, dsp_kind: str, rom_kind: str | None,
                  quad: tuple[int, int]) -> OpCost:
    """A Linear unit with PE quads (einhls_linear PACK = 4, schedule/packing.py pe_quad_config):
    one DSP per slot of four PEs gives their four products for one vector, so the fabric builds no
    multiplier and no pre-adder (the ROM holds the packed weight's digits: wiring), and the field
    extraction is wiring too.  Built on the plain unit of the same shape (which builds its narrow
    products from LUTs) with the LUT multipliers taken out and the adder trees counted at a leaf's
    width (a field: a sum of ``chain`` narrow products, far narrower than the accumulator).  A ROM
    in logic is counted as _quad_cost counts it.  Registers: the ROM word and its operand copy
    (and one more copy with the ROM in logic: Yosys keeps a block RAM's output register inside the
    RAM), the input word and operands, the accumulators and tree registers, control and
    requantizer (about 250).  A structural model: the LUT terms are _quad_cost's; the third ROM-word
    register was added after looking at the Yosys xc7 PE-quad points of
    bench/results/int4_packing.md (FF 18-22% low there without it), so those points are a check,
    not a held-out validation."""
    shift, chain = quad
    base = linear_cost(op, replace(s, pe_pack=1), dsp_kind, rom_kind=rom_kind, assume_packing=False)
    slots = s.simd
    a_bits, w_bits, acc_bits = op.in_type.bits, op.weight_type.bits, op.acc_type.bits
    x_bits = a_bits + (0 if op.in_type.signed else 1)
    lut = base.lut - base.multipliers * lut_multiplier(a_bits, w_bits)
    leaves = math.ceil(slots / chain)
    leaf_bits = min(acc_bits, w_bits + x_bits + chain)
    lut += s.pe * (max(leaves - 1, 0) * leaf_bits - max(slots - 1, 0) * acc_bits)
    if base.rom_kind == "lutram" and base.rom_depth:
        lut += round(base.rom_width * max(1.0, base.rom_depth / 16)) - base.rom_width * math.ceil(base.rom_depth / 64)
    rq = op.requant
    kf = math.ceil(op.in_size / s.simd)
    requant_dsp = 0 if (not rq.per_channel and rq.multiplier[0] == 1) else \
        requant_lanes(s.pe, kf) * multiplier_dsps(acc_bits, rq.multiplier_bits, dsp_kind)
    rom_registers = 3 if base.rom_kind == "lutram" else 2
    ff = rom_registers * base.rom_width + 2 * s.simd * x_bits + 2 * s.pe * acc_bits + 250
    return replace(base, dsp=s.pe // 4 * slots + requant_dsp, lut=max(lut, 0), ff=ff)


def place_roms(costs: dict[str, "OpCost"], board, fixed_bram36: float = 0.0) -> None:
    """Move weight ROMs from block RAM to UltraRAM where that lowers the memory utilisation.

    A ROM first goes where ``linear_cost`` put it (LUTs when small or shallow, else block RAM).  On
    a board with URAM, the block-RAM ROMs are then visited most URAM-efficient first (most BRAM36
    saved per URAM288 spent, then largest) and each moves to URAM while block RAM is the more
    loaded of the two (its utilisation after the move stays above URAM's): the binding memory
    budget is what limits a design, so this spreads weights over both.  Deterministic: ties are
    broken by op name.  ``fixed_bram36``: the block RAM that memories outside ``costs`` take
    (FIFOs, key/value buffers, other units), counted in the block-RAM load; without it the
    balance stops moving weights while block RAM is in fact the fuller one.  A ROM in UltraRAM is costed row-packed (uram_packing): its URAM288 blocks
    and the LUTs of its word-select multiplexer.  Mutates ``costs`` (bram36, uram, rom_kind,
    rom_words_per_row, lut)."""
    if not getattr(board, "uram", 0):
        return
    movable = [(name, c) for name, c in costs.items() if c.rom_kind == "bram" and c.rom_depth]
    bram_used = fixed_bram36 + sum(c.bram36 for c in costs.values())
    uram_used = sum(c.uram for c in costs.values())

    def order(item):
        name, c = item
        u = uram_packing(c.rom_width, c.rom_depth).uram
        rom = c.bram36 - c.input_bram36
        return (-rom / u, -rom, name)

    for name, c in sorted(movable, key=order):
        packing = uram_packing(c.rom_width, c.rom_depth)
        u = packing.uram
        if (uram_used + u) / board.uram >= bram_used / board.bram36:
            continue
        bram_used -= c.bram36 - c.input_bram36     # the input buffer stays in block RAM
        uram_used += u
        c.bram36, c.uram, c.rom_kind = c.input_bram36, u, "uram"
        c.rom_words_per_row = packing.words_per_row
        c.lut += packing.select_luts


def elementwise_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    beats = math.ceil(op.in_size / s.in_lanes)
    lanes = s.in_lanes
    dsp = 0
    lut = 40 + lanes * (op.in_type.bits + 2)
    if isinstance(op, Requant):
        rq = op.requant
        if rq.per_channel or rq.multiplier[0] != 1:
            dsp = lanes * multiplier_dsps(op.in_type.bits + 1, rq.multiplier_bits, dsp_kind)
        lut += lanes * (op.out_type.bits + op.in_type.bits + 8)
    ff = lanes * (op.in_type.bits + op.out_type.bits) * 2 + 32
    return OpCost(cycles=beats, ii=beats, latency=beats + 3, multipliers=0, dense_multipliers=0,
                  dsp=dsp, bram36=0.0, lut=lut, ff=ff, macs=0, effective_macs=0, weight_bits=0)


def dp16kd_for(width: int, depth: int) -> int:
    """ECP5 DP16KD blocks for a ROM of depth x width bits (0 when it stays in LUTs, as bram36_for)."""
    if bram36_for(width, depth) == 0:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in DP16KD_SHAPES)


def ecp5_adjust(cost: OpCost, rom_shape: tuple[int, int] | None) -> OpCost:
    """The Xilinx-shaped estimate of one op restated for ECP5: LUT6 -> LUT4 (a measured ratio),
    the weight ROM in DP16KD halves of a 36 Kb equivalent when its shape is known.  Multipliers
    are already counted as MULT18X18D by multiplier_dsps."""
    cost.lut = math.ceil(cost.lut * ECP5_LUT4_PER_LUT6)
    if rom_shape is not None:
        cost.bram36 = dp16kd_for(*rom_shape) / 2 + cost.input_bram36
    return cost


def join_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    """Add / Mul of two streams: per lane one or two multipliers (none for a multiplier of 1), the
    sum or product, rounding and clamp; Concat / Slice / Fork: handshakes and a register per port."""
    lanes = s.in_lanes
    beats = math.ceil(op.in_size / lanes)
    out_beats = math.ceil(op.out_size / s.out_lanes)
    bits = op.in_type.bits
    dsp, lut = 0, 30
    if op.kind in ("add", "mul"):
        b_bits = op.input_types[1].bits
        mults = [m for m in op.rq.multipliers if m != 1 and (m & (m - 1))]
        if op.kind == "mul":
            dsp += lanes * multiplier_dsps(bits + 1, b_bits + 1, dsp_kind)
            lut += 0 if dsp else lanes * lut_multiplier(bits + 1, b_bits + 1)
        for _ in mults:
            per = multiplier_dsps(max(bits, b_bits) + 1, op.rq.multiplier_bits, dsp_kind)
            dsp += lanes * per
        lut += lanes * (bits + b_bits + op.out_type.bits + 16)
        ff = lanes * (bits + b_bits + 2 * op.out_type.bits) + 16
        latency = max(beats, out_beats) + 4
    else:
        ports = op.arity + op.n_outputs
        lut += ports * 8 + lanes * bits * (op.arity if op.kind == "concat" else 1)
        ff = ports * lanes * bits + 16
        latency = (sum(math.ceil(n / lanes) for n in op.input_sizes) if op.kind == "concat" else beats) + 2
    cycles = sum(math.ceil(n / lanes) for n in op.input_sizes) if op.kind == "concat" else max(beats, out_beats)
    return OpCost(cycles=cycles, ii=cycles, latency=latency, multipliers=0, dense_multipliers=0,
                  dsp=dsp, bram36=0.0, lut=lut, ff=ff, macs=0, effective_macs=0, weight_bits=0)


def _deferred(module: str, name: str):
    """The cost function ``name`` of the sibling ``module``, imported on first use (those modules
    import this one)."""
    def cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
        import importlib
        return getattr(importlib.import_module(module, __package__), name)(op, s, dsp_kind)
    cost.__name__ = name
    return cost


def _nonlinear_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    """Softmax / LayerNorm / GELU: one lane count in and out (codegen/schedule/nonlinear_cost.py)."""
    from .nonlinear_cost import nonlinear_cost
    row = nonlinear_cost(op.unit, s.in_lanes, dsp_kind)
    if op.rows == 1:
        return row
    # a softmax over attention heads: the rows of a token pass one after another through one unit
    return replace(row, cycles=row.cycles * op.rows, ii=row.ii * op.rows,
                   latency=row.latency + (op.rows - 1) * row.ii)


#: the cost function of every op kind the hardware builds (one entry per kind)
COST_FUNCTIONS = {
    "linear": linear_cost, "requant": elementwise_cost, "relu": elementwise_cost,
    "butterfly": _deferred(".butterfly", "butterfly_cost"),
    "contract": _deferred(".contraction", "stage_cost"), "permute": _deferred(".contraction", "permute_cost"),
    "add": join_cost, "mul": join_cost, "concat": join_cost, "slice": join_cost, "fork": join_cost,
    "softmax": _nonlinear_cost, "layernorm": _nonlinear_cost, "gelu": _nonlinear_cost,
    "window": _deferred(".conv_cost", "window_cost"), "regroup": _deferred(".conv_cost", "regroup_cost"),
    "tapmax": _deferred(".conv_cost", "tapmax_cost"), "actmatmul": _deferred(".attention_cost", "actmatmul_cost"),
    "maskscores": _deferred(".mask_cost", "maskscores_cost"),
    "tokenmean": _deferred(".pooling_cost", "tokenmean_cost"), "maskedmean": _deferred(".pooling_cost", "maskedmean_cost"),
}


def op_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    cost_function = COST_FUNCTIONS.get(op.kind)
    if cost_function is None:
        raise TypeError(f"no cost model for op kind {op.kind!r}")
    cost = cost_function(op, s, dsp_kind)
    # LUT and FF fitted to Yosys counts where bench/calibrate.py measured the unit kind
    from .calibration import apply as apply_calibration
    apply_calibration(op.kind, op, s, dsp_kind, cost)
    if dsp_kind == ECP5_MULTIPLIER:
        rom_shape = None
        if isinstance(op, Linear):
            word_bits = cost.weight_bits // max(cost.cycles, 1)
            rom_shape = (word_bits, cost.cycles)
        return ecp5_adjust(cost, rom_shape)
    return cost
