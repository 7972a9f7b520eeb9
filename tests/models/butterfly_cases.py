"""Butterfly designs for the RTL and C-sim golden tests: one design per (n, P, bits) triple,
chosen so the set covers n = 8..1024, P = 1..n/2 (both ends), 4/8/16-bit codes and twiddles,
exact and requantized stages, power-of-two and other scales (requant multiplier), zero points,
padding and stacks (rectangular), bias, decreasing strides, odd lanes, and the dense-equivalent
identity and Walsh-Hadamard butterflies.  ``FAST`` runs by default; ``SLOW`` are marked slow.
"""
from __future__ import annotations

from codegen.examples import butterfly_graph, manual_design
from codegen.ir.butterfly import standard_strides
from codegen.ir.types import QType
from codegen.schedule.design import Design


def s(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def design(graph, units: int, in_lanes: int, out_lanes: int) -> Design:
    return manual_design(graph, {graph.ops[0].name: (2, units, in_lanes, out_lanes)})


CASES = {
    # n=8, P=n/2, 4-bit everything (LUT multipliers), requantized stages, other output scale
    "n8_p4_int4": lambda: design(butterfly_graph(8, s(4, 0.25), 4, s(4, 0.3), s(4, 0.71), seed=1), 4, 2, 3),
    # Walsh-Hadamard, exact stages: the output is H_16 x
    "n16_p1_hadamard_exact": lambda: design(butterfly_graph(16, s(8), 2, None, None, twiddles="hadamard"), 1, 1, 2),
    # 16-bit codes and twiddles, unsigned input with a zero point, bias, non power-of-two scales
    "n32_p2_int16_zp_bias": lambda: design(butterfly_graph(32, u(16, 2.0 ** -8, zp=30000), 16, s(16, 0.0171),
                                                           s(16, 0.0113), bias=True, seed=2), 2, 4, 4),
    # P = n/2, rectangular 50 -> 100 (padding, 2 stacks), odd lanes
    "n64_p32_rect_stacks": lambda: design(butterfly_graph(64, s(8), 8, s(8, 2.0 ** -3), s(8, 0.05), stacks=2,
                                                          in_size=50, out_size=100, bias=True, seed=3), 32, 10, 7),
    # identity twiddles, decreasing strides: the output is the input
    "n128_p8_identity": lambda: design(butterfly_graph(128, s(8), 8, s(8), s(8), twiddles="identity",
                                                       strides=standard_strides(128, increasing=False)), 8, 16, 16),
    # n=256: cycles within 10% of the roofline; mixed 8-bit codes and 4-bit twiddles, ReLU-free
    "n256_p16_int8_t4": lambda: design(butterfly_graph(256, s(8), 4, s(8, 2.0 ** -3), s(8, 2.0 ** -3), seed=4),
                                       16, 32, 32),
    # n=1024: within 10% of the roofline with frames interleaved
    "n1024_p64_int8": lambda: design(butterfly_graph(1024, s(8), 8, s(8), s(8), seed=5), 64, 128, 128),
}

SLOW = {
    "n1024_p512_int8": lambda: design(butterfly_graph(1024, s(8), 8, s(8), s(8), seed=6), 512, 256, 256),
    "n512_p1_int16": lambda: design(butterfly_graph(512, s(16, 2.0 ** -8), 16, s(16, 2.0 ** -6), s(16, 2.0 ** -5),
                                                    seed=7), 1, 1, 1),
    "n256_p128_int4_nblocks2": lambda: design(butterfly_graph(256, s(4, 0.5), 4, s(4, 0.5), s(4, 0.5),
                                                              strides=standard_strides(256, nblocks=2), seed=8),
                                              128, 64, 64),
}
