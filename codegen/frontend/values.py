"""What the front end knows about each ONNX tensor while it lowers a graph.

Every tensor is exactly one of:

* :class:`Const` - a constant, folded at compile time; when it came through a quantizer it also
  carries its integer codes and (per-element) scale and zero point;
* :class:`FloatInput` - the float graph input before its first quantizer;
* :class:`Codes` - the integer codes of an IR tensor (a QuantizeLinear output, an integer input);
* :class:`Real` - a real value exactly represented by the codes of an IR tensor:
  ``scale[e] * (code[e] - zp + offset[e])``, optionally with a ReLU still to apply;
* :class:`Acc` - a pending accumulator ``scale[n] * (bias[n] + sum_k weight[n, k] * x[k])`` of a
  MatMul/Gemm, which becomes an IR ``Linear`` once its output type is known.

Every activation value names the IR tensor it stands for (``tensor``), so the graph may branch.
Per-element arrays (``scale``, ``offset``) are flat over the whole value (all tokens), in row-major
element order, so reshapes that keep element order only change ``shape``; ``Acc.bias`` and
``Acc.scale`` are per output feature (one token).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def size_of(shape: tuple[int, ...]) -> int:
    """Number of elements of a tensor of this shape."""
    return int(math.prod(shape))


@dataclass
class Const:
    """A compile-time constant; ``codes``/``scale``/``zero_point`` (full shape) when quantized."""
    value: np.ndarray
    codes: np.ndarray | None = None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None

    @property
    def quantized(self) -> bool:
        return self.codes is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)


@dataclass
class FloatInput:
    """The float graph input, not yet quantized."""
    shape: tuple[int, ...]
    tensor: str | None = None


@dataclass
class Codes:
    """The integer codes of an IR tensor (``tensor``; None until the lowering stamps it)."""
    shape: tuple[int, ...]
    tensor: str | None = None
    view: object | None = None   # a frontend.attention.HeadView when the value is split into heads


@dataclass
class Real:
    """``scale[e] * (code[e] - zp + offset[e])`` of the stream codes, then ReLU if ``relu``."""
    shape: tuple[int, ...]
    scale: np.ndarray   # float64 [size], positive
    offset: np.ndarray  # int64 [size]
    relu: bool = False
    sources: list[str] = field(default_factory=list)  # ONNX nodes folded in, not yet in an op
    tensor: str | None = None   # the IR tensor whose codes these are
    view: object | None = None   # a frontend.attention.HeadView when the value is split into heads

    @staticmethod
    def of_stream(shape: tuple[int, ...], scale: float | np.ndarray, offset: int | np.ndarray = 0) -> "Real":
        size = size_of(shape)
        return Real(shape, np.broadcast_to(np.asarray(scale, dtype=np.float64), (size,)).copy(),
                    np.broadcast_to(np.asarray(offset, dtype=np.int64), (size,)).copy())

    @property
    def uniform_scale(self) -> float | None:
        """The one scale of all elements, or None when per element."""
        return float(self.scale[0]) if np.all(self.scale == self.scale[0]) else None

    @property
    def plain(self) -> bool:
        """No offset and no pending ReLU: the codes themselves, scaled."""
        return not self.relu and not np.any(self.offset)


@dataclass
class Acc:
    """A MatMul/Gemm accumulator not yet given an output type (see module docstring)."""
    shape: tuple[int, ...]
    weight: np.ndarray  # int64 [N, K], weight zero point removed
    bias: np.ndarray    # int64 [N], accumulator units (input offsets folded in)
    scale: np.ndarray   # float64 [N], real value of one accumulator unit
    node: str           # the MatMul/Gemm node name (for sparsity declarations and messages)
    hint: str           # naming hint for the IR op
    sources: list[str] = field(default_factory=list)  # the ONNX nodes folded in so far
    relu: bool = False
    tensor: str | None = None   # the IR tensor the MatMul reads


Value = Const | FloatInput | Codes | Real | Acc
