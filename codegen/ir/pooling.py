"""Mean pooling over the tokens of a sequence (sentence-transformers' pooling of an encoder).

:class:`TokenMean` reads L tokens of C features and writes one token of C features, the mean of
each feature over the sequence, requantized once (codegen/ir/requant.py):

    acc[c] = sum_t (x[t, c] - zp_in)                 exact, ACC bits
    y[c]   = clamp(rne(acc[c] * M, shift) + zp_out)  M / 2^shift ~ scale_in / (L scale_out)

A convolutional network's GlobalAveragePool is a window of all pixels and a Linear summing each
channel (codegen/frontend/conv.py); over the tokens of a MiniLM layer that Linear would hold an
L*C x C weight matrix (2.4 M weights at L = 16, C = 384) for what is one adder per lane, so the
tokens get this accumulator unit instead (docs/attention_mask.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, apply_requant, register_op
from .requant import RequantParams
from .types import QType, bits_for_range


@register_op
@dataclass
class TokenMean(Op):
    """The mean of every feature over each sequence of ``tokens`` tokens (see module docstring)."""
    tokens: int = 1
    acc_type: QType = None
    requant: RequantParams = None
    kind: ClassVar[str] = "tokenmean"

    def __post_init__(self) -> None:
        if self.tokens < 1 or self.in_size != self.out_size:
            raise ValueError(f"tokenmean: {self.tokens} tokens of {self.in_size} -> {self.out_size} features")

    def out_tokens(self, in_tokens: int) -> int:
        if in_tokens % self.tokens:
            raise ValueError(f"tokenmean: {in_tokens} tokens are not whole sequences of {self.tokens}")
        return in_tokens // self.tokens

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if rows % self.tokens:
            raise ValueError(f"tokenmean: {rows} rows are not whole sequences of {self.tokens} tokens")
        centered = x.to(torch.int64) - self.in_type.zero_point
        return centered.reshape(rows // self.tokens, self.tokens, self.in_size).sum(dim=1)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return apply_requant(self.accumulate(x), self.requant)

    def params_json(self) -> dict:
        return {"tokens": self.tokens, "acc_type": self.acc_type.to_json(), "requant": self.requant.to_json()}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "TokenMean":
        return cls(**common, tokens=d["tokens"], acc_type=QType.from_json(d["acc_type"]),
                   requant=RequantParams.from_json(d["requant"]))


def make_token_mean(name: str, source: str, in_type: QType, size: int, tokens: int,
                    out_type: QType | None = None, inputs: tuple[str, ...] = ()) -> TokenMean:
    """The mean over ``tokens`` tokens of ``size`` features of ``in_type``, to ``out_type`` (default:
    the input's type, whose range holds every mean)."""
    from .build import output_requant
    out_type = in_type if out_type is None else out_type
    lo, hi = tokens * (in_type.min - in_type.zero_point), tokens * (in_type.max - in_type.zero_point)
    acc_type = QType(True, max(bits_for_range(min(lo, -1), max(hi, 1)), 2))
    requant = output_requant(in_type.scale / (tokens * out_type.scale), out_type, False, acc_type.bits)
    return TokenMean(name=name, source=source, in_type=in_type, out_type=out_type, in_size=size, out_size=size,
                     inputs=tuple(inputs), tokens=tokens, acc_type=acc_type, requant=requant)


@register_op
@dataclass
class MaskedTokenMean(Op):
    """The mean over the real tokens of each sequence (sentence-transformers' pooling with padding):

        n      = max(1, number of tokens t with mask[t] != 0)
        acc[c] = sum over those t of (x[t, c] - zp_in)                exact
        y[c]   = clamp(rne(acc[c] * M[n - 1], shift) + zp_out)      M[n-1] / 2^shift ~ s_in / (n s_out)

    Input 0: ``tokens`` tokens of ``in_size`` codes; input 1: the mask, one code a token.  One
    multiplier per count n = 1 .. tokens (a table of ``tokens`` constants), one shift for all."""
    in_type_b: QType = None
    tokens: int = 1
    acc_type: QType = None
    multipliers: tuple[int, ...] = ()
    shift: int = 0
    kind: ClassVar[str] = "maskedmean"
    arity: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if self.in_size != self.out_size or len(self.multipliers) != self.tokens:
            raise ValueError(f"maskedmean: {self.tokens} tokens need {self.tokens} multipliers")

    @property
    def input_types(self) -> tuple[QType, ...]:
        return (self.in_type, self.in_type_b)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return (self.in_size, 1)

    @property
    def multiplier_bits(self) -> int:
        return max(1, max(self.multipliers).bit_length())

    def out_tokens(self, in_tokens: int) -> int:
        if in_tokens % self.tokens:
            raise ValueError(f"maskedmean: {in_tokens} tokens are not whole sequences of {self.tokens}")
        return in_tokens // self.tokens

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from .requant import rne_shift
        rows = x.shape[0]
        if rows % self.tokens or mask.shape[0] != rows:
            raise ValueError(f"maskedmean: {rows} rows are not whole sequences of {self.tokens} tokens")
        s = rows // self.tokens
        keep = mask.to(torch.int64).reshape(s, self.tokens, 1) != 0
        centered = (x.to(torch.int64) - self.in_type.zero_point).reshape(s, self.tokens, self.in_size)
        acc = torch.where(keep, centered, torch.zeros_like(centered)).sum(dim=1)
        count = torch.clamp(keep.sum(dim=1), min=1)                           # [s, 1]
        mult = torch.tensor(self.multipliers, dtype=torch.int64)[count - 1]   # [s, 1]
        y = rne_shift(acc * mult, self.shift) + self.out_type.zero_point
        return torch.clamp(y, self.out_type.min, self.out_type.max)

    def params_json(self) -> dict:
        return {"in_type_b": self.in_type_b.to_json(), "tokens": self.tokens, "acc_type": self.acc_type.to_json(),
                "multipliers": list(self.multipliers), "shift": self.shift}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "MaskedTokenMean":
        return cls(**common, in_type_b=QType.from_json(d["in_type_b"]), tokens=d["tokens"],
                   acc_type=QType.from_json(d["acc_type"]), multipliers=tuple(d["multipliers"]), shift=d["shift"])


def make_masked_token_mean(name: str, source: str, in_type: QType, mask_type: QType, size: int, tokens: int,
                           out_type: QType | None = None, inputs: tuple[str, ...] = ()) -> MaskedTokenMean:
    """The mean over the real tokens (mask != 0) of ``tokens`` tokens of ``in_type``; the shift is
    chosen for n = 1 (the largest multiplier), the others are rounded at that shift."""
    import math

    from .requant import multiplier_bits_for
    out_type = in_type if out_type is None else out_type
    lo, hi = tokens * (in_type.min - in_type.zero_point), tokens * (in_type.max - in_type.zero_point)
    acc_type = QType(True, max(bits_for_range(min(lo, -1), max(hi, 1)), 2))
    # M[0] (n = 1) gets the significant bits of the usual requantization; M[n-1] ~ M[0] / n keeps
    # all but log2(n) of them
    bits = multiplier_bits_for(out_type.bits, acc_type.bits)
    shift = min(62, max(0, bits - math.frexp(in_type.scale / out_type.scale)[1]))
    multipliers = tuple(max(1, round(in_type.scale / (n * out_type.scale) * 2.0 ** shift)) for n in range(1, tokens + 1))
    return MaskedTokenMean(name=name, source=source, in_type=in_type, out_type=out_type, in_size=size, out_size=size,
                           inputs=tuple(inputs), in_type_b=mask_type, tokens=tokens, acc_type=acc_type,
                           multipliers=multipliers, shift=shift)
