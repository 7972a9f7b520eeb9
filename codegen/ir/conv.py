"""Ops of convolutional networks: the sliding window and the regrouping of pixels into one vector.

Activations of a CNN stream pixel by pixel, the channels of a pixel inside one vector (as FINN
does): a [1, C, H, W] activation is a tensor of H*W tokens of C features, in raster order (row by
row, left to right).  A convolution is two ops:

* :class:`Window` - the sliding-window generator: for every output pixel, in raster order, the
  kh x kw input pixels under the kernel (stride, dilation, padding with the code of real 0) one
  after the other, so one window vector has kh*kw*C features ordered (ky, kx, c).  Hardware keeps
  a few input rows in a line buffer (``buffer_rows``).
* a :class:`~codegen.ir.graph.Linear` on that vector, whose weight is the kernel laid out the same
  way ([out, kh, kw, C] flattened): the existing dense or N:M MAC array, folded by the scheduler.

1-D convolutions are the same with a height of one.  MaxPool is a window padded with the type's
minimum followed by :class:`TapMax` (the largest code of each channel over the taps).  :class:`Regroup` turns ``group`` consecutive
tokens into one token of their features one after the other (Flatten in front of a classifier):
the element order of the stream does not change, so its hardware is a wire.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .graph import Op, register_op
from .types import QType


@register_op
@dataclass
class Window(Op):
    """One window vector of kh*kw*C features per output pixel (see module docstring)."""
    height: int = 1
    width: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)   # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    pad_code: int = 0                                 # the input code of real 0
    # line-buffer rows the scheduler chose above the minimum (0: the minimum), where a slower
    # consumer would otherwise hold back the writer at a frame's end (schedule/conv_cost.py)
    rows: int = 0
    kind: ClassVar[str] = "window"

    @property
    def channels(self) -> int:
        return self.in_size

    @property
    def extent(self) -> tuple[int, int]:
        """Rows and columns one window spans in the input (dilation included)."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def out_height(self) -> int:
        return (self.height + self.pads[0] + self.pads[2] - self.extent[0]) // self.stride[0] + 1

    @property
    def out_width(self) -> int:
        return (self.width + self.pads[1] + self.pads[3] - self.extent[1]) // self.stride[1] + 1

    @property
    def min_buffer_rows(self) -> int:
        """The fewest input rows the line buffer may hold: one window's rows plus a stride's worth,
        so the next rows arrive while the windows of this output row leave; a power of two (the
        row slot is the low bits of the row number)."""
        need = self.extent[0] + self.stride[0]
        return 1 << (need - 1).bit_length()

    @property
    def buffer_rows(self) -> int:
        """Input rows the line buffer holds: the minimum, or more where the scheduler chose it."""
        return max(self.min_buffer_rows, self.rows)

    @property
    def first_output_tokens(self) -> int:
        """Input pixels that must arrive before the first window can leave."""
        last_row = min(self.extent[0] - 1 - self.pads[0], self.height - 1)
        last_col = min(self.extent[1] - 1 - self.pads[1], self.width - 1)
        return last_row * self.width + last_col + 1

    def out_tokens(self, in_tokens: int) -> int:
        assert in_tokens == self.height * self.width, (self.name, in_tokens, self.height, self.width)
        return self.out_height * self.out_width

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        c, (kh, kw), (sh, sw), (dh, dw) = self.channels, self.kernel, self.stride, self.dilation
        top, left, bottom, right = self.pads
        img = x.to(torch.int64).reshape(-1, self.height, self.width, c)
        padded = torch.full((img.shape[0], self.height + top + bottom, self.width + left + right, c),
                            self.pad_code, dtype=torch.int64)
        padded[:, top:top + self.height, left:left + self.width] = img
        oh, ow = self.out_height, self.out_width
        taps = []
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dh, kx * dw
                taps.append(padded[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw])
        windows = torch.stack(taps, dim=3)            # [B, oh, ow, kh*kw, C]
        return windows.reshape(-1, kh * kw * c)

    def params_json(self) -> dict:
        return {"height": self.height, "width": self.width, "kernel": list(self.kernel),
                "stride": list(self.stride), "pads": list(self.pads), "dilation": list(self.dilation),
                "pad_code": self.pad_code, "rows": self.rows}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Window":
        return cls(**common, height=d["height"], width=d["width"], kernel=tuple(d["kernel"]),
                   stride=tuple(d["stride"]), pads=tuple(d["pads"]), dilation=tuple(d["dilation"]),
                   pad_code=d["pad_code"], rows=d.get("rows", 0))


@register_op
@dataclass
class Regroup(Op):
    """``group`` consecutive tokens become one token of ``group * in_size`` features (same order)."""
    group: int = 1
    kind: ClassVar[str] = "regroup"

    def out_tokens(self, in_tokens: int) -> int:
        assert in_tokens % self.group == 0, (self.name, in_tokens, self.group)
        return in_tokens // self.group

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64).reshape(-1, self.out_size)

    def params_json(self) -> dict:
        return {"group": self.group}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "Regroup":
        return cls(**common, group=d["group"])


@register_op
@dataclass
class TapMax(Op):
    """Per channel, the largest of the ``taps`` pixels of a window vector (the max of MaxPool after a
    :class:`Window` padded with the type's minimum): [taps * C] -> [C], codes compared as numbers,
    so it is exact for any scale and zero point."""
    taps: int = 1
    kind: ClassVar[str] = "tapmax"

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64).reshape(-1, self.taps, self.out_size).amax(dim=1)

    def params_json(self) -> dict:
        return {"taps": self.taps}

    @classmethod
    def from_json_fields(cls, common: dict, d: dict, arrays: dict[str, np.ndarray]) -> "TapMax":
        return cls(**common, taps=d["taps"])


def make_tapmax(name: str, source: str, qtype: QType, channels: int, taps: int) -> TapMax:
    return TapMax(name=name, source=source, in_type=qtype, out_type=qtype, in_size=taps * channels,
                  out_size=channels, taps=taps)


def _pair(values, what: str) -> tuple[int, int]:
    values = tuple(int(v) for v in values)
    if len(values) != 2:
        raise ValueError(f"{what} needs two values, got {list(values)}")
    return values


def make_window(name: str, source: str, qtype: QType, channels: int, height: int, width: int,
                kernel, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1),
                pad_code: int | None = None) -> Window:
    """A sliding window over a [height, width] image of ``channels`` features per pixel.

    ``pad_code`` defaults to the type's zero point (the code of real 0).  Refused (ValueError):
    padding as wide as the window (a window made of padding only), a window larger than the padded
    image, a pad code outside the type."""
    kernel, stride, dilation = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = tuple(int(p) for p in pads)
    if len(pads) != 4:
        raise ValueError(f"pads needs four values (top, left, bottom, right), got {list(pads)}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(pads) < 0:
        raise ValueError(f"kernel {kernel}, stride {stride} and dilation {dilation} must be positive "
                         f"and pads {pads} not negative")
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if max(pads[0], pads[2]) >= extent[0] or max(pads[1], pads[3]) >= extent[1]:
        raise ValueError(f"padding {list(pads)} as wide as the {extent[0]}x{extent[1]} window is not "
                         "supported (some windows would hold padding only)")
    if height + pads[0] + pads[2] < extent[0] or width + pads[1] + pads[3] < extent[1]:
        raise ValueError(f"the {extent[0]}x{extent[1]} window is larger than the padded "
                         f"{height}x{width} input")
    pad_code = qtype.zero_point if pad_code is None else int(pad_code)
    if not qtype.min <= pad_code <= qtype.max:
        raise ValueError(f"the code of real 0 ({pad_code}) is outside the input type "
                         f"[{qtype.min}, {qtype.max}], so zero padding cannot be represented")
    return Window(name=name, source=source, in_type=qtype, out_type=qtype, in_size=channels,
                  out_size=kernel[0] * kernel[1] * channels, height=height, width=width, kernel=kernel,
                  stride=stride, pads=pads, dilation=dilation, pad_code=pad_code)


def make_regroup(name: str, source: str, qtype: QType, size: int, group: int) -> Regroup:
    return Regroup(name=name, source=source, in_type=qtype, out_type=qtype, in_size=size,
                   out_size=size * group, group=group)


def conv_weight_matrix(weight: np.ndarray) -> np.ndarray:
    """ONNX Conv weight [out, C, kh, kw] (or [out, C, k] for 1-D) -> Linear weight [out, kh*kw*C]
    in the window's (ky, kx, c) order."""
    w = np.asarray(weight)
    if w.ndim == 3:
        w = w[:, :, None, :]
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
