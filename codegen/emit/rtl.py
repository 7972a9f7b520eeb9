"""Verilog back end: the AXI4-Stream top, the kernel modules it uses and their ROM contents.

Python decides every number (folds, ROM words, widths, requantization constants, which stages the
top chains); ``templates/rtl/top.v.j2`` holds the Verilog text of the top and ``rtl_kernels/`` the
parameterised units, copied next to it so ``rtl/`` builds on its own.

Output layout::

    OUT/rtl/<top>.v                  the top: ap_clk, ap_rst_n, s_axis_*, m_axis_*
    OUT/rtl/einhls_*.v               the kernel modules the top instantiates
    OUT/rtl/layerN_weights.mem       ROM contents ($readmemh: hex, one word per line), N = op index
    OUT/rtl/layerN_bias.mem, layerN_mult.mem, layerN_offset.mem
    OUT/rtl/filelist.f               the Verilog sources, dependencies first, top last
    OUT/rtl/einhls.vlt               Verilator lint waivers of the kernel library

The ROM files are read with $readmemh relative to the working directory of the simulator or
synthesis tool (run Yosys from ``rtl/``; the RTL simulation copies them next to the simulation).

ROM word layouts (low bits first) are the ones documented in each kernel's header comment:
  weights (dense)   word nf*KF+kf: for p in PE, s in SIMD: W[nf*PE+p, kf*SIMD+s], W_BITS each;
  weights (N:M)     word nf*KF+kf: for p, group g, slot j: value (W_BITS) then index (IDX_BITS);
  bias / mult / offset: one word per beat of the requant stage, lane 0 lowest.
Everything depends only on the Design, so the same design gives the same bytes.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from ..errors import EinhlsError
from ..ir.butterfly import Butterfly
from ..ir.contraction import ContractStage, Permute
from ..ir.graph import Linear, Relu, Requant
from ..ir.sparsity import compress_nm
from ..ir.types import bits_for_range
from ..resources import resource_dir
from ..schedule.cost import LUT_MULT_MAX_BITS, bram36_for
from ..schedule.design import Design, OpSchedule, StreamFormat, linear_folds

RTL_DIR = "rtl"
FILELIST = "filelist.f"
LINT_WAIVERS = "einhls.vlt"

# Kernel modules and the modules each one instantiates (copied along).
KERNEL_DEPS: dict[str, tuple[str, ...]] = {
    "einhls_linear": ("einhls_lanes", "einhls_fifo", "einhls_adder_tree", "einhls_requant"),
    "einhls_permute": ("einhls_fifo",),
    "einhls_butterfly": ("einhls_lanes",),
    "einhls_requant": (),
    "einhls_relu": (),
    "einhls_lanes": (),
    "einhls_skid": (),
    "einhls_fifo": (),
    "einhls_adder_tree": (),
}

# Adder-tree levels between pipeline registers in the MAC array (2: at most two adders and the
# accumulator between registers).
TREE_STAGE = 2
# DSP pre-adder width (the packed weight pair goes through it) per DSP kind; B port width.
DSP_PREADDER_BITS = {"DSP48E1": 25, "DSP48E2": 27}
DSP_B_BITS = 18


# --- what the template receives --------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One Verilog parameter override: kind 'int' (32-bit), 's64' / 'u64' (64-bit), 'str'."""
    name: str
    value: int | str
    kind: str = "int"


@dataclass
class Stage:
    """One unit instance of the top-level chain, from stream i to stream i+1."""
    module: str
    instance: str
    comment: str
    params: list[Param]
    in_width: int
    out_width: int


@dataclass
class MemFile:
    """A ROM image: ``words`` as hex strings of ``width`` bits (written one per line)."""
    name: str
    width: int
    words: list[str]


@dataclass
class RtlPlan:
    top: str
    graph_name: str
    input: StreamFormat
    output: StreamFormat
    stages: list[Stage]
    mems: list[MemFile] = field(default_factory=list)

    @property
    def kernels(self) -> list[str]:
        """Kernel modules needed, dependencies first, in a fixed order."""
        needed: set[str] = set()
        for st in self.stages:
            needed.add(st.module)
            needed.update(KERNEL_DEPS[st.module])
        return [name for name in KERNEL_DEPS if name in needed][::-1]


# --- ROM images ------------------------------------------------------------------------------

def _field_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """[..., F] integers -> [..., F, bits] two's complement bits, least significant first."""
    v = np.asarray(values, dtype=np.int64)
    return ((v[..., None] >> np.arange(bits, dtype=np.int64)) & 1).astype(np.uint8)


def _hex_words(bits: np.ndarray) -> list[str]:
    """[words, width] bits (LSB first) -> one hex string per word, most significant digit first."""
    words, width = bits.shape
    digits = max(1, math.ceil(width / 4))
    padded = np.zeros((words, digits * 4), dtype=np.uint8)
    padded[:, :width] = bits
    nibbles = (padded.reshape(words, digits, 4) * np.array([1, 2, 4, 8], dtype=np.uint8)).sum(axis=2)
    table = np.array(list("0123456789abcdef"))
    return ["".join(row) for row in table[nibbles[:, ::-1]]]


def _lane_words(name: str, values: np.ndarray, lanes: int, bits: int) -> MemFile:
    """Per-element values -> one word per beat of ``lanes`` values (zero padded), lane 0 lowest."""
    beats = math.ceil(values.size / lanes)
    padded = np.zeros(beats * lanes, dtype=np.int64)
    padded[:values.size] = values
    fields = _field_bits(padded.reshape(beats, lanes), bits).reshape(beats, lanes * bits)
    return MemFile(name, lanes * bits, _hex_words(fields))


def _check_fits(what: str, values: np.ndarray, bits: int, signed: bool, node: str) -> None:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if values.size and (int(values.min()) < lo or int(values.max()) > hi):
        raise EinhlsError(f"{what} outside the {bits}-bit range its type declares", node=node)


# --- parameters of each unit ------------------------------------------------------------------

def requant_lanes(pe: int, kf: int) -> int:
    """Outputs requantized per cycle in a Linear unit: the smallest divisor d of PE with
    d * KF >= PE, so one row of PE sums (one every KF cycles) is requantized before the next."""
    return next(d for d in range(1, pe + 1) if pe % d == 0 and d * kf >= pe)


def _tree_registers(mults: int) -> int:
    levels = math.ceil(math.log2(mults)) if mults > 1 else 0
    return sum(1 for lv in range(1, levels + 1) if lv % TREE_STAGE == 0 or lv == levels)


def _pow2_at_least(n: int) -> int:
    return 1 << max(1, math.ceil(math.log2(max(n, 2))))


def _signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding [lo, hi] (always signed)."""
    return bits_for_range(min(int(lo), -1), max(int(hi), 0))


def _requant_params(rq, v_bits: int, out_bits: int, node: str) -> tuple[list[Param], int]:
    """The parameters shared by einhls_linear and einhls_requant; returns them and V_BITS."""
    limit = 1 << out_bits                        # einhls_requant clamps at OUT_BITS + 1 bits, signed
    if not all(-limit <= v < limit for v in (rq.zero_point, rq.lo, rq.hi)):
        raise EinhlsError(f"requant bounds {rq.lo}..{rq.hi} (zero point {rq.zero_point}) do not fit "
                          f"the {out_bits}-bit output", node=node)
    m_bits = rq.multiplier_bits
    v_bits = max(v_bits, rq.shift - m_bits + 1)   # einhls_requant needs SHIFT < V_BITS + M_BITS
    params = [Param("M_BITS", m_bits), Param("MULT", int(rq.multiplier[0]), "u64"),
              Param("SHIFT", rq.shift), Param("ZP", rq.zero_point, "s64"),
              Param("LO", rq.lo, "s64"), Param("HI", rq.hi, "s64")]
    return params, v_bits


def _weight_bits(op: Linear) -> int:
    """Signed weight width: the declared type, one bit wider when it is unsigned."""
    return op.weight_type.bits + (0 if op.weight_type.signed else 1)


def lut_multipliers(op: Linear) -> bool:
    """Products from LUT adders (einhls_linear MUL_LUT = 1) when an operand has at most
    LUT_MULT_MAX_BITS bits: the scheduler's cost model (codegen/schedule/cost.py) assumes so, and a
    DSP would be mostly idle (Yosys would otherwise put every product of 9+ bits in one)."""
    return min(op.weight_type.bits, op.in_type.bits) <= LUT_MULT_MAX_BITS


def pack_config(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """(S, chain) when PEs 2q and 2q+1 can share DSPs (einhls_linear PACK = 2), else (0, 1).

    The DSP computes (w[2q+1] * 2^S + w[2q]) * x + 2^(S-1), and with chain 2 a second DSP adds
    the packed product of the next input slot.  That is exact when every sum of ``chain``
    products w[2q] * x of this layer lies in [-2^(S-1), 2^(S-1)): checked here from the actual
    weights and the input range.  Chain 2 is preferred (it also halves the fabric adder tree);
    chain 1 is the fallback when the two-product sum would not fit the DSP pre-adder.  Dense layers
    only (an N:M multiplier has its own input), and only for DSP multipliers.
    """
    if (op.sparsity is not None and op.sparsity[0] < op.sparsity[1]) or s.pe < 2 or lut_multipliers(op):
        return 0, 1
    if dsp_kind not in DSP_PREADDER_BITS:   # no pre-adder (ECP5 MULT18X18D): one product per multiplier
        return 0, 1
    w_bits = _weight_bits(op)
    x_bits = op.in_type.bits + (0 if op.in_type.signed else 1)
    if x_bits > DSP_B_BITS:
        return 0, 1
    nf, kf = linear_folds(op, s)
    weight = np.zeros((nf * s.pe, kf * s.simd), dtype=np.int64)
    weight[:op.out_size, :op.in_size] = op.weight
    slot_pe = np.arange(nf * s.pe) % s.pe
    low = weight[(slot_pe % 2 == 0) & (slot_pe < 2 * (s.pe // 2))]
    # per-term extremes over the input range, then summed over the products of one chain
    terms_lo = np.minimum(low * op.in_type.min, low * op.in_type.max)
    terms_hi = np.maximum(low * op.in_type.min, low * op.in_type.max)
    limit = DSP_PREADDER_BITS.get(dsp_kind, 25)
    for chain in (2, 1):
        # pairs of slots (2c, 2c+1) inside each word; an odd SIMD's last slot pairs with a zero
        words_lo = terms_lo.reshape(len(low), kf, s.simd)
        words_hi = terms_hi.reshape(len(low), kf, s.simd)
        if chain == 2:
            pad = [(0, 0), (0, 0), (0, s.simd % 2)]
            words_lo = np.pad(words_lo, pad).reshape(len(low), kf, -1, 2).sum(axis=3)
            words_hi = np.pad(words_hi, pad).reshape(len(low), kf, -1, 2).sum(axis=3)
        shift = max(2, _signed_bits(int(words_lo.min(initial=0)), int(words_hi.max(initial=0))))
        if w_bits + shift + 1 <= limit:
            return shift, chain
    return 0, 1


def linear_stage(index: int, op: Linear, s: OpSchedule, dsp_kind: str = "DSP48E1") -> tuple[Stage, list[MemFile]]:
    nf, kf = linear_folds(op, s)
    k_pad, n_pad = kf * s.simd, nf * s.pe
    w_bits = _weight_bits(op)
    acc_bits = op.acc_type.bits
    if not op.acc_type.signed:
        acc_bits += 1
    weight = np.zeros((n_pad, k_pad), dtype=np.int64)
    weight[:op.out_size, :op.in_size] = op.weight
    _check_fits("weights", op.weight, w_bits, True, op.name)
    _check_fits("bias", op.bias, acc_bits, True, op.name)

    if op.sparsity is not None and op.sparsity[0] < op.sparsity[1]:
        nnz, group = op.sparsity
        if s.simd % group:
            raise EinhlsError(f"SIMD {s.simd} is not a multiple of the sparsity group M={group}", node=op.name)
        try:
            values, indices = compress_nm(weight, nnz, group)
        except ValueError as exc:
            raise EinhlsError(str(exc), node=op.name) from exc
        g = s.simd // group
        idx_bits = max(1, math.ceil(math.log2(group)))
        # [NF*PE, KF*G, NNZ] -> [NF*KF words, PE*G*NNZ slots]
        order = (0, 2, 1, 3, 4)
        values = values.reshape(nf, s.pe, kf, g, nnz).transpose(order).reshape(nf * kf, -1)
        indices = indices.reshape(nf, s.pe, kf, g, nnz).transpose(order).reshape(nf * kf, -1)
        slots = np.concatenate([_field_bits(values, w_bits), _field_bits(indices, idx_bits)], axis=2)
        mults = g * nnz
    else:
        nnz = group = 1
        fields = weight.reshape(nf, s.pe, kf, s.simd).transpose(0, 2, 1, 3).reshape(nf * kf, -1)
        slots = _field_bits(fields, w_bits)
        mults = s.simd
    weights = MemFile(f"layer{index}_weights.mem", slots.shape[1] * slots.shape[2],
                      _hex_words(slots.reshape(nf * kf, -1)))

    rq = op.requant
    rq_lanes = requant_lanes(s.pe, kf)
    rq_params, v_bits = _requant_params(rq, acc_bits, op.out_type.bits, op.name)
    bias = _lane_words(f"layer{index}_bias.mem", op.bias.astype(np.int64), rq_lanes, acc_bits)
    mems = [weights, bias]
    if rq.per_channel:
        mems.append(_lane_words(f"layer{index}_mult.mem", rq.multiplier_for(op.out_size), rq_lanes,
                                rq.multiplier_bits))
    shift, chain = pack_config(op, s, dsp_kind)
    lut_mul = lut_multipliers(op)
    # FIFO rows: a whole frame (the array may run a frame ahead of the output) plus the rows in
    # flight between a row's first step and its FIFO write (about 7 cycles plus the adder tree)
    in_flight = math.ceil((7 + _tree_registers(math.ceil(mults / chain))) / kf) + 1
    fifo_depth = _pow2_at_least(nf + in_flight)

    params = [Param("K", op.in_size), Param("N", op.out_size), Param("SIMD", s.simd), Param("PE", s.pe),
              Param("IN_LANES", s.in_lanes), Param("OUT_LANES", s.out_lanes),
              Param("IN_BITS", op.in_type.bits), Param("IN_SIGNED", int(op.in_type.signed)),
              Param("W_BITS", w_bits), Param("ACC_BITS", acc_bits),
              Param("OUT_BITS", op.out_type.bits), Param("OUT_SIGNED", int(op.out_type.signed)),
              Param("NNZ", nnz), Param("GROUP", group),
              *rq_params[:1], Param("PER_CHANNEL", int(rq.per_channel)), *rq_params[1:],
              Param("RQ_LANES", rq_lanes), Param("V_BITS", v_bits), Param("MUL_LUT", int(lut_mul)),
              Param("PACK", 2 if shift else 1), Param("PACK_SHIFT", shift or 16), Param("PACK_CHAIN", chain),
              Param("TREE_STAGE", TREE_STAGE), Param("FIFO_DEPTH", fifo_depth),
              Param("ROM_BLOCK", int(bram36_for(weights.width, nf * kf) > 0)),
              Param("WEIGHT_FILE", weights.name, "str"), Param("BIAS_FILE", bias.name, "str")]
    if rq.per_channel:
        params.append(Param("MULT_FILE", mems[2].name, "str"))
    kind = f"{nnz}:{group} sparse" if nnz < group else "dense"
    packed = (f", {s.pe // 2 * mults * 2} of them two per DSP" if shift else ", in LUTs" if lut_mul else "")
    comment = (f"{op.name}: {kind} linear {op.in_size} -> {op.out_size}, SIMD {s.simd} x PE {s.pe}, "
               f"{nf * kf} cycles/frame, {s.pe * mults} products per cycle{packed}")
    stage = Stage("einhls_linear", f"u{index}_{op.name}", comment, params,
                  s.in_lanes * op.in_type.bits, s.out_lanes * op.out_type.bits)
    return stage, mems


def requant_stage(index: int, op: Requant, s: OpSchedule) -> tuple[Stage, list[MemFile]]:
    offset = np.broadcast_to(np.asarray(op.offset, dtype=np.int64), (op.in_size,)).copy()
    t = op.in_type
    v_bits = _signed_bits(t.min + int(offset.min()), t.max + int(offset.max()))
    rq = op.requant
    rq_params, v_bits = _requant_params(rq, v_bits, op.out_type.bits, op.name)
    lanes = s.in_lanes
    mems: list[MemFile] = []
    off_rom = bool(np.any(offset != offset[0]))
    off_bits = _signed_bits(int(offset.min()), int(offset.max()))
    params = [Param("SIZE", op.in_size), Param("LANES", lanes), Param("IN_BITS", t.bits),
              Param("IN_SIGNED", int(t.signed)), Param("V_BITS", v_bits),
              Param("OFFSET_ROM", int(off_rom)), Param("OFF_BITS", off_bits),
              Param("OFFSET", int(offset[0]), "s64")]
    if off_rom:
        mems.append(_lane_words(f"layer{index}_offset.mem", offset, lanes, off_bits))
        params.append(Param("OFFSET_FILE", mems[-1].name, "str"))
    params += [rq_params[0], Param("MULT_ROM", int(rq.per_channel)), *rq_params[1:],
               Param("OUT_BITS", op.out_type.bits)]
    if rq.per_channel:
        mems.append(_lane_words(f"layer{index}_mult.mem", rq.multiplier_for(op.in_size), lanes,
                                rq.multiplier_bits))
        params.append(Param("MULT_FILE", mems[-1].name, "str"))
    comment = f"{op.name}: requant of {op.in_size} elements, {lanes} per beat"
    stage = Stage("einhls_requant", f"u{index}_{op.name}", comment, params,
                  lanes * t.bits, lanes * op.out_type.bits)
    return stage, mems


def relu_stage(index: int, op: Relu, s: OpSchedule) -> tuple[Stage, list[MemFile]]:
    t = op.in_type
    params = [Param("SIZE", op.in_size), Param("LANES", s.in_lanes), Param("BITS", t.bits),
              Param("SIGNED", int(t.signed)), Param("ZP", t.zero_point, "s64")]
    comment = f"{op.name}: relu (max with zero point {t.zero_point}) of {op.in_size} elements, {s.in_lanes} per beat"
    return Stage("einhls_relu", f"u{index}_{op.name}", comment, params,
                 s.in_lanes * t.bits, s.in_lanes * t.bits), []


def _lanes_stage(name: str, size: int, bits: int, lanes_in: int, lanes_out: int, why: str) -> Stage:
    params = [Param("SIZE", size), Param("BITS", bits), Param("IN_LANES", lanes_in),
              Param("OUT_LANES", lanes_out)]
    return Stage("einhls_lanes", name, f"{why}: {lanes_in} -> {lanes_out} lanes", params,
                 lanes_in * bits, lanes_out * bits)


def _skid_stage(name: str, width: int, why: str) -> Stage:
    return Stage("einhls_skid", name, f"{why}: register slice", [Param("WIDTH", width)], width, width)


def plan_rtl(design: Design) -> RtlPlan:
    """Every unit, converter and ROM of the design's top level (no files written)."""
    graph = design.graph
    if not graph.ops:
        raise EinhlsError("the graph has no operations to build hardware for")
    top = design.top_name
    if not top.isidentifier() or top in KERNEL_DEPS:
        raise EinhlsError(f"top module name {top!r} must be a Verilog identifier other than the kernel names")
    stages: list[Stage] = []
    mems: list[MemFile] = []
    for index, op in enumerate(graph.ops):
        s = design.schedule(op)
        if isinstance(op, Linear):
            stage, op_mems = linear_stage(index, op, s, design.board.dsp_kind)
            elementwise = False
        elif isinstance(op, Requant):
            stage, op_mems = requant_stage(index, op, s)
            elementwise = True
        elif isinstance(op, Relu):
            stage, op_mems = relu_stage(index, op, s)
            elementwise = True
        elif isinstance(op, Butterfly):   # codegen/emit/butterfly.py
            from .butterfly import rtl_stage as butterfly_rtl_stage
            stage, op_mems = butterfly_rtl_stage(index, op, s)
            elementwise = False
        elif isinstance(op, (ContractStage, Permute)):   # [permutation buffer] + Linear unit, R repeats
            from .contraction import rtl_stages as contraction_rtl_stages
            op_stages, op_mems = contraction_rtl_stages(index, op, s, design.board.dsp_kind)
            stages += op_stages[:-1]
            stage, elementwise = op_stages[-1], False
        else:
            raise EinhlsError(f"no Verilog unit for IR op kind {op.kind!r}", node=op.name)
        stages.append(stage)
        mems += op_mems
        fmt = design.output_format(op)
        lanes = s.in_lanes if elementwise else s.out_lanes
        if elementwise:
            # elementwise units pass m_axis_tready straight to s_axis_tready: cut the path
            stages.append(_skid_stage(f"u{index}_skid", stage.out_width, f"after {op.name}"))
        if lanes != fmt.lanes:
            stages.append(_lanes_stage(f"u{index}_lanes", op.out_size, fmt.bits, lanes, fmt.lanes,
                                       f"{op.name} output"))
            lanes = fmt.lanes
        if index + 1 < len(graph.ops):
            nxt = graph.ops[index + 1]
            want = design.input_format(nxt).lanes
            if want != lanes:
                stages.append(_lanes_stage(f"u{index + 1}_in_lanes", op.out_size, fmt.bits, lanes, want,
                                           f"{nxt.name} input"))
    return RtlPlan(top=top, graph_name=graph.name, input=design.top_input, output=design.top_output,
                   stages=stages, mems=mems)


# --- rendering ---------------------------------------------------------------------------------

def verilog_value(p: Param) -> str:
    """A parameter value as a Verilog literal (a Jinja2 filter of the top template)."""
    if p.kind == "str":
        text = str(p.value)
        if any(c in text for c in '"\\\n'):
            raise EinhlsError(f"file name {text!r} cannot be a Verilog string")
        return f'"{text}"'
    v = int(p.value)
    if p.kind == "b256":   # a packed vector (einhls_permute's digit extents and strides)
        if not 0 <= v < (1 << 256):
            raise EinhlsError(f"parameter {p.name} does not fit 256 bits")
        return f"256'h{v:064x}"
    if p.kind == "s64":
        if not -(1 << 63) <= v < (1 << 63):
            raise EinhlsError(f"parameter {p.name}={v} does not fit 64 bits")
        return f"-64'sd{-v}" if v < 0 else f"64'sd{v}"
    if p.kind == "u64":
        if not 0 <= v < (1 << 64):
            raise EinhlsError(f"parameter {p.name}={v} does not fit 64 bits")
        return f"64'd{v}"
    if not -(1 << 31) <= v < (1 << 31):
        raise EinhlsError(f"parameter {p.name}={v} does not fit a 32-bit integer")
    return str(v)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "rtl")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["verilog_value"] = verilog_value
    return env


def render_top(plan: RtlPlan) -> str:
    streams = [plan.stages[0].in_width] + [st.out_width for st in plan.stages]
    out_beat_bits = max(1, math.ceil(math.log2(plan.output.beats))) if plan.output.beats > 1 else 1
    return _environment().get_template("top.v.j2").render(
        top=plan.top, graph_name=plan.graph_name, input=plan.input, output=plan.output,
        stages=plan.stages, streams=streams, out_beat_bits=out_beat_bits)


def emit_rtl(design: Design, out: Path) -> None:
    """Write OUT/rtl/: the top module, the kernel modules it uses, ROM images and a file list."""
    plan = plan_rtl(design)
    rtl = Path(out) / RTL_DIR
    if rtl.exists():
        shutil.rmtree(rtl)
    rtl.mkdir(parents=True)
    kernels = resource_dir("rtl_kernels")
    for name in plan.kernels:
        shutil.copyfile(kernels / f"{name}.v", rtl / f"{name}.v")
    shutil.copyfile(kernels / LINT_WAIVERS, rtl / LINT_WAIVERS)
    for mem in plan.mems:
        (rtl / mem.name).write_text("".join(w + "\n" for w in mem.words))
    (rtl / f"{plan.top}.v").write_text(render_top(plan))
    files = [f"{name}.v" for name in plan.kernels] + [f"{plan.top}.v"]
    (rtl / FILELIST).write_text("".join(f + "\n" for f in files))


def rtl_sources(out: Path) -> list[Path]:
    """The Verilog sources of an emitted project (OUT or OUT/rtl), dependencies first, top last."""
    out = Path(out)
    rtl = out if (out / FILELIST).is_file() else out / RTL_DIR
    listing = rtl / FILELIST
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} is missing; emit the RTL first (einhls compile)")
    return [rtl / line.strip() for line in listing.read_text().splitlines() if line.strip()]


def rtl_memories(out: Path) -> list[Path]:
    """The ROM images ($readmemh files) of an emitted project."""
    out = Path(out)
    rtl = out if (out / FILELIST).is_file() else out / RTL_DIR
    return sorted(rtl.glob("*.mem"))
