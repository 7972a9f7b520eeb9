"""Unit parameters of the convolution ops (Window, Regroup) for both back ends, and the HLS top of
a graph whose token count changes (a CNN).

Python decides every number here; the Verilog unit is ``rtl_kernels/einhls_window.v`` and the HLS
one ``hls_kernels/einhls_window.h``.  A Regroup is a wire: a register slice (``einhls_skid``) in
Verilog, a beat copy in C++.

HLS frame mode: the usual DATAFLOW top runs every process once per token, which only works when
every tensor has the same number of tokens.  A window changes it, so a CNN's top is called once per
frame and each process is a small wrapper that calls its kernel as many times as its op runs a
frame (a window once, a Linear once per output pixel): ``templates/hls/top_frames.cpp.j2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import EinhlsError
from ..ir.conv import Window
from ..ir.graph import Graph

#: the op kinds the frame-mode HLS top knows how to call
#: op kinds whose kernel runs once a frame in the frame-per-call top (every other kernel runs once
#: per token it writes; a softmax over attention heads once per row)
ONCE_A_FRAME = frozenset({"window", "actmatmul", "maskscores", "tokenmean", "maskedmean"})


def _window_params(op: Window, lanes: int) -> list[tuple[str, int]]:
    if op.channels % lanes:
        raise EinhlsError(f"{lanes} lanes do not divide the {op.channels} channels of a pixel", node=op.name)
    return [("CHANNELS", op.channels), ("LANES", lanes), ("BITS", op.in_type.bits), ("HEIGHT", op.height),
            ("WIDTH", op.width), ("KH", op.kernel[0]), ("KW", op.kernel[1]), ("SH", op.stride[0]),
            ("SW", op.stride[1]), ("PT", op.pads[0]), ("PL", op.pads[1]), ("DH", op.dilation[0]),
            ("DW", op.dilation[1]), ("OH", op.out_height), ("OW", op.out_width)]


def rtl_window_unit(index, op, s, design):
    """The einhls_window instance of a Window op (one lane count in and out)."""
    from .rtl import Param, Stage
    params = [Param("WIDTH_PX" if name == "WIDTH" else name, value) for name, value in _window_params(op, s.in_lanes)]
    params += [Param("ROWS_LOG", max(1, op.buffer_rows.bit_length() - 1)), Param("PAD", op.pad_code, "s64")]
    width = s.in_lanes * op.in_type.bits
    comment = (f"{op.name}: {op.kernel[0]}x{op.kernel[1]} windows (stride {op.stride}, pads {op.pads}, dilation "
               f"{op.dilation}) over {op.height}x{op.width} pixels of {op.channels} channels, {s.in_lanes} per beat, "
               f"line buffer of {op.buffer_rows} rows")
    return [Stage("einhls_window", f"u{index}_{op.name}", comment, params, width, width)], [], False


def rtl_regroup_unit(index, op, s, design):
    """A Regroup is a wire (the element order does not change): a register slice keeps the timing."""
    from .rtl import Param, Stage
    width = s.in_lanes * op.in_type.bits
    comment = f"{op.name}: {op.group} tokens of {op.in_size} features become one (a wire), {s.in_lanes} per beat"
    return [Stage("einhls_skid", f"u{index}_{op.name}", comment, [Param("WIDTH", width)], width, width)], [], False


def rtl_tapmax_unit(index, op, s, design):
    """The einhls_tapmax instance of a TapMax op (MaxPool after a window)."""
    from .rtl import Param, Stage
    if op.out_size % s.in_lanes:
        raise EinhlsError(f"{s.in_lanes} lanes do not divide the {op.out_size} channels", node=op.name)
    params = [Param("CHANNELS", op.out_size), Param("LANES", s.in_lanes), Param("BITS", op.in_type.bits),
              Param("SIGNED", int(op.in_type.signed)), Param("TAPS", op.taps)]
    width = s.in_lanes * op.in_type.bits
    comment = f"{op.name}: per channel the largest of {op.taps} taps of {op.out_size} channels, {s.in_lanes} per beat"
    # its s_axis_tready follows m_axis_tready on the last tap: True puts a register slice after it
    return [Stage("einhls_tapmax", f"u{index}_{op.name}", comment, params, width, width)], [], True


@dataclass
class TapMaxUnit:
    """einhls::tapmax_stream of a TapMax op: one window in, its per-channel maximum out."""
    op: str
    source: str
    summary: str
    lanes: int
    bits: int
    signed: bool
    channels: int
    taps: int
    kind: str = "tapmax"

    def internal_widths(self) -> list[int]:
        return [self.lanes * self.bits, self.bits + 1]


def hls_tapmax_unit(index, op, design, ns, header):
    s = design.schedule(op)
    unit = TapMaxUnit(op.name, op.source, f"per channel the largest of {op.taps} taps, {s.in_lanes} per beat",
                      s.in_lanes, op.in_type.bits, op.in_type.signed, op.out_size, op.taps)
    return unit, [s.in_lanes * op.in_type.bits], s.out_lanes


@dataclass
class WindowUnit:
    """The einhls_window.h call of a Window op (configuration in the top's parameter header)."""
    index: int
    op: str
    source: str
    ns: str
    header: str
    summary: str
    lanes: int
    bits: int
    params: list[tuple[str, int]]
    rows: int
    pad: int
    kind: str = "window"

    def internal_widths(self) -> list[int]:
        return [self.lanes * self.bits]


@dataclass
class RegroupUnit:
    """einhls::copy_beats of a Regroup op: the beats of one output token."""
    op: str
    source: str
    summary: str
    width: int
    beats: int
    kind: str = "regroup"

    def internal_widths(self) -> list[int]:
        return [self.width]


def hls_window_unit(index, op, design, ns, header):
    s = design.schedule(op)
    unit = WindowUnit(index, op.name, op.source, ns, header,
                      f"{op.kernel[0]}x{op.kernel[1]} windows over {op.height}x{op.width} pixels of "
                      f"{op.channels} channels, {s.in_lanes} per beat, {op.buffer_rows} buffered rows",
                      s.in_lanes, op.in_type.bits, _window_params(op, s.in_lanes), op.buffer_rows, op.pad_code)
    return unit, [s.in_lanes * op.in_type.bits], s.out_lanes


def hls_regroup_unit(index, op, design, ns, header):
    s = design.schedule(op)
    width = s.in_lanes * op.in_type.bits
    unit = RegroupUnit(op.name, op.source, f"{op.group} tokens of {op.in_size} features become one (a wire)",
                       width, math.ceil(op.out_size / s.in_lanes))
    return unit, [width], s.out_lanes


def changes_tokens(graph: Graph) -> bool:
    """Whether some op changes the number of tokens."""
    return any(op.kind in ("window", "regroup", "tokenmean", "maskedmean") for op in graph.ops)


def frame_per_call(graph: Graph) -> bool:
    """Whether the HLS top handles a whole frame per call (templates/hls/top_frames.cpp.j2): when
    the token count changes, or an attention product buffers a sequence, the per-token calls of the
    other designs would leave a reader with nothing to read.  Attention over a single token too: its
    Softmax runs once per head (bench.fuzz found the per-token top wrong there; tests/test_fuzz.py)."""
    return changes_tokens(graph) or any(op.kind == "actmatmul" for op in graph.ops)


def frame_stages(graph: Graph, plan) -> list[dict]:
    """The wrapper of every stage of an HLS plan, in stage order: how often it calls its kernel a
    frame (a window or an attention product once, every other kernel once per token it writes - once
    per row for a softmax over heads -, a lane re-pack once per token it passes), its parameters
    (name, stream width, copies), the top's streams it is called with, and the names its kernel
    call uses (``st.args``)."""
    from ..schedule.folding import token_counts
    counts = token_counts(graph)
    widths = {d.name: d.width for d in plan.streams}
    stream_tokens = {plan.first: graph.tokens}
    wrappers = []
    for index, st in enumerate(plan.stages):
        unit = st.unit
        srcs, dsts = st.srcs or [st.src], st.dsts or [st.dst]
        have = stream_tokens[srcs[0].split("[")[0]]
        if unit.kind == "repack":
            calls, out = have, have
        else:
            op = graph.op(unit.op)
            out = counts[op.outputs[0]]
            # (only units that declare it run more than once a token: a permutation or window unit's
            # `rows` are its memory's, not calls)
            # (a Linear unit with token pairs handles two tokens a call)
            calls = 1 if op.kind in ONCE_A_FRAME else \
                out * getattr(unit, "calls_per_token", 1) // getattr(unit, "token_pack", 1)
        # the wrapper's parameters: (name, stream width, copies; 0 for one stream passed by reference)
        ports = [(f"in{i}", widths[name.split("[")[0]], 0) for i, name in enumerate(srcs)]
        array = dsts[0].split("[")[0] if "[" in dsts[0] else None
        if array:   # the copies of a fork: one array of streams
            ports.append(("out", widths[array], len(dsts)))
        else:
            ports.append(("out0", widths[dsts[0]], 0))
        for dst in dsts:
            stream_tokens[dst.split("[")[0]] = out
        args = list(srcs) + [array or dsts[0]]
        wrappers.append({"name": f"stage{index:02d}", "repeats": calls, "ports": ports, "args": args,
                         "st": {"unit": unit, "args": [port for port, _, _ in ports]}})
    return wrappers
