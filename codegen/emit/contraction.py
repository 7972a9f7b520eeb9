"""Emission of contraction stages and permutations (Verilog and HLS C++): the decisions, as data.

A :class:`~codegen.ir.contraction.ContractStage` becomes, in both back ends,

    [lanes re-pack] -> permutation buffer (when the stage has a gather) -> Linear unit of one repeat

the Linear unit being the existing one (``einhls_linear`` / ``einhls::linear``'s MAC array) with
K inputs and N outputs; in Verilog it simply processes R frames of K inputs per frame of the stage
(same weights, same requantization), in HLS ``einhls::contract_linear<cfg, R>`` loops over the R
repeats.  A span fold (OpSchedule.span) builds the stage's tiled layer instead (all R repeats'
outputs, ContractStage.as_span_linear): ``einhls_linear`` with REPS = R, ``einhls::contract_span``.
A :class:`~codegen.ir.contraction.Permute` is the permutation buffer alone.  Every number
here comes from :mod:`codegen.schedule.contraction` (the layout the cost model assumed), so the
estimate and the hardware cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.contraction import ContractStage, Permute
from ..schedule.contraction import PermuteLayout, permute_layout, stage_converters, stage_layout, stage_linear
from ..schedule.design import OpSchedule

MAX_DIGITS = 8   # einhls_permute's EXTENTS / STRIDES hold 8 digits of 32 bits


def packed_digits(values: list[int]) -> int:
    """Digit values packed 32 bits each, digit 0 lowest (einhls_permute's EXTENTS / STRIDES)."""
    if len(values) > MAX_DIGITS:
        raise ValueError(f"a permutation of {len(values)} digits; einhls_permute supports {MAX_DIGITS}")
    word = 0
    for i, v in enumerate(values):
        word |= int(v) << (32 * i)
    return word


def mixed_radix_digits(value: int, extents: list[int]) -> list[int]:
    """``value`` in the mixed radix of ``extents`` (digit 0 first); the top digit keeps the rest."""
    digits = []
    for e in extents:
        digits.append(value % e)
        value //= e
    return digits


def linear_schedule(op: ContractStage, s: OpSchedule) -> OpSchedule:
    """The schedule of the stage's Linear unit: its lanes divide K and N (see
    codegen.schedule.contraction.linear_in_lanes), so R repeats packed back to back are R frames."""
    return stage_linear(op, s)[1]


def layout_of(op: ContractStage | Permute, s: OpSchedule) -> PermuteLayout | None:
    if isinstance(op, ContractStage):
        return stage_layout(op, s)
    return permute_layout(op.transposition, s.in_lanes, s.out_lanes)


# --------------------------------------------------------------------------- Verilog

def permute_params(layout: PermuteLayout, bits: int, param_cls, uram: bool = False) -> list:
    """einhls_permute's parameters (``param_cls`` is codegen.emit.rtl.Param); URAM only where the
    buffer is in UltraRAM, so a block RAM buffer's instance is what it was before the option."""
    extents = [e for e, _ in layout.digits]
    strides = [st for _, st in layout.digits]
    params = [param_cls("SIZE", layout.size), param_cls("BITS", bits),
              param_cls("IN_LANES", layout.write_lanes), param_cls("OUT_LANES", layout.read_lanes),
              param_cls("BANKS", layout.banks), param_cls("SKEW", layout.skew),
              param_cls("SKEW_MUL", layout.skew_mul), param_cls("DIGITS", len(extents)),
              param_cls("EXTENTS", packed_digits(extents), "b256"),
              param_cls("STRIDES", packed_digits(strides), "b256")]
    return params + [param_cls("URAM", 1)] if uram else params


def permute_comment(name: str, layout: PermuteLayout, uram: bool = False) -> str:
    skew = {0: "banks by column", 1: f"banks skewed by {layout.skew_mul} x row",
            2: "banks skewed by the XOR fold of the row"}[layout.skew]
    where = "; in UltraRAM, rows packed into 72-bit words" if uram else ""
    return (f"{name}: permutation buffer of {layout.size} elements (ping-pong), {layout.write_lanes} written "
            f"per cycle by mixed-radix address counters, {layout.read_lanes} read, {layout.banks} banks, {skew}"
            f"{where}")


def rtl_stages(index: int, op: ContractStage | Permute, s: OpSchedule, dsp_kind: str, uram: bool = False):
    """The top-level stages (and ROM images) of one contraction op, from stream lanes s.in_lanes to
    s.out_lanes: [lanes] -> [einhls_permute] -> [lanes] -> einhls_linear (one repeat) -> [lanes].
    ``uram``: the permutation buffer in UltraRAM (Design.uram_stage_buffers)."""
    from .rtl import Param, Stage, _lanes_stage, linear_stage

    stages, mems = [], []
    converters = stage_converters(op, s)

    def convert(tag: str) -> None:
        c = converters.get(tag)
        if c is not None:
            stages.append(_lanes_stage(f"u{index}_{tag}", c.size, c.bits, c.lanes_in, c.lanes_out, c.where))
    layout = layout_of(op, s)
    if layout is not None:
        convert("wlanes")
        stages.append(Stage("einhls_permute", f"u{index}_perm", permute_comment(op.name, layout, uram),
                            permute_params(layout, op.in_type.bits, Param, uram), layout.write_lanes * op.in_type.bits,
                            layout.read_lanes * op.in_type.bits))
    if isinstance(op, ContractStage):
        lin, inner = stage_linear(op, s)
        convert("klanes")
        stage, mems = linear_stage(index, lin, inner, dsp_kind)
        what = (f"span fold, the {op.repeats} repeats' outputs as one layer" if s.span else "one repeat")
        stage.comment = f"{op.name}: contraction stage ({op.step}); {what}: {stage.comment}"
        stages.append(stage)
    convert("olanes")
    return stages, mems


# --------------------------------------------------------------------------- HLS C++

@dataclass
class PermuteUnit:
    """One einhls::permute<cfg> process (the data its params template needs)."""
    kind = "permute"
    index: int
    op: str
    source: str
    ns: str
    header: str
    summary: str
    size: int
    bits: int
    in_lanes: int
    out_lanes: int
    banks: int
    extents: list[int]
    strides: list[int]
    skew: int                  # bank mapping of codegen.schedule.contraction.bank_of
    skew_mul: int
    inc: list[int]             # IN_LANES in the mixed radix of the extents
    init: list[list[int]]      # [lane][digit]: the digits of element `lane`
    in_beats: int
    out_beats: int
    last_in_lanes: int         # valid lanes of the last input beat
    log_banks: int
    rows: int
    digit_bits: int
    pos_bits: int
    row_bits: int
    uram: bool = False         # the buffer in UltraRAM (schedule/contraction_memory.py)
    slot_bits: int = 0         # UltraRAM: bits of an element's slot, rows of a bank per word
    pack: int = 1

    @staticmethod
    def of(index: int, op_name: str, source: str, ns: str, header: str, layout: PermuteLayout,
           bits: int, uram: bool = False) -> "PermuteUnit":
        from ..schedule.contraction_memory import StageBufferShape
        extents = [e for e, _ in layout.digits]
        shape = StageBufferShape(layout.banks, layout.rows, bits)
        return PermuteUnit(index=index, op=op_name, source=source, ns=ns, header=header,
                           summary=permute_comment(op_name, layout, uram), size=layout.size, bits=bits,
                           in_lanes=layout.write_lanes, out_lanes=layout.read_lanes, banks=layout.banks,
                           extents=extents, strides=[st for _, st in layout.digits],
                           skew=layout.skew, skew_mul=layout.skew_mul,
                           inc=mixed_radix_digits(layout.write_lanes, extents),
                           init=[mixed_radix_digits(lane, extents) for lane in range(layout.write_lanes)],
                           in_beats=layout.write_beats, out_beats=layout.read_beats,
                           last_in_lanes=layout.size - (layout.write_beats - 1) * layout.write_lanes,
                           log_banks=layout.banks.bit_length() - 1, rows=layout.rows,
                           digit_bits=max(1, max(extents).bit_length()),
                           pos_bits=max(1, layout.size.bit_length()),
                           row_bits=max(1, (layout.rows - 1).bit_length()),
                           uram=uram, slot_bits=shape.slot_bits, pack=shape.pack)

    def internal_widths(self) -> list[int]:
        return [self.in_lanes * self.bits, self.out_lanes * self.bits]


@dataclass
class ContractUnit:
    """One einhls::contract_linear<cfg, R> process: the Linear unit of one repeat, R times; with a
    span fold (rep_n = N) einhls::contract_span<cfg, R, N>, the tiled layer of all R repeats."""
    kind = "contract"
    linear: object        # codegen.emit.hls.LinearUnit of one repeat (its params header is reused)
    repeats: int
    step: str
    rep_n: int = 0        # OpSchedule.span

    @property
    def op(self) -> str:
        return self.linear.op

    @property
    def source(self) -> str:
        return self.linear.source

    @property
    def ns(self) -> str:
        return self.linear.ns

    @property
    def header(self) -> str:
        return self.linear.header

    @property
    def summary(self) -> str:
        if self.rep_n:
            return (f"contraction stage ({self.step}), span fold: {self.repeats} repeats' outputs as one "
                    f"layer, {self.linear.summary}")
        return f"contraction stage ({self.step}): {self.repeats} repeats of {self.linear.summary}"

    def internal_widths(self) -> list[int]:   # XWord / YWord of einhls_contract.h are the Linear unit's
        return self.linear.internal_widths()


def hls_linear_schedule(op: ContractStage, s: OpSchedule) -> OpSchedule:
    """The Linear unit of one repeat in HLS: the RTL's lanes where einhls::contract_linear can wire
    them without run-time selection (input lanes dividing SIMD, output lanes dividing PE), else
    the largest lane count that divides both (the emitter re-packs the stream to it)."""
    inner = linear_schedule(op, s)
    in_lanes = inner.in_lanes if s.simd % inner.in_lanes == 0 else math.gcd(s.simd, op.k)
    if s.span:   # one row of PE outputs a beat: a group's outputs never wait for the next group's
        out_lanes = s.pe
    else:
        out_lanes = inner.out_lanes if s.pe % inner.out_lanes == 0 else math.gcd(s.pe, op.n)
    return OpSchedule(inner.op, inner.simd, inner.pe, in_lanes, out_lanes, span=s.span)


def hls_units(index: int, op: ContractStage | Permute, design, ns: str, header: str, linear_unit):
    """The HLS processes of one contraction op, in order, as (unit, in_lanes, out_lanes, in_size,
    in_bits): [einhls::permute] then [einhls::contract_linear].  ``linear_unit`` is
    codegen.emit.hls._linear_unit (passed in to keep this module free of import cycles)."""
    import dataclasses

    s = design.schedule(op)
    units = []
    layout = layout_of(op, s)
    if layout is not None:
        stem = header[:-2] if header.endswith(".h") else header
        units.append((PermuteUnit.of(index, op.name, op.source, f"{ns}_perm", f"{stem}_perm.h", layout,
                                     op.in_type.bits, op.name in design.uram_stage_buffers),
                      layout.write_lanes, layout.read_lanes, op.in_size, op.in_type.bits))
    if isinstance(op, ContractStage):
        inner = hls_linear_schedule(op, s)
        one = dataclasses.replace(design, schedules={**design.schedules, op.name: inner})
        unit = ContractUnit(linear_unit(index, stage_linear(op, s)[0], one, ns, header), op.repeats, op.step,
                            s.span)
        units.append((unit, inner.in_lanes, inner.out_lanes, op.in_size, op.in_type.bits))
    return units
