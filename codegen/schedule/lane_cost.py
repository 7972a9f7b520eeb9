"""Lane converters between units: where they are and what they cost (rtl_kernels/einhls_lanes.v).

Where a stream changes lanes between its producer and its consumer (a fork of 17 lanes feeding a
slice of 16, an output of PE lanes read at 1 lane), the Verilog top puts an einhls_lanes converter
on the wire.  ``lane_converters`` decides them from the schedules alone, and plan_rtl
(codegen/emit/rtl.py) instantiates that list, so the scheduler counts in a design's totals exactly
the converters the top has.

A converter between lane counts of which one divides the other gathers IN lanes into words of OUT
(it holds OUT/IN - 1 beats and the word, and multiplexes every held bit) or splits words of IN into
beats of OUT (a shift register of IN lanes and the last beat's lane mask).  Between lane counts
neither of which divides the other it is a queue (the "barrel" of einhls_lanes.v) of IN + 2*OUT - 2
lanes, each written from any of the IN input lanes or shifted down by OUT: 47 lanes of 8 bits at
17 -> 16.  (Until it was built, such a converter gathered to lcm(IN, OUT) lanes and split again:
272 lanes, 2,176 bits a word at 17 -> 16, which measured 9,291 LUT and 13,189 FF in the masked
token mean's calibration point.)  ``converter_terms`` counts those bits;
codegen/schedule/calibration.py fits a weight to each LUT term (group "lanes") on the calibration
sweep; the flip-flops are the count itself (registers are registers; a fit over the few points with
converters traded them against the units' own offsets).
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
        """Lanes of the word between the gather and the split (the queue's lanes for a barrel)."""
        a, b = self.lanes_in, self.lanes_out
        if b % a == 0:
            return b
        if a % b == 0:
            return a
        return a + 2 * b - 2

    @property
    def dividing(self) -> bool:
        """True when one lane count divides the other (a gather or a split alone)."""
        return self.lanes_out % self.lanes_in == 0 or self.lanes_in % self.lanes_out == 0


def input_place(op, index: int) -> str:
    """Where a converter in front of input ``index`` of ``op`` sits (LaneConverter.where)."""
    return f"{op.name} input {index}"


def output_place(op, index: int) -> str:
    """Where a converter after output ``index`` of ``op`` sits (LaneConverter.where)."""
    return f"{op.name} output" + (f" {index}" if op.n_outputs > 1 else "")


#: where the converter in front of the top's output sits
TOP_OUTPUT = "output"


def lane_converters(design) -> list[LaneConverter]:
    """The converters between units (and in front of the top's output) of ``design``: the one
    place that decides them; codegen/emit/rtl.py plan_rtl instantiates exactly these, so the
    scheduler's totals count what the Verilog top has.  The lane-packing converters around a FIFO
    in UltraRAM are counted with that FIFO (schedule/fifo_memory.py), not here."""
    from .folding import ELEMENTWISE_KINDS

    graph = design.graph
    have = {GRAPH_INPUT: design.top_input.lanes}
    out: list[LaneConverter] = []
    for op in graph.ops:
        s = design.schedules[op.name]
        for i, (tensor, size, qtype) in enumerate(zip(op.inputs, op.input_sizes, op.input_types)):
            if have[tensor] != s.in_lanes:
                out.append(LaneConverter(input_place(op, i), size, qtype.bits, have[tensor], s.in_lanes))
        # an elementwise unit passes its input lanes through; its output stream is at out_lanes
        lanes = s.in_lanes if op.kind in ELEMENTWISE_KINDS else s.out_lanes
        for k, tensor in enumerate(op.outputs):
            if lanes != s.out_lanes:
                out.append(LaneConverter(output_place(op, k), op.out_size, op.out_type.bits, lanes, s.out_lanes))
            have[tensor] = s.out_lanes
    top = design.top_output
    if have[graph.output] != top.lanes:
        out.append(LaneConverter(TOP_OUTPUT, graph.output_size, graph.output_type.bits, have[graph.output],
                                 top.lanes))
    return out


def converter_terms(c: LaneConverter) -> dict[str, dict[str, float]]:
    """First-order LUT and FF counts of one converter, term by term (einhls_lanes.v): the gather's
    held beats and word register, the split's shift register and its lane mask, or the barrel's
    queue and the multiplexer in front of each of its bits (IN + 2 sources)."""
    a, b, mid, bits = c.lanes_in, c.lanes_out, c.mid, c.bits
    counters = 2 * max(1, math.ceil(math.log2(max(c.size, 2))))
    lut = {"const": 1.0, "const_neg": -1.0, "gather": 0.0, "split": 0.0, "barrel": 0.0, "barrel_lanes": 0.0}
    ff = {"const": 1.0, "const_neg": -1.0, "gather": 0.0, "split": 0.0, "barrel": 0.0,
          "counters": float(counters)}
    if not c.dividing:
        # each queue bit: a multiplexer of IN + 2 sources (a LUT6 selects among four) and the
        # comparisons of its lane with the fill level
        lut["barrel"] = float(mid * bits * (a + 2) / 4)
        lut["barrel_lanes"] = float(mid * bits)
        ff["barrel"] = float(mid * bits)
        return {"lut": lut, "ff": ff}
    if mid != a:      # gather
        held = (mid // a - 1) * a * bits
        # each held bit is chosen for the word by the slot counter (held, incoming or zero)
        lut["gather"] = float(held + a * bits)
        ff["gather"] = float(held + mid * bits)
    if mid != b:      # split: each word bit loads or shifts; the last beat's lanes are masked
        lut["split"] = float(mid * bits + b * bits)
        ff["split"] = float(mid * bits)
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
