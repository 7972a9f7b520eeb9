"""The calibrated part of the cost model: LUT and FF counts fitted to Yosys measurements.

The first-order model in cost.py counts what each unit builds (multipliers, adder trees,
accumulators, buffers, ROMs) with hand-set weights; measured by Yosys those weights are off by up to
2x (a dense Linear at SIMD 1 x PE 64 measured 6,259 LUT against 3,128 estimated).  Here every unit
kind has a small set of *features* (the terms of that first-order model, kept separate) and
``calibrated.json`` (beside this file, written by ``python -m bench.calibrate``) holds, per Yosys
family (xc7 for DSP48E1 boards, xcup for DSP48E2 boards), the non-negative least-squares
coefficients of each feature, fitted on a sweep of one-unit designs synthesized by Yosys.

A unit kind without coefficients (or the ECP5 flow) keeps the first-order numbers.  DSP and block
RAM are structural counts (cost.py) and are not fitted.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

CALIBRATED_PATH = Path(__file__).resolve().parent / "calibrated.json"
FAMILY_OF_DSP = {"DSP48E1": "xc7", "DSP48E2": "xcup"}
#: what is fitted: the cost field and the Yosys counts it is compared with (LUT includes LUTs used
#: as ROM / distributed RAM, as OpCost.lut does)
TARGETS = {"lut": ("LUT", "LUT_MEM"), "ff": ("FF",)}

#: op kind -> calibration group (kinds of one group share coefficients)
GROUP_OF_KIND = {"linear": "linear", "requant": "requant", "add": "join", "fork": "join",
                 "butterfly": "butterfly", "contract": "contract", "permute": "permute",
                 "softmax": "softmax", "layernorm": "layernorm", "gelu": "gelu",
                 "relu": "relu", "mul": "mul", "concat": "concat", "slice": "slice",
                 "window": "window", "regroup": "regroup", "tapmax": "tapmax", "actmatmul": "actmatmul",
                 "maskscores": "maskscores", "tokenmean": "tokenmean", "maskedmean": "maskedmean"}
#: token-pair Linear units (TOKEN_PACK = 2): a correction fitted on top of the single-token Linear
#: estimate, on token-pair points only, after the other groups (pair_features)
TOKEN_PAIR_GROUP = "linear_pairs"
#: the second stage of N:M layers whose PE pairs share DSPs (packing.py pack_config on an N:M layer)
NM_PAIR_GROUP = "linear_nm_pairs"


def pair_features(op, s, target: str, estimate: float) -> dict[str, float]:
    """The second stage's features for a token-pair unit: an offset and a scale of the first
    stage's estimate and, for flip-flops, what the second token doubles per multiplier (the
    activation operand registers: one a multiplier at N:M, one a DSP when dense) and per PE column
    (the second accumulator row) — the first stage's FF terms were fitted on single tokens, where
    those registers are one of many terms."""
    feats = {"const": 1.0, "const_neg": -1.0, "model": estimate}
    if target == "ff":
        slots = s.simd // op.sparsity[1] * op.sparsity[0] if op.sparsity else s.simd
        operands = float(s.pe * slots * op.in_type.bits)
        feats["nm_operand_bits" if op.sparsity else "operand_bits"] = operands
        feats["column_bits"] = float(s.pe * op.acc_type.bits)
    return feats


def linear_features(op, s, dsp_kind: str, cost, assume_packing: bool | None = None) -> dict[str, dict[str, float]]:
    """The terms of the Linear unit's first-order model, each on its own (per target)."""
    from .cost import lut_multiplier, multiplier_dsps
    from .packing import pack_config, pair_shape, requant_lanes

    nf, kf = math.ceil(op.out_size / s.pe), math.ceil(op.in_size / s.simd)
    a_bits, w_bits, acc = op.in_type.bits, op.weight_type.bits, op.acc_type.bits
    out_bits = op.out_type.bits
    if op.sparsity:
        n, m = op.sparsity
        slots = s.simd // m * n
    else:
        m, slots = 1, s.simd
    multipliers = s.pe * slots
    dsp_mult = multiplier_dsps(a_bits, w_bits, dsp_kind) > 0
    if assume_packing is not None:
        packed = bool(assume_packing and dsp_mult and pair_shape(op, s))
    else:
        packed = bool(dsp_mult and pack_config(op, s, dsp_kind)[0])
    # token pairs (einhls_linear TOKEN_PACK = 2): the same terms with what the second token doubles
    # (input buffer and read port, N:M selects, operands, trees, accumulators); the activation
    # pre-add is counted as the packed products' (one packed operand per DSP)
    tokens = 2 if getattr(s, "token_pack", 1) == 2 else 1
    if tokens == 2:
        from .packing import token_pair_config
        packed = dsp_mult and token_pair_config(op, s, dsp_kind)[1] == 2
    rq_lanes = requant_lanes(s.pe, kf, tokens)
    rom_lut = cost.rom_kind == "lutram" and cost.rom_width > 0
    word_bits, depth = cost.rom_width, cost.rom_depth
    # packed DSPs sum two input slots in their cascade (PACK_CHAIN 2): the fabric tree gets half
    tree_inputs = -(-slots // 2) if packed else slots
    lut = {
        "const": 1.0, "const_neg": -1.0,
        "lut_multipliers": 0.0 if dsp_mult else multipliers * lut_multiplier(a_bits, w_bits),
        "dsp_products": multipliers * (a_bits + w_bits) if dsp_mult and not packed else 0.0,
        "packed_products": multipliers * (a_bits + w_bits) if packed or (tokens == 2 and dsp_mult) else 0.0,
        "adder_tree": tokens * s.pe * max(tree_inputs - 1, 0) * acc,
        "accumulators": tokens * s.pe * acc,
        # (a packed N:M PE pair shares one multiplexer per slot: its rows share the index pattern)
        "nm_select": tokens * (multipliers // 2 if packed and tokens == 1 else multipliers) * a_bits
        * math.ceil(m / 4) if op.sparsity else 0.0,
        # (token pairs: the buffer's distributed RAM, two read ports, is counted after the fit)
        # (a buffer in block RAM, cost.input_buffer_bram36, has neither read multiplexer nor registers)
        "input_read": 0.0 if cost.input_bram36 else s.simd * a_bits * math.ceil(kf / 4),
        "requant_select": rq_lanes * acc * math.ceil(s.pe / rq_lanes / 4) if s.pe > 1 else 0.0,
        "output": s.pe * out_bits + s.out_lanes * out_bits * math.ceil(s.pe / s.out_lanes / 4),
        # a ROM in logic: about one LUT per word bit up to 16 words, then one per 16 stored bits
        "rom_lut": word_bits * max(1.0, depth / 16) if rom_lut else 0.0,
        "rom_bram": cost.bram36 if cost.rom_kind == "bram" else 0.0,
    }
    if tokens == 2:
        lut["dsp_products"] = 0.0
    ff = {
        "const": 1.0, "const_neg": -1.0,
        "input_buffer": 0.0 if cost.input_bram36 else tokens * 2 * kf * s.simd * a_bits,
        "output_buffer": 2 * nf * s.pe * out_bits,
        # one activation operand per DSP (two PEs share it when packed)
        # (token pairs: one packed activation operand per DSP, as PACK's one shared x per DSP)
        "operands": (multipliers if tokens == 2 else math.ceil(s.pe / 2) * slots if packed
                     else multipliers) * a_bits if dsp_mult and not op.sparsity else 0.0,
        # (a packed N:M pair drops the odd PE's selected operands but registers its chain sums:
        # measured about even with the unpaired array, bench/results/calibration.md)
        "nm_operands": tokens * multipliers * a_bits if op.sparsity else 0.0,
        "lut_products": 0.0 if dsp_mult else multipliers * (a_bits + w_bits),
        "weight_operands": multipliers * w_bits if rom_lut else 0.0,   # block RAM: its output register
        "accumulators": tokens * s.pe * acc,
        # the tree holds a register every TREE_STAGE = 2 levels
        "adder_tree": tokens * s.pe * acc * math.ceil(math.log2(max(tree_inputs, 1)) / 2),
        "rom_word": word_bits if rom_lut else 0.0,   # a block RAM registers its output inside
    }
    return {"lut": lut, "ff": ff}


def generic_features(op, s, dsp_kind: str, cost) -> dict[str, dict[str, float]]:
    """Units without a term-by-term model: an offset (either sign: the fit is non-negative, so
    the offset is two columns) and a scale of the first-order estimate."""
    return {target: {"const": 1.0, "const_neg": -1.0, "model": float(getattr(cost, target))}
            for target in ("lut", "ff")}


def butterfly_features(op, s, dsp_kind: str, cost) -> dict[str, dict[str, float]]:
    """The butterfly's LUT terms (butterfly.butterfly_terms: control, datapath, the banks in
    distributed RAM, the twiddle ROM in LUTs) each with its own weight, so the ROM's move from block
    RAM to LUTs (at most 64 words deep) is a term of its own and not a change of scale; FF: an
    offset and a scale."""
    from .butterfly import bank_memories, butterfly_terms, rom_shapes
    from .cost import bram36_for

    terms = butterfly_terms(op, s, dsp_kind)["lut"]
    banks = 2 * s.pe
    lut = {"const": 1.0, "const_neg": -1.0, "control": float(terms["control"]), "datapath": float(terms["datapath"]),
           # distributed RAM: Yosys builds a bank of at most 32 words from RAM32M, a deeper one from
           # RAM64M (half the bits a LUT): two terms
           "ram_shallow": 0.0, "ram_deep": 0.0,
           # a ROM in LUTs: a LUT per output bit at least (rom_lut), more as the words grow
           # (rom_bits: its bits per 64; a deep ROM's bits are fewer constants, more distinct functions)
           "rom_lut": float(terms["rom_lut"]), "rom_bits": 0.0}
    for width, depth in bank_memories(op, s.pe):
        if bram36_for(width, depth) == 0:
            lut["ram_shallow" if depth <= 32 else "ram_deep"] += banks * width * math.ceil(depth / 64)
    for width, depth in rom_shapes(op, s.pe):
        if bram36_for(width, depth) == 0:
            lut["rom_bits"] += width * depth / 64
    return {"lut": lut, "ff": {"const": 1.0, "const_neg": -1.0, "model": float(cost.ff)}}


def actmatmul_features(op, s, dsp_kind: str, cost) -> dict[str, dict[str, float]]:
    """The attention product's first-order estimate (attention_cost.actmatmul_cost) in three parts
    with a weight each: its memories (b banks, a row buffer, output FIFO: LUT RAM), what each of
    the PE columns builds (its adder tree over SIMD products for LUTs; for FFs its accumulator and
    tree registers, its b operands and b bank word registers) and the rest (control, centring,
    requant), so a fold with more PE columns is not a change of scale of one with one column."""
    from ..emit.attention import fifo_depth, folding, tree_registers
    from .attention_cost import _memory, b_banks

    f = folding(op, s)
    kf = op.inner // f.simd
    a_bits, b_bits = op.in_type.bits + 1, op.in_type_b.bits + 1
    acc_bits = op.acc_type.bits + (0 if op.acc_type.signed else 1)
    nb, b_depth, b_width = b_banks(op, f, 2)
    a_depth = 2 * (1 << max(1, math.ceil(math.log2(max(op.heads * kf, 2)))))
    memories = nb * _memory(b_width, b_depth)[1] + _memory(f.simd * a_bits, a_depth)[1] \
        + _memory(f.pe * acc_bits, fifo_depth(op, f))[1]
    tree = f.pe * max(f.simd - 1, 0) * acc_bits
    columns_ff = f.pe * acc_bits * (2 + tree_registers(f.simd)) + f.simd * f.pe * b_bits + nb * b_width * 2
    return {"lut": {"const": 1.0, "const_neg": -1.0, "memories": float(memories), "tree": float(tree),
                    "rest": float(max(cost.lut - memories - tree, 0))},
            "ff": {"const": 1.0, "const_neg": -1.0, "columns": float(columns_ff),
                   "rest": float(max(cost.ff - columns_ff, 0))}}


def features(kind: str, op, s, dsp_kind: str, cost, assume_packing: bool | None = None) -> dict[str, dict[str, float]]:
    if kind == "linear":
        return linear_features(op, s, dsp_kind, cost, assume_packing)
    if kind == "butterfly":
        return butterfly_features(op, s, dsp_kind, cost)
    if kind == "actmatmul":
        return actmatmul_features(op, s, dsp_kind, cost)
    return generic_features(op, s, dsp_kind, cost)


@lru_cache(maxsize=1)
def _load() -> dict:
    if not CALIBRATED_PATH.is_file():
        return {}
    return json.loads(CALIBRATED_PATH.read_text())


def coefficients(group: str, family: str, target: str, model: dict | None = None) -> dict[str, float] | None:
    return (_load() if model is None else model).get("families", {}).get(family, {}).get(group, {}).get(target)


def is_token_pair(kind: str, s) -> bool:
    return kind == "linear" and getattr(s, "token_pack", 1) == 2


def is_nm_pair(kind: str, op, s, dsp_kind: str, assume_packing: bool | None = None) -> bool:
    """Whether a Linear op is an N:M array whose PE pairs share DSPs and multiplexers (one token):
    its structure (one multiplexer a pair, chain registers, packed fields) differs from both the
    unpaired N:M array and the dense pairs the first stage is fitted on, so a second stage
    corrects its estimate (NM_PAIR_GROUP).  ``assume_packing``: the shape search's hint in place
    of the weight scan."""
    from .packing import is_sparse, one_token_pairs, pair_shape
    if kind != "linear" or not is_sparse(op):
        return False
    if assume_packing is None:
        return bool(one_token_pairs(op, s, dsp_kind)[0])
    from .cost import multiplier_dsps
    return (bool(assume_packing) and s.token_pack == 1 and s.pe_pack == 1 and pair_shape(op, s)
            and multiplier_dsps(op.in_type.bits, op.weight_type.bits, dsp_kind) > 0)


def stage_two(kind: str, op, s, dsp_kind: str, assume_packing: bool | None = None) -> str | None:
    """The second-stage group of an op (fitted over the first stage's estimate), or None."""
    if is_token_pair(kind, s):
        return TOKEN_PAIR_GROUP
    if is_nm_pair(kind, op, s, dsp_kind, assume_packing):
        return NM_PAIR_GROUP
    return None


def nm_pair_features(op, s, target: str, estimate: float) -> dict[str, float]:
    """The second stage's features for an N:M layer with PE pairs: an offset and a scale of the
    first stage's estimate of the same array unpaired (calibration.apply) and, for flip-flops, the
    input word's bits (SIMD activations: the operand word and the shallow input buffer, which the
    unpaired N:M points of the first stage never took beyond SIMD 16)."""
    feats = {"const": 1.0, "const_neg": -1.0, "model": estimate}
    if target == "ff":
        feats["input_bits"] = float(s.simd * op.in_type.bits)
    else:
        # against the unpaired array: one M:1 input multiplexer a pair and slot instead of two
        # (saved: a negative term, the fit's weights being non-negative), and what a select wider
        # than 4:1 adds (the first stage, fitted on 2:4 points, has no term for it)
        n, m = op.sparsity
        pair_selects = s.pe // 2 * s.simd // m * n * op.in_type.bits
        feats["selects_saved"] = -float(pair_selects)
        feats["wide_selects"] = float(pair_selects * (math.ceil(m / 4) - 1))
    return feats


def apply(kind: str, op, s, dsp_kind: str, cost, assume_packing: bool | None = None,
          model: dict | None = None) -> None:
    """Replace cost.lut and cost.ff by the calibrated estimate where coefficients exist (in place);
    ``model`` replaces calibrated.json (the fit's second stage)."""
    family, group = FAMILY_OF_DSP.get(dsp_kind), GROUP_OF_KIND.get(kind)
    model = _load() if model is None else model
    if family is None or group is None or not model:
        return
    if kind == "linear" and getattr(s, "pe_pack", 1) == 4:
        from .packing import pe_quad_config
        if pe_quad_config(op, s, dsp_kind)[0]:
            return   # PE quads: no sweep point has the structure (cost.py _pe_quad_cost)
    if kind == "linear" and getattr(s, "token_pack", 1) == 2:
        from .packing import quad_config
        if quad_config(op, s, dsp_kind)[0]:
            return   # four products a DSP: no sweep point has the structure (cost.py _quad_cost)
    feats = None
    for target in TARGETS:
        coef = coefficients(group, family, target, model)
        if not coef:
            continue
        # an N:M layer with PE pairs starts from the estimate of the same array unpaired (measured
        # within about 10% of it, bench/results/calibration.md), which its second stage corrects
        nm_pair = is_nm_pair(kind, op, s, dsp_kind, assume_packing)
        feats = feats or features(kind, op, s, dsp_kind, cost, False if nm_pair else assume_packing)
        value = sum(coef.get(name, 0.0) * x for name, x in feats[target].items())
        if is_token_pair(kind, s):
            if target == "lut":
                # what token pairs add is counted structurally where the dense-trained fit has no
                # term for it: the distributed RAM of the second buffer port and FIFO, and the N:M
                # multiplexers of both tokens (the fit's nm_select weight came out 0 on single tokens)
                from .cost import token_pair_memory_luts
                value += token_pair_memory_luts(op, s) + feats["lut"]["nm_select"]
            pairs = coefficients(TOKEN_PAIR_GROUP, family, target, model)
            if pairs:
                value = sum(pairs.get(name, 0.0) * x for name, x in pair_features(op, s, target, value).items())
        elif nm_pair:
            pairs = coefficients(NM_PAIR_GROUP, family, target, model)
            if pairs:
                value = sum(pairs.get(name, 0.0) * x for name, x in nm_pair_features(op, s, target, value).items())
        setattr(cost, target, max(0, int(round(value))))


# --- fitting (bench/calibrate.py) -------------------------------------------------------------

def nnls(a: np.ndarray, b: np.ndarray, iterations: int = 500) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0 (Lawson and Hanson's active-set method)."""
    rows, cols = a.shape
    x = np.zeros(cols)
    passive = np.zeros(cols, dtype=bool)
    w = a.T @ (b - a @ x)
    for _ in range(iterations):
        if passive.all() or w[~passive].max(initial=-1) <= 1e-10:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(cols)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > 1e-12
            x[~passive] = 0.0
        w = a.T @ (b - a @ x)
    return x


def fit(rows: list[tuple[list[tuple[str, dict[str, float]]], float]]) -> dict[str, dict[str, float]]:
    """Coefficients per group from rows of ([(group, {feature: value})...], measured), minimising
    the relative error (each row is divided by its measurement)."""
    columns = sorted({(g, f) for ops, _ in rows for g, feats in ops for f in feats})
    index = {c: i for i, c in enumerate(columns)}
    a = np.zeros((len(rows), len(columns)))
    b = np.zeros(len(rows))
    for r, (ops, measured) in enumerate(rows):
        for group, feats in ops:
            for name, value in feats.items():
                a[r, index[(group, name)]] += value
        weight = 1.0 / max(measured, 1.0)
        a[r] *= weight
        b[r] = measured * weight
    # scale columns so the active-set steps are well conditioned
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    x = nnls(a / norms, b) / norms
    out: dict[str, dict[str, float]] = {}
    for (group, name), value in zip(columns, x):
        out.setdefault(group, {})[name] = float(value)
    return out
