"""The IR chain under construction: ops appended in order, and the type at its end."""
from __future__ import annotations

import dataclasses

from ..ir.graph import Linear, Op, Requant
from ..ir.types import QType
from .names import op_name


class Stream:
    """Ops built so far from the graph input; names are ``n{position}_{hint}``."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.input_type: QType | None = None
        self.input_size = 0
        self.input_shape: tuple[int, ...] = ()

    @property
    def type(self) -> QType:
        """Type of the codes at the end of the chain."""
        return self.ops[-1].out_type if self.ops else self.input_type

    @property
    def size(self) -> int:
        return self.ops[-1].out_size if self.ops else self.input_size

    def name(self, hint: str) -> str:
        """The name the next appended op gets."""
        return op_name(len(self.ops), hint)

    def append(self, op: Op) -> None:
        self.ops.append(op)

    def can_retype(self) -> bool:
        """Whether the last op's output type may be relabelled (its codes do not depend on it)."""
        return bool(self.ops) and isinstance(self.ops[-1], (Linear, Requant))

    def retype(self, qtype: QType) -> None:
        """Relabel the last op's output: same codes, new real meaning (scale, zero point)."""
        self.ops[-1] = dataclasses.replace(self.ops[-1], out_type=qtype)
