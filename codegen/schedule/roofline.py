"""The MAC roofline of every multiplying unit of a design, and of the whole pipeline.

A unit's roofline is the fewest cycles its multipliers can compute one frame in:

    roofline cycles = ceil(MACs / (multipliers x products per multiplier))

* MACs: the products the unit must compute per frame (every token of the frame): R x K x N for a
  contraction stage, the non-zero products (N/M of the dense count) for an N:M layer, 2 NT L for a
  butterfly, heads x inner x cols per row for an attention product.
* multipliers: the hardware multipliers the unit builds (a DSP slice, or a LUT multiplier).
* products per multiplier: 2 where two PEs share one DSP (schedule/packing.py: the DSP computes
  (w1 2^S + w0) x) or two tokens share each weight read (token pairs: w (x1 2^S + x0)), else 1.
  A product needing two DSPs (an operand wider than the DSP's ports) still counts one
  multiplier: its DSP cost is in the ``dsp`` column, not in the roofline.

A unit's ratio is its cycles per frame over its roofline; 1.0 means every multiplier does useful
work every cycle.  A pipeline of units (a tensor-train layer's stages) has the roofline of all its
multipliers together, total MACs / total products per cycle: a pipeline whose stages are folded to
unequal intervals leaves the fast stages idle and is above it, so this is the balance check.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..ir.graph import Graph, Linear, Op
from .cost import OpCost, multiplier_dsps
from .design import OpSchedule
from .folding import token_counts
from .packing import pack_config, pe_quad_config, quad_config, token_pair_config

#: the op kinds that multiply (everything else moves or requantizes data)
MAC_KINDS = ("linear", "contract", "butterfly", "actmatmul")


@dataclass(frozen=True)
class UnitRoofline:
    op: str
    kind: str
    macs: int                      # products per frame
    multipliers: int
    products_per_multiplier: int
    dsp: int                       # DSP slices of the products (requantization multipliers excluded)
    cycles: int                    # cycles per frame of the unit, as scheduled

    @property
    def products_per_cycle(self) -> int:
        return self.multipliers * self.products_per_multiplier

    @property
    def roofline_cycles(self) -> int:
        return math.ceil(self.macs / self.products_per_cycle)

    @property
    def ratio(self) -> float:
        return self.cycles / self.roofline_cycles

    def to_json(self) -> dict:
        return {**asdict(self), "roofline_cycles": self.roofline_cycles, "ratio": round(self.ratio, 4)}


def _linear_products(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int, int, int]:
    """(MACs per token, multipliers, products per multiplier, DSPs) of a Linear unit at ``s``."""
    if op.sparsity:
        n, m = op.sparsity
        slots = s.simd // m * n
        macs = op.out_size * math.ceil(op.in_size / m) * n
    else:
        slots, macs = s.simd, op.out_size * op.in_size
    per_product = multiplier_dsps(op.in_type.bits, op.weight_type.bits, dsp_kind)
    if getattr(s, "pe_pack", 1) == 4 and pe_quad_config(op, s, dsp_kind)[0]:
        # PE quads: four PEs' products on each DSP of a quad's slot, one vector
        return macs, s.pe // 4 * slots, 4, s.pe // 4 * slots
    if getattr(s, "token_pack", 1) == 2 and quad_config(op, s, dsp_kind)[0]:
        # PE pairs x token pairs: four products on each DSP of a PE pair's slot
        return macs, s.pe // 2 * slots, 4, s.pe // 2 * slots
    if getattr(s, "token_pack", 1) == 2 and per_product and token_pair_config(op, s, dsp_kind)[0]:
        # token pairs: every multiplier takes two tokens' products on one DSP (dense or N:M)
        return macs, s.pe * slots, 2, s.pe * slots
    packed = bool(per_product) and bool(pack_config(op, s, dsp_kind)[0])
    if packed:   # two PEs share each DSP
        multipliers = math.ceil(s.pe / 2) * slots
        return macs, multipliers, 2, multipliers * per_product
    return macs, s.pe * slots, 1, s.pe * slots * per_product


def unit_roofline(op: Op, s: OpSchedule, cost: OpCost, tokens: int, dsp_kind: str) -> UnitRoofline | None:
    """The roofline of one op (None for an op that does not multiply).  ``tokens``: vectors per
    frame of the op's output; ``cost``: the op's cost at ``s`` (its ii is cycles per token)."""
    if op.kind == "linear":
        macs, multipliers, ppm, dsp = _linear_products(op, s, dsp_kind)
    elif op.kind == "contract":
        _, multipliers, ppm, dsp = _linear_products(op.as_linear(), s, dsp_kind)
        macs = op.macs
    elif op.kind == "butterfly":
        macs, multipliers, ppm = op.macs, cost.multipliers, 1
        dsp = multipliers * multiplier_dsps(max(t.bits for t in (op.in_type, *op.stage_types)),
                                            op.twiddle_type.bits, dsp_kind)
    elif op.kind == "actmatmul":
        macs, multipliers, ppm = op.macs, cost.multipliers, 1
        dsp = multipliers * multiplier_dsps(op.in_type.bits + 1, op.in_type_b.bits + 1, dsp_kind)
    else:
        return None
    return UnitRoofline(op.name, op.kind, macs * tokens, multipliers, ppm, dsp, cost.ii * tokens)


def design_rooflines(graph: Graph, schedules: dict[str, OpSchedule], costs: dict[str, OpCost],
                     dsp_kind: str) -> list[UnitRoofline]:
    """The roofline of every multiplying op of a folded design, in graph order."""
    counts = token_counts(graph)
    rows = []
    for op in graph.ops:
        row = unit_roofline(op, schedules[op.name], costs[op.name], counts[op.outputs[0]], dsp_kind)
        if row is not None:
            rows.append(row)
    return rows


@dataclass(frozen=True)
class PipelineRoofline:
    """All the multiplying units of a design together, against the design's frame interval."""
    macs: int
    multipliers: int
    products_per_cycle: int
    dsp: int
    cycles: int                    # the frame interval (scheduled or measured)

    @property
    def roofline_cycles(self) -> int:
        return math.ceil(self.macs / self.products_per_cycle)

    @property
    def ratio(self) -> float:
        return self.cycles / self.roofline_cycles

    @property
    def dsp_peak_share(self) -> float | None:
        """MACs per cycle over the DSPs' peak of two products each (None without DSPs)."""
        return self.macs / (self.cycles * 2 * self.dsp) if self.dsp else None

    def to_json(self) -> dict:
        share = self.dsp_peak_share
        return {**asdict(self), "roofline_cycles": self.roofline_cycles, "ratio": round(self.ratio, 4),
                "dsp_peak_share": None if share is None else round(share, 4)}


def pipeline_roofline(rows: list[UnitRoofline], frame_interval: int) -> PipelineRoofline:
    return PipelineRoofline(macs=sum(r.macs for r in rows), multipliers=sum(r.multipliers for r in rows),
                            products_per_cycle=sum(r.products_per_cycle for r in rows),
                            dsp=sum(r.dsp for r in rows), cycles=frame_interval)
