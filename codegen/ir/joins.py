"""Ops that join, split and copy token streams: the graph part of the IR.

* :class:`Add` - the residual connection: two activations of any scales and zero points,
  ``y = clamp(rne(Ma * (a - za) + Mb * (b - zb), shift) + zo, lo, hi)``: each input rescaled by one
  integer multiplier, one shared shift and one rounding (the einhls rule of
  :mod:`codegen.ir.requant`, with two products summed before the shift).
* :class:`Mul` - elementwise product of two activations (gates):
  ``y = clamp(rne((a - za) * (b - zb) * M, shift) + zo, lo, hi)``.
* :class:`Concat` - the features of its inputs, one after the other, token by token; every input
  has the output's type (the front end requantizes where they differ).
* :class:`Slice` - features ``[start, stop)`` of each token (``Split`` is several slices).
* :class:`Fork` - copies one stream to ``copies`` consumers (hardware needs one; the reference is
  the identity).  The pass :func:`codegen.passes.graph.insert_forks` makes them explicit.

All of them work token by token; sizes are features per token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, register_op
from .requant import multiplier_and_shift, multiplier_bits_for, rne_shift
from .types import QType, bits_for_range


@dataclass(frozen=True)
class JoinRequant:
    """Multipliers (one per input), one shift, output zero point and clamp bounds."""
    multipliers: tuple[int, ...]
    shift: int
    zero_point: int
    lo: int
    hi: int

    @property
    def multiplier_bits(self) -> int:
        return max(max(self.multipliers).bit_length(), 1)

    def to_json(self) -> dict:
        return {"multipliers": list(self.multipliers), "shift": self.shift, "zero_point": self.zero_point,
                "lo": self.lo, "hi": self.hi}

    @staticmethod
    def from_json(d: dict) -> "JoinRequant":
        return JoinRequant(tuple(d["multipliers"]), d["shift"], d["zero_point"], d["lo"], d["hi"])

    def apply(self, value: torch.Tensor) -> torch.Tensor:
        return torch.clamp(rne_shift(value, self.shift) + self.zero_point, self.lo, self.hi)


def _centered_range(t: QType) -> tuple[int, int]:
    return t.min - t.zero_point, t.max - t.zero_point


@dataclass
class _TwoStreams(Op):
    """An elementwise op of two streams of the same features (``in_type`` is a's type)."""
    in_type_b: QType = None
    rq: JoinRequant = None
    arity: ClassVar[int] = 2

    @property
    def input_types(self) -> tuple[QType, ...]:
        return (self.in_type, self.in_type_b)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return (self.in_size, self.in_size)

    def centered(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a.to(torch.int64) - self.in_type.zero_point, b.to(torch.int64) - self.in_type_b.zero_point

    def params_json(self) -> dict:
        return {"in_type_b": self.in_type_b.to_json(), "rq": self.rq.to_json()}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "_TwoStreams":
        return cls(**common, in_type_b=QType.from_json(d["in_type_b"]), rq=JoinRequant.from_json(d["rq"]))


@register_op
@dataclass
class Add(_TwoStreams):
    """Residual connection ``a + b`` (see module docstring)."""
    kind: ClassVar[str] = "add"

    @property
    def value_range(self) -> tuple[int, int]:
        """Range of Ma * (a - za) + Mb * (b - zb) before the shift."""
        (alo, ahi), (blo, bhi) = _centered_range(self.in_type), _centered_range(self.in_type_b)
        ma, mb = self.rq.multipliers
        return ma * alo + mb * blo, ma * ahi + mb * bhi

    def reference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ma, mb = self.rq.multipliers
        a, b = self.centered(a, b)
        return self.rq.apply(a * ma + b * mb)


@register_op
@dataclass
class Mul(_TwoStreams):
    """Elementwise product of two activations (see module docstring)."""
    kind: ClassVar[str] = "mul"

    @property
    def value_range(self) -> tuple[int, int]:
        """Range of (a - za) * (b - zb) * M before the shift."""
        (alo, ahi), (blo, bhi) = _centered_range(self.in_type), _centered_range(self.in_type_b)
        products = [x * y for x in (alo, ahi) for y in (blo, bhi)]
        m = self.rq.multipliers[0]
        return min(products) * m, max(products) * m

    def reference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = self.centered(a, b)
        return self.rq.apply(a * b * self.rq.multipliers[0])


@register_op
@dataclass
class Concat(Op):
    """Features of the inputs one after the other, per token; ``sizes`` per input."""
    sizes: tuple[int, ...] = ()
    kind: ClassVar[str] = "concat"

    @property
    def arity(self) -> int:  # type: ignore[override]
        return len(self.sizes)

    @property
    def input_types(self) -> tuple[QType, ...]:
        return (self.in_type,) * len(self.sizes)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return self.sizes

    def reference(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.to(torch.int64) for x in xs], dim=-1)

    def params_json(self) -> dict:
        return {"sizes": list(self.sizes)}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Concat":
        return cls(**common, sizes=tuple(d["sizes"]))


@register_op
@dataclass
class Slice(Op):
    """Features [start, start + out_size) of every token."""
    start: int = 0
    kind: ClassVar[str] = "slice"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.start + self.out_size].to(torch.int64)

    def params_json(self) -> dict:
        return {"start": self.start}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Slice":
        return cls(**common, start=d["start"])


@register_op
@dataclass
class Fork(Op):
    """One stream copied to ``copies`` consumers (outputs ``name:0`` .. ``name:copies-1``).
    ``holds_sequence``: its input waits in a FIFO of a sequence (codegen/passes/input_delay.py: the
    one delayed copy of an attention layer's input that feeds the queries and the residual);
    numerically still the identity."""
    copies: int = 2
    holds_sequence: bool = False
    kind: ClassVar[str] = "fork"

    @property
    def n_outputs(self) -> int:  # type: ignore[override]
        return self.copies

    def reference(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(x for _ in range(self.copies))

    def params_json(self) -> dict:
        return {"copies": self.copies, **({"holds_sequence": True} if self.holds_sequence else {})}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Fork":
        return cls(**common, copies=d["copies"], holds_sequence=bool(d.get("holds_sequence", False)))


# --- constructors: every integer parameter derived from the scales in one place ---------------

def _join_requant(real: list[float], value_range: tuple[int, int], out_type: QType,
                  relu: bool) -> JoinRequant:
    lo_v, hi_v = value_range
    value_bits = bits_for_range(min(lo_v, -1), max(hi_v, 1))
    mults, shift = multiplier_and_shift(np.asarray(real), multiplier_bits_for(out_type.bits, value_bits))
    if len(mults) == 1:
        mults = mults * len(real)
    lo = max(out_type.min, out_type.zero_point) if relu else out_type.min
    return JoinRequant(tuple(int(m) for m in mults), shift, out_type.zero_point, lo, out_type.max)


def make_add(name: str, source: str, a_type: QType, b_type: QType, out_type: QType, size: int,
             relu: bool = False) -> Add:
    """a + b requantized to out_type; each input's ratio of scales becomes an integer multiplier."""
    (alo, ahi), (blo, bhi) = _centered_range(a_type), _centered_range(b_type)
    bound = max(abs(alo), abs(ahi)) + max(abs(blo), abs(bhi))
    rq = _join_requant([a_type.scale / out_type.scale, b_type.scale / out_type.scale], (-bound, bound),
                       out_type, relu)
    return Add(name=name, source=source, in_type=a_type, in_type_b=b_type, out_type=out_type,
               in_size=size, out_size=size, rq=rq)


def make_mul(name: str, source: str, a_type: QType, b_type: QType, out_type: QType, size: int,
             relu: bool = False) -> Mul:
    """a * b requantized to out_type: one multiplier for s_a * s_b / s_out."""
    (alo, ahi), (blo, bhi) = _centered_range(a_type), _centered_range(b_type)
    products = [x * y for x in (alo, ahi) for y in (blo, bhi)]
    rq = _join_requant([a_type.scale * b_type.scale / out_type.scale], (min(products), max(products)),
                       out_type, relu)
    return Mul(name=name, source=source, in_type=a_type, in_type_b=b_type, out_type=out_type,
               in_size=size, out_size=size, rq=rq)


def make_concat(name: str, source: str, qtype: QType, sizes: list[int]) -> Concat:
    return Concat(name=name, source=source, in_type=qtype, out_type=qtype, in_size=sizes[0],
                  out_size=sum(sizes), sizes=tuple(sizes))


def make_slice(name: str, source: str, qtype: QType, in_size: int, start: int, stop: int) -> Slice:
    if not 0 <= start < stop <= in_size:
        raise ValueError(f"slice [{start}, {stop}) outside the {in_size} features")
    return Slice(name=name, source=source, in_type=qtype, out_type=qtype, in_size=in_size,
                 out_size=stop - start, start=start)


def make_fork(name: str, source: str, qtype: QType, size: int, copies: int) -> Fork:
    return Fork(name=name, source=source, in_type=qtype, out_type=qtype, in_size=size, out_size=size,
                copies=copies)
