"""Decisions about how a Linear unit is built that the cost model and the Verilog emitter both need
(one module both read, so the cost model counts what the emitter builds): DSP packing of two
products per DSP, LUT multipliers for narrow operands, the requantization lanes."""
from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

from ..errors import EinhlsError
from ..ir.graph import Linear
from ..ir.sparsity import compress_nm, row_pairs_share_nm
from ..ir.types import bits_for_range
from .design import OpSchedule, linear_folds

LUT_MULT_MAX_BITS = 4     # multiplies with an operand this narrow are built from LUTs, not DSPs
# DSP pre-adder width (the packed weight pair goes through it) per DSP kind; B port width.
DSP_PREADDER_BITS = {"DSP48E1": 25, "DSP48E2": 27}
DSP_B_BITS = 18
T = TypeVar("T")


def requant_lanes(pe: int, kf: int, tokens: int = 1) -> int:
    """Outputs requantized per cycle in a Linear unit: the smallest divisor d of PE with
    d * KF >= tokens * PE, so the rows of PE sums of ``tokens`` tokens (made every KF cycles: two
    with token pairs) are requantized before the next; PE when no divisor keeps up (KF = 1 with
    token pairs: the unit is then output-bound)."""
    return next((d for d in range(1, pe + 1) if pe % d == 0 and d * kf >= tokens * pe), pe)


def signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding [lo, hi] (always signed)."""
    return bits_for_range(min(int(lo), -1), max(int(hi), 0))


def weight_bits(op: Linear) -> int:
    """Signed weight width: the declared type, one bit wider when it is unsigned."""
    return op.weight_type.bits + (0 if op.weight_type.signed else 1)


def lut_multipliers(op: Linear) -> bool:
    """Products from LUT adders (einhls_linear MUL_LUT = 1) when an operand has at most
    LUT_MULT_MAX_BITS bits: the scheduler's cost model (codegen/schedule/cost.py) assumes so, and a
    DSP would be mostly idle (Yosys would otherwise put every product of 9+ bits in one)."""
    return min(op.weight_type.bits, op.in_type.bits) <= LUT_MULT_MAX_BITS


def is_sparse(op: Linear) -> bool:
    """Whether ``op`` is built as an N:M layer (values and indices, a multiplexer per product)."""
    return op.sparsity is not None and op.sparsity[0] < op.sparsity[1]


def _remembered(cache: dict[tuple, tuple], key: tuple, op: Linear, compute: Callable[[], T]) -> T:
    """``compute()`` remembered under ``key`` (which starts with id(op.weight)) while op.weight is
    the same array: the shape search asks the weight-scanning proofs for every candidate shape."""
    hit = cache.get(key)
    if hit is None or hit[0] is not op.weight:   # the array is kept, so its id is not reused
        hit = cache[key] = (op.weight, compute())
    return hit[1]


_ROW_PAIRS_CACHE: dict[tuple, tuple] = {}


def nm_row_pairs(op: Linear) -> bool:
    """Whether the rows 2r, 2r+1 of an N:M layer share their index pattern (ir/sparsity.py
    row_pairs_share_nm), remembered per weight array."""
    if not is_sparse(op):
        return False
    return _remembered(_ROW_PAIRS_CACHE, (id(op.weight), op.sparsity), op,
                       lambda: row_pairs_share_nm(op.weight, *op.sparsity))


def pair_shape(op: Linear, s: OpSchedule) -> bool:
    """Whether shape ``s`` can hold PE pairs at all, before any weight scan: two PEs or more, and an
    even count for an N:M layer (its PE pairs are the layer's row pairs), and in a span fold
    (OpSchedule.span) an even PE and an even N a repeat, so no group splits a pair between two
    repeats."""
    if getattr(s, "span", 0) and (s.pe % 2 or s.span % 2):
        return False
    return s.pe >= 2 and not (is_sparse(op) and s.pe % 2)


def one_token_pairs(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """pack_config where the unit is built with plain PE pairs (one token a fold, no PE quads: token
    pairs and quads pack their own way), else (0, 1): what both emitters and the cost model read."""
    if s.token_pack != 1 or s.pe_pack != 1:
        return 0, 1
    return pack_config(op, s, dsp_kind)


def pack_config(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """(S, chain) when PEs 2q and 2q+1 can share DSPs (einhls_linear PACK = 2), else (0, 1).

    The DSP computes (w[2q+1] * 2^S + w[2q]) * x + 2^(S-1), and with chain 2 a second DSP adds
    the packed product of the next input slot.  That is exact when every sum of ``chain``
    products w[2q] * x of this layer lies in [-2^(S-1), 2^(S-1)): checked here from the actual
    weights and the input range.  Chain 2 is preferred (it also halves the fabric adder tree);
    chain 1 is the fallback when the two-product sum would not fit the DSP pre-adder.  DSP
    multipliers only.  An N:M layer packs too where each PE pair shares one index pattern
    (nm_row_pairs: both rows' non-zeros fit one pattern, so the pair's multiplier picks one input
    for both; an even PE, so a PE pair is a row pair of the layer): the ROM then holds both rows
    at the pair's indices (ir/sparsity.py compress_nm with row_pairs) and the bound is taken over
    those slots.
    """
    if not pair_shape(op, s) or lut_multipliers(op):
        return 0, 1
    if is_sparse(op) and (s.simd % op.sparsity[1] or not nm_row_pairs(op)):
        return 0, 1
    if dsp_kind not in DSP_PREADDER_BITS:   # no pre-adder (ECP5 MULT18X18D): one product per multiplier
        return 0, 1
    w_bits = weight_bits(op)
    x_bits = op.in_type.bits + (0 if op.in_type.signed else 1)
    if x_bits > DSP_B_BITS:
        return 0, 1
    nf, kf = linear_folds(op, s)
    weight = np.zeros((nf * s.pe, kf * s.simd), dtype=np.int64)
    weight[:op.out_size, :op.in_size] = op.weight
    slots = s.simd
    if is_sparse(op):
        # the products are the ROM's slots: a word of SIMD / M groups x N values per PE
        n, m = op.sparsity
        values, _ = compress_nm(weight, n, m, row_pairs=True)
        weight, slots = values.reshape(len(values), -1), s.simd // m * n
    slot_pe = np.arange(nf * s.pe) % s.pe
    low = weight[(slot_pe % 2 == 0) & (slot_pe < 2 * (s.pe // 2))]
    limit = DSP_PREADDER_BITS[dsp_kind]
    for chain in (2, 1):
        # pairs of slots (2c, 2c+1) inside each word; an odd SIMD's last slot pairs with a zero
        shift = _chain_field_bits(low, op, kf, slots, chain)
        if w_bits + shift + 1 <= limit:
            return shift, chain
    return 0, 1


def token_pair_config(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """(S, chain) when two consecutive tokens can share every weight read (einhls_linear
    TOKEN_PACK = 2), else (0, 1).

    Each multiplier computes w * (x_t1 * 2^S + x_t0) + 2^(S-1): the activation pair goes through
    the DSP's wide port (the pre-adder), the weight through the 18-bit one, and with chain 2 a
    second DSP adds the packed product of the next slot.  Token 0's sum sits in the low S bits,
    which is exact when every sum of ``chain`` products w * x_t0 lies in [-2^(S-1), 2^(S-1)):
    bounded here from the layer's actual weights (the extremes of w * x over the input range,
    the same for every slot, so it also holds for the compressed slots of an N:M layer, whose two
    tokens use the same index).  Chain 2 is preferred (it halves the fabric adder trees); chain 1
    when the two-product sum would not fit the wide port.  DSP multipliers only."""
    if s.token_pack != 2 or lut_multipliers(op) or dsp_kind not in DSP_PREADDER_BITS:
        return 0, 1
    if weight_bits(op) > DSP_B_BITS:
        return 0, 1
    x_bits = op.in_type.bits + (0 if op.in_type.signed else 1)
    weight = np.asarray(op.weight, dtype=np.int64)
    w_lo, w_hi = int(weight.min(initial=0)), int(weight.max(initial=0))
    corners = [w * x for w in (w_lo, w_hi) for x in (op.in_type.min, op.in_type.max)]
    term_lo, term_hi = min(corners + [0]), max(corners + [0])
    limit = DSP_PREADDER_BITS[dsp_kind]
    for chain in (2, 1):
        shift = max(2, signed_bits(chain * term_lo, chain * term_hi))
        if x_bits + shift + 1 <= limit:
            return shift, chain
    return 0, 1


def _chain_field_bits(weight_rows: np.ndarray, op: Linear, kf: int, simd: int, chain: int) -> int:
    """Signed width of every sum of ``chain`` products w * x of consecutive slots (2c, 2c+1) of a
    word, over the given weight rows and the input range (at least 2: a sign and one bit)."""
    terms_lo = np.minimum(weight_rows * op.in_type.min, weight_rows * op.in_type.max)
    terms_hi = np.maximum(weight_rows * op.in_type.min, weight_rows * op.in_type.max)
    words_lo = terms_lo.reshape(len(weight_rows), kf, simd)
    words_hi = terms_hi.reshape(len(weight_rows), kf, simd)
    if chain == 2:
        pad = [(0, 0), (0, 0), (0, simd % 2)]
        words_lo = np.pad(words_lo, pad).reshape(len(weight_rows), kf, -1, 2).sum(axis=3)
        words_hi = np.pad(words_hi, pad).reshape(len(weight_rows), kf, -1, 2).sum(axis=3)
    return max(2, signed_bits(int(words_lo.min(initial=0)), int(words_hi.max(initial=0))))


_QUAD_CACHE: dict[tuple, tuple] = {}


def quad_config(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int, int]:
    """quad_config_uncached, remembered per (weights, input type, SIMD parity, DSP kind): the
    shape search asks for every candidate shape and the proof scans all weights.  Only layers with an operand of at
    most LUT_MULT_MAX_BITS bits are considered: wider products leave no room for four fields in a
    25 x 18 or 27 x 18 multiplier (an int8 field needs 15 bits or more), and the weight scan of a
    large int8 layer per candidate shape would cost the scheduler seconds."""
    if s.token_pack != 2 or s.pe < 2 or s.pe % 2 or dsp_kind not in DSP_PREADDER_BITS or not lut_multipliers(op):
        return 0, 0, 1
    # With an even PE the even/odd PE of a row is the row's parity, and with an even SIMD a chain
    # pairs columns (2c, 2c+1) of the layer: the proof is then the same for every such shape
    key = (id(op.weight), op.in_type, s.simd if s.simd % 2 else 0, dsp_kind)
    return _remembered(_QUAD_CACHE, key, op, lambda: quad_config_uncached(op, s, dsp_kind))


def token_pack_config(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int, int]:
    """(T, S, chain) of a Linear unit with TOKEN_PACK = 2: T > 0 when PE pairs are packed too
    (four products per DSP, quad_config), T = 0 for plain token pairs (two, token_pair_config);
    S = 0 when neither is exact or fits the DSP (the emitters refuse such a layer)."""
    quad = quad_config(op, s, dsp_kind)
    if quad[0]:
        return quad
    shift, chain = token_pair_config(op, s, dsp_kind)
    return 0, shift, chain


def quad_config_uncached(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int, int]:
    """(T, S, chain) when each DSP can compute four products, PE pairs and token pairs at once
    (einhls_linear PACK = 2 with TOKEN_PACK = 2), else (0, 0, 1).

    The DSP computes (w[2q+1] * 2^T + w[2q]) * (x_t1 * 2^S + x_t0) + C, whose four fields at
    offsets 0, T, S and S + T hold the sums (over ``chain`` slots) of w[2q] x_t0, w[2q+1] x_t0,
    w[2q] x_t1 and w[2q+1] x_t1.  C = 2^(T-1) + 2^(S-1) + 2^(S+T-1) puts half a field's range into
    each of the three low fields, so none borrows from the next when every such sum lies in
    [-2^(w-1), 2^(w-1)) for its field width w: T for the even PE's sums (fields 0 and 2: the same
    weights, both tokens have the input range), S - T for the odd PE's (field 1).  Checked here
    from the layer's actual weights; the top field needs no bound.  The packed weight (W + T + 1
    bits) and the packed input (X + S + 1 bits) must fit the DSP's two multiplier ports (25 or 27
    and 18 bits), either way round.  Dense layers only (the two PEs of an N:M layer would need the
    same index pattern), an even PE count (every PE in a pair), and an even token count (as token
    pairs)."""
    if s.token_pack != 2 or s.pe < 2 or s.pe % 2 or dsp_kind not in DSP_PREADDER_BITS:
        return 0, 0, 1
    if is_sparse(op):
        return 0, 0, 1
    w_bits = weight_bits(op)
    x_bits = op.in_type.bits + (0 if op.in_type.signed else 1)
    nf, kf = linear_folds(op, s)
    weight = np.zeros((nf * s.pe, kf * s.simd), dtype=np.int64)
    weight[:op.out_size, :op.in_size] = op.weight
    slot_pe = np.arange(nf * s.pe) % s.pe
    in_pairs = slot_pe < 2 * (s.pe // 2)
    even, odd = weight[in_pairs & (slot_pe % 2 == 0)], weight[in_pairs & (slot_pe % 2 == 1)]
    wide_port = DSP_PREADDER_BITS[dsp_kind]
    for chain in (2, 1):
        low = _chain_field_bits(even, op, kf, s.simd, chain)
        high = _chain_field_bits(odd, op, kf, s.simd, chain)
        t_shift, s_shift = low, low + high
        ports = sorted((w_bits + t_shift + 1, x_bits + s_shift + 1))
        if ports[0] <= DSP_B_BITS and ports[1] <= wide_port:
            return t_shift, s_shift, chain
    return 0, 0, 1


#: PEs per DSP of a PE quad (einhls_linear PACK = 4)
QUAD_PES = 4


def quad_digits(weight: np.ndarray) -> np.ndarray:
    """The weight ROM contents of PE quads: rows [4q, 4q+4) of ``weight`` (a multiple of four
    rows) as the digits e_0..e_3 of the packed weight V = sum_i w_{4q+i} * 2^(iS).

    V's two's complement is the concatenation {e_3, e_2 mod 2^S, e_1 mod 2^S, e_0 mod 2^S} when
    e_0 = w_0 and e_i = w_i - 1 where e_(i-1) < 0 (the borrow of the field below), whatever S is
    as long as every digit fits S bits.  So a unit that reads digits builds V by wiring (sign
    extension and concatenation) instead of three wide adders per DSP."""
    quads = np.asarray(weight, dtype=np.int64).reshape(-1, QUAD_PES, weight.shape[-1])
    digits = np.empty_like(quads)
    borrow = np.zeros_like(quads[:, 0])
    for i in range(QUAD_PES):
        digits[:, i] = quads[:, i] - borrow
        borrow = (digits[:, i] < 0).astype(np.int64)
    return digits.reshape(weight.shape)


_PE_QUAD_CACHE: dict[tuple, tuple] = {}


def pe_quad_config(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """(S, chain) when PEs 4q..4q+3 can share one DSP for one vector (einhls_linear PACK = 4,
    schedule ``pe_pack`` 4), else (0, 1).

    The DSP computes (w[4q+3] * 2^(3S) + w[4q+2] * 2^(2S) + w[4q+1] * 2^S + w[4q]) * x + C with
    C = 2^(S-1) + 2^(2S-1) + 2^(3S-1) (half of each of the three low fields), and with chain 2 a
    second DSP adds the packed product of the next input slot.  The three low fields hold their
    PE's sum exactly (none borrows from the next) when every sum of ``chain`` products w * x of
    PEs 4q, 4q+1 and 4q+2 lies in [-2^(S-1), 2^(S-1)): S is the smallest such width over the
    layer's actual weights and the input range; the top field (PE 4q+3) is P >>> 3S.  The packed
    weight V of every quad of the layer (exact, from the weights: not a bound from W_BITS) must fit
    the DSP's wide port (DSP_PREADDER_BITS, signed) and x its 18-bit port; the ROM holds V's digits
    (quad_digits), which must fit W_BITS each so the word layout is the unpacked one.  Dense layers
    with a PE that is a multiple of four, one token per fold (token_pack 1), <= 4-bit operands
    (wider ones are DSP products already, and an int8 field needs 15 bits), DSP boards only."""
    if s.token_pack != 1 or s.pe < QUAD_PES or s.pe % QUAD_PES or dsp_kind not in DSP_PREADDER_BITS:
        return 0, 1
    if not lut_multipliers(op) or is_sparse(op):
        return 0, 1
    # with PE a multiple of four, quad q is rows 4q..4q+3 of the layer at every such PE, and with an
    # even SIMD a chain pairs columns (2c, 2c+1): the proof is the same for all those shapes
    key = (id(op.weight), op.in_type, s.simd if s.simd % 2 else 0, dsp_kind)
    return _remembered(_PE_QUAD_CACHE, key, op, lambda: pe_quad_config_uncached(op, s, dsp_kind))


def built_pe_quads(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """(S, chain) of the PE quads the emitters build for ``s`` ((0, 1) for pe_pack 1); an
    EinhlsError naming the node where ``s`` asks for quads the proof rejects, or another pe_pack."""
    if s.pe_pack == 1:
        return 0, 1
    if s.pe_pack != QUAD_PES:
        raise EinhlsError(f"pe_pack {s.pe_pack} is not 1 or {QUAD_PES}", node=op.name)
    config = pe_quad_config(op, s, dsp_kind)
    if not config[0]:
        raise EinhlsError(
            f"PE quads (four PEs' products per DSP, (w3 * 2^3S + w2 * 2^2S + w1 * 2^S + w0) * x) are not "
            f"exact or do not fit a {dsp_kind} for this layer's weight and input ranges at SIMD {s.simd} x "
            f"PE {s.pe} (dense layers of <= {LUT_MULT_MAX_BITS}-bit operands, one token a fold, PE a "
            f"multiple of 4)", node=op.name)
    return config


def pe_quad_config_uncached(op: Linear, s: OpSchedule, dsp_kind: str) -> tuple[int, int]:
    """pe_quad_config's proof, without the cache."""
    w_bits = weight_bits(op)
    x_bits = op.in_type.bits + (0 if op.in_type.signed else 1)
    if x_bits > DSP_B_BITS:
        return 0, 1
    kf = -(-op.in_size // s.simd)
    rows = -(-op.out_size // QUAD_PES) * QUAD_PES
    weight = np.zeros((rows, kf * s.simd), dtype=np.int64)
    weight[:op.out_size, :op.in_size] = op.weight
    digits = quad_digits(weight)
    # the digits take the weights' slots: they must fit the declared width as signed numbers
    # (the RTL widens an unsigned type by a bit, the HLS kernel does not)
    digit_bits = op.weight_type.bits
    if digits.min(initial=0) < -(1 << (digit_bits - 1)) or digits.max(initial=0) >= 1 << (digit_bits - 1):
        return 0, 1
    quads = weight.reshape(-1, QUAD_PES, weight.shape[1])
    low = quads[:, :QUAD_PES - 1].reshape(-1, weight.shape[1])
    wide = DSP_PREADDER_BITS[dsp_kind]
    for chain in (2, 1):
        shift = max(w_bits, _chain_field_bits(low, op, kf, s.simd, chain))
        packed = sum(quads[:, i] << (i * shift) for i in range(QUAD_PES))
        if -(1 << (wide - 1)) <= int(packed.min(initial=0)) and int(packed.max(initial=0)) < 1 << (wide - 1):
            return shift, chain
    return 0, 1
