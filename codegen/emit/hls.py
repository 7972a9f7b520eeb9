"""Vitis HLS C++ back end: top function, per-layer parameter headers, run_hls.tcl, C-sim testbench.

Python decides every number here (folds, weight words, types, requantization constants, which
stages the top chains together); the Jinja2 templates in ``templates/hls/`` and ``testbench/csim/``
hold all C++ and Tcl text.  The kernels themselves are the header-only library ``hls_kernels/``,
copied next to the generated sources so the ``hls/`` folder builds on its own.

Output layout::

    OUT/hls/<top>.h               AXI4-Stream packet types and the top function's prototype
    OUT/hls/<top>.cpp             the DATAFLOW top: s_axis -> op stages -> m_axis
    OUT/hls/params_NN_<op>.h      one per op with constants: config struct, ROM contents
    OUT/hls/einhls_*.h            the kernel library
    OUT/hls/run_hls.tcl           Vitis HLS: C-sim, synthesis, co-simulation, IP export
    OUT/tb/csim/tb_top.cpp        C-sim testbench (reads vector files given on the command line)
    OUT/tb/csim/inputs.txt, expected.txt    vectors for run_hls.tcl (``emit_csim_vectors``)

Everything depends only on the Design, so the same design gives the same bytes.
"""
from __future__ import annotations

import dataclasses

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from ..errors import EinhlsError
from ..ir.graph import GRAPH_INPUT, Linear, Requant
from .butterfly import ButterflyUnit
from .butterfly import hls_unit as butterfly_hls_unit
from .contraction import ContractUnit, PermuteUnit
from .hls_rules import check_hls
from .widths import requant_product_bits
from .nonlinear import HLS_HEADERS as NONLINEAR_HEADERS
from .nonlinear import ConstantsUnit
from .nonlinear import hls_unit as nonlinear_hls_unit
from .contraction import hls_units as contraction_hls_units
from ..ir.sparsity import compress_nm
from ..ir.types import QType, bits_for_range, dot_product_range
from ..resources import resource_dir
from ..schedule.cost import HLS_WORD_LIMIT_BITS, ROM_KINDS, bram36_for, uram_packing
from ..schedule.design import Design, StreamFormat, linear_folds
from ..schedule.packing import built_pe_quads, one_token_pairs, quad_digits, token_pack_config
from ..verify.csim import write_vectors

HLS_DIR = "hls"
CSIM_DIR = "tb/csim"
CSIM_TESTBENCH = "tb_top.cpp"
CSIM_INPUTS = "inputs.txt"
CSIM_EXPECTED = "expected.txt"
KERNEL_HEADERS = ("einhls_stream.h", "einhls_requant.h", "einhls_relu.h", "einhls_linear.h", "einhls_axis.h",
                  "einhls_contract.h", "einhls_butterfly.h", "einhls_graph.h", "einhls_csim.h")

# ap_int widths above this need AP_INT_MAX_W defined before <ap_int.h> (Vitis' default limit);
# Vitis HLS accepts at most HLS_WORD_LIMIT_BITS (UG1399, "Arbitrary Precision Integer Types").
AP_INT_DEFAULT_MAX_W = 1024
# Depth of the FIFOs between dataflow processes.  Every unit buffers what it must reuse (a Linear
# unit its input frame), and the stages form a chain, so short FIFOs cannot deadlock.
STREAM_DEPTH = 2


# --- what the templates receive -------------------------------------------------------------

@dataclass(frozen=True)
class CType:
    """An ap_int<bits> (signed) or ap_uint<bits> element type."""
    signed: bool
    bits: int

    @staticmethod
    def of(qtype: QType) -> "CType":
        return CType(qtype.signed, qtype.bits)


@dataclass
class LinearUnit:
    kind = "linear"
    index: int
    op: str
    source: str
    ns: str                 # C++ namespace holding cfg and the ROMs
    header: str
    summary: str            # one line for comments in the generated code
    k: int
    n: int
    simd: int
    pe: int
    in_lanes: int
    out_lanes: int
    kf: int
    nf: int
    in_beats: int
    out_beats: int
    group: int              # M of N:M (1 for dense)
    nz: int                 # N of N:M (1 for dense)
    groups: int             # SIMD / M
    idx_bits: int
    slot_bits: int
    word_bits: int
    limb_bits: int          # ROM words are stored as unsigned integers of this width
    limbs: int              # ceil(row_bits / limb_bits)
    words_per_row: int      # fold steps per ROM row (> 1: UltraRAM rows packed, schedule/cost.py uram_packing)
    row_bits: int           # word_bits, or words_per_row * PE * word_bits when packed
    rom_banks: int          # ROMs side by side: PE, or 1 when packed
    rom_depth: int          # rows per ROM
    rom_kind: int           # weight ROM placement, schedule/cost.py ROM_KINDS (0 LUTRAM, 1 BRAM, 2 URAM)
    in_t: CType
    w_t: CType
    acc_t: CType
    mult_t: CType
    out_t: CType
    mult_depth: int
    shift: int
    zp: int
    lo: int
    hi: int
    weights: list             # [ROM_BANKS][ROM_DEPTH][LIMBS] hex digits of each limb, least significant limb first
    bias: list[list[int]]      # [PE][NF]
    mult: list[list[int]]      # [PE][MULT_DEPTH]
    # token pairs (einhls::linear_pair, schedule/packing.py token_pair_config): 2 when one call
    # handles two tokens; the offset S of token 1's field, products per field, input bits as signed
    token_pack: int = 1
    # with token pairs, PE pairs too (four products a DSP): the even PE's field width T, else 0
    pe_shift: int = 0
    token_shift: int = 0
    pair_chain: int = 1
    pair_x_bits: int = 0
    # PE quads (einhls::linear<cfg, true>, schedule/packing.py pe_quad_config): four PEs a DSP for
    # one vector, fields of quad_shift bits, quad_chain products a field
    pe_quads: bool = False
    quad_shift: int = 0
    quad_chain: int = 1
    # N:M row pairs (the Verilog unit's PACK = 2 on an N:M layer): PEs 2q and 2q+1 hold the same
    # indices, so the odd PE reads the even PE's and one multiplexer a slot serves the pair
    nm_pairs: bool = False

    def internal_widths(self) -> list[int]:
        return [self.word_bits, self.row_bits, self.in_lanes * self.in_t.bits, self.out_lanes * self.out_t.bits,
                self.simd * self.in_t.bits, self.pe * self.out_t.bits,
                requant_product_bits(self.acc_t.bits, self.mult_t.bits, self.shift)]


@dataclass
class RequantUnit:
    kind = "requant"
    index: int
    op: str
    source: str
    ns: str
    header: str
    summary: str
    size: int
    lanes: int
    beats: int
    in_t: CType
    out_t: CType
    v_t: CType
    offset_t: CType
    mult_t: CType
    off_depth: int
    mult_depth: int
    shift: int
    zp: int
    lo: int
    hi: int
    offset: list[list[int]]    # [LANES][OFF_DEPTH]
    mult: list[list[int]]      # [LANES][MULT_DEPTH]

    def internal_widths(self) -> list[int]:
        return [self.lanes * self.in_t.bits, self.lanes * self.out_t.bits,
                requant_product_bits(self.v_t.bits, self.mult_t.bits, self.shift)]


@dataclass
class ReluUnit:
    kind = "relu"
    index: int
    op: str
    source: str
    summary: str
    size: int
    lanes: int
    t: CType
    zp: int

    def internal_widths(self) -> list[int]:
        return [self.lanes * self.t.bits]


@dataclass
class Repack:
    kind = "repack"
    summary: str
    size: int
    bits: int
    in_lanes: int
    out_lanes: int

    def internal_widths(self) -> list[int]:
        return [self.in_lanes * self.bits, self.out_lanes * self.bits]


Unit = LinearUnit | RequantUnit | ReluUnit | Repack


@dataclass
class JoinUnit:
    """A graph unit (einhls_graph.h): fork, add, mul, concat or slice; ``cfg`` holds what the
    template needs (for add / mul also a parameter header: ``header``, ``ns``)."""
    kind: str
    op: str
    source: str
    summary: str
    cfg: dict

    @property
    def header(self) -> str:
        return self.cfg["header"]

    @property
    def ns(self) -> str:
        return self.cfg["ns"]

    def internal_widths(self) -> list[int]:
        cfg = self.cfg
        if self.kind in ("add", "mul"):   # the lane words and the value before the shift
            lanes = cfg["lanes"]
            return [lanes * cfg["a_t"].bits, lanes * cfg["b_t"].bits, lanes * cfg["out_t"].bits,
                    cfg["v_t"].bits + cfg["shift"] + 2]
        return [cfg["width"]]


@dataclass
class Stage:
    """One process of the top's DATAFLOW region, reading stream ``src`` and writing ``dst``
    (a graph unit reads ``srcs`` and writes ``dsts``)."""
    unit: Unit
    src: str
    dst: str
    srcs: list[str] = field(default_factory=list)
    dsts: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        """The streams the process's kernel takes, inputs first (a fork's copies as one array)."""
        outputs = [self.dsts[0].split("[")[0]] if self.dsts else [self.dst]
        return (self.srcs or [self.src]) + outputs


@dataclass
class StreamDecl:
    name: str
    width: int
    comment: str
    depth: int = 2
    count: int = 1     # > 1: an array of streams (the copies of a fork)
    impl: str = ""     # "uram" / "lutram": BIND_STORAGE of the FIFO (schedule/fifo_memory.py, lutram.py)


@dataclass
class HlsPlan:
    top: str
    graph: str
    part: str
    clock_mhz: float
    period_ns: str
    ap_int_max_w: int | None
    axis_in: StreamFormat
    axis_out: StreamFormat
    streams: list[StreamDecl] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    stream_depth: int = STREAM_DEPTH
    first: str = ""            # stream written by s_axis
    last: str = ""             # stream read by m_axis
    tokens: int = 1            # every process runs once per token, TOKENS times per frame
    # a graph whose token count changes (a CNN): one wrapper per stage that calls it as often as it
    # runs a frame, the top runs once a frame (templates/hls/top_frames.cpp.j2); empty otherwise
    frame_stages: list = field(default_factory=list)

    @property
    def param_units(self) -> list[LinearUnit | RequantUnit]:
        """The units that have a parameter header, in stage order."""
        return [st.unit for st in self.stages
                if isinstance(st.unit, (LinearUnit, RequantUnit, ContractUnit, PermuteUnit, ButterflyUnit,
                                    ConstantsUnit))
                or (isinstance(st.unit, JoinUnit) and "header" in st.unit.cfg)]

    @property
    def sources(self) -> list[str]:
        """Files of hls/ that Vitis compiles or includes, in a fixed order."""
        return [f"{self.top}.cpp", f"{self.top}.h", *[u.header for u in self.param_units], *self.kernel_headers]

    @property
    def kernel_headers(self) -> list[str]:
        """The kernel library headers copied into hls/: the common ones and the nonlinear units used."""
        used = {st.unit.kind for st in self.stages if isinstance(st.unit, ConstantsUnit)}
        return [*KERNEL_HEADERS, *(NONLINEAR_HEADERS[kind] for kind in ("softmax", "layernorm", "gelu") if kind in used),
                *(["einhls_actmatmul.h"] if "actmatmul" in used else []),
                *(["einhls_mask.h"] if "maskscores" in used else []),
                *(["einhls_tokenmean.h"] if "tokenmean" in used else []),
                *(["einhls_maskedmean.h"] if "maskedmean" in used else []),
                *(["einhls_window.h"] if any(st.unit.kind in ("window", "tapmax", "regroup") for st in self.stages)
                  else [])]


# --- planning: all decisions ----------------------------------------------------------------

def _safe(name: str) -> str:
    """An identifier / file-name fragment from an op name: [A-Za-z0-9_], no doubled underscores."""
    text = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_")
    return text or "op"


def _index_bits(m: int) -> int:
    return math.ceil(math.log2(m)) if m > 1 else 0


LIMB_BITS = (8, 16, 32, 64)   # widths of the unsigned integer types ROM words are stored in


def _limb_bits(word_bits: int) -> int:
    """The narrowest native unsigned type holding a word, or 64-bit limbs for wider words."""
    return next((b for b in LIMB_BITS if b >= word_bits), 64)


def _rom_limbs(codes: np.ndarray, slot_bits: int, limb_bits: int) -> list:
    """Slot codes [..., slots] (unsigned, < 2**slot_bits) -> hex digits of each word's limbs.

    Slot t occupies bits [t*slot_bits, (t+1)*slot_bits) of its word; the word is cut into limbs
    of limb_bits, least significant limb first, each written as limb_bits/4 hex digits (most
    significant digit first, zero-padded, so equal designs give equal text).
    """
    shifts = np.arange(slot_bits, dtype=np.uint64)
    bits = (codes.astype(np.uint64)[..., None] >> shifts) & np.uint64(1)        # LSB first
    bits = bits.reshape(*codes.shape[:-1], -1).astype(np.uint8)
    limbs = math.ceil(bits.shape[-1] / limb_bits)
    pad = limbs * limb_bits - bits.shape[-1]
    bits = np.concatenate([bits, np.zeros((*bits.shape[:-1], pad), dtype=np.uint8)], axis=-1)
    digits = limb_bits // 4
    nibbles = bits.reshape(-1, digits, 4) @ np.array([1, 2, 4, 8], dtype=np.uint8)   # [all limbs, digits]
    chars = np.array(list("0123456789abcdef"))[nibbles[:, ::-1]]
    text = np.array(["".join(row) for row in chars], dtype=object)
    return text.reshape(*codes.shape[:-1], limbs).tolist()


def _rom_kind(op: Linear, design: Design, width: int, depth: int) -> str:
    """Where the scheduler placed the op's weight ROM (a ROM_KINDS key); by shape when it did not."""
    return design.rom_kinds.get(op.name) or ("bram" if bram36_for(width, depth) else "lutram")


def _linear_unit(index: int, op: Linear, design: Design, ns: str, header: str) -> LinearUnit:
    s = design.schedule(op)
    nf, kf = linear_folds(op, s)
    nz, group = op.sparsity if op.sparsity and op.sparsity[0] < op.sparsity[1] else (1, 1)
    if s.simd % group:
        raise EinhlsError(f"SIMD {s.simd} is not a multiple of the N:M group size {group}", node=op.name)
    groups = s.simd // group
    idx_bits = _index_bits(group)
    w_bits = op.weight_type.bits
    slot_bits = w_bits + idx_bits

    # The accumulator wraps modulo 2**bits in hardware; that is exact only if the true value fits.
    lo, hi = dot_product_range(op.weight, op.bias, op.in_type.min, op.in_type.max)
    acc_bits = op.acc_type.bits if op.acc_type.signed else op.acc_type.bits + 1
    if bits_for_range(min(lo, -1), hi) > acc_bits:
        raise EinhlsError(f"accumulator type int{acc_bits} cannot hold the dot-product range [{lo}, {hi}]",
                          node=op.name)

    rows, cols = nf * s.pe, kf * s.simd
    padded = np.zeros((rows, cols), dtype=np.int64)
    padded[:op.out_size, :op.in_size] = op.weight
    quad_shift, quad_chain = built_pe_quads(op, s, design.board.dsp_kind)
    if quad_shift:
        padded = quad_digits(padded)   # the slots of PEs 4q..4q+3 hold their packed weight's digits
    row_pairs = False
    if group == 1:
        values, indices = padded[:, :, None], np.zeros((rows, cols, 1), dtype=np.int64)
    else:
        # where the Verilog unit packs an N:M PE pair, both rows sit at the pair's shared indices
        # (the same ROM contents; the sums are the same either way)
        row_pairs = bool(one_token_pairs(op, s, design.board.dsp_kind)[0])
        values, indices = compress_nm(padded, nz, group, row_pairs=row_pairs)   # [rows, cols / M, N]
    codes = (values & ((1 << w_bits) - 1)) | (indices << w_bits)    # one slot: index above value
    # [rows, KF*GROUPS, NZ] -> [NF, PE, KF, GROUPS*NZ] -> [PE, NF*KF, slots]: word (nf, kf) of PE p.
    codes = codes.reshape(nf, s.pe, kf, groups * nz).transpose(1, 0, 2, 3).reshape(s.pe, nf * kf, -1)
    word_bits = groups * nz * slot_bits
    rom_kind = _rom_kind(op, design, word_bits * s.pe, nf * kf)
    # in UltraRAM, narrow words share a row as the cost model counted them: the row holds
    # words_per_row consecutive steps, each with the words of all PEs (PE 0 lowest)
    words_per_row = uram_packing(word_bits * s.pe, nf * kf).words_per_row if rom_kind == "uram" else 1
    if words_per_row > 1:
        rom_depth = math.ceil(nf * kf / words_per_row)
        steps = np.zeros((rom_depth * words_per_row, s.pe, codes.shape[-1]), dtype=codes.dtype)
        steps[:nf * kf] = codes.transpose(1, 0, 2)
        codes = steps.reshape(1, rom_depth, -1)
        rom_banks, row_bits = 1, words_per_row * s.pe * word_bits
        # byte limbs: reshaped side by side (einhls_linear.h) they pad the row to the next
        # multiple of 8 bits, so within the ceil(row bits / 72) URAM288 columns counted
        limb_bits = 8
    else:
        rom_banks, rom_depth, row_bits = s.pe, nf * kf, word_bits
        limb_bits = _limb_bits(row_bits)
    words = _rom_limbs(codes, slot_bits, limb_bits)

    bias = np.zeros(rows, dtype=np.int64)
    bias[:op.out_size] = op.bias
    rq = op.requant
    if rq.per_channel:
        mult = np.zeros(rows, dtype=np.int64)
        mult[:op.out_size] = rq.multiplier_for(op.out_size)
        mult_table = mult.reshape(nf, s.pe).T
    else:
        mult_table = np.full((s.pe, 1), rq.multiplier[0], dtype=np.int64)

    mode = f"{nz}:{group} sparse" if group > 1 else "dense"
    summary = (f"Linear {op.in_size} -> {op.out_size}, {mode}, SIMD {s.simd} x PE {s.pe}, "
               f"{nf * kf} cycles per frame")
    pe_shift, token_shift, pair_chain = 0, 0, 1
    if s.token_pack == 2:
        # pe_shift > 0: PE pairs as well, four products per DSP (schedule/packing.py quad_config)
        pe_shift, token_shift, pair_chain = token_pack_config(op, s, design.board.dsp_kind)
        if not token_shift:
            from .rtl import _token_pack_refusal
            raise EinhlsError(_token_pack_refusal(op, s, design.board.dsp_kind), node=op.name)
        summary = (f"Linear {op.in_size} -> {op.out_size}, {mode}, SIMD {s.simd} x PE {s.pe}, token pairs"
                   f"{' x PE pairs (four products a DSP)' if pe_shift else ''}: {nf * kf} cycles per two tokens")
    if quad_shift:
        summary += f", PE quads (four products a DSP, fields of {quad_shift} bits)"
    return LinearUnit(
        index=index, op=op.name, source=op.source, ns=ns, header=header, summary=summary,
        k=op.in_size, n=op.out_size, simd=s.simd, pe=s.pe, in_lanes=s.in_lanes, out_lanes=s.out_lanes,
        kf=kf, nf=nf, in_beats=math.ceil(op.in_size / s.in_lanes),
        out_beats=math.ceil(op.out_size / s.out_lanes), group=group, nz=nz, groups=groups,
        idx_bits=idx_bits, slot_bits=slot_bits, word_bits=word_bits, limb_bits=limb_bits,
        limbs=math.ceil(row_bits / limb_bits), words_per_row=words_per_row,
        row_bits=row_bits, rom_banks=rom_banks, rom_depth=rom_depth,
        rom_kind=ROM_KINDS[rom_kind],
        in_t=CType.of(op.in_type), w_t=CType(op.weight_type.signed, w_bits), acc_t=CType(True, acc_bits),
        mult_t=CType(False, rq.multiplier_bits), out_t=CType.of(op.out_type),
        mult_depth=mult_table.shape[1], shift=rq.shift, zp=rq.zero_point, lo=rq.lo, hi=rq.hi,
        weights=words, bias=bias.reshape(nf, s.pe).T.tolist(), mult=mult_table.tolist(),
        token_pack=2 if token_shift else 1, token_shift=token_shift, pair_chain=pair_chain, pe_shift=pe_shift,
        pair_x_bits=op.in_type.bits + (0 if op.in_type.signed else 1),
        pe_quads=bool(quad_shift), quad_shift=quad_shift, quad_chain=quad_chain, nm_pairs=row_pairs)


def _lane_table(values: np.ndarray, lanes: int) -> list[list[int]]:
    """Per-element constants [size] -> [lane][beat], or [lane][1] when all are equal."""
    if values.size and np.all(values == values[0]):
        return [[int(values[0])] for _ in range(lanes)]
    beats = math.ceil(values.size / lanes)
    table = np.zeros(beats * lanes, dtype=np.int64)
    table[:values.size] = values
    return table.reshape(beats, lanes).T.tolist()


def _requant_unit(index: int, op: Requant, design: Design, ns: str, header: str) -> RequantUnit:
    s = design.schedule(op)
    offset = op.arrays()["offset"]
    rq = op.requant
    mults = rq.multiplier_for(op.in_size)
    v_lo, v_hi = op.in_type.min + int(offset.min()), op.in_type.max + int(offset.max())
    offset_table, mult_table = _lane_table(offset, s.in_lanes), _lane_table(mults, s.in_lanes)
    return RequantUnit(
        index=index, op=op.name, source=op.source, ns=ns, header=header,
        summary=f"Requant of {op.in_size} elements, {s.in_lanes} per beat",
        size=op.in_size, lanes=s.in_lanes, beats=math.ceil(op.in_size / s.in_lanes),
        in_t=CType.of(op.in_type), out_t=CType.of(op.out_type),
        v_t=CType(True, bits_for_range(min(v_lo, -1), max(v_hi, 0))),
        offset_t=CType(True, bits_for_range(min(int(offset.min()), -1), max(int(offset.max()), 0))),
        mult_t=CType(False, rq.multiplier_bits), off_depth=len(offset_table[0]),
        mult_depth=len(mult_table[0]), shift=rq.shift, zp=rq.zero_point, lo=rq.lo, hi=rq.hi,
        offset=offset_table, mult=mult_table)


def _frame_per_call(design: Design) -> bool:
    """Whether the HLS top takes a whole frame per call (conv.frame_per_call), also when a Linear
    unit pairs tokens: it handles two tokens a call, so it cannot run once per top call."""
    from .conv import frame_per_call
    return frame_per_call(design.graph) or any(
        isinstance(op, Linear) and design.schedule(op).token_pack == 2 for op in design.graph.ops)


def _hls_linear(index, op, design, ns, header):
    unit = _linear_unit(index, op, design, ns, header)
    return unit, [unit.word_bits, unit.in_lanes * unit.in_t.bits, unit.out_lanes * unit.out_t.bits], \
        design.schedule(op).out_lanes


def _hls_requant(index, op, design, ns, header):
    unit = _requant_unit(index, op, design, ns, header)
    return unit, [unit.lanes * unit.in_t.bits, unit.lanes * unit.out_t.bits], design.schedule(op).in_lanes


def _hls_butterfly(index, op, design, ns, header):   # codegen/emit/butterfly.py
    s = design.schedule(op)
    unit = butterfly_hls_unit(index, op, s, ns, header, CType)
    return unit, [unit.widest], s.out_lanes


def _hls_relu(index, op, design, ns, header):
    s = design.schedule(op)
    unit = ReluUnit(index, op.name, op.source, f"ReLU of {op.in_size} elements, {s.in_lanes} per beat",
                    op.in_size, s.in_lanes, CType.of(op.in_type), op.in_type.zero_point)
    return unit, [unit.lanes * unit.t.bits], s.in_lanes


def _hls_join(index, op, design, ns, header):
    s = design.schedule(op)
    widths = [s.in_lanes * t.bits for t in op.input_types] + [s.out_lanes * op.out_type.bits]
    return _join_unit(op, s, ns, header), widths, s.out_lanes




def _join_unit(op, s, ns: str, header: str) -> JoinUnit:
    """The einhls_graph.h call of a Fork / Add / Mul / Concat / Slice op."""
    lanes = s.in_lanes
    width = lanes * op.in_type.bits
    beats = [math.ceil(size / lanes) for size in op.input_sizes]
    if op.kind in ("add", "mul"):
        from .joins import hls_unit
        cfg = dict(hls_unit(op, lanes, ns))
        cfg.setdefault("header", f"{ns}.h")
        summary = f"{op.kind} of two streams of {op.in_size} elements, {lanes} per beat"
    elif op.kind == "fork":
        cfg = {"width": width, "beats": beats[0], "copies": op.n_outputs}
        summary = f"{op.n_outputs} copies of {op.in_size} elements, {lanes} per beat"
    elif op.kind == "concat":
        if len(beats) > 4:
            raise EinhlsError(f"Concat of {len(beats)} inputs: at most 4", node=op.name)
        cfg = {"width": width, "beats": beats}
        summary = f"concat of {', '.join(map(str, op.input_sizes))} elements, {lanes} per beat"
    else:
        cfg = {"width": width, "in_beats": beats[0], "first": op.start // lanes,
               "count": math.ceil(op.out_size / lanes)}
        summary = f"elements {op.start}..{op.start + op.out_size - 1} of {op.in_size}, {lanes} per beat"
    return JoinUnit(op.kind, op.name, op.source, summary, cfg)


def _hls_conv(kind, index, op, design, ns, header):   # codegen/emit/conv.py
    from .conv import hls_regroup_unit, hls_tapmax_unit, hls_window_unit
    builder = {"window": hls_window_unit, "regroup": hls_regroup_unit, "tapmax": hls_tapmax_unit}[kind]
    return builder(index, op, design, ns, header)


def _hls_nonlinear(index, op, design, ns, header):
    s = design.schedule(op)
    unit = dataclasses.replace(nonlinear_hls_unit(op, s.in_lanes, ns, header), calls_per_token=op.rows)
    return unit, [s.in_lanes * op.in_type.bits, s.in_lanes * op.out_type.bits], s.in_lanes


def _hls_sequence_unit(module: str, name: str, out_lanes: str):
    """The HLS builder of a unit that takes one sequence per call, made by ``name`` of the emitter
    ``module`` (imported on first use: those modules import this one); it writes ``out_lanes``
    (the schedule's "in_lanes" or "out_lanes") per beat."""
    def build(index, op, design, ns, header):
        import importlib
        s = design.schedule(op)
        unit = getattr(importlib.import_module(module, __package__), name)(op, s, ns, header)
        return unit, unit.widths, getattr(s, out_lanes)
    return build


def _hls_actmatmul(index, op, design, ns, header):
    """The attention product: one sequence per call, with the b buffer the scheduler chose."""
    from .attention import hls_unit
    s = design.schedule(op)
    unit = hls_unit(op, s, ns, header, b_sequences=design.buffer_sequences.get(op.name, 2),
                    b_uram=op.name in design.uram_buffers)
    return unit, unit.widths, s.out_lanes


#: how each op kind becomes a process of the DATAFLOW top (one entry per kind; contraction stages
#: and permutations are planned by codegen/emit/contraction.py as a small chain of processes)
HLS_UNITS = {"linear": _hls_linear, "requant": _hls_requant, "butterfly": _hls_butterfly, "relu": _hls_relu,
             **{kind: _hls_join for kind in ("fork", "add", "mul", "concat", "slice")},
             **{kind: _hls_nonlinear for kind in ("softmax", "layernorm", "gelu")},
             # one sequence per call (codegen/emit/attention.py, mask.py, pooling.py)
             "actmatmul": _hls_actmatmul,
             "maskscores": _hls_sequence_unit(".mask", "hls_unit", "in_lanes"),
             "tokenmean": _hls_sequence_unit(".pooling", "hls_unit", "in_lanes"),
             "maskedmean": _hls_sequence_unit(".pooling", "masked_hls_unit", "in_lanes"),
             **{kind: (lambda kind: lambda *a: _hls_conv(kind, *a))(kind) for kind in ("window", "regroup", "tapmax")}}


@dataclass
class TestbenchPlan:
    """What the C-sim testbench needs: the top's name, its stream formats, calls per frame."""
    top: str
    graph: str
    axis_in: StreamFormat
    axis_out: StreamFormat
    tokens: int = 1


def _check_design(design: Design) -> None:
    graph = design.graph
    if not graph.ops:
        raise EinhlsError("the graph has no operators; there is nothing to build")
    if not design.top_name.isidentifier():
        raise EinhlsError(f"top function name {design.top_name!r} is not a C++ identifier")
    for op in graph.ops:
        if op.name not in design.schedules:
            raise EinhlsError("the design has no schedule for this op", node=op.name)
    graph.check()


def plan_testbench(design: Design) -> TestbenchPlan:
    _check_design(design)
    tokens = 1 if _frame_per_call(design) else design.graph.tokens   # one call a frame
    return TestbenchPlan(design.top_name, design.graph.name, design.top_input, design.top_output, tokens)


def internal_widths(unit: object) -> list[int]:
    """Every ap_int / ap_uint width a unit's kernel instantiates inside itself (its words between
    loops, its weight words, its requantization products): AP_INT_MAX_W must cover all of them,
    not only the streams between the processes (C-sim aborts on the first wider one).  Each unit
    class states its own."""
    rule = getattr(unit, "internal_widths", None)
    if rule is None:
        raise TypeError(f"no width rule for HLS unit {type(unit).__name__}")
    return rule()


def plan_hls(design: Design) -> HlsPlan:
    """Every decision of the HLS back end, as plain data for the templates."""
    _check_design(design)
    graph = design.graph
    plan = HlsPlan(top=design.top_name, graph=graph.name, part=design.board.part,
                   clock_mhz=design.clock_mhz, period_ns=f"{1000.0 / design.clock_mhz:.3f}",
                   ap_int_max_w=None, axis_in=design.top_input, axis_out=design.top_output)

    def new_stream(width: int, comment: str, count: int = 1) -> str:
        name = f"s{len(plan.streams)}"
        plan.streams.append(StreamDecl(name, width, comment, count=count))
        return name

    widths = [plan.axis_in.tdata_bits, plan.axis_out.tdata_bits]
    plan.tokens = graph.tokens
    plan.first = new_stream(plan.axis_in.width, "from s_axis")
    source = {GRAPH_INPUT: (plan.first, plan.axis_in.lanes)}   # tensor -> (stream, lanes)

    def repack(src: str, size: int, bits: int, lanes: int, to_lanes: int, why: str) -> str:
        dst = new_stream(to_lanes * bits, f"{why}, {to_lanes} per beat")
        unit = Repack(f"re-pack {size} elements from {lanes} to {to_lanes} per beat ({why})",
                      size, bits, lanes, to_lanes)
        plan.stages.append(Stage(unit, src, dst))
        widths.append(to_lanes * bits)
        return dst

    def reach(tensor: str, size: int, bits: int, lanes: int, why: str, depth: int | None = None,
              uram: bool = False, lutram: bool = False) -> str:
        stream, have = source[tensor]
        if have != lanes:
            stream = repack(stream, size, bits, have, lanes, why)
        if depth is not None and uram:
            # a long FIFO in UltraRAM, packed into words of several lanes (schedule/fifo_memory.py)
            from ..schedule.fifo_memory import FifoShape
            shape = FifoShape(size, bits, lanes, depth)
            stream = repack(stream, size, bits, lanes, shape.packed_lanes, f"{why}, packed for UltraRAM")
            decl = next(d for d in plan.streams if d.name == stream)
            decl.depth, decl.impl = shape.packed_depth, "uram"
            return repack(stream, size, bits, shape.packed_lanes, lanes, f"{why}, unpacked")
        if depth is not None:
            decl = next(d for d in plan.streams if d.name == stream.split("[")[0])
            decl.depth = max(decl.depth, depth)
            if lutram:     # where block RAM is what the design runs out of (schedule/lutram.py)
                decl.impl = "lutram"
        return stream

    for index, op in enumerate(graph.ops):
        s = design.schedule(op)
        ns, header = f"l{index:02d}_{_safe(op.name)}", f"params_{index:02d}_{_safe(op.name)}.h"
        srcs = [reach(t, size, qtype.bits, s.in_lanes, f"into {op.name}", design.fifo_depths.get((op.name, i)),
                      (op.name, i) in design.uram_fifos, (op.name, i) in design.lutram_fifos)
                for i, (t, size, qtype) in enumerate(zip(op.inputs, op.input_sizes, op.input_types))]
        current = srcs[0]
        if op.kind in ("contract", "permute"):   # [permutation buffer] + Linear unit, R repeats
            lanes = s.in_lanes
            for unit, in_lanes, out_lanes, size, bits in contraction_hls_units(index, op, design, ns, header,
                                                                               _linear_unit):
                if in_lanes != lanes:
                    current = repack(current, size, bits, lanes, in_lanes, f"into {unit.op}")
                if isinstance(unit, ContractUnit):
                    widths.append(unit.linear.word_bits)
                dst = new_stream(out_lanes * (op.out_type.bits if isinstance(unit, ContractUnit) else bits),
                                 f"from {op.name} ({unit.kind})")
                plan.stages.append(Stage(unit, current, dst))
                current, lanes = dst, out_lanes
            if s.out_lanes != lanes:
                current = repack(current, op.out_size, op.out_type.bits, lanes, s.out_lanes, f"out of {op.name}")
            source[op.outputs[0]] = (current, s.out_lanes)
            continue
        builder = HLS_UNITS.get(op.kind)
        if builder is None:
            raise EinhlsError(f"the HLS back end has no unit for IR op kind {op.kind!r}", node=op.name)
        unit, unit_widths, out_lanes = builder(index, op, design, ns, header)
        widths += unit_widths
        if op.n_outputs > 1:
            dst = new_stream(out_lanes * op.out_type.bits, f"copies of {op.inputs[0]}", count=op.n_outputs)
            dsts = [f"{dst}[{k}]" for k in range(op.n_outputs)]
        else:
            dsts = [new_stream(out_lanes * op.out_type.bits, f"from {op.name}")]
        plan.stages.append(Stage(unit, srcs[0], dsts[0], srcs=srcs, dsts=dsts))
        for tensor, dst in zip(op.outputs, dsts):
            if s.out_lanes != out_lanes:   # elementwise units keep their lanes; re-pack to the schedule's
                dst = repack(dst, op.out_size, op.out_type.bits, out_lanes, s.out_lanes, f"out of {op.name}")
            source[tensor] = (dst, s.out_lanes)
    out = plan.axis_out
    plan.last = reach(graph.output, graph.output_size, graph.output_type.bits, out.lanes, "to m_axis")

    from .conv import frame_stages
    if _frame_per_call(design):   # the top takes whole frames, each process loops over its calls
        plan.tokens = 1
        plan.frame_stages = frame_stages(graph, plan)
    widths += [st.width for st in plan.streams]
    for st in plan.stages:
        widths += internal_widths(st.unit)
    widest = max(widths)
    if widest > HLS_WORD_LIMIT_BITS:
        raise EinhlsError(f"a weight word or stream beat of {widest} bits exceeds the {HLS_WORD_LIMIT_BITS}-bit "
                          f"ap_int limit of Vitis HLS; choose fewer SIMD inputs or lanes")
    if widest > AP_INT_DEFAULT_MAX_W:
        plan.ap_int_max_w = math.ceil(widest / 1024) * 1024
    return plan


# --- rendering ------------------------------------------------------------------------------

def _comment(text: object) -> str:
    """Text made safe for a // comment: one line, no backslash (which would splice the next line)."""
    return " ".join(str(text).replace("\\", "/").replace("??/", "?? /").split())


def _environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader([str(resource_dir("templates") / "hls"), str(resource_dir("testbench") / "csim")])
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["comment"] = _comment
    return env


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))   # bytes: no platform newline translation


def emit_hls(design: Design, out: Path) -> None:
    """Write the Vitis HLS project sources for ``design`` into ``out/hls/``."""
    plan = plan_hls(design)
    env = _environment()
    hls = Path(out) / HLS_DIR
    hls.mkdir(parents=True, exist_ok=True)
    _write(hls / f"{plan.top}.h", env.get_template("top.h.j2").render(plan=plan))
    top_template = "top_frames.cpp.j2" if plan.frame_stages else "top.cpp.j2"
    _write(hls / f"{plan.top}.cpp", env.get_template(top_template).render(plan=plan))
    for unit in plan.param_units:
        if isinstance(unit, JoinUnit):
            _write(hls / unit.header, env.get_template("params_join.h.j2").render(plan=plan, u=unit.cfg))
        elif isinstance(unit, ConstantsUnit):   # a cfg struct of constants and types
            _write(hls / unit.header, env.get_template("params_nonlinear.h.j2").render(plan=plan, u=unit))
        else:
            _write(hls / unit.header, env.get_template(f"params_{unit.kind}.h.j2").render(plan=plan, u=unit))
    kernels = resource_dir("hls_kernels")
    for name in plan.kernel_headers:
        shutil.copyfile(kernels / name, hls / name)
    tb = f"../{CSIM_DIR}"
    _write(hls / "run_hls.tcl", env.get_template("run_hls.tcl.j2").render(
        plan=plan, tb_dir=tb, testbench=CSIM_TESTBENCH, inputs=CSIM_INPUTS, expected=CSIM_EXPECTED))
    check_hls(plan, hls)   # the II = 1 rules (codegen/emit/hls_rules.py); EinhlsError when one is broken


def emit_csim_testbench(design: Design, out: Path) -> None:
    """Write the C-sim testbench ``out/tb/csim/tb_top.cpp`` for ``design``'s top function."""
    text = _environment().get_template("tb_top.cpp.j2").render(plan=plan_testbench(design))
    _write(Path(out) / CSIM_DIR / CSIM_TESTBENCH, text)


def emit_csim_vectors(out: Path, inputs: np.ndarray, expected: np.ndarray) -> None:
    """Write the vectors run_hls.tcl passes to the testbench (``out/tb/csim/inputs.txt``, ``expected.txt``)."""
    write_vectors(Path(out) / CSIM_DIR / CSIM_INPUTS, inputs)
    write_vectors(Path(out) / CSIM_DIR / CSIM_EXPECTED, expected)
