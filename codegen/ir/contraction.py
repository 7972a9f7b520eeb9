"""Contractions: einsums of one activation with constant operands (tensor-train, Tucker, low rank).

Three IR op kinds live here:

* :class:`Contraction` - what the front end produces: one or more :class:`Segment`, each an einsum
  ``x, C1, C2, ... -> y`` on integer codes followed by one requantization.  Its reference is the
  einsum itself (exact int64), so it does not depend on any contraction path.  A chain of ONNX
  ``Einsum`` nodes with ``Reshape``/``Transpose`` between them is one segment; a quantizer between
  two steps closes a segment (per-step requantization); without one the value stays exact.
* :class:`ContractStage` - one pairwise step of a chosen path, as hardware runs it: a generalized
  Linear ``y[r, n] = requant(bias[n] + sum_k W[n, k] * x[gather(r, k)])`` for ``r < R`` repeats.
  ``gather`` is a :class:`Transposition` of the input frame done by address generation where the
  stage's input buffer is written; ``None`` means the input already arrives in (r, k) order.  With
  R = 1 and no gather it is exactly a Linear (the expansion pass then emits a plain ``Linear``).
* :class:`Permute` - a :class:`Transposition` of a frame on its own (only needed where the last
  stage's natural (r, n) order is not the order the model's output asks for).

The expansion of a Contraction into stages is :func:`codegen.passes.contraction.expand_contractions`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch

from .graph import Linear, Op, apply_requant, register_op
from .requant import RequantParams
from .types import QType


# --------------------------------------------------------------------------- transpositions

def refine(a: list[int], b: list[int]) -> tuple[list[list[int]], list[list[int]]] | None:
    """Common refinement of two factorizations of one size (row-major axis sizes).

    Returns, for every axis of ``a`` and of ``b``, the sizes of the finer axes it splits into, so
    that both sides list the same finer axes in the same order; None when no refinement exists
    (e.g. (6, 4) against (4, 6): the boundary 4 falls inside 6 without dividing it).  Size-1
    axes split into nothing.
    """
    if math.prod(a) != math.prod(b):
        return None
    bounds = sorted({math.prod(a[:i + 1]) for i in range(len(a))} | {math.prod(b[:i + 1]) for i in range(len(b))} | {1})
    if any(hi % lo for lo, hi in zip(bounds, bounds[1:])):
        return None
    atoms = [(lo, hi) for lo, hi in zip(bounds, bounds[1:])]

    def parts(sizes: list[int]) -> list[list[int]]:
        out, start = [], 1
        for s in sizes:
            end = start * s
            out.append([hi // lo for lo, hi in atoms if lo >= start and hi <= end])
            start = end
        return out
    return parts(list(a)), parts(list(b))


@dataclass(frozen=True)
class Transposition:
    """A permutation of a frame: ``y = x.reshape(shape).transpose(axes).reshape(-1)``.

    Element i of the source (digits over ``shape``, last axis fastest) goes to position
    ``sum_d digit_d * dest_stride_d`` of the destination.  Hardware computes that position with
    mixed-radix counters where the buffer is written (no table, no copy pass).
    """
    shape: tuple[int, ...]
    axes: tuple[int, ...]

    def __post_init__(self) -> None:
        if sorted(self.axes) != list(range(len(self.shape))):
            raise ValueError(f"axes {self.axes} are not a permutation of {len(self.shape)} axes")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def identity(self) -> bool:
        return self.simplified().axes == tuple(range(len(self.simplified().axes)))

    def gather(self) -> np.ndarray:
        """Source index of every destination position."""
        return np.arange(self.size, dtype=np.int64).reshape(self.shape).transpose(self.axes).reshape(-1)

    def scatter(self) -> np.ndarray:
        """Destination position of every source element."""
        dest = np.empty(self.size, dtype=np.int64)
        dest[self.gather()] = np.arange(self.size, dtype=np.int64)
        return dest

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, torch.as_tensor(self.gather())]

    def simplified(self) -> "Transposition":
        """The same permutation with size-1 axes dropped and neighbours that stay neighbours merged."""
        keep = [a for a in range(len(self.shape)) if self.shape[a] > 1]
        if not keep:
            return Transposition((self.size,) if self.size > 1 else (1,), (0,))
        renum = {a: i for i, a in enumerate(keep)}
        shape = [self.shape[a] for a in keep]
        axes = [renum[a] for a in self.axes if a in renum]
        # merge source axes a, a+1 that appear as ..., a, a+1, ... in the destination
        groups: list[list[int]] = []
        for a in axes:
            if groups and groups[-1][-1] + 1 == a:
                groups[-1].append(a)
            else:
                groups.append([a])
        order = sorted(groups, key=lambda g: g[0])
        new_shape = tuple(math.prod(shape[a] for a in g) for g in order)
        index = {g[0]: i for i, g in enumerate(order)}
        return Transposition(new_shape, tuple(index[g[0]] for g in groups))

    def digits(self) -> list[tuple[int, int]]:
        """(size, destination stride) of every source axis, innermost (last) axis first."""
        dest_shape = [self.shape[a] for a in self.axes]
        stride_of = {}
        for pos, a in enumerate(self.axes):
            stride_of[a] = math.prod(dest_shape[pos + 1:])
        return [(self.shape[a], stride_of[a]) for a in reversed(range(len(self.shape)))]

    def then(self, other: "Transposition") -> "Transposition | None":
        """``self`` followed by ``other`` as one Transposition, or None when the two do not share a
        common refinement of axes (then they stay two permutations)."""
        dest_sizes = [self.shape[a] for a in self.axes]
        ref = refine(dest_sizes, list(other.shape))
        if ref is None:
            return None
        parts_self, parts_other = ref
        # atoms numbered in self's destination order (= other's source order)
        atom_sizes: list[int] = []
        atoms_of_dest: list[list[int]] = []
        for p in parts_self:
            atoms_of_dest.append(list(range(len(atom_sizes), len(atom_sizes) + len(p))))
            atom_sizes += p
        atoms_of_other_src: list[list[int]] = []
        n = 0
        for p in parts_other:
            atoms_of_other_src.append(list(range(n, n + len(p))))
            n += len(p)
        # self's source order of atoms
        dest_index_of_src = {a: i for i, a in enumerate(self.axes)}
        src_order = [t for s in range(len(self.shape)) for t in atoms_of_dest[dest_index_of_src[s]]]
        final_order = [t for j in other.axes for t in atoms_of_other_src[j]]
        position = {t: i for i, t in enumerate(src_order)}
        if not src_order:
            return Transposition((self.size,), (0,))
        return Transposition(tuple(atom_sizes[t] for t in src_order),
                             tuple(position[t] for t in final_order)).simplified()

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "axes": list(self.axes)}

    @staticmethod
    def from_json(d: dict | None) -> "Transposition | None":
        return None if d is None else Transposition(tuple(d["shape"]), tuple(d["axes"]))


# --------------------------------------------------------------------------- contraction

@dataclass
class Segment:
    """``y = requant(einsum(x + offset, C1, C2, ...) + bias)`` on integer codes.

    ``inputs[0]`` indexes the activation (the frame, row-major), ``inputs[1:]`` the constants;
    letters are index names, ``sizes`` their extents.  ``offset`` (per input element) carries the
    input zero point and any constant added before the einsum; ``bias`` (per output element, in
    accumulator units) any constant added after it.  ``acc_type`` is the exact range of the
    accumulator, ``requant`` has one multiplier or one per output element.
    """
    inputs: list[str]
    output: str
    sizes: dict[str, int]
    constants: list[np.ndarray]
    in_type: QType
    offset: np.ndarray
    bias: np.ndarray
    acc_type: QType
    requant: RequantParams
    out_type: QType
    source: str = ""

    @property
    def equation(self) -> str:
        return ",".join(self.inputs) + "->" + self.output

    @property
    def in_size(self) -> int:
        return math.prod(self.sizes[c] for c in self.inputs[0])

    @property
    def out_size(self) -> int:
        return math.prod(self.sizes[c] for c in self.output)

    @property
    def weight_elems(self) -> int:
        return sum(int(c.size) for c in self.constants)

    def shape_of(self, letters: str) -> tuple[int, ...]:
        return tuple(self.sizes[c] for c in letters)

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        """The exact accumulator [B, out_size] (int64) of codes x [B, in_size]."""
        b = x.shape[0]
        x = x.to(torch.int64) + torch.as_tensor(self.offset, dtype=torch.int64)
        x = x.reshape(b, *self.shape_of(self.inputs[0]))
        consts = [torch.as_tensor(c, dtype=torch.int64) for c in self.constants]
        eq = "..." + self.inputs[0] + "," + ",".join(self.inputs[1:]) + "->..." + self.output
        acc = torch.einsum(eq, x, *consts) if consts else torch.einsum("..." + self.inputs[0] + "->..." + self.output, x)
        return acc.reshape(b, -1) + torch.as_tensor(self.bias, dtype=torch.int64)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return apply_requant(self.accumulate(x), self.requant)

    def to_json(self) -> dict:
        return {"equation": self.equation, "sizes": dict(sorted(self.sizes.items())),
                "in_type": self.in_type.to_json(), "acc_type": self.acc_type.to_json(),
                "out_type": self.out_type.to_json(), "requant": self.requant.to_json(),
                "source": self.source, "constant_shapes": [list(c.shape) for c in self.constants]}


@dataclass
class Contraction(Op):
    """One fused contraction: segments applied in order (see the module docstring)."""
    segments: list[Segment] = field(default_factory=list)
    kind: ClassVar[str] = "contraction"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        for seg in self.segments:
            x = seg.reference(x)
        return x

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, seg in enumerate(self.segments):
            for j, c in enumerate(seg.constants):
                out[f"s{i}.c{j}"] = c.astype(np.int64)
            out[f"s{i}.offset"] = seg.offset.astype(np.int64)
            out[f"s{i}.bias"] = seg.bias.astype(np.int64)
        return out

    def params_json(self) -> dict:
        return {"segments": [seg.to_json() for seg in self.segments]}

    @classmethod
    def from_json_fields(cls, common: dict, od: dict, arrays: dict[str, np.ndarray]) -> "Contraction":
        return _decode_contraction(common, od, arrays)

    @property
    def macs_dense(self) -> int:
        """MACs of the equivalent dense matrix-vector product, per segment summed."""
        return sum(seg.in_size * seg.out_size for seg in self.segments)

    @property
    def weight_elems(self) -> int:
        return sum(seg.weight_elems for seg in self.segments)


def _decode_contraction(common: dict, od: dict, arrays: dict[str, np.ndarray]) -> Contraction:
    name = od["name"]
    segments = []
    for i, sd in enumerate(od["segments"]):
        ins, out = sd["equation"].split("->")
        inputs = ins.split(",")
        segments.append(Segment(
            inputs=inputs, output=out, sizes=dict(sd["sizes"]),
            constants=[arrays[f"{name}.s{i}.c{j}"] for j in range(len(inputs) - 1)],
            in_type=QType.from_json(sd["in_type"]), offset=arrays[f"{name}.s{i}.offset"],
            bias=arrays[f"{name}.s{i}.bias"], acc_type=QType.from_json(sd["acc_type"]),
            requant=RequantParams.from_json(sd["requant"]), out_type=QType.from_json(sd["out_type"]),
            source=sd.get("source", "")))
    return Contraction(**common, segments=segments)


# --------------------------------------------------------------------------- hardware stages

@dataclass
class ContractStage(Op):
    """One online pairwise step: R repeats of ``y = requant(bias + W x)`` over a gathered frame.

    ``weight`` [N, K] (codes), ``bias`` [N] (accumulator units), ``requant`` per tensor or per n.
    The input frame (R*K elements) is read as x[r, k] = frame[gather[r*K + k]]; the output frame
    is y in (r, n) order, R*N elements.
    """
    repeats: int = 1
    weight: np.ndarray = field(default=None, repr=False)
    bias: np.ndarray = field(default=None, repr=False)
    weight_type: QType = None
    acc_type: QType = None
    requant: RequantParams = None
    gather: Transposition | None = None
    contraction: str = ""      # the Contraction op this stage came from
    step: str = ""             # the pairwise step, for reports (e.g. "jkap,pbjq->kabq")
    kind: ClassVar[str] = "contract"

    @property
    def k(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n(self) -> int:
        return int(self.weight.shape[0])

    @property
    def macs(self) -> int:
        return self.repeats * self.k * self.n

    @property
    def sparsity(self) -> None:
        return None

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        if self.gather is not None:
            x = self.gather.apply(x)
        b = x.shape[0]
        w = torch.as_tensor(self.weight, dtype=torch.int64)
        acc = x.to(torch.int64).reshape(b, self.repeats, self.k) @ w.T + torch.as_tensor(self.bias, dtype=torch.int64)
        return apply_requant(acc, self.requant).reshape(b, self.repeats * self.n)

    @classmethod
    def from_json_fields(cls, common: dict, od: dict, arrays: dict[str, np.ndarray]) -> "ContractStage":
        name = od["name"]
        return cls(**common, repeats=od["repeats"], weight=arrays[f"{name}.weight"],
                   bias=arrays[f"{name}.bias"], weight_type=QType.from_json(od["weight_type"]),
                   acc_type=QType.from_json(od["acc_type"]), requant=RequantParams.from_json(od["requant"]),
                   gather=Transposition.from_json(od["gather"]), contraction=od["contraction"],
                   step=od["step"])

    def as_linear(self) -> Linear:
        """The Linear unit that runs one repeat (K inputs, N outputs, same weights and requant)."""
        return Linear(name=self.name, source=self.source, in_type=self.in_type, out_type=self.out_type,
                      in_size=self.k, out_size=self.n, weight=self.weight, bias=self.bias,
                      weight_type=self.weight_type, acc_type=self.acc_type, requant=self.requant)

    def as_span_linear(self) -> Linear:
        """The Linear unit of a span fold (OpSchedule.span): all R repeats' outputs as one layer of
        R*N outputs, output o = r*N + n computing W[n] x[r] (the weights, bias and per-channel
        multipliers tiled R times).  The hardware feeds output o the input of repeat o // N; its
        weight ROM and requantization are this layer's, so the PE slots run over the flattened
        outputs and a group of PE outputs may span two repeats."""
        rq = self.requant
        if rq.per_channel:
            rq = replace(rq, multiplier=tuple(rq.multiplier) * self.repeats)
        return Linear(name=self.name, source=self.source, in_type=self.in_type, out_type=self.out_type,
                      in_size=self.k, out_size=self.repeats * self.n,
                      weight=np.tile(self.weight, (self.repeats, 1)), bias=np.tile(self.bias, self.repeats),
                      weight_type=self.weight_type, acc_type=self.acc_type, requant=rq)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight.astype(np.int64), "bias": self.bias.astype(np.int64)}

    def params_json(self) -> dict:
        return {"repeats": self.repeats, "k": self.k, "n": self.n,
                "weight_type": self.weight_type.to_json(), "acc_type": self.acc_type.to_json(),
                "requant": self.requant.to_json(),
                "gather": self.gather.to_json() if self.gather is not None else None,
                "contraction": self.contraction, "step": self.step}


@dataclass
class Permute(Op):
    """y = x permuted by a Transposition (same type in and out)."""
    transposition: Transposition = None
    contraction: str = ""
    kind: ClassVar[str] = "permute"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return self.transposition.apply(x.to(torch.int64))

    def params_json(self) -> dict:
        return {"transposition": self.transposition.to_json(), "contraction": self.contraction}

    @classmethod
    def from_json_fields(cls, common: dict, od: dict, arrays: dict[str, np.ndarray]) -> "Permute":
        return cls(**common, transposition=Transposition.from_json(od["transposition"]),
                   contraction=od["contraction"])


for _cls in (Contraction, ContractStage, Permute):
    register_op(_cls)
