"""Integer-only nonlinear units of a Transformer encoder: Softmax, LayerNorm and GELU.

Each unit works on tokens: a row of ``size`` integer codes (one token's features, or one row of
attention scores), and is given as a small frozen dataclass of integer constants derived from the
float scales by a constructor function (``make_softmax``, ``make_layernorm``, ``make_gelu``).
``reference(x)`` is the bit-exact definition that the HLS C++ (hls_kernels/einhls_*.h) and the
Verilog (rtl_kernels/einhls_*.v) implement; it takes and returns int64 tensors of shape [B, size].

Only three integer operations appear besides + - * and comparisons: ``>>`` (floor, arithmetic),
one integer division per token (a reciprocal), and one integer square root per token (floor).
Every output goes through the einhls requantization rule (codegen/ir/requant.py: round half to
even, zero point, clamp).

Softmax (I-BERT's i-exp in base 2).  With d = max(x) - x >= 0 and S the input scale,
exp(-S d) = 2^-u, u = S log2(e) d = z + r (integer z, fraction r in [0, 1)):

    u  = (d * EXP_MULT) >> EXP_SHIFT                u with F fractional bits
    z  = u >> F,  r = u mod 2^F
    e0 = ((A * ((B - r)^2 >> F)) >> F) + C0          2^-r ~ 0.17223 (r - 1.9521)^2 + 0.344
    e  = e0 >> min(z, F + 1)                          (0 once 2^-z is below one step)
    y  = clamp(rne(e * (NUM // sum(e)), K) + zp, lo, hi),  NUM = round(2^K / S_out)

The polynomial is I-BERT's exp(p) ~ 0.3585 (p + 1.353)^2 + 0.344 on p = -r ln2 in (-ln2, 0].

LayerNorm.  With the row's integer sums s1 = sum x and s2 = sum x^2 (zero points cancel):

    dev = C x - s1                                   C (x - mean), exact
    V   = (C s2 - s1^2 + EPS_Q) << 2 SQ              C^2 (var + eps / S^2) 4^SQ, exact
    r   = max(isqrt(V), 1),  recip = 2^RB // r       one square root and one division per token
    n   = (dev * recip) >> (RB - NF - SQ)            (x - mean) / sqrt(var + eps), NF fraction bits

SQ extra bits (as many as 62-bit arithmetic allows, at most 16) give the square root SQ fraction
bits, so that rows of small variance (V of a few hundred) are normalised as accurately as others.
    y   = requant(n * g[c] + b[c])                   gamma and beta as integers g, b

GELU (I-BERT's i-GELU, erf form): GELU(x) = x/2 (1 + L(x / sqrt 2)),
L(q) = sgn(q) (1 - 0.2888 (min(|q|, 1.769) - 1.769)^2):

    xr = x - zp_in,  q = (xr * Q_MULT) >> Q_SHIFT    x / sqrt 2 with F fractional bits
    t  = B - min(|q|, B)
    L  = sgn(q) (2^F - ((A * ((t * t) >> F)) >> F))
    y  = requant(xr * (2^F + L))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, register_op
from .requant import RequantParams, multiplier_and_shift, multiplier_bits_for, rne_shift
from .types import QType, bits_for_range

INT64_SAFE_BITS = 62   # every intermediate of a reference must stay below 2**62 in magnitude

# --- Softmax constants --------------------------------------------------------------------------
SOFTMAX_FRAC_BITS = 15        # F: fraction bits of u, r and of the exponentials
SOFTMAX_EXP_MULT_BITS = 18    # significant bits of EXP_MULT (scale * log2(e))
SOFTMAX_DIV_EXTRA_BITS = 10   # K = F + this: the reciprocal's floor moves y by <= 2^-9 step
LOG2E = 1.0 / math.log(2.0)
# I-BERT: exp(p) ~ 0.3585 (p + 1.353)^2 + 0.344 for p in (-ln2, 0]; with p = -r ln2 this is
# 2^-r ~ 0.3585 ln2^2 (r - 1.353 / ln2)^2 + 0.344
IBERT_EXP_A, IBERT_EXP_B, IBERT_EXP_C = 0.3585, 1.353, 0.344

# --- LayerNorm constants ------------------------------------------------------------------------
LAYERNORM_NORM_FRAC_BITS = 12  # NF: fraction bits of the normalised value n, at least
LAYERNORM_GAMMA_BITS = 16      # gamma stored as signed 16-bit integers with one common scale
LAYERNORM_SQRT_FRAC_MAX = 16   # SQ: fraction bits of the square root, at most

# --- GELU constants -----------------------------------------------------------------------------
GELU_FRAC_BITS = 14            # F: fraction bits of q, t and L
GELU_Q_MULT_BITS = 18          # significant bits of Q_MULT (scale / sqrt 2)
IBERT_GELU_A, IBERT_GELU_B = 0.2888, 1.769   # I-BERT: a = -0.2888, b = -1.769


def _check_fits(what: str, magnitude: int) -> None:
    if int(magnitude).bit_length() > INT64_SAFE_BITS:
        raise ValueError(f"{what} needs {int(magnitude).bit_length()} bits, more than the "
                         f"{INT64_SAFE_BITS} the integer reference allows; use fewer input bits or features")


def _as_int64(x: torch.Tensor, size: int, in_type: QType, unit: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dtype != torch.int64:
        raise TypeError(f"{unit}: reference takes int64 codes, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != size:
        raise ValueError(f"{unit}: reference takes shape [B, {size}], got {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < in_type.min or int(x.max()) > in_type.max):
        raise ValueError(f"{unit}: input codes outside the {in_type.describe()} range")
    return x


def _clamp_zp(value: torch.Tensor, out_type: QType) -> torch.Tensor:
    return torch.clamp(value + out_type.zero_point, out_type.min, out_type.max)


def _requant(v: torch.Tensor, rq: RequantParams) -> torch.Tensor:
    y = rne_shift(v * rq.multiplier[0], rq.shift) + rq.zero_point
    return torch.clamp(y, rq.lo, rq.hi)


def isqrt_floor(v: torch.Tensor, bits: int) -> torch.Tensor:
    """floor(sqrt(v)) of non-negative int64 values below 2**bits, bit by bit (one result bit per
    step, ceil(bits / 2) steps): the restoring algorithm the hardware runs."""
    root = torch.zeros_like(v)
    rem = v.clone()
    for k in reversed(range((bits + 1) // 2)):
        trial = (root << (k + 1)) + (1 << (2 * k))   # (2 root + 2^k) 2^k: (root + 2^k)^2 - root^2
        take = rem >= trial
        rem = torch.where(take, rem - trial, rem)
        root = torch.where(take, root + (1 << k), root)
    return root


def _variance_bits(size: int, in_type: QType, eps_q: int) -> int:
    """Bits of C s2 - s1^2 + EPS_Q = C^2 var + EPS_Q, whose largest value is C^2 span^2 / 4."""
    span = in_type.max - in_type.min
    return max(1, (size * size * span * span // 4 + eps_q).bit_length())


def _qtype_json(t: QType) -> dict:
    return t.to_json()


# =============================================================================== Softmax

@dataclass(frozen=True)
class IntSoftmax:
    """Softmax over the last axis of [B, size] codes; unsigned output codes of ``out_type``."""
    size: int
    in_type: QType
    out_type: QType
    exp_mult: int
    exp_shift: int
    frac_bits: int       # F
    poly_a: int          # A = round(0.3585 ln2^2 2^F)
    poly_b: int          # B = round(1.353 / ln2 2^F)
    poly_c: int          # C0 = round(0.344 2^F)
    div_shift: int       # K
    numerator: int       # NUM = round(2^K / S_out)

    kind = "softmax"

    @property
    def exp_max(self) -> int:
        """e0 at r = 0, the largest exponential (the row maximum's)."""
        return ((self.poly_a * ((self.poly_b * self.poly_b) >> self.frac_bits)) >> self.frac_bits) + self.poly_c

    @property
    def z_max(self) -> int:
        return self.frac_bits + 1

    @property
    def diff_bits(self) -> int:
        """Bits of d = max - x (unsigned)."""
        return max(1, (self.in_type.max - self.in_type.min).bit_length())

    @property
    def sum_bits(self) -> int:
        return (self.size * self.exp_max).bit_length()

    @property
    def recip_bits(self) -> int:
        """Bits of NUM // sum; the sum is at least exp_max (the maximum's own exponential)."""
        return (self.numerator // self.exp_max).bit_length()

    def exponentials(self, x: torch.Tensor) -> torch.Tensor:
        d = x.max(dim=1, keepdim=True).values - x
        u = (d * self.exp_mult) >> self.exp_shift
        z = torch.clamp(u >> self.frac_bits, max=self.z_max)
        r = u & ((1 << self.frac_bits) - 1)
        s = self.poly_b - r
        e0 = ((self.poly_a * ((s * s) >> self.frac_bits)) >> self.frac_bits) + self.poly_c
        return e0 >> z

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_int64(x, self.size, self.in_type, "softmax")
        e = self.exponentials(x)
        recip = self.numerator // e.sum(dim=1, keepdim=True)
        return _clamp_zp(rne_shift(e * recip, self.div_shift), self.out_type)

    def float_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The float op on the dequantized input, in output steps (not rounded)."""
        real = (x.double() - self.in_type.zero_point) * self.in_type.scale
        return torch.softmax(real, dim=1) / self.out_type.scale + self.out_type.zero_point

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def to_json(self) -> dict:
        return {"kind": self.kind, "size": self.size, "in_type": _qtype_json(self.in_type),
                "out_type": _qtype_json(self.out_type), "exp_mult": self.exp_mult,
                "exp_shift": self.exp_shift, "frac_bits": self.frac_bits, "poly_a": self.poly_a,
                "poly_b": self.poly_b, "poly_c": self.poly_c, "div_shift": self.div_shift,
                "numerator": self.numerator}

    @staticmethod
    def from_json(d: dict, arrays: dict[str, np.ndarray] | None = None) -> "IntSoftmax":
        return IntSoftmax(d["size"], QType.from_json(d["in_type"]), QType.from_json(d["out_type"]),
                          d["exp_mult"], d["exp_shift"], d["frac_bits"], d["poly_a"], d["poly_b"],
                          d["poly_c"], d["div_shift"], d["numerator"])


def make_softmax(size: int, in_type: QType, out_type: QType | None = None) -> IntSoftmax:
    """Integer softmax of ``size`` codes of ``in_type`` (its zero point cancels) to ``out_type``
    (default uint8 with scale 1/256, which represents [0, 255/256])."""
    if out_type is None:
        out_type = QType(False, 8, 1.0 / 256)
    if size < 1:
        raise ValueError(f"softmax: size must be positive, got {size}")
    f = SOFTMAX_FRAC_BITS
    (exp_mult,), exp_shift = multiplier_and_shift(in_type.scale * LOG2E * 2.0 ** f, SOFTMAX_EXP_MULT_BITS)
    a = round(IBERT_EXP_A * math.log(2.0) ** 2 * 2 ** f)
    b = round(IBERT_EXP_B / math.log(2.0) * 2 ** f)
    c = round(IBERT_EXP_C * 2 ** f)
    k = f + SOFTMAX_DIV_EXTRA_BITS
    numerator = round(2.0 ** k / out_type.scale)
    if numerator < 1:
        raise ValueError(f"softmax: output scale {out_type.scale} is too coarse")
    op = IntSoftmax(size, in_type, out_type, exp_mult, exp_shift, f, a, b, c, k, numerator)
    _check_fits("softmax d * EXP_MULT", ((1 << op.diff_bits) - 1) * exp_mult)
    _check_fits("softmax sum of exponentials", size * op.exp_max)
    _check_fits("softmax e * reciprocal", op.exp_max * (numerator // op.exp_max))
    return op


# =============================================================================== LayerNorm

@dataclass(frozen=True)
class IntLayerNorm:
    """LayerNorm over the ``size`` features of each token, with per-feature gamma and beta."""
    size: int
    in_type: QType
    out_type: QType
    eps_q: int               # round(C^2 eps / S^2)
    recip_shift: int         # RB
    norm_frac: int           # NF
    sqrt_frac: int           # SQ
    gamma: tuple[int, ...]   # g[c], signed LAYERNORM_GAMMA_BITS-bit codes
    beta: tuple[int, ...]    # b[c], in the scale of n * g
    requant: RequantParams   # per tensor

    kind = "layernorm"

    @property
    def in_bits_signed(self) -> int:
        """Bits of a code as a signed number (unsigned codes get a zero sign bit)."""
        return self.in_type.bits + (0 if self.in_type.signed else 1)

    @property
    def var_bits(self) -> int:
        """Bits of V = (C s2 - s1^2 + EPS_Q) << 2 SQ (non-negative)."""
        return _variance_bits(self.size, self.in_type, self.eps_q) + 2 * self.sqrt_frac

    @property
    def root_bits(self) -> int:
        return (self.var_bits + 1) // 2

    @property
    def gamma_bits(self) -> int:
        return bits_for_range(min(min(self.gamma), -1), max(max(self.gamma), 0))   # signed

    @property
    def beta_bits(self) -> int:
        return bits_for_range(min(min(self.beta), -1), max(max(self.beta), 0))     # signed

    @property
    def norm_bits(self) -> int:
        """Bits of n (signed): |n| <= sqrt(C) 2^NF, plus rounding slack."""
        return (math.isqrt(self.size) + 1).bit_length() + self.norm_frac + 2

    @property
    def value_bits(self) -> int:
        """Bits of v = n g + b (signed)."""
        return max(self.norm_bits + self.gamma_bits, self.beta_bits) + 1

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        s1 = x.sum(dim=1, keepdim=True)
        s2 = (x * x).sum(dim=1, keepdim=True)
        v = (self.size * s2 - s1 * s1 + self.eps_q) << (2 * self.sqrt_frac)
        root = torch.clamp(isqrt_floor(v, self.var_bits), min=1)
        recip = (1 << self.recip_shift) // root
        dev = self.size * x - s1
        return (dev * recip) >> (self.recip_shift - self.norm_frac - self.sqrt_frac)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_int64(x, self.size, self.in_type, "layernorm")
        n = self.normalized(x)
        g = torch.tensor(self.gamma, dtype=torch.int64)
        b = torch.tensor(self.beta, dtype=torch.int64)
        return _requant(n * g + b, self.requant)

    def float_reference(self, x: torch.Tensor, gamma: np.ndarray, beta: np.ndarray, eps: float) -> torch.Tensor:
        real = (x.double() - self.in_type.zero_point) * self.in_type.scale
        y = torch.nn.functional.layer_norm(real, (self.size,), torch.as_tensor(gamma, dtype=torch.float64),
                                           torch.as_tensor(beta, dtype=torch.float64), eps)
        return y / self.out_type.scale + self.out_type.zero_point

    def arrays(self) -> dict[str, np.ndarray]:
        return {"gamma": np.asarray(self.gamma, dtype=np.int64), "beta": np.asarray(self.beta, dtype=np.int64)}

    def to_json(self) -> dict:
        return {"kind": self.kind, "size": self.size, "in_type": _qtype_json(self.in_type),
                "out_type": _qtype_json(self.out_type), "eps_q": self.eps_q,
                "recip_shift": self.recip_shift, "norm_frac": self.norm_frac,
                "sqrt_frac": self.sqrt_frac, "requant": self.requant.to_json()}

    @staticmethod
    def from_json(d: dict, arrays: dict[str, np.ndarray]) -> "IntLayerNorm":
        return IntLayerNorm(d["size"], QType.from_json(d["in_type"]), QType.from_json(d["out_type"]),
                            d["eps_q"], d["recip_shift"], d["norm_frac"], d["sqrt_frac"],
                            tuple(int(v) for v in arrays["gamma"]), tuple(int(v) for v in arrays["beta"]),
                            RequantParams.from_json(d["requant"]))


def make_layernorm(size: int, in_type: QType, out_type: QType, gamma: np.ndarray | None = None,
                   beta: np.ndarray | None = None, eps: float = 1e-5) -> IntLayerNorm:
    """Integer LayerNorm of ``size`` features (float gamma / beta, default 1 / 0)."""
    if size < 2:
        raise ValueError(f"layernorm: needs at least 2 features, got {size}")
    gamma = np.ones(size) if gamma is None else np.asarray(gamma, dtype=np.float64).reshape(-1)
    beta = np.zeros(size) if beta is None else np.asarray(beta, dtype=np.float64).reshape(-1)
    if gamma.shape != (size,) or beta.shape != (size,):
        raise ValueError(f"layernorm: gamma and beta must have {size} values")
    if not (np.all(np.isfinite(gamma)) and np.all(np.isfinite(beta)) and eps >= 0):
        raise ValueError("layernorm: gamma, beta and eps must be finite (eps >= 0)")
    top = float(np.abs(gamma).max())
    # n's last place, times the largest gamma, stays below 1/16 of an output step
    nf = max(LAYERNORM_NORM_FRAC_BITS, math.ceil(math.log2(top / out_type.scale)) + 4 if top > 0 else 0)
    gamma_scale = top / ((1 << (LAYERNORM_GAMMA_BITS - 1)) - 1) if top > 0 else 1.0
    g = tuple(int(v) for v in np.round(gamma / gamma_scale))
    b = tuple(int(v) for v in np.round(beta * 2.0 ** nf / gamma_scale))
    eps_q = int(round(size * size * eps / in_type.scale ** 2))
    plain_bits = _variance_bits(size, in_type, eps_q)
    _check_fits("layernorm variance", 1 << plain_bits)
    sq = max(0, min(LAYERNORM_SQRT_FRAC_MAX, (INT64_SAFE_BITS - plain_bits) // 2))
    root_max = math.isqrt((1 << (plain_bits + 2 * sq)) - 1) + 1
    # |dev| <= sqrt(C V) / 2^SQ, so the reciprocal's floor moves n by at most
    # sqrt(C) (r + 1) / 2^(RB - NF): a quarter of n's last place with RB as below
    recip_shift = nf + (root_max * (math.isqrt(size) + 1)).bit_length() + 2
    draft = IntLayerNorm(size, in_type, out_type, eps_q, recip_shift, nf, sq, g, b,
                         RequantParams((1,), 0, 0, 0, 0))
    mult, shift = multiplier_and_shift(gamma_scale * 2.0 ** -nf / out_type.scale,
                                       multiplier_bits_for(out_type.bits, draft.value_bits))
    rq = RequantParams(mult, shift, out_type.zero_point, out_type.min, out_type.max)
    op = IntLayerNorm(size, in_type, out_type, eps_q, recip_shift, nf, sq, g, b, rq)
    _check_fits("layernorm C * sum of squares", size * size * max(abs(in_type.min), in_type.max) ** 2 + eps_q)
    _check_fits("layernorm reciprocal", 1 << recip_shift)
    _check_fits("layernorm (x - mean) * reciprocal", 2 * (math.isqrt(size) + 1) << (recip_shift - sq))
    _check_fits("layernorm requant product", (1 << op.value_bits) * mult[0])
    return op


# =============================================================================== GELU

@dataclass(frozen=True)
class IntGelu:
    """Elementwise GELU (erf form) on [B, size] codes."""
    size: int
    in_type: QType
    out_type: QType
    q_mult: int
    q_shift: int
    frac_bits: int           # F
    poly_a: int              # A = round(0.2888 2^F)
    poly_b: int              # B = round(1.769 2^F)
    requant: RequantParams

    kind = "gelu"

    @property
    def centered_bits(self) -> int:
        """Bits of xr = x - zp_in (signed)."""
        zp = self.in_type.zero_point
        return bits_for_range(min(self.in_type.min - zp, -1), self.in_type.max - zp)

    @property
    def value_bits(self) -> int:
        """Bits of v = xr (2^F + L), |2^F + L| <= 2^(F+1)."""
        return self.centered_bits + self.frac_bits + 2

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_int64(x, self.size, self.in_type, "gelu")
        xr = x - self.in_type.zero_point
        q = (xr * self.q_mult) >> self.q_shift
        t = self.poly_b - torch.clamp(q.abs(), max=self.poly_b)
        mag = (1 << self.frac_bits) - ((self.poly_a * ((t * t) >> self.frac_bits)) >> self.frac_bits)
        return _requant(xr * ((1 << self.frac_bits) + torch.sign(q) * mag), self.requant)

    def float_reference(self, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
        real = (x.double() - self.in_type.zero_point) * self.in_type.scale
        return torch.nn.functional.gelu(real, approximate=approximate) / self.out_type.scale + self.out_type.zero_point

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def to_json(self) -> dict:
        return {"kind": self.kind, "size": self.size, "in_type": _qtype_json(self.in_type),
                "out_type": _qtype_json(self.out_type), "q_mult": self.q_mult, "q_shift": self.q_shift,
                "frac_bits": self.frac_bits, "poly_a": self.poly_a, "poly_b": self.poly_b,
                "requant": self.requant.to_json()}

    @staticmethod
    def from_json(d: dict, arrays: dict[str, np.ndarray] | None = None) -> "IntGelu":
        return IntGelu(d["size"], QType.from_json(d["in_type"]), QType.from_json(d["out_type"]),
                       d["q_mult"], d["q_shift"], d["frac_bits"], d["poly_a"], d["poly_b"],
                       RequantParams.from_json(d["requant"]))


def make_gelu(size: int, in_type: QType, out_type: QType) -> IntGelu:
    """Integer GELU of ``in_type`` codes to ``out_type`` codes (also serves the tanh form)."""
    f = GELU_FRAC_BITS
    (q_mult,), q_shift = multiplier_and_shift(in_type.scale / math.sqrt(2.0) * 2.0 ** f, GELU_Q_MULT_BITS)
    a = round(IBERT_GELU_A * 2 ** f)
    b = round(IBERT_GELU_B * 2 ** f)
    draft = IntGelu(size, in_type, out_type, q_mult, q_shift, f, a, b, RequantParams((1,), 0, 0, 0, 0))
    mult, shift = multiplier_and_shift(in_type.scale / (2.0 ** (f + 1) * out_type.scale),
                                       multiplier_bits_for(out_type.bits, draft.value_bits))
    rq = RequantParams(mult, shift, out_type.zero_point, out_type.min, out_type.max)
    op = IntGelu(size, in_type, out_type, q_mult, q_shift, f, a, b, rq)
    _check_fits("gelu x * Q_MULT", (1 << op.centered_bits) * q_mult)
    _check_fits("gelu requant product", (1 << op.value_bits) * mult[0])
    return op


NonlinearOp = IntSoftmax | IntLayerNorm | IntGelu
UNIT_CLASSES = {"softmax": IntSoftmax, "layernorm": IntLayerNorm, "gelu": IntGelu}


def nonlinear_from_json(d: dict, arrays: dict[str, np.ndarray] | None = None) -> NonlinearOp:
    if d.get("kind") not in UNIT_CLASSES:
        raise ValueError(f"unknown nonlinear unit kind {d.get('kind')!r}")
    return UNIT_CLASSES[d["kind"]].from_json(d, arrays or {})


# =============================================================================== graph ops
# The units above as ops of the dataflow graph (codegen.ir.graph): one token per call, the same
# constants for every token.  ``unit`` holds every integer constant; the op adds the wiring.

@dataclass
class NonlinearGraphOp(Op):
    """A Softmax / LayerNorm / GELU unit on each token's ``in_size`` features (same size out)."""
    unit: NonlinearOp = field(default=None, repr=False)
    unit_class: ClassVar[type] = None

    @property
    def rows(self) -> int:
        """Rows of ``unit.size`` codes per token (several for a softmax over attention heads)."""
        return self.in_size // self.unit.size

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.to(torch.int64).reshape(-1, self.unit.size)
        return self.unit.reference(rows).reshape(x.shape[0], self.out_size)

    def arrays(self) -> dict[str, np.ndarray]:
        return self.unit.arrays()

    def params_json(self) -> dict:
        return {"unit": self.unit.to_json()}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "NonlinearGraphOp":
        prefix = f"{d['name']}."
        own = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        return cls(**common, unit=cls.unit_class.from_json(d["unit"], own))


@register_op
@dataclass
class Softmax(NonlinearGraphOp):
    kind: ClassVar[str] = "softmax"
    unit_class: ClassVar[type] = IntSoftmax


@register_op
@dataclass
class LayerNorm(NonlinearGraphOp):
    kind: ClassVar[str] = "layernorm"
    unit_class: ClassVar[type] = IntLayerNorm


@register_op
@dataclass
class Gelu(NonlinearGraphOp):
    kind: ClassVar[str] = "gelu"
    unit_class: ClassVar[type] = IntGelu


GRAPH_OP_CLASSES: dict[str, type[NonlinearGraphOp]] = {"softmax": Softmax, "layernorm": LayerNorm, "gelu": Gelu}


def graph_op(name: str, source: str, unit: NonlinearOp, features: int | None = None) -> NonlinearGraphOp:
    """The graph op of a unit built by make_softmax / make_layernorm / make_gelu, on tokens of
    ``features`` codes (default: one row, ``unit.size``; a softmax over attention heads has
    heads x L codes per token, rows of L)."""
    features = unit.size if features is None else features
    if features % unit.size or (features != unit.size and unit.kind != "softmax"):
        raise ValueError(f"{unit.kind}: {features} features per token are not whole rows of {unit.size}")
    cls = GRAPH_OP_CLASSES[unit.kind]
    return cls(name=name, source=source, in_type=unit.in_type, out_type=unit.out_type,
               in_size=features, out_size=features, unit=unit)
