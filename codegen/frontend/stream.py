"""The IR graph under construction: ops appended in topological order, and a focus tensor.

The lowering visits ONNX nodes in order; before it lowers a node it points the *focus* at the IR
tensor that node's activation reads (:meth:`Stream.focus_on`).  Appending an op makes it read the
focus (unless it names its inputs) and moves the focus to the op's output, so chains need no
wiring and branches only need the focus moved.
"""
from __future__ import annotations

import dataclasses

from ..ir.graph import GRAPH_INPUT, Linear, Op, Requant
from ..ir.types import QType
from .names import op_name


class Stream:
    """Ops built so far from the graph input; names are ``n{position}_{hint}``."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.input_type: QType | None = None
        self.input_size = 0            # features per token
        self.input_shape: tuple[int, ...] = ()
        self.input_tokens = 1          # token vectors per frame of the graph input
        self.focus = GRAPH_INPUT

    @property
    def tokens(self) -> int:
        """Token vectors per frame of the focus tensor (a sliding window changes the count)."""
        return self.tokens_of(self.focus)

    @tokens.setter
    def tokens(self, count: int) -> None:
        self.input_tokens = count

    def tokens_of(self, tensor: str) -> int:
        if not any(op.kind in ("window", "regroup", "tokenmean", "maskedmean") for op in self.ops):
            return self.input_tokens    # the usual case: every tensor has the input's count
        chain = []   # the producers back to the input, walked without recursion
        op = self.producer(tensor)
        while op is not None:
            chain.append(op)
            op = self.producer(op.inputs[0])
        count = self.input_tokens
        for op in reversed(chain):
            count = op.out_tokens(count)
        return count

    def focus_on(self, tensor: str | None) -> None:
        if tensor is not None:
            self.focus = tensor

    def producer(self, tensor: str) -> Op | None:
        return next((op for op in self.ops if tensor in op.outputs), None)

    def type_of(self, tensor: str) -> QType:
        op = self.producer(tensor)
        return self.input_type if op is None else op.out_type

    def size_of(self, tensor: str) -> int:
        op = self.producer(tensor)
        return self.input_size if op is None else op.out_size

    @property
    def type(self) -> QType:
        """Type of the codes of the focus tensor."""
        return self.type_of(self.focus)

    @property
    def size(self) -> int:
        """Features per token of the focus tensor."""
        return self.size_of(self.focus)

    def name(self, hint: str) -> str:
        """The name the next appended op gets."""
        return op_name(len(self.ops), hint)

    def append(self, op: Op) -> str:
        """Add an op (reading the focus unless it names its inputs); the focus moves to its output."""
        if not op.inputs:
            op = dataclasses.replace(op, inputs=(self.focus,))
        self.ops.append(op)
        self.focus = op.outputs[0]
        return self.focus

    def readers(self, tensor: str) -> int:
        return sum(1 for op in self.ops for name in op.inputs if name == tensor)

    def can_retype(self) -> bool:
        """Whether the focus tensor's type may be relabelled: a Linear or Requant writes it (its
        codes do not depend on the label) and nothing reads it yet."""
        op = self.producer(self.focus)
        return isinstance(op, (Linear, Requant)) and self.readers(self.focus) == 0

    def retype(self, qtype: QType) -> None:
        """Relabel the focus tensor: same codes, new real meaning (scale, zero point)."""
        op = self.producer(self.focus)
        index = self.ops.index(op)
        self.ops[index] = dataclasses.replace(op, out_type=qtype)
