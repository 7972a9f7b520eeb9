"""The IR ``Butterfly`` op: a chain of butterfly stages, each requantized, as one op.

Semantics (integer codes in, integer codes out; ``docs/hardware.md``, "Butterfly unit"):

* The input vector of ``in_size`` = K codes is zero padded to ``n`` (a power of two) and copied
  ``stacks`` times: a working vector of NT = stacks * n elements, element e = stack * n + local.
  (Padded elements never matter: their stage-0 twiddles are zero.)
* Stage s with stride st = ``strides[s]`` (a power of two below n) pairs element
  e0 = a * 2st + b with e1 = e0 + st; pair q = a * st + b (q < NT/2) computes, on raw codes,

      acc[e_j] = sum_i twiddle[s, q, i, j] * x[e_i] + bias[s, e_j]        (i, j in {0, 1})
      x'[e_j]  = clamp(rne(acc * M_s, shift_s) + zp_s, lo_s, hi_s)        (the einhls rule)

  ``twiddle[s, q, i, j]`` is the einsum's T[a, i, j, b] ("...aib,aijb->...ajb" on x reshaped to
  (NT/(2 st), 2, st)); ``bias[s]`` is in the stage's accumulator units and carries the stage
  input's zero point (-zp * sum_i t[i, j]), the offsets of a preceding constant Add and, in the
  last stage, the layer bias.  A stage without a quantizer after it keeps its exact accumulator
  (M = 1, shift 0, its type as wide as the computed range).
* The output is the first ``out_size`` = M elements of the last stage.

Accumulator and exact stage widths are computed from the actual twiddles by interval arithmetic
per element, which is exact for a butterfly (the two inputs of a pair depend on disjoint inputs)
and safe otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, apply_requant, register_op
from .requant import RequantParams
from .types import QType, bits_for_range


MAX_EXACT_BITS = 48     # the widest exact stage (QType's limit; the HLS unit keeps constants in 64 bits)
MAX_N = 1 << 16         # the units' index arithmetic (and the stage ROM's 5-bit stride field) allow this


def is_pow2(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


@dataclass
class Butterfly(Op):
    """A butterfly layer: ``len(strides)`` stages over stacks * n elements (see module docstring)."""
    n: int = 0
    stacks: int = 1
    strides: tuple[int, ...] = ()
    twiddle: np.ndarray = field(default=None, repr=False)   # [L, NT/2, 2, 2] int64 codes, zp removed
    bias: np.ndarray = field(default=None, repr=False)      # [L, NT] int64, accumulator units
    twiddle_type: QType = None                              # holds every twiddle code
    stage_types: tuple[QType, ...] = ()                     # output of each stage (last: out_type)
    acc_types: tuple[QType, ...] = ()                       # exact accumulator of each stage
    requants: tuple[RequantParams, ...] = ()
    kind: ClassVar[str] = "butterfly"

    @property
    def total(self) -> int:
        """NT = stacks * n, the working vector's length."""
        return self.n * self.stacks

    @property
    def stages(self) -> int:
        return len(self.strides)

    def stage_in_type(self, s: int) -> QType:
        return self.in_type if s == 0 else self.stage_types[s - 1]

    # what reports read from Linear ops, for the widest stage
    @property
    def weight_type(self) -> QType:
        return self.twiddle_type

    @property
    def acc_type(self) -> QType:
        return max(self.acc_types, key=lambda t: t.bits)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per frame: 4 per pair, NT/2 pairs per stage (2 NT L)."""
        return 2 * self.total * self.stages

    @property
    def dense_macs(self) -> int:
        """MACs of a dense layer of the same shape."""
        return self.in_size * self.out_size

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.int64)
        batch = x.shape[0]
        v = torch.zeros(batch, self.n, dtype=torch.int64)
        v[:, :self.in_size] = x
        v = v.repeat(1, self.stacks)
        nt = self.total
        for s, st in enumerate(self.strides):
            t = torch.as_tensor(self.twiddle[s], dtype=torch.int64)           # [NT/2, 2, 2]
            pairs = v.view(batch, nt // (2 * st), 2, st)
            x0 = pairs[:, :, 0, :].reshape(batch, nt // 2)                     # pair q = a * st + b
            x1 = pairs[:, :, 1, :].reshape(batch, nt // 2)
            y0 = x0 * t[:, 0, 0] + x1 * t[:, 1, 0]
            y1 = x0 * t[:, 0, 1] + x1 * t[:, 1, 1]
            acc = torch.stack([y0.view(batch, -1, st), y1.view(batch, -1, st)], dim=2).reshape(batch, nt)
            acc = acc + torch.as_tensor(self.bias[s], dtype=torch.int64)
            v = apply_requant(acc, self.requants[s])
        return v[:, :self.out_size]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"twiddle": self.twiddle.astype(np.int64), "bias": self.bias.astype(np.int64)}

    def params_json(self) -> dict:
        return {"n": self.n, "stacks": self.stacks, "strides": list(self.strides),
                "twiddle_type": self.twiddle_type.to_json(),
                "stage_types": [t.to_json() for t in self.stage_types],
                "acc_types": [t.to_json() for t in self.acc_types],
                "requants": [r.to_json() for r in self.requants]}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Butterfly":
        name = d["name"]
        return cls(**common, n=d["n"], stacks=d["stacks"], strides=tuple(d["strides"]),
                   twiddle=arrays[f"{name}.twiddle"], bias=arrays[f"{name}.bias"],
                   twiddle_type=QType.from_json(d["twiddle_type"]),
                   stage_types=tuple(QType.from_json(t) for t in d["stage_types"]),
                   acc_types=tuple(QType.from_json(t) for t in d["acc_types"]),
                   requants=tuple(RequantParams.from_json(r) for r in d["requants"]))


register_op(Butterfly)


# --- pair geometry ---------------------------------------------------------------------------

def pair_elements(total: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(e0, e1) of every pair q = a * stride + b of a stage: e0 = a * 2 stride + b, e1 = e0 + stride."""
    q = np.arange(total // 2, dtype=np.int64)
    e0 = (q // stride) * 2 * stride + q % stride
    return e0, e0 + stride


def dense_stage(twiddle: np.ndarray, total: int, stride: int) -> np.ndarray:
    """One stage's twiddles [NT/2, 2, 2] as the dense NT x NT matrix y = D x (int64)."""
    e0, e1 = pair_elements(total, stride)
    d = np.zeros((total, total), dtype=np.int64)
    for i, ei in enumerate((e0, e1)):
        for j, ej in enumerate((e0, e1)):
            d[ej, ei] = twiddle[:, i, j]
    return d


# --- construction ----------------------------------------------------------------------------

def check_geometry(n: int, stacks: int, strides, in_size: int, out_size: int, twiddle_shape) -> None:
    if not is_pow2(n) or not 2 <= n <= MAX_N:
        raise ValueError(f"butterfly size {n} must be a power of two in 2..{MAX_N}")
    if stacks < 1:
        raise ValueError("a butterfly needs at least one stack")
    if not strides:
        raise ValueError("a butterfly needs at least one stage")
    for st in strides:
        if not is_pow2(st) or st >= n:
            raise ValueError(f"stride {st} must be a power of two below the butterfly size {n}")
    if not 1 <= in_size <= n:
        raise ValueError(f"input size {in_size} must be in 1..{n} (zero padded to {n})")
    if not 1 <= out_size <= n * stacks:
        raise ValueError(f"output size {out_size} must be in 1..{n * stacks} ({stacks} stacks of {n})")
    want = (len(strides), n * stacks // 2, 2, 2)
    if tuple(twiddle_shape) != want:
        raise ValueError(f"twiddles have shape {tuple(twiddle_shape)}, expected {want}")


def make_butterfly(name: str, source: str, n: int, stacks: int, strides, twiddle: np.ndarray,
                   twiddle_scales, in_type: QType, in_size: int, out_size: int,
                   stage_types: list[QType | None], out_type: QType | None,
                   bias: np.ndarray | None = None, in_offset: np.ndarray | None = None,
                   relu: bool = False) -> Butterfly:
    """A Butterfly op from integer twiddle codes (zero point removed) and the quantizers.

    ``twiddle`` [L, NT/2, 2, 2] codes with real value ``twiddle_scales[s] * code``; ``stage_types``
    (L - 1 entries) the quantizer after each inner stage, None for an exact stage; ``out_type``
    the output quantizer (None: the exact accumulator of the last stage).  ``bias`` [out_size]
    real values added after the last stage (rounded to its accumulator units, half to even);
    ``in_offset`` [in_size] integer offsets on the input (a constant Add before the layer,
    in input steps); ``relu`` is fused into the last stage's clamp.
    """
    from .build import output_requant   # build imports graph, which imports this module

    strides = tuple(int(st) for st in strides)
    twiddle = np.asarray(twiddle, dtype=np.int64).copy()
    check_geometry(n, stacks, strides, in_size, out_size, twiddle.shape)
    stages, total = len(strides), n * stacks
    if len(stage_types) != stages - 1:
        raise ValueError(f"{stages} stages need {stages - 1} inner stage types, got {len(stage_types)}")
    scales = np.broadcast_to(np.asarray(twiddle_scales, dtype=np.float64), (stages,))
    if np.any(scales <= 0):
        raise ValueError("twiddle scales must be positive")

    # stage 0 reads padded elements: their twiddles are zero, so their value never matters
    local = np.arange(total) % n
    e0, e1 = pair_elements(total, strides[0])
    for i, ei in enumerate((e0, e1)):
        twiddle[0, local[ei] >= in_size, i, :] = 0
    offset = np.zeros(total, dtype=np.int64)
    if in_offset is not None:
        off = np.broadcast_to(np.asarray(in_offset, dtype=np.int64), (in_size,))
        offset = np.where(local < in_size, off[np.minimum(local, in_size - 1)], 0)

    t_lo, t_hi = int(min(twiddle.min(), 0)), int(max(twiddle.max(), 0))
    twiddle_type = QType(signed=True, bits=max(bits_for_range(min(t_lo, -1), t_hi), 2))
    lo = np.where(local < in_size, in_type.min, 0).astype(object)   # raw code range of each element
    hi = np.where(local < in_size, in_type.max, 0).astype(object)
    t_in, scale_in = in_type, in_type.scale
    biases, out_types, acc_types, requants = [], [], [], []
    for s, st in enumerate(strides):
        e0, e1 = pair_elements(total, st)
        t = twiddle[s].astype(object)
        b = np.zeros(total, dtype=object)
        for j, ej in enumerate((e0, e1)):
            # raw codes: x - zp (+ offset on the input) = code + (offset - zp)
            shift = (offset if s == 0 else np.zeros(total, dtype=np.int64)) - t_in.zero_point
            b[ej] += t[:, 0, j] * shift[e0].astype(object) + t[:, 1, j] * shift[e1].astype(object)
        acc_scale = float(scale_in * scales[s])
        last = s == stages - 1
        if last and bias is not None:
            real = np.zeros(total)
            real[:out_size] = np.broadcast_to(np.asarray(bias, dtype=np.float64), (out_size,))
            b += np.rint(real / acc_scale).astype(np.int64).astype(object)
        a_lo, a_hi = b.copy(), b.copy()
        for j, ej in enumerate((e0, e1)):
            for i, ei in enumerate((e0, e1)):
                c = t[:, i, j]
                a_lo[ej] += np.minimum(c * lo[ei], c * hi[ei])
                a_hi[ej] += np.maximum(c * lo[ei], c * hi[ei])
        acc_lo, acc_hi = int(min(a_lo.min(), 0)), int(max(a_hi.max(), 0))
        if bits_for_range(acc_lo, acc_hi) > MAX_EXACT_BITS:
            raise ValueError(f"stage {s}'s exact accumulator needs {bits_for_range(acc_lo, acc_hi)} bits (more than "
                             f"{MAX_EXACT_BITS}): quantize the activations between stages "
                             "(QuantizeLinear/DequantizeLinear or Quant)")
        acc_type = QType(signed=True, bits=max(bits_for_range(acc_lo, acc_hi), 2), scale=acc_scale)
        want = out_type if last else stage_types[s]
        if want is None:
            keep = slice(0, out_size) if last else slice(None)
            r_lo, r_hi = int(a_lo[keep].min()), int(a_hi[keep].max())
            if relu and last:
                r_lo, r_hi = max(r_lo, 0), max(r_hi, 0)
            stage_type = QType(signed=r_lo < 0, bits=bits_for_range(r_lo, r_hi), scale=acc_scale)
            rq = RequantParams((1,), 0, 0, r_lo, r_hi)
            lo, hi = a_lo, a_hi
        else:
            stage_type = want
            rq = output_requant(acc_scale / want.scale, want, relu and last, acc_type.bits)
            lo = np.full(total, rq.lo, dtype=object)
            hi = np.full(total, rq.hi, dtype=object)
        biases.append(np.asarray(b, dtype=np.int64))
        out_types.append(stage_type)
        acc_types.append(acc_type)
        requants.append(rq)
        t_in, scale_in = stage_type, stage_type.scale
    return Butterfly(name=name, source=source, in_type=in_type, out_type=out_types[-1],
                     in_size=in_size, out_size=out_size, n=n, stacks=stacks, strides=strides,
                     twiddle=twiddle, bias=np.stack(biases), twiddle_type=twiddle_type,
                     stage_types=tuple(out_types), acc_types=tuple(acc_types), requants=tuple(requants))


def standard_strides(n: int, increasing: bool = True, nblocks: int = 1) -> tuple[int, ...]:
    """1, 2, 4, ..., n/2 (or decreasing), repeated for ``nblocks`` butterfly matrices."""
    strides = [1 << s for s in range(int(np.log2(n)))]
    return tuple((strides if increasing else strides[::-1]) * nblocks)


def identity_twiddles(total: int, stages: int, one: int = 1) -> np.ndarray:
    t = np.zeros((stages, total // 2, 2, 2), dtype=np.int64)
    t[:, :, 0, 0] = one
    t[:, :, 1, 1] = one
    return t


def hadamard_twiddles(total: int, stages: int) -> np.ndarray:
    """[[1, 1], [1, -1]] in every pair: with strides 1, 2, ..., n/2 the product is Sylvester's H_n."""
    t = np.ones((stages, total // 2, 2, 2), dtype=np.int64)
    t[:, :, 1, 1] = -1
    return t


def sylvester_hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1), dtype=np.int64)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h
