"""IR ops and the graph that holds them.

An op owns its reference semantics (``reference``), its integer types and its parameters; the
scheduler and emitters read these and nothing from ONNX.  Tensors are integer codes (see
:mod:`codegen.ir.types`); every op consumes one tensor and produces one, which is what the streaming
hardware builds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .requant import RequantParams, rne_shift
from .types import QType


def apply_requant(value: torch.Tensor, rq: RequantParams) -> torch.Tensor:
    """value [B, C] int64 -> clamp(rne(value * M, shift) + zp, lo, hi) (the einhls rounding rule)."""
    m = torch.as_tensor(rq.multiplier_for(value.shape[-1]), dtype=torch.int64)
    return torch.clamp(rne_shift(value * m, rq.shift) + rq.zero_point, rq.lo, rq.hi)


@dataclass
class Op:
    name: str           # identifier-safe, unique; used in generated code and file names
    source: str         # the ONNX node(s) it came from, for messages and reports only
    in_type: QType
    out_type: QType
    in_size: int
    out_size: int
    kind: ClassVar[str] = "op"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def params_json(self) -> dict:
        return {}

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "source": self.source,
                "in_type": self.in_type.to_json(), "out_type": self.out_type.to_json(),
                "in_size": self.in_size, "out_size": self.out_size, **self.params_json()}


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

    @property
    def macs(self) -> int:
        return self.in_size * self.out_size

    @property
    def nonzero_macs(self) -> int:
        return int(np.count_nonzero(self.weight))


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


@dataclass
class Relu(Op):
    """y = max(x, zero point): ReLU on codes (same type in and out)."""
    kind: ClassVar[str] = "relu"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x.to(torch.int64), min=self.in_type.zero_point)


OP_KINDS: dict[str, type[Op]] = {cls.kind: cls for cls in (Linear, Requant, Relu)}


@dataclass
class Graph:
    """A chain of ops from one input vector to one output vector (one frame = one vector)."""
    name: str
    input_type: QType
    input_size: int
    ops: list[Op]
    input_name: str = "input"
    output_name: str = "output"
    input_shape: tuple[int, ...] = ()   # the ONNX input shape (batch fixed to 1), for the driver
    output_shape: tuple[int, ...] = ()
    output_is_float: bool = True        # the ONNX output is dequantized (float) rather than codes

    @property
    def output_type(self) -> QType:
        return self.ops[-1].out_type if self.ops else self.input_type

    @property
    def output_size(self) -> int:
        return self.ops[-1].out_size if self.ops else self.input_size

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def check(self) -> None:
        """Invariants every pass keeps: sizes and types chain, names are unique identifiers."""
        size, qtype, seen = self.input_size, self.input_type, set()
        for op in self.ops:
            assert op.name.isidentifier() and op.name not in seen, op.name
            seen.add(op.name)
            assert op.in_size == size, (op.name, op.in_size, size)
            assert (op.in_type.signed, op.in_type.bits) == (qtype.signed, qtype.bits), op.name
            size, qtype = op.out_size, op.out_type

    # --- serialisation: structure as JSON, arrays as .npy files (deterministic bytes) ---
    def to_json(self) -> dict:
        return {"name": self.name, "input_name": self.input_name, "output_name": self.output_name,
                "input_type": self.input_type.to_json(), "input_size": self.input_size,
                "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "output_is_float": self.output_is_float,
                "ops": [op.to_json() for op in self.ops]}

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{op.name}.{key}": arr for op in self.ops for key, arr in op.arrays().items()}

    @staticmethod
    def from_json(d: dict, arrays: dict[str, np.ndarray]) -> "Graph":
        ops: list[Op] = []
        for od in d["ops"]:
            common = dict(name=od["name"], source=od["source"], in_type=QType.from_json(od["in_type"]),
                          out_type=QType.from_json(od["out_type"]), in_size=od["in_size"],
                          out_size=od["out_size"])
            kind = od["kind"]
            if kind == "linear":
                ops.append(Linear(**common, weight=arrays[f"{od['name']}.weight"],
                                  bias=arrays[f"{od['name']}.bias"],
                                  weight_type=QType.from_json(od["weight_type"]),
                                  acc_type=QType.from_json(od["acc_type"]),
                                  requant=RequantParams.from_json(od["requant"]),
                                  sparsity=tuple(od["sparsity"]) if od["sparsity"] else None))
            elif kind == "requant":
                ops.append(Requant(**common, offset=arrays[f"{od['name']}.offset"],
                                   requant=RequantParams.from_json(od["requant"])))
            elif kind == "relu":
                ops.append(Relu(**common))
            elif hasattr(OP_KINDS.get(kind), "from_json_fields"):  # ops defined in their own modules
                ops.append(OP_KINDS[kind].from_json_fields(common, od, arrays))
            else:
                raise ValueError(f"unknown IR op kind {kind!r}")
        return Graph(name=d["name"], input_type=QType.from_json(d["input_type"]),
                     input_size=d["input_size"], ops=ops, input_name=d["input_name"],
                     output_name=d["output_name"], input_shape=tuple(d["input_shape"]),
                     output_shape=tuple(d["output_shape"]), output_is_float=d["output_is_float"])


# ops defined in their own modules register themselves in OP_KINDS when imported
from . import butterfly as _butterfly  # noqa: E402,F401
from . import contraction as _contraction  # noqa: E402,F401
