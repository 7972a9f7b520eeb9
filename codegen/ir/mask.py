"""The attention mask (padding): the keys a softmax over attention scores must leave out.

A padded sentence comes with a mask of one value per token (1 = token, 0 = padding, as
transformers writes ``attention_mask``), and BERT-style models add ``(1 - mask) * large_negative``
to every row of scores before the Softmax, so that exp() of a padding key underflows to 0.  einhls
computes the same thing without the large number: :class:`MaskScores` reads the scores (a token
carries ``heads`` rows of L codes, one code per key) and the mask (one code per token, L tokens a
sequence, buffered whole like the keys of the attention product) and replaces every score of a
padding key by one constant code, ``masked_code``, chosen so far below the smallest score that the
integer softmax after it gives that key exactly 0:

    y[i, h * L + j] = x[i, h * L + j]   if mask[j] != 0
                      masked_code       otherwise

With d = max - masked_code >= GAP the softmax's u = (d * EXP_MULT) >> EXP_SHIFT reaches
(F + 1) 2^F, so z = F + 1 and e = e0 >> (F + 1) = 0 (e0 < 2^F): the key leaves the maximum and the
sum, as the float op's exp(x - 10^4) or exp(x + finfo.min) = 0 does.  A row whose keys are all
padding becomes uniform (every code equal), as the float op with finfo.min gives.  The output type
is the scores' type widened to hold ``masked_code`` (same scale and zero point), and the softmax
after it is built for that type (codegen/frontend/nonlinear.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, register_op
from .types import QType, bits_for_range


def mask_gap(scores_type: QType) -> int:
    """Codes below the scores' smallest code that make the integer softmax's exponential 0: the
    smallest GAP with ((GAP * EXP_MULT) >> EXP_SHIFT) >= (F + 1) 2^F for the softmax that
    make_softmax builds on ``scores_type`` (EXP_MULT depends on the scale only)."""
    from .nonlinear import make_softmax
    probe = make_softmax(1, scores_type)
    target = (probe.frac_bits + 1) << (probe.frac_bits + probe.exp_shift)
    return max(1, math.ceil(target / probe.exp_mult))


@register_op
@dataclass
class MaskScores(Op):
    """Attention scores with the padding keys' codes replaced (see module docstring).

    Input 0: ``heads`` x ``tokens`` codes per token (``in_type``); input 1: the mask, one code per
    token (``in_type_b``; nonzero = a token, 0 = padding); output: ``in_size`` codes of ``out_type``.
    """
    in_type_b: QType = None
    heads: int = 1
    tokens: int = 1
    masked_code: int = 0
    kind: ClassVar[str] = "maskscores"
    arity: ClassVar[int] = 2
    sequence_input: ClassVar[int | None] = 1     # the mask of a sequence, read whole (two banks)

    def __post_init__(self) -> None:
        if self.in_size != self.heads * self.tokens or self.out_size != self.in_size:
            raise ValueError(f"maskscores: {self.in_size} scores per token are not {self.heads} heads x "
                             f"{self.tokens} keys")
        if not self.out_type.min <= self.masked_code < self.in_type.min:
            raise ValueError(f"maskscores: the masked code {self.masked_code} must lie below the scores' "
                             f"codes and inside the output type")
        if not (self.out_type.min <= self.in_type.min and self.in_type.max <= self.out_type.max):
            raise ValueError("maskscores: the output type must hold every score code")

    @property
    def input_types(self) -> tuple[QType, ...]:
        return (self.in_type, self.in_type_b)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return (self.in_size, 1)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if rows % self.tokens or mask.shape[0] != rows:
            raise ValueError(f"maskscores: {rows} / {mask.shape[0]} rows are not whole sequences of "
                             f"{self.tokens} tokens")
        s = rows // self.tokens
        keep = (mask.to(torch.int64).reshape(s, 1, 1, self.tokens) != 0)
        scores = x.to(torch.int64).reshape(s, self.tokens, self.heads, self.tokens)
        out = torch.where(keep, scores, torch.full_like(scores, self.masked_code))
        return out.reshape(rows, self.in_size)

    def params_json(self) -> dict:
        return {"in_type_b": self.in_type_b.to_json(), "heads": self.heads, "tokens": self.tokens,
                "masked_code": self.masked_code}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "MaskScores":
        return cls(**common, in_type_b=QType.from_json(d["in_type_b"]), heads=d["heads"], tokens=d["tokens"],
                   masked_code=d["masked_code"])


def make_mask_scores(name: str, source: str, scores_type: QType, mask_type: QType, heads: int, tokens: int,
                     inputs: tuple[str, str] = ()) -> MaskScores:
    """The op for scores of ``scores_type`` (``heads`` rows of ``tokens`` keys per token): its masked
    code lies mask_gap() below the smallest score code, its output type is just wide enough."""
    masked_code = scores_type.min - mask_gap(scores_type)
    bits = bits_for_range(masked_code, scores_type.max)
    out_type = QType(True, bits, scores_type.scale, scores_type.zero_point)
    return MaskScores(name=name, source=source, in_type=scores_type, out_type=out_type,
                      in_size=heads * tokens, out_size=heads * tokens, inputs=tuple(inputs),
                      in_type_b=mask_type, heads=heads, tokens=tokens, masked_code=masked_code)
