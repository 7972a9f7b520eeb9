"""The butterfly unit's parameters and ROM contents, for both back ends.

Python decides every number here (widths, ROM words, stage constants, gaps); the Verilog
(``rtl_kernels/einhls_butterfly.v``) and the HLS C++ (``hls_kernels/einhls_butterfly.h`` with
``templates/hls/params_butterfly.h.j2``) read them.  ``codegen/schedule/butterfly.py`` holds the
memory layout and schedule both implement.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import EinhlsError
from ..ir.butterfly import Butterfly, pair_elements
from ..ir.types import bits_for_range
from ..schedule.butterfly import (RTL_READ_AFTER_WRITE, has_bias, log2i, needs_requant_multiplier,
                                  stage_gaps, storage_bits, timing, unit_options)
from ..schedule.cost import LUT_MULT_MAX_BITS, bram36_for
from ..schedule.design import OpSchedule

STRIDE_LOG_BITS = 5


@dataclass
class ButterflyConfig:
    """Everything the two back ends need about one Butterfly op at P units."""
    n: int
    stacks: int
    stages: int
    units: int
    k: int
    m: int
    in_lanes: int
    out_lanes: int
    in_bits: int
    in_signed: bool
    out_bits: int
    out_signed: bool
    w_bits: int            # stored codes (signed)
    t_bits: int            # twiddles (signed)
    acc_bits: int          # accumulators (signed, exact for every stage)
    v_bits: int            # requant input width (>= acc_bits, room for the largest shift)
    m_bits: int
    sh_bits: int
    gap_bits: int
    mul_rq: bool
    has_bias: bool
    mul_lut: bool
    stage_cycles: int      # CT
    rom_block: bool        # twiddle ROM in block RAM (as the cost model counts it)
    contexts: int          # frames in the units at once
    cycles: int            # per frame, from the schedule
    twiddle: np.ndarray    # [L * CT, P, 4]: t00, t10, t01, t11 of unit u in word s * CT + c
    bias: np.ndarray       # [L * CT, P, 2]: bias of e0, e1
    stride_log: list[int]
    gaps: list[int]
    mult: list[int]
    shift: list[int]
    zp: list[int]
    lo: list[int]
    hi: list[int]

    @property
    def banks(self) -> int:
        return 2 * self.units


def _signed_width(lo: int, hi: int) -> int:
    return bits_for_range(min(int(lo), -1), max(int(hi), 0))


def butterfly_config(op: Butterfly, s: OpSchedule) -> ButterflyConfig:
    """Units P = ``s.pe`` (a power of two, at most n/2), lanes from the schedule."""
    units = s.pe
    if units < 1 or units & (units - 1) or units > op.n // 2:
        raise EinhlsError(f"{units} butterfly units: must be a power of two in 1..{op.n // 2}", node=op.name)
    tm = timing(op, units)
    ct, stages, total = tm.stage_cycles, op.stages, op.total
    twiddle = op.twiddle.transpose(0, 1, 3, 2).reshape(stages * ct, units, 4)   # index j*2 + i
    bias = np.zeros((stages, total // 2, 2), dtype=np.int64)
    for st_index, stride in enumerate(op.strides):
        e0, e1 = pair_elements(total, stride)
        bias[st_index, :, 0] = op.bias[st_index, e0]
        bias[st_index, :, 1] = op.bias[st_index, e1]
    bias = bias.reshape(stages * ct, units, 2)
    w_bits = storage_bits(op)
    t_bits = op.twiddle_type.bits
    acc_bits = max(t.bits for t in op.acc_types)
    mul_rq = needs_requant_multiplier(op)
    m_bits = max(r.multiplier_bits for r in op.requants) if mul_rq else 1
    shifts = [r.shift for r in op.requants]
    v_bits = max(acc_bits, max(shifts) - m_bits + 1)
    for r in op.requants:
        for value in (r.zero_point, r.lo, r.hi):
            if _signed_width(value, value) > w_bits:
                raise EinhlsError(f"requant constant {value} does not fit the {w_bits}-bit store", node=op.name)
    return ButterflyConfig(
        n=op.n, stacks=op.stacks, stages=stages, units=units, k=op.in_size, m=op.out_size,
        in_lanes=s.in_lanes, out_lanes=s.out_lanes, in_bits=op.in_type.bits, in_signed=op.in_type.signed,
        out_bits=op.out_type.bits, out_signed=op.out_type.signed, w_bits=w_bits, t_bits=t_bits,
        acc_bits=acc_bits, v_bits=v_bits, m_bits=m_bits, sh_bits=max(1, max(shifts).bit_length()),
        gap_bits=max(1, max(tm.gaps).bit_length()), mul_rq=mul_rq, has_bias=has_bias(op),
        mul_lut=min(w_bits, t_bits) <= LUT_MULT_MAX_BITS, stage_cycles=ct, contexts=tm.contexts,
        rom_block=bram36_for(4 * units * t_bits, stages * ct) > 0,
        cycles=tm.compute,
        twiddle=twiddle, bias=bias, stride_log=[log2i(st) for st in op.strides], gaps=list(tm.gaps),
        mult=[int(r.multiplier[0]) for r in op.requants], shift=shifts,
        zp=[r.zero_point for r in op.requants], lo=[r.lo for r in op.requants],
        hi=[r.hi for r in op.requants])


# --- Verilog ROM images ----------------------------------------------------------------------

def _bits(values: np.ndarray, width: int) -> np.ndarray:
    """[..., F] integers -> [..., F * width] two's complement bits, least significant first."""
    v = np.asarray(values, dtype=np.int64)
    bits = ((v[..., None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    return bits.reshape(*v.shape[:-1], -1)


def hex_words(bits: np.ndarray) -> list[str]:
    """[words, width] bits (LSB first) -> hex strings, most significant digit first."""
    words, width = bits.shape
    digits = max(1, math.ceil(width / 4))
    padded = np.zeros((words, digits * 4), dtype=np.uint8)
    padded[:, :width] = bits
    nibbles = (padded.reshape(words, digits, 4) * np.array([1, 2, 4, 8], dtype=np.uint8)).sum(axis=2)
    table = np.array(list("0123456789abcdef"))
    return ["".join(row) for row in table[nibbles[:, ::-1]]]


def rom_images(cfg: ButterflyConfig) -> dict[str, tuple[int, list[str]]]:
    """{"twiddle" | "bias" | "stage": (word width, hex words)} of the Verilog unit."""
    words = cfg.twiddle.shape[0]
    twiddle = _bits(cfg.twiddle.reshape(words, -1), cfg.t_bits)
    images = {"twiddle": (twiddle.shape[1], hex_words(twiddle))}
    if cfg.has_bias:
        bias = _bits(cfg.bias.reshape(words, -1), cfg.acc_bits)
        images["bias"] = (bias.shape[1], hex_words(bias))
    fields = []
    for s in range(cfg.stages):
        fields.append(np.concatenate([
            _bits(np.array([cfg.stride_log[s]]), STRIDE_LOG_BITS), _bits(np.array([cfg.gaps[s]]), cfg.gap_bits),
            _bits(np.array([cfg.shift[s]]), cfg.sh_bits), _bits(np.array([cfg.mult[s] if cfg.mul_rq else 1]), cfg.m_bits),
            _bits(np.array([cfg.zp[s]]), cfg.w_bits), _bits(np.array([cfg.lo[s]]), cfg.w_bits),
            _bits(np.array([cfg.hi[s]]), cfg.w_bits)]))
    stage = np.stack(fields)
    images["stage"] = (stage.shape[1], hex_words(stage))
    return images


def verilog_parameters(cfg: ButterflyConfig, files: dict[str, str]) -> list[tuple[str, int | str]]:
    """(name, value) of every parameter of einhls_butterfly, ROM file names from ``files``."""
    params = [("N", cfg.n), ("STACKS", cfg.stacks), ("STAGES", cfg.stages), ("P", cfg.units),
              ("K", cfg.k), ("M", cfg.m), ("IN_LANES", cfg.in_lanes), ("OUT_LANES", cfg.out_lanes),
              ("IN_BITS", cfg.in_bits), ("IN_SIGNED", int(cfg.in_signed)), ("W_BITS", cfg.w_bits),
              ("T_BITS", cfg.t_bits), ("ACC_BITS", cfg.acc_bits), ("V_BITS", cfg.v_bits),
              ("OUT_BITS", cfg.out_bits), ("M_BITS", cfg.m_bits), ("SH_BITS", cfg.sh_bits),
              ("GAP_BITS", cfg.gap_bits), ("MUL_RQ", int(cfg.mul_rq)), ("HAS_BIAS", int(cfg.has_bias)),
              ("MUL_LUT", int(cfg.mul_lut)), ("CTX", cfg.contexts), ("ROM_BLOCK", int(cfg.rom_block)),
              ("TWIDDLE_FILE", files["twiddle"]),
              ("STAGE_FILE", files["stage"])]
    if cfg.has_bias:
        params.append(("BIAS_FILE", files["bias"]))
    return params


def summary(op: Butterfly, cfg: ButterflyConfig) -> str:
    stacks = f" x {op.stacks} stacks" if op.stacks > 1 else ""
    return (f"{op.name}: butterfly n={op.n}{stacks}, {op.stages} stages, {op.in_size} -> {op.out_size}, "
            f"{cfg.units} units ({4 * cfg.units} multipliers), {cfg.contexts} frame(s) in flight, "
            f"{cfg.cycles} cycles/frame "
            f"(roofline {op.stages * cfg.stage_cycles})")


# --- the Verilog stage (codegen/emit/rtl.py plan_rtl) ----------------------------------------

def rtl_stage(index: int, op: Butterfly, s: OpSchedule):
    """(Stage, [MemFile]) of einhls_butterfly for the top-level chain of codegen/emit/rtl.py."""
    from .rtl import MemFile, Param, Stage   # rtl.py imports this module

    cfg = butterfly_config(op, s)
    images = rom_images(cfg)
    files = {key: f"layer{index}_{key}.mem" for key in images}
    mems = [MemFile(files[key], width, words) for key, (width, words) in images.items()]
    params = [Param(name, value, "str" if isinstance(value, str) else "int")
              for name, value in verilog_parameters(cfg, files)]
    stage = Stage("einhls_butterfly", f"u{index}_{op.name}", summary(op, cfg), params,
                  s.in_lanes * op.in_type.bits, s.out_lanes * op.out_type.bits)
    return stage, mems


# --- the HLS unit (codegen/emit/hls.py plan_hls, templates/hls/params_butterfly.h.j2) -----------
#
# The Verilog keeps up to 8 frames in its P units at once: while one frame waits the gap after a
# stage (its next stage would read results still in the pipeline), another frame's stage issues.
# An HLS dataflow process is called once per frame and cannot start frame f + 1 inside the call of
# frame f, so the HLS unit keeps its frames in flight the dataflow way: the stages are cut into
# groups of consecutive stages, each group a process with its own P' units and ping-pong buffers on
# both sides, so group g works on frame f while group g + 1 works on frame f - 1.  Inside a group
# the stages run one after the other as in the Verilog (same layout, issue order, gaps).
# ``hls_stage_groups`` picks P' and the cut: the fewest units (then the fewest groups) whose
# slowest process meets the schedule's cycles per frame.


@dataclass(frozen=True)
class StageGroup:
    """Stages ``first`` .. ``last - 1`` in one process: ``issue`` loop iterations per frame."""
    first: int
    last: int
    issue: int

    @property
    def stages(self) -> int:
        return self.last - self.first


def _greedy_groups(ct: int, gaps: list[int], stages: int, target: int) -> list[StageGroup] | None:
    """The fewest groups of consecutive stages whose issue loops take at most ``target`` cycles
    (a group ends where the next stage would push it past; the gap between two groups is not
    issued, the ping-pong buffer between them holds the whole frame)."""
    if ct > target:
        return None
    groups, first, cycles = [], 0, ct
    for stage in range(1, stages):
        more = gaps[stage - 1] + ct
        if cycles + more <= target:
            cycles += more
        else:
            groups.append(StageGroup(first, stage, cycles))
            first, cycles = stage, ct
    groups.append(StageGroup(first, stages, cycles))
    return groups


def hls_stage_groups(op: Butterfly, s: OpSchedule) -> tuple[int, list[StageGroup]]:
    """(P' units per group, the groups) of the HLS unit: the fewest units in all, then the fewest
    groups, whose every process (load C1' words, each group's issue loop, drain) meets the
    schedule's cycles per frame max(compute, input beats, output beats).  The Verilog's own P in
    one group when nothing does."""
    tm = timing(op, s.pe)
    target = max(tm.compute, math.ceil(op.in_size / s.in_lanes), math.ceil(op.out_size / s.out_lanes))
    best: tuple[int, int, int, list[StageGroup]] | None = None
    for units in unit_options(op):
        banks = 2 * units
        if max(op.n // banks, math.ceil(op.out_size / banks)) > target:
            continue
        groups = _greedy_groups(op.total // banks, stage_gaps(op.n, op.stacks, op.strides, units), op.stages, target)
        if groups is None:
            continue
        key = (len(groups) * units, len(groups))
        if best is None or key < best[:2]:
            best = (*key, units, groups)
    if best is None:
        gaps = list(tm.gaps)
        return s.pe, [StageGroup(0, op.stages, op.stages * tm.stage_cycles + sum(gaps))]
    return best[2], best[3]


@dataclass
class GroupRoms:
    """One group's slice of the ROMs and stage constants (each process reads its own copy)."""
    group: StageGroup
    twiddle_rows: list[str]
    bias_rows: list[str]
    stride_log: list[int]
    gaps: list[int]           # idle cycles after each of its stages; none after its last
    mult: list[str]
    shift: list[int]
    zp: list[int]
    lo: list[str]
    hi: list[str]
    log_rom: int
    in_depth: str             # the words per bank of its input and output buffers (C++ constants)
    out_depth: str


@dataclass
class ButterflyUnit:
    kind = "butterfly"
    index: int
    op: str
    source: str
    ns: str
    header: str
    summary: str
    c: ButterflyConfig        # at the HLS unit's P' units per group
    in_t: object              # codegen.emit.hls.CType
    out_t: object
    log_p: int
    c1: int
    out_words: int
    in_beats: int
    out_beats: int
    tw_int: str
    groups: list[GroupRoms]
    rtl_units: int            # P of the Verilog unit (the schedule's)
    widest: int               # widest ap_int the unit uses (AP_INT_MAX_W above 1024)
    log_c1: int
    log_ct: int
    in_words: int             # words of 2P elements the loader writes
    raw_distance: int         # every read of the working buffer is this many issue cycles after its write
    c_bits: int               # rounding and clamping width (einhls_butterfly.v CWD)

    def internal_widths(self) -> list[int]:
        return [self.widest]

    @property
    def issue(self) -> int:
        """Iterations per frame of the slowest group's issue loop."""
        return max(g.group.issue for g in self.groups)


def _c_int(value: int) -> str:
    """A C++ integer literal of a 64-bit value (the most negative one has no literal)."""
    value = int(value)
    return f"({value + 1}LL - 1)" if value == -(1 << 63) else f"{value}LL"


def group_roms(cfg: ButterflyConfig, group: StageGroup, out_words: int) -> GroupRoms:
    """The ROM rows and stage constants of ``group`` at the configuration's P units."""
    rows = slice(group.first * cfg.stage_cycles, group.last * cfg.stage_cycles)
    stages = slice(group.first, group.last)
    gaps = cfg.gaps[stages][:-1] + [0]
    issue = group.stages * cfg.stage_cycles + sum(gaps)
    if issue != group.issue:
        raise EinhlsError(f"stage group {group.first}..{group.last - 1}: {issue} issue cycles, planned {group.issue}")
    return GroupRoms(
        group=group,
        twiddle_rows=["{ " + ", ".join("{" + ", ".join(str(int(v)) for v in unit) + "}" for unit in word) + " }"
                      for word in cfg.twiddle[rows].tolist()],
        bias_rows=["{ " + ", ".join("{" + ", ".join(_c_int(v) for v in unit) + "}" for unit in word) + " }"
                   for word in cfg.bias[rows].tolist()],
        stride_log=cfg.stride_log[stages], gaps=gaps,
        mult=[f"{m}ULL" for m in (cfg.mult[stages] if cfg.mul_rq else [1] * group.stages)],
        shift=cfg.shift[stages], zp=cfg.zp[stages], lo=[_c_int(v) for v in cfg.lo[stages]],
        hi=[_c_int(v) for v in cfg.hi[stages]],
        log_rom=max(1, (group.stages * cfg.stage_cycles - 1).bit_length()),
        in_depth="C1" if group.first == 0 else "CT",
        out_depth="OUT_WORDS" if group.last == cfg.stages else "CT")


def hls_unit(index: int, op: Butterfly, s: OpSchedule, ns: str, header: str, ctype,
             groups: tuple[int, list[StageGroup]] | None = None) -> ButterflyUnit:
    """The template data of one Butterfly op; ``ctype`` is codegen.emit.hls.CType; ``groups`` (P'
    and the stage groups) overrides :func:`hls_stage_groups` (tests)."""
    units, stage_groups = groups or hls_stage_groups(op, s)
    cfg = butterfly_config(op, dataclasses.replace(s, pe=units))
    c_bits = max(cfg.v_bits + cfg.m_bits + 1, cfg.w_bits) + 2
    if cfg.acc_bits > 64 or cfg.w_bits > 64:
        raise EinhlsError(f"accumulator of {cfg.acc_bits} bits: the HLS butterfly stores constants in 64 bits",
                          node=op.name)
    if [g.first for g in stage_groups] != [0, *[g.last for g in stage_groups[:-1]]] or stage_groups[-1].last != op.stages:
        raise EinhlsError(f"stage groups {stage_groups} do not cover the {op.stages} stages in order", node=op.name)
    tw_int = next(t for bits, t in ((8, "signed char"), (16, "short"), (32, "int"), (64, "long long"))
                  if cfg.t_bits <= bits)
    out_words = math.ceil(op.out_size / cfg.banks)
    rtl = butterfly_config(op, s)
    hls_note = (f"; HLS: {len(stage_groups)} stage process(es) of {units} unit(s) "
                f"({4 * units * len(stage_groups)} multipliers, the Verilog {4 * rtl.units})")
    return ButterflyUnit(
        index=index, op=op.name, source=op.source, ns=ns, header=header, summary=summary(op, rtl) + hls_note, c=cfg,
        in_t=ctype(op.in_type.signed, op.in_type.bits), out_t=ctype(op.out_type.signed, op.out_type.bits),
        log_p=log2i(cfg.units), c1=op.n // cfg.banks, out_words=out_words,
        in_beats=math.ceil(op.in_size / s.in_lanes), out_beats=math.ceil(op.out_size / s.out_lanes),
        tw_int=tw_int, groups=[group_roms(cfg, g, out_words) for g in stage_groups], rtl_units=s.pe,
        widest=max(s.in_lanes * op.in_type.bits, s.out_lanes * op.out_type.bits, c_bits,
                   cfg.banks * op.in_type.bits, cfg.banks * op.out_type.bits),
        log_c1=log2i(op.n // cfg.banks), log_ct=log2i(cfg.stage_cycles),
        in_words=math.ceil(op.in_size / cfg.banks), raw_distance=RTL_READ_AFTER_WRITE, c_bits=c_bits)


# --- standalone unit testbenches (tests/test_butterfly_rtl.py, tests/test_butterfly_csim.py) ----

UNIT_RTL_KERNELS = ("einhls_lanes", "einhls_butterfly")
UNIT_CSIM_HEADER = "params_00_unit.h"
UNIT_CSIM_NS = "l00_unit"


def emit_unit_rtl(design, out) -> ButterflyConfig:
    """OUT/rtl and OUT/tb/cocotb for a design whose only op is a Butterfly: the unit under the
    usual AXI4-Stream top, runnable with codegen.verify.rtlsim.run_rtlsim."""
    import json
    import shutil
    from pathlib import Path

    from ..resources import resource_dir
    from .cocotb_tb import CONFIG, TB_DIR, TEST_MODULE, _format_json
    from .rtl import FILELIST, LINT_WAIVERS, chain_plan, render_top

    out = Path(out)
    (op,) = design.graph.ops
    s = design.schedule(op)
    stage, mems = rtl_stage(0, op, s)
    plan = chain_plan(design, [stage], mems)
    rtl = out / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    rtl.mkdir(parents=True)
    kernels = resource_dir("rtl_kernels")
    for name in UNIT_RTL_KERNELS:
        shutil.copyfile(kernels / f"{name}.v", rtl / f"{name}.v")
    shutil.copyfile(kernels / LINT_WAIVERS, rtl / LINT_WAIVERS)
    for mem in mems:
        (rtl / mem.name).write_text("".join(w + "\n" for w in mem.words))
    (rtl / f"{plan.top}.v").write_text(render_top(plan))
    (rtl / FILELIST).write_text("".join(f"{name}.v\n" for name in UNIT_RTL_KERNELS) + f"{plan.top}.v\n")
    tb = out / TB_DIR
    tb.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resource_dir("testbench") / "cocotb" / f"{TEST_MODULE}.py", tb / f"{TEST_MODULE}.py")
    cfg = butterfly_config(op, s)
    tm = timing(op, cfg.units)
    bound = max(tm.single, design.top_input.beats, design.top_output.beats) + 8
    (tb / CONFIG).write_text(json.dumps({
        "top": design.top_name, "input": _format_json(design.top_input),
        "output": _format_json(design.top_output), "cycles_per_frame_bound": bound,
        "timeout_cycles": 1000 + 4 * bound}, indent=2, sort_keys=True) + "\n")
    return cfg


def emit_unit_csim(design, out, groups: tuple[int, list[StageGroup]] | None = None) -> ButterflyUnit:
    """OUT/ with the kernel headers, the unit's parameter header and testbench/csim/butterfly_unit.cpp
    (``groups`` as for :func:`hls_unit`)."""
    import shutil
    from pathlib import Path

    import jinja2

    from ..resources import resource_dir
    from .hls import CType, _comment

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (op,) = design.graph.ops
    unit = hls_unit(0, op, design.schedule(op), UNIT_CSIM_NS, UNIT_CSIM_HEADER, CType, groups)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(resource_dir("templates") / "hls"),
                                                            str(resource_dir("testbench") / "csim")]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["comment"] = _comment
    (out / unit.header).write_text(env.get_template("params_butterfly.h.j2").render(u=unit))
    (out / "butterfly_unit.cpp").write_text(env.get_template("butterfly_unit.cpp.j2").render(u=unit))
    for header in ("einhls_butterfly.h", "einhls_stream.h", "einhls_csim.h"):
        shutil.copyfile(resource_dir("hls_kernels") / header, out / header)
    return unit
