"""Lane converters between units: where they are and what they cost (rtl_kernels/einhls_lanes.v).

Where a stream changes lanes between its producer and its consumer (a fork of 17 lanes feeding a
slice of 16, an output of PE lanes read at 1 lane), the Verilog top puts an einhls_lanes converter
on the wire (codegen/emit/rtl.py plan_rtl, ``reach``).  ``lane_converters`` finds them from the
schedules alone, as plan_rtl does, so the scheduler can count them in a design's totals; tests
check the two agree on every calibration point.

A converter gathers IN lanes into words of MID lanes, then splits them into OUT lanes: MID = OUT
when OUT is a multiple of IN (gather only), IN when IN is a multiple of OUT (split only), else
lcm(IN, OUT).  It holds (MID/IN - 1) input beats and one MID word on the gather side, one MID word
(shifted out a beat at a time) on the split side, and multiplexes every held bit: between
non-dividing lane counts MID is their product over their gcd (17 and 16 lanes: 272 lanes, 2,176
bits a word), which is why such a converter measured thousands of LUTs and flip-flops.
``converter_terms`` counts those bits; codegen/schedule/calibration.py fits a weight to them
(group "lanes") on the calibration sweep.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.graph import GRAPH_INPUT


@dataclass(frozen=True)
class LaneConverter:
    """One einhls_lanes instance: a frame of ``size`` elements of ``bits`` bits, ``lanes_in`` ->
    ``lanes_out`` elements a beat; ``where``: the stream it converts."""
    where: str
    size: int
    bits: int
    lanes_in: int
    lanes_out: int

    @property
    def mid(self) -> int:
        a, b = self.lanes_in, self.lanes_out
        if b % a == 0:
            return b
        if a % b == 0:
            return a
        return a // math.gcd(a, b) * b

    @property
    def dividing(self) -> bool:
        """True when one lane count divides the other (a gather or a split alone)."""
        return self.lanes_out % self.lanes_in == 0 or self.lanes_in % self.lanes_out == 0


def lane_converters(design) -> list[LaneConverter]:
    """The converters the Verilog top puts between units (and at the top's input and output) of
    ``design``, as codegen/emit/rtl.py plan_rtl builds them; the lane-packing converters around a
    FIFO in UltraRAM are counted with that FIFO (schedule/fifo_memory.py), not here."""
    from .folding import ELEMENTWISE_KINDS

    graph = design.graph
    have = {GRAPH_INPUT: design.top_input.lanes}
    out: list[LaneConverter] = []
    for op in graph.ops:
        s = design.schedules[op.name]
        for i, (tensor, size, qtype) in enumerate(zip(op.inputs, op.input_sizes, op.input_types)):
            if have[tensor] != s.in_lanes:
                out.append(LaneConverter(f"{op.name} input {i}", size, qtype.bits, have[tensor], s.in_lanes))
        # an elementwise unit passes its input lanes through; its output stream is at out_lanes
        lanes = s.in_lanes if op.kind in ELEMENTWISE_KINDS else s.out_lanes
        if lanes != s.out_lanes:
            out.append(LaneConverter(f"{op.name} output", op.out_size, op.out_type.bits, lanes, s.out_lanes))
        for tensor in op.outputs:
            have[tensor] = s.out_lanes
    top = design.top_output
    if have[graph.output] != top.lanes:
        out.append(LaneConverter("output", graph.output_size, graph.output_type.bits, have[graph.output],
                                 top.lanes))
    return out


def converter_terms(c: LaneConverter) -> dict[str, dict[str, float]]:
    """First-order LUT and FF counts of one converter, term by term (einhls_lanes.v): the gather's
    held beats and word register, the split's shift register and its lane mask."""
    a, b, mid, bits = c.lanes_in, c.lanes_out, c.mid, c.bits
    gather = mid != a
    split = mid != b
    held = (mid // a - 1) * a * bits if gather else 0
    counters = 2 * max(1, math.ceil(math.log2(max(c.size, 2))))
    lut = {"const": 1.0, "const_neg": -1.0,
           # each held bit is chosen for the word by the slot counter (held, incoming or zero)
           "gather": float(held + (a * bits if gather else 0)),
           # each word bit loads or shifts; the last beat's lanes after the frame are masked
           "split": float(mid * bits + b * bits if split else 0)}
    ff = {"const": 1.0, "const_neg": -1.0,
          "gather": float(held + mid * bits if gather else 0),
          "split": float(mid * bits if split else 0),
          "counters": float(counters)}
    return {"lut": lut, "ff": ff}


def first_order(c: LaneConverter) -> tuple[int, int]:
    """(LUT, FF) of one converter without calibration: its terms summed."""
    terms = converter_terms(c)
    return tuple(int(sum(v for k, v in terms[t].items() if not k.startswith("const"))) for t in ("lut", "ff"))


def converter_cost(c: LaneConverter, dsp_kind: str, model: dict | None = None) -> tuple[int, int]:
    """(LUT, FF) of one converter: the calibrated weights of its terms where the sweep fitted them
    (``model`` in place of calibrated.json), else the first-order count."""
    from .calibration import FAMILY_OF_DSP, coefficients

    if c.lanes_in == c.lanes_out:
        return 0, 0
    family = FAMILY_OF_DSP.get(dsp_kind)
    terms = converter_terms(c)
    lut_ff = []
    for target, first in zip(("lut", "ff"), first_order(c)):
        coef = coefficients(LANES_GROUP, family, target, model) if family else None
        if coef:
            value = sum(coef.get(name, 0.0) * x for name, x in terms[target].items())
            lut_ff.append(max(0, int(round(value))))
        else:
            lut_ff.append(first)
    return lut_ff[0], lut_ff[1]


def converters_cost(design, dsp_kind: str, model: dict | None = None) -> tuple[int, int]:
    """(LUT, FF) of every lane converter of ``design``."""
    lut = ff = 0
    for c in lane_converters(design):
        dl, df = converter_cost(c, dsp_kind, model)
        lut, ff = lut + dl, ff + df
    return lut, ff


#: the calibration group of the converters' coefficients (codegen/schedule/calibration.py)
LANES_GROUP = "lanes"
