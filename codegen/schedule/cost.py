"""Cycle and resource estimates of each hardware unit, as built by rtl_kernels/ and hls_kernels/.

These are first-order models used to fold the design to a board; Yosys counts of the generated RTL
(``einhls report --synth``) are the measured check on them.  Every number is per op, and a design's
total is the sum (resources) or the maximum (initiation interval).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..ir.graph import Linear, Op, Requant
from .design import OpSchedule
from .packing import LUT_MULT_MAX_BITS, pack_config, requant_lanes

PIPELINE_DEPTH = 6        # ROM read, operand select, multiply, adder tree, accumulate, requant
# (width, depth) shapes of one 36 Kb block RAM
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
LUTRAM_MAX_BITS = 2048    # small ROMs are left to LUTs (distributed memory)
LUTRAM_MAX_DEPTH = 64     # shallow ROMs too: a BRAM this shallow wastes 94% of its bits


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
    """DSP slices for one a x b multiply (DSP48E1: 25x18, DSP48E2: 27x18)."""
    if min(a_bits, b_bits) <= LUT_MULT_MAX_BITS:
        return 0
    wide = 25 if dsp_kind == "DSP48E1" else 27
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


def _butterfly_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    from .butterfly import butterfly_cost
    return butterfly_cost(op, s, dsp_kind)


def _stage_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    from .contraction import stage_cost
    return stage_cost(op, s, dsp_kind)


def _permute_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    from .contraction import permute_cost
    return permute_cost(op, s, dsp_kind)


def _nonlinear_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    """Softmax / LayerNorm / GELU: one lane count in and out (codegen/schedule/nonlinear_cost.py)."""
    from .nonlinear_cost import nonlinear_cost
    return nonlinear_cost(op.unit, s.in_lanes, dsp_kind)


#: the cost function of every op kind the hardware builds (one entry per kind)
COST_FUNCTIONS = {
    "linear": linear_cost, "requant": elementwise_cost, "relu": elementwise_cost,
    "butterfly": _butterfly_cost, "contract": _stage_cost, "permute": _permute_cost,
    "add": join_cost, "mul": join_cost, "concat": join_cost, "slice": join_cost, "fork": join_cost,
    "softmax": _nonlinear_cost, "layernorm": _nonlinear_cost, "gelu": _nonlinear_cost,
}


def op_cost(op: Op, s: OpSchedule, dsp_kind: str) -> OpCost:
    cost = COST_FUNCTIONS.get(op.kind)
    if cost is None:
        raise TypeError(f"no cost model for op kind {op.kind!r}")
    return cost(op, s, dsp_kind)
