"""Cycle and resource estimates of the nonlinear units (rtl_kernels/einhls_{softmax,layernorm,gelu}.v).

A frame is one token (``size`` elements, ``lanes`` per beat, B = ceil(size / lanes) beats).  The
cycle counts are those of the Verilog state machines, and tests/test_nonlinear_units.py checks
them against RTL simulation:

* GELU is a pipeline taking one beat per cycle: interval B, latency B + 5 (3 front stages, 3 in
  einhls_requant, less the cycle the first beat is accepted in).
* Softmax has three stages, each working on its own token: input (B beats, running maximum),
  exponentials and division (1 + B + 3 for the 3-stage exponential pipeline, then NUM_BITS for
  the restoring division) and output (B).  Interval max(B, B + NUM_BITS + 4) = B + NUM_BITS + 4;
  latency 3B + NUM_BITS + 8.  Two banks of x and two of e.
* LayerNorm has three stages too: input (B, sums), variance, square root and reciprocal
  (1 + ROOT_BITS + RB + 1, one result bit per cycle each) and output (B).  Interval
  max(B, ROOT_BITS + RB + 2), latency 2B + ROOT_BITS + RB + 7.  Three banks of x.

Resources: DSPs are counted per multiplier from its operand widths (``multiplier_dsps``, a DSP48E1
is 25 x 18, a DSP48E2 27 x 18; operands of at most 4 bits go to LUTs), one set per lane plus the
per-token ones (LayerNorm's s1^2).  Row buffers and LayerNorm's gamma / beta ROMs are block RAM
when ``bram36_for`` says so, else distributed RAM (one LUT per bit per 64 words).  LUT and FF
counts are first-order: the widths of the adders, comparators, shifters and pipeline registers
each lane has, plus a fixed amount for the control and the serial divider / square root.  They are
estimates for folding, not synthesis results.
"""
from __future__ import annotations

import math

from ..ir.nonlinear import IntGelu, IntLayerNorm, IntSoftmax, NonlinearOp
from .cost import OpCost, bram36_for, multiplier_dsps

CONTROL_LUT = 80        # state machine, beat counters, handshakes
CONTROL_FF = 40
REQUANT_STAGES = 3      # einhls_requant: input register, product, rounding


def _beats(op: NonlinearOp, lanes: int) -> int:
    if lanes < 1:
        raise ValueError(f"{op.kind}: lanes must be positive, got {lanes}")
    return math.ceil(op.size / lanes)


def _memory(width: int, depth: int) -> tuple[float, int]:
    """(BRAM36, LUTs) of a buffer or ROM of depth x width bits."""
    brams = bram36_for(width, depth)
    return brams, (0 if brams else width * math.ceil(depth / 64))


def _requant_lut_ff(value_bits: int, mult_bits: int, out_bits: int) -> tuple[int, int]:
    product = value_bits + mult_bits + 1
    return out_bits + product // 2 + 8, value_bits + product + out_bits + 2


def softmax_row_cycles(op: IntSoftmax, lanes: int) -> int:
    """Cycles between rows of a softmax unit at ``lanes``: the row's beats, then the division of
    its sum (one quotient bit a cycle) and the pipeline's turn-around, which the beats do not hide."""
    return _beats(op, lanes) + op.numerator.bit_length() + 4


def softmax_cost(op: IntSoftmax, lanes: int, dsp_kind: str) -> OpCost:
    nb = _beats(op, lanes)
    num_bits = op.numerator.bit_length()
    e_bits = op.exp_max.bit_length()
    in_bits, f = op.in_type.bits, op.frac_bits
    pv_bits = e_bits + op.recip_bits + 1
    exp_mult_bits = op.exp_mult.bit_length()
    per_lane_dsp = (multiplier_dsps(in_bits + 1, exp_mult_bits, dsp_kind)      # d * EXP_MULT
                    + multiplier_dsps(f + 2, f + 2, dsp_kind)                    # (B - r)^2
                    + multiplier_dsps(op.poly_a.bit_length(), f + 3, dsp_kind)   # A * square
                    + multiplier_dsps(e_bits, op.recip_bits, dsp_kind))          # e * recip
    rq_lut, rq_ff = _requant_lut_ff(pv_bits, 1, op.out_type.bits)
    lane_lut = 2 * (in_bits + 1) + (f + 2) + e_bits + op.sum_bits + 10 + rq_lut
    x_bram, x_lut = _memory(lanes * in_bits, 2 * nb)
    e_bram, e_lut = _memory(lanes * e_bits, 2 * nb)
    lut = CONTROL_LUT + 2 * (op.sum_bits + 1) + lanes * lane_lut + x_lut + e_lut
    lane_ff = in_bits + f + 4 * (math.ceil(math.log2(f + 2)) + 1) + 3 + e_bits + pv_bits + rq_ff // 2
    ff = CONTROL_FF + op.sum_bits * 2 + num_bits + op.recip_bits + in_bits + 1 + lanes * lane_ff
    ii = softmax_row_cycles(op, lanes)
    return OpCost(cycles=ii, ii=ii, latency=3 * nb + num_bits + 8, multipliers=4 * lanes, dense_multipliers=4 * lanes,
                  dsp=lanes * per_lane_dsp, bram36=x_bram + e_bram, lut=lut, ff=ff, macs=0, effective_macs=0,
                  weight_bits=0, buffer_bits=2 * nb * lanes * (in_bits + e_bits))


def layernorm_cost(op: IntLayerNorm, lanes: int, dsp_kind: str) -> OpCost:
    nb = _beats(op, lanes)
    in_bits = op.in_type.bits
    s1_bits = in_bits + 2 + math.ceil(math.log2(op.size + 1))
    dev_bits = s1_bits + 1
    rq = op.requant
    per_lane_dsp = (multiplier_dsps(in_bits + 1, in_bits + 1, dsp_kind)                 # x^2
                    + multiplier_dsps(dev_bits, op.recip_shift + 1, dsp_kind)             # dev * recip
                    + multiplier_dsps(op.norm_bits, op.gamma_bits, dsp_kind)              # n * g
                    + multiplier_dsps(op.value_bits, rq.multiplier_bits, dsp_kind))       # requant
    token_dsp = multiplier_dsps(s1_bits, s1_bits, dsp_kind)                               # s1^2
    rq_lut, rq_ff = _requant_lut_ff(op.value_bits, rq.multiplier_bits, op.out_type.bits)
    # the wide dev * recip product is assembled from several DSPs with fabric adders
    lane_lut = 2 * in_bits + 2 * s1_bits + dev_bits + op.value_bits + rq_lut + 2 * (dev_bits + op.recip_shift + 1)
    x_bram, x_lut = _memory(lanes * in_bits, 3 * nb)
    g_bram, g_lut = _memory(lanes * op.gamma_bits, nb)
    b_bram, b_lut = _memory(lanes * op.beta_bits, nb)
    serial = 3 * (2 * op.root_bits + 2) + 2 * (op.root_bits + 2)                          # sqrt and divider
    lut = CONTROL_LUT + serial + 4 * op.var_bits + lanes * lane_lut + x_lut + g_lut + b_lut
    lane_ff = in_bits + op.gamma_bits + op.beta_bits + op.norm_bits + op.value_bits + rq_ff // 2
    ff = (CONTROL_FF + 3 * s1_bits + 2 * in_bits + math.ceil(math.log2(op.size + 1)) + 3 * (2 * op.root_bits + 2)
          + 2 * (op.recip_shift + 1) + op.root_bits + lanes * lane_ff)
    math_cycles = op.root_bits + op.recip_shift + 2
    ii = max(nb, math_cycles)
    return OpCost(cycles=ii, ii=ii, latency=2 * nb + math_cycles + 5, multipliers=4 * lanes + 1, dense_multipliers=4 * lanes + 1,
                  dsp=lanes * per_lane_dsp + token_dsp, bram36=x_bram + g_bram + b_bram, lut=lut, ff=ff,
                  macs=0, effective_macs=0, weight_bits=op.size * (op.gamma_bits + op.beta_bits),
                  buffer_bits=3 * nb * lanes * in_bits)


def gelu_cost(op: IntGelu, lanes: int, dsp_kind: str) -> OpCost:
    nb = _beats(op, lanes)
    xr_bits, f = op.in_type.bits + 2, op.frac_bits
    rq = op.requant
    per_lane_dsp = (multiplier_dsps(xr_bits, op.q_mult.bit_length(), dsp_kind)       # x / sqrt 2
                    + multiplier_dsps(f + 2, f + 2, dsp_kind)                          # t^2
                    + multiplier_dsps(op.poly_a.bit_length(), f + 3, dsp_kind)         # A * square
                    + multiplier_dsps(xr_bits, f + 3, dsp_kind)                        # xr * (1 + L)
                    + multiplier_dsps(op.value_bits, rq.multiplier_bits, dsp_kind))    # requant
    rq_lut, rq_ff = _requant_lut_ff(op.value_bits, rq.multiplier_bits, op.out_type.bits)
    lane_lut = xr_bits + 2 * (f + 3) + rq_lut // 2
    lane_ff = op.in_type.bits + xr_bits + f + 4 + rq_ff // 4   # Yosys moves the product registers into DSPs
    return OpCost(cycles=nb, ii=nb, latency=nb + 5, multipliers=5 * lanes, dense_multipliers=5 * lanes,
                  dsp=lanes * per_lane_dsp, bram36=0.0, lut=CONTROL_LUT // 2 + lanes * lane_lut,
                  ff=CONTROL_FF // 2 + lanes * lane_ff, macs=0, effective_macs=0, weight_bits=0)


COST_FUNCTIONS = {"softmax": softmax_cost, "layernorm": layernorm_cost, "gelu": gelu_cost}


def nonlinear_cost(op: NonlinearOp, lanes: int, dsp_kind: str) -> OpCost:
    """The cost of one nonlinear unit with ``lanes`` elements per beat on a ``dsp_kind`` device."""
    return COST_FUNCTIONS[op.kind](op, lanes, dsp_kind)
