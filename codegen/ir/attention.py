"""Attention: the matrix product of two activations, per head, over a whole sequence.

Self-attention multiplies activations by activations twice: scores = Q K^T and context = P V.
Both are one op kind, :class:`ActMatMul`, that reads two token streams of the same frame
(a sequence of ``tokens`` = L tokens):

* ``a`` streams row by row: token i carries ``heads`` x ``inner`` codes, head-major
  (element ``h * inner + k``);
* ``b`` is buffered whole (all L tokens of the sequence) before the first output: token j carries
  ``heads`` x ``inner`` codes (``layout="nt"``, B[h, k, n] = b[j = n, h * inner + k]: the keys, so
  the product is Q K^T and ``cols`` = L) or ``heads`` x ``cols`` codes (``layout="nn"``,
  B[h, k, n] = b[j = k, h * cols + n]: the values, so the product is P V and ``inner`` = L).

Token i of the output carries ``heads`` x ``cols`` codes (element ``h * cols + n``)::

    acc[i, h, n] = sum_k (a[i, h, k] - za) * (B[h, k, n] - zb)
    y[i, h, n]   = clamp(rne(acc * M, shift) + zo, lo, hi)        (codegen/ir/requant.py)

The multi-head split and merge that exporters write (Reshape [1, L, H*d] -> [1, L, H, d],
Transpose to [1, H, L, d], and back) are this addressing: no op copies or reorders a stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, apply_requant, register_op
from .requant import RequantParams
from .types import QType

LAYOUTS = ("nt", "nn")


def _centered_range(t: QType) -> tuple[int, int]:
    return t.min - t.zero_point, t.max - t.zero_point


@register_op
@dataclass
class ActMatMul(Op):
    """Per-head product of two activations over a sequence (see module docstring).

    ``in_type`` / ``in_size`` describe ``a`` (heads * inner features per token), ``in_type_b`` /
    ``in_size_b`` describe ``b``; ``out_size`` = heads * cols.
    """
    in_type_b: QType = None
    in_size_b: int = 0
    heads: int = 1
    inner: int = 1         # K: the summed axis
    cols: int = 1          # N: output columns per head
    tokens: int = 1        # L: tokens per sequence (the b buffer holds all of them)
    layout: str = "nt"
    acc_type: QType = None
    requant: RequantParams = None
    kind: ClassVar[str] = "actmatmul"
    arity: ClassVar[int] = 2
    sequence_input: ClassVar[int | None] = 1     # b: the keys / values of a sequence

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"actmatmul: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if min(self.heads, self.inner, self.cols, self.tokens) < 1:
            raise ValueError("actmatmul: heads, inner, cols and tokens must be positive")
        if self.in_size != self.heads * self.inner:
            raise ValueError(f"actmatmul: a carries {self.in_size} features, not heads x inner = "
                             f"{self.heads} x {self.inner}")
        b_features = self.heads * (self.inner if self.layout == "nt" else self.cols)
        if self.in_size_b != b_features:
            raise ValueError(f"actmatmul: b carries {self.in_size_b} features, not {b_features}")
        b_along = self.cols if self.layout == "nt" else self.inner
        if b_along != self.tokens:
            raise ValueError(f"actmatmul: b is read along the sequence ({self.tokens} tokens) but the "
                             f"{'cols' if self.layout == 'nt' else 'inner'} axis has {b_along}")
        if self.out_size != self.heads * self.cols:
            raise ValueError(f"actmatmul: out_size {self.out_size} != heads x cols")

    @property
    def input_types(self) -> tuple[QType, ...]:
        return (self.in_type, self.in_type_b)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return (self.in_size, self.in_size_b)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per token (per output row)."""
        return self.heads * self.inner * self.cols

    @property
    def buffer_elements(self) -> int:
        """Codes of b held for one sequence (the unit keeps two such buffers)."""
        return self.tokens * self.in_size_b

    @property
    def acc_range(self) -> tuple[int, int]:
        (alo, ahi), (blo, bhi) = _centered_range(self.in_type), _centered_range(self.in_type_b)
        products = [x * y for x in (alo, ahi) for y in (blo, bhi)]
        return self.inner * min(products), self.inner * max(products)

    def b_matrix(self, b: torch.Tensor) -> torch.Tensor:
        """[S, L, in_size_b] centered codes -> B [S, heads, inner, cols]."""
        s = b.shape[0]
        if self.layout == "nt":
            return b.reshape(s, self.tokens, self.heads, self.inner).permute(0, 2, 3, 1)
        return b.reshape(s, self.tokens, self.heads, self.cols).permute(0, 2, 1, 3)

    def accumulate(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Accumulators [B*L, heads*cols] of a, b given as [B*L, features] codes."""
        if a.shape[0] % self.tokens or b.shape[0] != a.shape[0]:
            raise ValueError(f"actmatmul: {a.shape[0]} / {b.shape[0]} rows are not whole sequences of "
                             f"{self.tokens} tokens")
        s = a.shape[0] // self.tokens
        ac = (a.to(torch.int64) - self.in_type.zero_point).reshape(s, self.tokens, self.heads, self.inner)
        bc = self.b_matrix((b.to(torch.int64) - self.in_type_b.zero_point).reshape(s, self.tokens, -1))
        acc = torch.einsum("slhk,shkn->slhn", ac, bc)
        return acc.reshape(s * self.tokens, self.heads * self.cols)

    def reference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return apply_requant(self.accumulate(a, b), self.requant)

    def params_json(self) -> dict:
        return {"in_type_b": self.in_type_b.to_json(), "in_size_b": self.in_size_b, "heads": self.heads,
                "inner": self.inner, "cols": self.cols, "tokens": self.tokens, "layout": self.layout,
                "acc_type": self.acc_type.to_json(), "requant": self.requant.to_json()}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "ActMatMul":
        return cls(**common, in_type_b=QType.from_json(d["in_type_b"]), in_size_b=d["in_size_b"],
                   heads=d["heads"], inner=d["inner"], cols=d["cols"], tokens=d["tokens"],
                   layout=d["layout"], acc_type=QType.from_json(d["acc_type"]),
                   requant=RequantParams.from_json(d["requant"]))


def make_actmatmul(name: str, source: str, a_type: QType, b_type: QType, heads: int, inner: int,
                   cols: int, tokens: int, layout: str, out_type: QType, real_multiplier: float,
                   inputs: tuple[str, str] = ()) -> ActMatMul:
    """The op with its accumulator type and requantization (``real_multiplier`` = the real value of
    one accumulator unit in output steps: scale_a * scale_b / scale_out)."""
    from .build import output_requant
    from .types import bits_for_range

    b_features = heads * (inner if layout == "nt" else cols)
    probe = ActMatMul(name=name, source=source, in_type=a_type, out_type=out_type, in_size=heads * inner,
                      out_size=heads * cols, inputs=tuple(inputs), in_type_b=b_type, in_size_b=b_features,
                      heads=heads, inner=inner, cols=cols, tokens=tokens, layout=layout,
                      acc_type=QType(True, 2), requant=RequantParams((1,), 0, 0, out_type.min, out_type.max))
    lo, hi = probe.acc_range
    acc_type = QType(True, max(bits_for_range(min(lo, -1), hi), 2))
    requant = output_requant(real_multiplier, out_type, False, acc_type.bits)
    return ActMatMul(name=name, source=source, in_type=a_type, out_type=out_type, in_size=heads * inner,
                     out_size=heads * cols, inputs=tuple(inputs), in_type_b=b_type, in_size_b=b_features,
                     heads=heads, inner=inner, cols=cols, tokens=tokens, layout=layout, acc_type=acc_type,
                     requant=requant)
