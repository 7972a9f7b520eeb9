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
from ..ir.graph import GRAPH_INPUT, Linear, Relu, Requant
from ..ir.sparsity import compress_nm

from ..resources import resource_dir
from ..schedule.cost import ROM_KINDS, bram36_for, uram_packing
from ..schedule.lane_cost import TOP_OUTPUT, input_place, lane_converters, output_place
from ..schedule.design import Design, OpSchedule, StreamFormat, linear_folds
from ..schedule.packing import (LUT_MULT_MAX_BITS, built_pe_quads, lut_multipliers, one_token_pairs, quad_digits,
                                requant_lanes, token_pack_config,
                                token_pair_config,  # noqa: F401 (re-exported)
                                signed_bits as _signed_bits, weight_bits as _weight_bits)

RTL_DIR = "rtl"
FILELIST = "filelist.f"
LINT_WAIVERS = "einhls.vlt"

# Kernel modules and the modules each one instantiates (copied along).
KERNEL_DEPS: dict[str, tuple[str, ...]] = {
    "einhls_linear": ("einhls_lanes", "einhls_fifo", "einhls_adder_tree", "einhls_requant"),
    "einhls_permute": ("einhls_fifo",),
    "einhls_butterfly": ("einhls_lanes",),
    "einhls_fork": (),
    "einhls_softmax": ("einhls_requant",),
    "einhls_layernorm": ("einhls_requant",),
    "einhls_gelu": ("einhls_requant",),
    "einhls_actmatmul": ("einhls_lanes", "einhls_fifo", "einhls_adder_tree", "einhls_requant"),
    "einhls_mask": (),
    "einhls_tokenmean": ("einhls_requant",),
    "einhls_maskedmean": ("einhls_requant",),
    "einhls_add": ("einhls_binop",),
    "einhls_mul": ("einhls_binop",),
    "einhls_binop": (),
    "einhls_concat": (),
    "einhls_slice": (),
    "einhls_window": (),
    "einhls_tapmax": (),
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


# --- what the template receives --------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One Verilog parameter override: kind 'int' (32-bit), 's64' / 'u64' (64-bit), 'str'."""
    name: str
    value: int | str
    kind: str = "int"


@dataclass
class Port:
    """A stream port of a unit instance connected to wires: ``prefix`` names the port
    (``s_axis``, ``s1_axis``, ``m_axis``...); several wires make a flattened multi-stream port
    (stream i in slice i of tdata/tvalid/tready)."""
    prefix: str
    wires: list[str]


@dataclass
class Stage:
    """One unit instance of the top level.  ``inputs``/``outputs`` are filled when the netlist is
    wired (a unit with one input and one output only needs the widths)."""
    module: str
    instance: str
    comment: str
    params: list[Param]
    in_width: int
    out_width: int
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    side_inputs: list["SideInput"] = field(default_factory=list)


@dataclass(frozen=True)
class SideInput:
    """An input of a unit beside its streams: a top-level input ``<instance>_<port>`` when
    ``top``, else tied to zero (the weight-load port of an einhls_linear whose weights are not in
    UltraRAM)."""
    port: str
    width: int
    top: bool


@dataclass(frozen=True)
class Wire:
    """A stream between two instances: ``name``_tdata / _tvalid / _tready."""
    name: str
    width: int


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
    wires: list[Wire] = field(default_factory=list)
    input_wire: str = ""
    output_wire: str = ""

    @property
    def top_side_inputs(self) -> list[tuple[str, int]]:
        """Top-level inputs beside the AXI4-Streams: (name, width) of every unit side input
        routed to the top (UltraRAM weight-load ports)."""
        return [(f"{st.instance}_{p.port}", p.width) for st in self.stages for p in st.side_inputs if p.top]

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

def _tree_registers(mults: int) -> int:
    levels = math.ceil(math.log2(mults)) if mults > 1 else 0
    return sum(1 for lv in range(1, levels + 1) if lv % TREE_STAGE == 0 or lv == levels)


def _pow2_at_least(n: int) -> int:
    return 1 << max(1, math.ceil(math.log2(max(n, 2))))


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


def linear_stage(index: int, op: Linear, s: OpSchedule, dsp_kind: str = "DSP48E1",
                 rom_kind: str | None = None) -> tuple[Stage, list[MemFile]]:
    """The einhls_linear instance of ``op`` and its memory files.  ``rom_kind`` is where the
    scheduler placed the weight ROM (schedule/cost.py: place_roms); None: LUTs or block RAM by
    the ROM's shape."""
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
    quad_shift, quad_chain = built_pe_quads(op, s, dsp_kind)
    # PE pairs (two products a DSP, schedule/packing.py pack_config); one token, no quads
    pair_shift, pair_chain = one_token_pairs(op, s, dsp_kind)
    if op.sparsity is not None and op.sparsity[0] < op.sparsity[1]:
        nnz, group = op.sparsity
        if s.simd % group:
            raise EinhlsError(f"SIMD {s.simd} is not a multiple of the sparsity group M={group}", node=op.name)
        try:
            # an N:M PE pair reads one index pattern (the even PE's): both rows at the pair's indices
            values, indices = compress_nm(weight, nnz, group, row_pairs=bool(pair_shift))
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
        if s.pe_pack == 4:
            # PE quads: the slots of PEs 4q..4q+3 hold the digits of their packed weight
            weight = quad_digits(weight)
        fields = weight.reshape(nf, s.pe, kf, s.simd).transpose(0, 2, 1, 3).reshape(nf * kf, -1)
        slots = _field_bits(fields, w_bits)
        mults = s.simd
    word_bits = slots.shape[1] * slots.shape[2]
    rom_kind = rom_kind or ("bram" if bram36_for(word_bits, nf * kf) else "lutram")
    # UltraRAM rows hold several narrow words (schedule/cost.py uram_packing, which the cost model
    # counted): word i of a row at bits [i * word_bits, ...), the last row padded with zero words
    words_per_row = uram_packing(word_bits, nf * kf).words_per_row if rom_kind == "uram" else 1
    word_rows = slots.reshape(nf * kf, -1)
    rows = math.ceil(nf * kf / words_per_row)
    packed = np.zeros((rows * words_per_row, word_bits), dtype=np.uint8)
    packed[:nf * kf] = word_rows
    weights = MemFile(f"layer{index}_weights.mem", word_bits * words_per_row,
                      _hex_words(packed.reshape(rows, -1)))

    rq = op.requant
    rq_lanes = requant_lanes(s.pe, kf, s.token_pack)
    rq_params, v_bits = _requant_params(rq, acc_bits, op.out_type.bits, op.name)
    bias = _lane_words(f"layer{index}_bias.mem", op.bias.astype(np.int64), rq_lanes, acc_bits)
    mems = [weights, bias]
    if rq.per_channel:
        mems.append(_lane_words(f"layer{index}_mult.mem", rq.multiplier_for(op.out_size), rq_lanes,
                                rq.multiplier_bits))
    token_shift = 0
    if s.pe_pack == 4:
        shift, chain = quad_shift, quad_chain
    elif s.token_pack == 2:
        # shift > 0: PE pairs too, four products per DSP (schedule/packing.py quad_config)
        shift, token_shift, chain = token_pack_config(op, s, dsp_kind)
        if not token_shift:
            raise EinhlsError(_token_pack_refusal(op, s, dsp_kind), node=op.name)
    elif s.token_pack != 1:
        raise EinhlsError(f"token_pack {s.token_pack} is not 1 or 2", node=op.name)
    else:
        shift, chain = pair_shift, pair_chain
    # token pairs and PE quads always multiply in DSPs
    lut_mul = lut_multipliers(op) and not token_shift and s.pe_pack == 1
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
              Param("PACK", s.pe_pack if s.pe_pack == 4 else 2 if shift else 1), Param("PACK_SHIFT", shift or 16),
              Param("PACK_CHAIN", chain),
              *([Param("TOKEN_PACK", 2), Param("TOKEN_SHIFT", token_shift)] if token_shift else []),
              Param("TREE_STAGE", TREE_STAGE), Param("FIFO_DEPTH", fifo_depth),
              Param("ROM_KIND", ROM_KINDS[rom_kind]),
              Param("WEIGHT_FILE", weights.name, "str"), Param("BIAS_FILE", bias.name, "str")]
    if words_per_row > 1:
        params.insert(-2, Param("WORDS_PER_ROW", words_per_row))
    if s.span:   # a contraction stage's span fold: op is its tiled layer (ir/contraction.py as_span_linear)
        if s.token_pack != 1 or s.pe_pack != 1 or nnz < group:
            raise EinhlsError("a span fold is dense, one token, no PE quads", node=op.name)
        params.insert(-2, Param("REPS", op.out_size // s.span))
        params.insert(-2, Param("REP_N", s.span))
    if rq.per_channel:
        params.append(Param("MULT_FILE", mems[2].name, "str"))
    kind = f"{nnz}:{group} sparse" if nnz < group else "dense"
    packed = (f", {s.pe // 2 * mults * 2} of them two per DSP" if shift else ", in LUTs" if lut_mul else "")
    products_per_dsp = "four products (PE pairs x token pairs)" if shift else "two products"
    dsps = s.pe // 2 * mults if shift else s.pe * mults
    head = f"{op.name}: {kind} linear {op.in_size} -> {op.out_size}, SIMD {s.simd} x PE {s.pe}, "
    if token_shift:
        comment = head + f"token pairs: {nf * kf} cycles per two tokens, {dsps} DSPs with {products_per_dsp} each"
    elif s.pe_pack == 4:
        comment = head + (f"{nf * kf} cycles/frame, PE quads: {s.pe // 4 * mults} DSPs with four products each "
                          f"(fields of {shift} bits)")
    else:
        comment = head + f"{nf * kf} cycles/frame, {s.pe * mults} products per cycle{packed}"
    # UltraRAM holds no bitstream contents: its weights are written through a load port that the
    # top exposes; the other ROM kinds tie it to zero
    in_uram = rom_kind == "uram"
    loads = [SideInput("w_load_en", 1, in_uram), SideInput("w_load_addr", 32, in_uram),
             SideInput("w_load_data", weights.width, in_uram)]
    if in_uram:
        comment += f"; weights in UltraRAM, loaded through {f'u{index}_{op.name}'}_w_load_*"
        if words_per_row > 1:
            comment += f" ({words_per_row} words per {weights.width}-bit row)"
    stage = Stage("einhls_linear", f"u{index}_{op.name}", comment, params,
                  s.in_lanes * op.in_type.bits, s.out_lanes * op.out_type.bits, side_inputs=loads)
    return stage, mems


def _token_pack_refusal(op: Linear, s: OpSchedule, dsp_kind: str) -> str:
    """Why a Linear layer scheduled with token pairs cannot be built (the emitters' error)."""
    if lut_multipliers(op):
        return (f"four products per DSP ((w1 * 2^T + w0) * (x1 * 2^S + x0), PE pairs x token pairs, which "
                f"token pairs of <= {LUT_MULT_MAX_BITS}-bit operands need) are not exact or do not fit a "
                f"{dsp_kind} for this layer's weight and input ranges at SIMD {s.simd} x PE {s.pe} "
                f"(dense layers with an even PE only)")
    return (f"token pairs (two tokens per weight read) are not exact or do not fit a "
            f"{dsp_kind} for this layer's weight and input ranges")


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


def _fifo_stage(name: str, width: int, depth: int, why: str, uram: bool = False, lutram: bool = False) -> Stage:
    where = ", UltraRAM" if uram else ", LUT RAM" if lutram else ""
    params = [Param("DEPTH", depth), Param("WIDTH", width)] + ([Param("URAM", 1)] if uram else []) \
        + ([Param("LUTRAM", 1)] if lutram else [])
    return Stage("einhls_fifo", name, f"{why}: FIFO of {depth} beats (from the schedule{where})",
                 params, width, width)


def _unit_stages(index: int, op, design: Design) -> tuple[list[Stage], list[MemFile], bool]:
    """The instances of one op (a chain: a contraction stage may need a permutation buffer and
    converters in front of its MAC array), its ROMs, and whether it is elementwise (its output
    lanes are its input lanes and its ready path is combinational)."""
    s = design.schedule(op)
    builder = RTL_UNITS.get(op.kind)
    if builder is None:
        raise EinhlsError(f"no Verilog unit for IR op kind {op.kind!r}", node=op.name)
    return builder(index, op, s, design)


def _linear_unit(index, op, s, design):
    stage, mems = linear_stage(index, op, s, design.board.dsp_kind, design.rom_kinds.get(op.name))
    if op.name in design.lutram_units:     # the input buffer in LUT RAM (schedule/lutram.py)
        stage.params.insert(-2, Param("XBUF_LUTRAM", 1))
        stage.comment += "; input buffer in LUT RAM"
    return [stage], mems, False


def _requant_unit(index, op, s, design):
    stage, mems = requant_stage(index, op, s)
    return [stage], mems, True


def _relu_unit(index, op, s, design):
    stage, mems = relu_stage(index, op, s)
    return [stage], mems, True


def _butterfly_unit(index, op, s, design):
    from .butterfly import rtl_stage as butterfly_rtl_stage
    stage, mems = butterfly_rtl_stage(index, op, s)
    return [stage], mems, False


def _contraction_unit(index, op, s, design):
    from .contraction import rtl_stages as contraction_rtl_stages
    stages, mems = contraction_rtl_stages(index, op, s, design.board.dsp_kind,
                                          uram=op.name in design.uram_stage_buffers)
    return stages, mems, False


def _join_unit(index, op, s, design):
    from .joins import rtl_unit
    module, params = rtl_unit(op, s.in_lanes)
    in_width = s.in_lanes * op.in_type.bits
    out_width = s.out_lanes * op.out_type.bits
    comment = f"{op.name}: {op.kind} of {', '.join(map(str, op.input_sizes))} features, {s.in_lanes} per beat"
    # every graph unit passes m_axis_tready to s_axis_tready combinationally: a skid cuts the path
    return [Stage(module, f"u{index}_{op.name}", comment, params, in_width, out_width)], [], True


def _nonlinear_unit(index, op, s, design):
    from .nonlinear import rtl_unit as nonlinear_rtl_unit
    module, params, mems = nonlinear_rtl_unit(index, op, s.in_lanes)
    comment = f"{op.name}: {op.kind} of {op.in_size} features per token, {s.in_lanes} per beat"
    if op.name in design.lutram_units:     # row buffers in LUT RAM (schedule/lutram.py)
        params = [*params, Param("LUTRAM", 1)]
        comment += "; memories in LUT RAM"
    stage = Stage(module, f"u{index}_{op.name}", comment, params, s.in_lanes * op.in_type.bits,
                  s.in_lanes * op.out_type.bits)
    # a register slice after the unit, as after the elementwise units (same lanes in and out)
    return [stage], mems, True


def _window_unit(index, op, s, design):
    from .conv import rtl_window_unit
    return rtl_window_unit(index, op, s, design)


def _tapmax_unit(index, op, s, design):
    from .conv import rtl_tapmax_unit
    return rtl_tapmax_unit(index, op, s, design)


def _regroup_unit(index, op, s, design):
    from .conv import rtl_regroup_unit
    return rtl_regroup_unit(index, op, s, design)


def _actmatmul_unit(index, op, s, design):
    from .attention import rtl_unit as actmatmul_rtl_unit
    module, params, mems = actmatmul_rtl_unit(index, op, s, b_sequences=design.buffer_sequences.get(op.name, 2),
                                              b_uram=op.name in design.uram_buffers)
    comment = (f"{op.name}: attention product ({op.layout}) of {op.heads} heads, {op.tokens} tokens a sequence, "
               f"SIMD {s.simd} x PE {s.pe}")
    if op.name in design.lutram_units:     # the a row buffer in LUT RAM (schedule/lutram.py)
        params = [*params, Param("A_LUTRAM", 1)]
        comment += "; a row buffer in LUT RAM"
    stage = Stage(module, f"u{index}_{op.name}", comment, params, s.in_lanes * op.in_type.bits,
                  s.out_lanes * op.out_type.bits)
    return [stage], mems, False


def _lane_for_lane_unit(module: str, name: str, describe):
    """The Verilog builder of a unit that keeps its lanes (in = out per beat) and has no memory
    files, made by ``name`` of the emitter ``module`` (imported on first use: those modules import
    this one); ``describe(op, s)`` is its comment in the top."""
    def build(index, op, s, design):
        import importlib
        verilog_module, params = getattr(importlib.import_module(module, __package__), name)(op, s)
        stage = Stage(verilog_module, f"u{index}_{op.name}", f"{op.name}: {describe(op, s)}", params,
                      s.in_lanes * op.in_type.bits, s.in_lanes * op.out_type.bits)
        return [stage], [], False
    return build


_mask_unit = _lane_for_lane_unit(
    ".mask", "rtl_unit", lambda op, s: f"padding mask over {op.heads} heads x {op.tokens} keys, {s.in_lanes} per beat")
_tokenmean_unit = _lane_for_lane_unit(
    ".pooling", "rtl_unit",
    lambda op, s: f"mean of {op.in_size} features over {op.tokens} tokens, {s.in_lanes} per beat"
    + ("; two banks of sums" if s.overlap else ""))
_maskedmean_unit = _lane_for_lane_unit(
    ".pooling", "masked_rtl_unit",
    lambda op, s: f"mean of {op.in_size} features over the real tokens of {op.tokens}, {s.in_lanes} per beat"
    + ("; two banks of sums" if s.overlap else ""))


#: how each op kind becomes Verilog instances (one entry per kind)
RTL_UNITS = {"linear": _linear_unit, "requant": _requant_unit, "relu": _relu_unit,
             "butterfly": _butterfly_unit, "contract": _contraction_unit, "permute": _contraction_unit,
             "add": _join_unit, "mul": _join_unit, "concat": _join_unit, "slice": _join_unit,
             "fork": _join_unit, "softmax": _nonlinear_unit, "layernorm": _nonlinear_unit,
             "gelu": _nonlinear_unit, "actmatmul": _actmatmul_unit, "window": _window_unit, "regroup": _regroup_unit,
             "tapmax": _tapmax_unit, "maskscores": _mask_unit,
             "tokenmean": _tokenmean_unit, "maskedmean": _maskedmean_unit}


class _Netlist:
    """Wires and instances of the top, built op by op."""

    def __init__(self) -> None:
        self.wires: list[Wire] = []
        self.stages: list[Stage] = []

    def wire(self, name: str, width: int) -> str:
        self.wires.append(Wire(name, width))
        return name

    def chain(self, stage: Stage, source: str) -> str:
        """Append a one-in one-out instance reading ``source``; returns its output wire."""
        out = self.wire(f"w_{stage.instance}", stage.out_width)
        stage.inputs, stage.outputs = [Port("s_axis", [source])], [Port("m_axis", [out])]
        self.stages.append(stage)
        return out


def chain_plan(design: Design, stages: list[Stage], mems: list[MemFile]) -> RtlPlan:
    """A top of one-in one-out instances in a row (unit test benches build these directly)."""
    net = _Netlist()
    wire = net.wire("w_input", stages[0].in_width)
    for stage in stages:
        wire = net.chain(stage, wire)
    return RtlPlan(top=design.top_name, graph_name=design.graph.name, input=design.top_input,
                   output=design.top_output, stages=net.stages, mems=mems, wires=net.wires,
                   input_wire="w_input", output_wire=wire)


def plan_rtl(design: Design) -> RtlPlan:
    """Every unit, converter, FIFO and ROM of the design's top level, and the wires between them
    (no files written).  Tensors read by several ops come with Fork ops (the pass
    codegen.passes.graph.insert_forks), so every wire has one reader."""
    graph = design.graph
    if not graph.ops:
        raise EinhlsError("the graph has no operations to build hardware for")
    top = design.top_name
    if not top.isidentifier() or top in KERNEL_DEPS:
        raise EinhlsError(f"top module name {top!r} must be a Verilog identifier other than the kernel names")
    net = _Netlist()
    mems: list[MemFile] = []
    top_in = design.top_input
    source = {GRAPH_INPUT: net.wire("w_input", top_in.width)}   # tensor -> the wire carrying it
    converters = {c.where: c for c in lane_converters(design)}   # the schedule's, one place decides

    def convert(wire: str, place: str, name: str, why: str) -> str:
        c = converters.pop(place, None)
        if c is None:
            return wire
        return net.chain(_lanes_stage(f"{name}_lanes", c.size, c.bits, c.lanes_in, c.lanes_out, why), wire)

    def reach(tensor: str, size: int, bits: int, lanes: int, name: str, why: str, place: str,
              depth: int | None = None, uram: bool = False, lutram: bool = False) -> str:
        wire = convert(source[tensor], place, name, why)
        if depth is not None and uram:
            # a long FIFO in UltraRAM, packed into words of several lanes (schedule/fifo_memory.py)
            from ..schedule.fifo_memory import FifoShape
            shape = FifoShape(size, bits, lanes, depth)
            packed = shape.packed_lanes
            wire = net.chain(_lanes_stage(f"{name}_pack", size, bits, lanes, packed, f"{why}, packed"), wire)
            wire = net.chain(_fifo_stage(f"{name}_fifo", packed * bits, shape.packed_depth,
                                         f"{why}, {depth} beats of {lanes} lanes packed {packed} a word", True), wire)
            wire = net.chain(_lanes_stage(f"{name}_unpack", size, bits, packed, lanes, f"{why}, unpacked"), wire)
        elif depth is not None:
            wire = net.chain(_fifo_stage(f"{name}_fifo", lanes * bits, depth, why, lutram=lutram), wire)
        return wire

    for index, op in enumerate(graph.ops):
        s = design.schedule(op)
        stages, op_mems, elementwise = _unit_stages(index, op, design)
        mems += op_mems
        main = stages[-1]
        inputs = []
        for i, (tensor, size, qtype) in enumerate(zip(op.inputs, op.input_sizes, op.input_types)):
            suffix = f"_in{i}" if op.arity > 1 else "_in"
            inputs.append(reach(tensor, size, qtype.bits, s.in_lanes, f"u{index}{suffix}", f"{op.name} input",
                                input_place(op, i), design.fifo_depths.get((op.name, i)),
                                (op.name, i) in design.uram_fifos,
                                (op.name, i) in design.lutram_fifos))
        if len(stages) > 1:   # a chain of helper instances in front of the main unit
            wire = inputs[0]
            for stage in stages[:-1]:
                wire = net.chain(stage, wire)
            inputs = [wire]
        outputs = [net.wire(f"w_{main.instance}" + (f"_{k}" if op.n_outputs > 1 else ""), main.out_width)
                   for k in range(op.n_outputs)]
        if op.kind == "concat":
            main.inputs = [Port("s_axis", inputs)]
        elif op.arity > 1:
            main.inputs = [Port(f"s{i}_axis", [w]) for i, w in enumerate(inputs)]
        else:
            main.inputs = [Port("s_axis", inputs)]
        main.outputs = [Port("m_axis", outputs)]
        net.stages.append(main)
        for k, (tensor, wire) in enumerate(zip(op.outputs, outputs)):
            tag = f"u{index}" + (f"_{k}" if op.n_outputs > 1 else "")
            if elementwise:   # elementwise units pass m_axis_tready straight to s_axis_tready: cut the path
                wire = net.chain(_skid_stage(f"{tag}_skid", main.out_width, f"after {op.name}"), wire)
            source[tensor] = convert(wire, output_place(op, k), tag, f"{op.name} output")
    out = design.top_output
    out_wire = reach(graph.output, graph.output_size, graph.output_type.bits, out.lanes, "out", "output", TOP_OUTPUT)
    if converters:
        raise AssertionError(f"lane converters not placed in the Verilog top: {sorted(converters)}")
    return RtlPlan(top=top, graph_name=graph.name, input=top_in, output=out,
                   stages=net.stages, mems=mems, wires=net.wires, input_wire="w_input", output_wire=out_wire)


# --- rendering ---------------------------------------------------------------------------------

def verilog_value(p: Param) -> str:
    """A parameter value as a Verilog literal (a Jinja2 filter of the top template)."""
    if p.kind == "str":
        text = str(p.value)
        if any(c in text for c in '"\\\n'):
            raise EinhlsError(f"file name {text!r} cannot be a Verilog string")
        return f'"{text}"'
    v = int(p.value)
    if p.kind[:1] == "b" and p.kind[1:].isdigit():   # a packed vector of that many bits
        width = int(p.kind[1:])                       # (einhls_permute's digits, a multiplier table)
        if not 0 <= v < (1 << width):
            raise EinhlsError(f"parameter {p.name} does not fit {width} bits")
        return f"{width}'h{v:0{(width + 3) // 4}x}"
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
    env.filters["add_suffix"] = lambda wire, field: f"{wire}_{field}"
    return env


def render_top(plan: RtlPlan) -> str:
    out_beat_bits = max(1, math.ceil(math.log2(plan.output.beats))) if plan.output.beats > 1 else 1
    return _environment().get_template("top.v.j2").render(plan=plan, out_beat_bits=out_beat_bits)


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
