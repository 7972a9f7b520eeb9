"""IR ops and the dataflow graph that holds them.

An op owns its reference semantics (``reference``), its integer types and its parameters; the
scheduler and emitters read these and nothing from ONNX.  Tensors are integer codes (see
:mod:`codegen.ir.types`).

The graph is a dataflow graph of *token streams*: a frame is a sequence of ``tokens`` (L) vectors,
and every tensor carries L x features codes of one :class:`QType`.  Ops read one or more tensors
and write one (``Fork`` writes several); a tensor is named after the op that writes it
(``op.name``, or ``op.name:i`` for output i of a multi-output op) and the graph input is named
:data:`GRAPH_INPUT`.  Ops are kept in a topological order.  Linear layers, contractions,
butterflies and elementwise ops work token by token with the same parameters (weights stay in
their ROMs, tokens stream through), so an op's ``in_size`` / ``out_size`` are features per token.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch

from .requant import RequantParams, rne_shift
from .types import QType

GRAPH_INPUT = "input"


def apply_requant(value: torch.Tensor, rq: RequantParams) -> torch.Tensor:
    """value [B, C] int64 -> clamp(rne(value * M, shift) + zp, lo, hi) (the einhls rounding rule)."""
    m = torch.as_tensor(rq.multiplier_for(value.shape[-1]), dtype=torch.int64)
    return torch.clamp(rne_shift(value * m, rq.shift) + rq.zero_point, rq.lo, rq.hi)


#: every op kind, by its ``kind`` string (JSON, emitters and the cost model dispatch on it)
OP_KINDS: dict[str, type["Op"]] = {}


def register_op(cls: type["Op"]) -> type["Op"]:
    """Class decorator: make an op kind known to the JSON loader (one entry per kind)."""
    if cls.kind in OP_KINDS and OP_KINDS[cls.kind] is not cls:
        raise ValueError(f"op kind {cls.kind!r} registered twice")
    OP_KINDS[cls.kind] = cls
    return cls


@dataclass
class Op:
    name: str           # identifier-safe, unique; used in generated code and file names
    source: str         # the ONNX node(s) it came from, for messages and reports only
    in_type: QType      # type of the first input
    out_type: QType
    in_size: int        # features per token of the first input
    out_size: int       # features per token of the output(s)
    inputs: tuple[str, ...] = field(default=(), kw_only=True)  # tensors read; () = previous op's output
    kind: ClassVar[str] = "op"
    arity: ClassVar[int] = 1        # number of inputs
    n_outputs: ClassVar[int] = 1

    def reference(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        raise NotImplementedError

    @property
    def input_types(self) -> tuple[QType, ...]:
        return (self.in_type,)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return (self.in_size,)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the tensors this op writes."""
        if self.n_outputs == 1:
            return (self.name,)
        return tuple(f"{self.name}:{i}" for i in range(self.n_outputs))

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def out_tokens(self, in_tokens: int) -> int:
        """Vectors per frame of the output, given those of the inputs (all inputs have the same
        count); every op but a sliding window or a regrouping keeps it."""
        return in_tokens

    def params_json(self) -> dict:
        return {}

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "source": self.source,
                "inputs": list(self.inputs),
                "in_type": self.in_type.to_json(), "out_type": self.out_type.to_json(),
                "in_size": self.in_size, "out_size": self.out_size, **self.params_json()}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Op":
        """Rebuild an op from the common fields and its own (ops with parameters override this)."""
        return cls(**common)


@register_op
@dataclass
class Linear(Op):
    """y = requant(bias + W x): dense, or N:M sparse when ``sparsity`` = (n, m).

    ``weight`` [out, in] holds signed integer codes with the weight zero point already removed;
    ``bias`` [out] is in accumulator units and also carries the folded input zero point
    (-zp_in * sum_k W[n, k]), so the MAC array works on raw input codes.
    """
    weight: np.ndarray = field(default=None, repr=False)
    bias: np.ndarray = field(default=None, repr=False)
    weight_type: QType = None
    acc_type: QType = None
    requant: RequantParams = None
    sparsity: tuple[int, int] | None = None
    kind: ClassVar[str] = "linear"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.as_tensor(self.weight, dtype=torch.int64)
        b = torch.as_tensor(self.bias, dtype=torch.int64)
        acc = x.to(torch.int64) @ w.T + b
        return apply_requant(acc, self.requant)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight.astype(np.int64), "bias": self.bias.astype(np.int64)}

    def params_json(self) -> dict:
        return {"weight_type": self.weight_type.to_json(), "acc_type": self.acc_type.to_json(),
                "requant": self.requant.to_json(),
                "sparsity": list(self.sparsity) if self.sparsity else None}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Linear":
        return cls(**common, weight=arrays[f"{d['name']}.weight"], bias=arrays[f"{d['name']}.bias"],
                   weight_type=QType.from_json(d["weight_type"]), acc_type=QType.from_json(d["acc_type"]),
                   requant=RequantParams.from_json(d["requant"]),
                   sparsity=tuple(d["sparsity"]) if d["sparsity"] else None)

    @property
    def macs(self) -> int:
        return self.in_size * self.out_size

    @property
    def nonzero_macs(self) -> int:
        return int(np.count_nonzero(self.weight))


@register_op
@dataclass
class Requant(Op):
    """Elementwise y = requant((x + offset) * 1): a change of scale, a constant add or multiply."""
    offset: np.ndarray = field(default=None, repr=False)  # [C] int64, added before scaling
    requant: RequantParams = None
    kind: ClassVar[str] = "requant"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        off = torch.as_tensor(np.broadcast_to(self.offset, (self.in_size,)).copy(), dtype=torch.int64)
        return apply_requant(x.to(torch.int64) + off, self.requant)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"offset": np.broadcast_to(self.offset, (self.in_size,)).astype(np.int64)}

    def params_json(self) -> dict:
        return {"requant": self.requant.to_json()}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Requant":
        return cls(**common, offset=arrays[f"{d['name']}.offset"],
                   requant=RequantParams.from_json(d["requant"]))


@register_op
@dataclass
class Relu(Op):
    """y = max(x, zero point): ReLU on codes (same type in and out)."""
    kind: ClassVar[str] = "relu"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x.to(torch.int64), min=self.in_type.zero_point)


#: what an input part carries: codes of the graph's input type, or a padding mask (0 / 1 per token)
INPUT_PART_KINDS = ("values", "mask")


@dataclass(frozen=True)
class InputPart:
    """One input of the ONNX model, packed into every token of the graph input: features
    [start, start + size) of each token.  A model with several inputs (hidden states and an
    attention mask) streams them as one: token i carries each input's features of token i, one
    after the other, so the top level keeps one input stream (docs/interface.md)."""
    name: str            # the ONNX input's name
    start: int
    size: int            # features per token
    kind: str = "values"
    shape: tuple[int, ...] = ()   # the ONNX input shape (batch 1)

    def to_json(self) -> dict:
        return {"name": self.name, "start": self.start, "size": self.size, "kind": self.kind,
                "shape": list(self.shape)}

    @staticmethod
    def from_json(d: dict) -> "InputPart":
        return InputPart(d["name"], d["start"], d["size"], d["kind"], tuple(d["shape"]))


@dataclass
class Graph:
    """A dataflow graph from one input tensor to one output tensor (see module docstring).

    ``ops`` are in a topological order.  An op with ``inputs`` left empty reads the output of the
    op before it (the graph input for the first op), so a chain needs no wiring; the constructor
    fills in every op's inputs explicitly.
    """
    name: str
    input_type: QType
    input_size: int                      # features per token of the graph input
    ops: list[Op]
    input_name: str = "input"
    output_name: str = "output"
    input_shape: tuple[int, ...] = ()    # the ONNX input shape (batch fixed to 1), for the driver
    output_shape: tuple[int, ...] = ()
    output_is_float: bool = True         # the ONNX output is dequantized (float) rather than codes
    tokens: int = 1                      # L: token vectors per frame of the graph input
    output: str = ""                     # the tensor that leaves the graph ("" = the last op's)
    # a CNN: the ONNX input (and a spatial output) is [1, C, H, W] while frames stream pixel by
    # pixel, [H*W, C] (codegen/ir/reference.py quantize_input / dequantize_output transpose)
    channels_first: bool = False
    # the ONNX inputs packed into each input token, in order (empty: one input, all the features)
    input_parts: tuple[InputPart, ...] = ()

    def __post_init__(self) -> None:
        previous = GRAPH_INPUT
        wired = []
        for op in self.ops:
            if not op.inputs:
                op = replace(op, inputs=(previous,))
            wired.append(op)
            previous = op.outputs[0]
        self.ops = wired
        if not self.output:
            self.output = self.ops[-1].outputs[0] if self.ops else GRAPH_INPUT

    # --- tensors ---
    def producer(self, tensor: str) -> Op | None:
        """The op that writes ``tensor`` (None for the graph input)."""
        if tensor == GRAPH_INPUT:
            return None
        return self.op(tensor.split(":")[0])

    def tensor_type(self, tensor: str) -> QType:
        op = self.producer(tensor)
        return self.input_type if op is None else op.out_type

    def tensor_size(self, tensor: str) -> int:
        """Features per token of a tensor."""
        op = self.producer(tensor)
        return self.input_size if op is None else op.out_size

    def tensor_tokens(self, tensor: str) -> int:
        """Vectors per frame of a tensor: ``tokens`` at the input, then as each op states it
        (the same everywhere unless a sliding window or a regrouping changes it)."""
        counts = {GRAPH_INPUT: self.tokens}
        for op in self.ops:   # in topological order: no recursion, however deep the graph
            if tensor in counts:
                break
            for name in op.outputs:
                counts[name] = op.out_tokens(counts[op.inputs[0]])
        return counts[tensor]

    @property
    def output_tokens(self) -> int:
        return self.tensor_tokens(self.output)

    def tensors(self) -> list[str]:
        """Every tensor, the graph input first, then in op order."""
        return [GRAPH_INPUT] + [t for op in self.ops for t in op.outputs]

    def consumers(self, tensor: str) -> list[tuple[Op, int]]:
        """(op, input index) of every read of ``tensor``, in op order."""
        return [(op, i) for op in self.ops for i, name in enumerate(op.inputs) if name == tensor]

    @property
    def is_chain(self) -> bool:
        """Every op reads the previous op's output and nothing else reads it (the streaming chain)."""
        previous = GRAPH_INPUT
        for op in self.ops:
            if op.inputs != (previous,) or op.n_outputs != 1 or len(self.consumers(previous)) != 1:
                return False
            previous = op.name
        return self.output == previous

    @property
    def output_type(self) -> QType:
        return self.tensor_type(self.output)

    @property
    def output_size(self) -> int:
        return self.tensor_size(self.output)

    def op(self, name: str) -> Op:
        # an index of positions by name, rebuilt whenever it points at an op of another name (the
        # passes replace ``ops``): the scheduler asks hundreds of thousands of times on large graphs
        index = self.__dict__.get("_op_positions")
        position = index.get(name) if index is not None else None
        if position is None or position >= len(self.ops) or self.ops[position].name != name:
            index = {}
            for position, op in enumerate(self.ops):
                index.setdefault(op.name, position)
            self.__dict__["_op_positions"] = index
            position = index.get(name)
            if position is None:
                raise KeyError(name)
        return self.ops[position]

    def check(self) -> None:
        """Invariants every pass keeps: names are unique identifiers, ops are in topological order
        (so the graph is acyclic), each input exists, and types and sizes agree on every edge."""
        defined = {GRAPH_INPUT}
        seen = set()
        assert self.tokens >= 1, self.tokens
        for op in self.ops:
            assert op.name.isidentifier() and op.name not in seen and op.name != GRAPH_INPUT, op.name
            seen.add(op.name)
            assert len(op.inputs) == op.arity, (op.name, op.inputs, op.arity)
            for tensor, want_type, want_size in zip(op.inputs, op.input_types, op.input_sizes):
                assert tensor in defined, f"{op.name} reads {tensor!r} before it is written (cycle or order)"
                have = self.tensor_type(tensor)
                assert self.tensor_size(tensor) == want_size, (op.name, tensor, self.tensor_size(tensor), want_size)
                assert (have.signed, have.bits) == (want_type.signed, want_type.bits), (op.name, tensor)
            assert len({self.tensor_tokens(t) for t in op.inputs}) == 1, (op.name, "inputs of different lengths")
            defined.update(op.outputs)
        assert self.output in defined, self.output

    # --- editing (passes build new graphs; the input graph is never modified) ---
    def with_ops(self, ops: list[Op], renames: dict[str, str] | None = None) -> "Graph":
        """The same graph with ``ops`` (already wired), every read of a tensor in ``renames``
        redirected to its new name (including the graph output)."""
        renames = renames or {}

        def final(name: str) -> str:
            while name in renames:
                name = renames[name]
            return name
        wired = [replace(op, inputs=tuple(final(t) for t in op.inputs)) for op in ops]
        return replace(self, ops=wired, output=final(self.output))

    def replace_op(self, name: str, chain: list[Op]) -> "Graph":
        """Op ``name`` replaced by a chain of ops: the first reads the old op's inputs, each next
        one the previous one's output, and every reader of the old output reads the chain's end.
        An empty chain removes a one-input op (its readers read its input)."""
        old = self.op(name)
        if not chain:
            assert old.arity == 1 and old.n_outputs == 1, name
            ops = [op for op in self.ops if op.name != name]
            return self.with_ops(ops, {old.name: old.inputs[0]})
        previous, wired = old.inputs, []
        for op in chain:
            op = replace(op, inputs=previous)
            wired.append(op)
            previous = (op.outputs[0],)
        ops = []
        for op in self.ops:
            ops += wired if op.name == name else [op]
        renames = {old.name: wired[-1].outputs[0]} if old.name != wired[-1].name else {}
        return self.with_ops(ops, renames)

    # --- serialisation: structure as JSON, arrays as .npy files (deterministic bytes) ---
    def to_json(self) -> dict:
        return {"name": self.name, "input_name": self.input_name, "output_name": self.output_name,
                "input_type": self.input_type.to_json(), "input_size": self.input_size,
                "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "output_is_float": self.output_is_float, "tokens": self.tokens, "output": self.output,
                "channels_first": self.channels_first,
                "ops": [op.to_json() for op in self.ops],
                # only for several inputs, so single-input graphs keep their JSON bytes
                **({"input_parts": [part.to_json() for part in self.input_parts]} if self.input_parts else {})}

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{op.name}.{key}": arr for op in self.ops for key, arr in op.arrays().items()}

    @staticmethod
    def from_json(d: dict, arrays: dict[str, np.ndarray]) -> "Graph":
        ops: list[Op] = []
        for od in d["ops"]:
            common = dict(name=od["name"], source=od["source"], in_type=QType.from_json(od["in_type"]),
                          out_type=QType.from_json(od["out_type"]), in_size=od["in_size"],
                          out_size=od["out_size"], inputs=tuple(od.get("inputs", ())))
            cls = OP_KINDS.get(od["kind"])
            if cls is None:
                raise ValueError(f"unknown IR op kind {od['kind']!r}")
            ops.append(cls.from_json_fields(common, od, arrays))
        return Graph(name=d["name"], input_type=QType.from_json(d["input_type"]),
                     input_size=d["input_size"], ops=ops, input_name=d["input_name"],
                     output_name=d["output_name"], input_shape=tuple(d["input_shape"]),
                     output_shape=tuple(d["output_shape"]), output_is_float=d["output_is_float"],
                     tokens=d.get("tokens", 1), output=d.get("output", ""),
                     channels_first=d.get("channels_first", False),
                     input_parts=tuple(InputPart.from_json(p) for p in d.get("input_parts", ())))

