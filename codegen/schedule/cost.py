"""Cycle and resource estimates of each hardware unit, as built by rtl_kernels/ and hls_kernels/.

These are first-order models used to fold the design to a board; Yosys counts of the generated RTL
(``einhls report --synth``) are the measured check on them.  Every number is per op, and a design's
total is the sum (resources) or the maximum (initiation interval).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..ir.graph import Linear, Op, Relu, Requant
from .design import OpSchedule

LUT_MULT_MAX_BITS = 4     # multiplies with an operand this narrow are built from LUTs, not DSPs
PIPELINE_DEPTH = 6        # ROM read, operand select, multiply, adder tree, accumulate, requant
# (width, depth) shapes of one 36 Kb block RAM
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
LUTRAM_MAX_BITS = 2048    # small ROMs are left to LUTs (distributed memory)
LUTRAM_MAX_DEPTH = 64     # shallow ROMs too: a BRAM this shallow wastes 94% of its bits

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

    def to_json(self) -> dict:
        return asdict(self)


def bram36_for(width: int, depth: int) -> float:
    """Block RAMs for a ROM of depth x width bits (0 when it fits in LUTs), in 36 Kb units."""
    if width * depth <= LUTRAM_MAX_BITS or depth <= LUTRAM_MAX_DEPTH:
        return 0.0
    best = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM36_SHAPES)
    return float(best)


def multiplier_dsps(a_bits: int, b_bits: int, dsp_kind: str) -> int:
    """DSP slices for one a x b multiply (DSP48E1: 25x18, DSP48E2: 27x18, ECP5 MULT18X18D: 18x18)."""
    if min(a_bits, b_bits) <= LUT_MULT_MAX_BITS:
        return 0
    wide = {"DSP48E1": 25, "DSP48E2": 27, ECP5_MULTIPLIER: 18}[dsp_kind]
    small, large = sorted((a_bits, b_bits))
    return math.ceil(small / 18) * math.ceil(large / wide)


def lut_multiplier(a_bits: int, b_bits: int) -> int:
    return math.ceil(a_bits * b_bits * 0.6)


def linear_cost(op: Linear, s: OpSchedule, dsp_kind: str) -> OpCost:
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
    from ..emit.rtl import pack_config, requant_lanes  # (function-level: emit imports this module)
    per_mult_dsp = multiplier_dsps(a_bits, w_bits, dsp_kind)
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
        lut += multipliers * a_bits * math.ceil(m / 4)             # M:1 operand multiplexers
    lut += s.simd * a_bits * math.ceil(kf / 4)                     # input buffer read port
    lut += s.pe * (op.out_type.bits + 8)                           # rounding, clamp
    weight_rom = bram36_for(word_bits, cycles)
    if weight_rom == 0:
        lut += word_bits * math.ceil(cycles / 64)  # one LUT6 per bit per 64 words
    ff = 2 * kf * s.simd * a_bits + 2 * nf * s.pe * op.out_type.bits \
        + multipliers * (a_bits + w_bits) + s.pe * op.acc_type.bits * 2 + word_bits + 64
    weight_bits = word_bits * cycles
    return OpCost(cycles=cycles, ii=max(cycles, in_beats, out_beats),
                  latency=in_beats + cycles + PIPELINE_DEPTH + out_beats,
                  multipliers=multipliers, dense_multipliers=s.pe * s.simd, dsp=dsp,
                  bram36=weight_rom, lut=lut, ff=ff, macs=op.macs,
                  effective_macs=multipliers * cycles, weight_bits=weight_bits)


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
        cost.bram36 = dp16kd_for(*rom_shape) / 2
    return cost


def op_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    cost = _op_cost(op, s, dsp_kind)
    if dsp_kind == ECP5_MULTIPLIER:
        rom_shape = None
        if isinstance(op, Linear):
            word_bits = cost.weight_bits // max(cost.cycles, 1)
            rom_shape = (word_bits, cost.cycles)
        return ecp5_adjust(cost, rom_shape)
    return cost


def _op_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    from ..ir.butterfly import Butterfly
    if isinstance(op, Butterfly):
        from .butterfly import butterfly_cost
        return butterfly_cost(op, s, dsp_kind)
    from ..ir.contraction import ContractStage, Permute
    if isinstance(op, (ContractStage, Permute)):
        from .contraction import permute_cost, stage_cost
        return stage_cost(op, s, dsp_kind) if isinstance(op, ContractStage) else permute_cost(op, s, dsp_kind)
    if isinstance(op, Linear):
        return linear_cost(op, s, dsp_kind)
    if isinstance(op, (Requant, Relu)):
        return elementwise_cost(op, s, dsp_kind)
    raise TypeError(f"no cost model for {type(op).__name__}")
