"""Unit parameters of the graph ops (Fork, Add, Mul, Concat, Slice) for both back ends.

Python decides every number here; the Verilog units are ``rtl_kernels/einhls_{fork,add,mul,concat,
slice}.v`` and the HLS ones ``hls_kernels/einhls_graph.h`` (configured for Add / Mul through
``templates/hls/params_join.h.j2``).  The top-level emitters (netlist, FIFOs, wiring) call
:func:`rtl_unit` and :func:`hls_unit` with the lane count the schedule gives the op's streams: one
lane count for every input and output of the op.

Stream layout, as every unit: element e of a token in beat e // lanes, lane e % lanes; lanes past
the end of a token are zero.  Concat and Slice move whole beats, so the lanes must divide the
features of every Concat input but the last and a Slice's start (and its stop, unless the stop is
the token's end); a padded last beat then carries exactly the output's padding.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

from ..errors import EinhlsError
from ..ir.graph import Op
from ..ir.joins import Add, Concat, Fork, Mul, Slice
from ..ir.types import bits_for_range

if TYPE_CHECKING:
    from .rtl import Param

FORK_MAX_COPIES = 8
CONCAT_MAX_INPUTS = 4
BINOP_LATENCY = 4          # einhls_binop: centred inputs, products, value, rounded output
# 64-bit parameters (Verilog) and long long constants (C++) carry the zero points and bounds
WORD_BITS = 64


def _beats(size: int, lanes: int) -> int:
    return math.ceil(size / lanes)


def _check_lanes(op: Op, lanes: int) -> int:
    """``lanes`` as a Python int (numpy integers welcome), or an error naming the op."""
    if isinstance(lanes, bool) or not isinstance(lanes, numbers.Integral) or lanes < 1:
        raise EinhlsError(f"lane count {lanes!r} must be a positive integer", node=op.name)
    return int(lanes)


def _check_bounds(op: Add | Mul) -> None:
    """ZP, LO, HI are codes of the output type (the units clamp at OUT_BITS + 1 signed bits)."""
    rq, limit = op.rq, 1 << op.out_type.bits
    if not all(-limit <= v < limit for v in (rq.zero_point, rq.lo, rq.hi)) or rq.lo > rq.hi:
        raise EinhlsError(f"{op.kind} bounds {rq.lo}..{rq.hi} (zero point {rq.zero_point}) do not fit "
                          f"the {op.out_type.bits}-bit output", node=op.name)
    if rq.multiplier_bits >= WORD_BITS or min(rq.multipliers) < 0:
        raise EinhlsError(f"{op.kind} multipliers {rq.multipliers} must be unsigned and below 2^63",
                          node=op.name)


def _multipliers(op: Add | Mul) -> list[tuple[str, int]]:
    """(parameter name, value) of the unit's multipliers: MA, MB for Add, M for Mul."""
    if isinstance(op, Add):
        ma, mb = op.rq.multipliers
        return [("MA", int(ma)), ("MB", int(mb))]
    return [("M", int(op.rq.multipliers[0]))]


def concat_beats(op: Concat, lanes: int) -> list[int]:
    """Beats per token of each Concat input; every input but the last must fill whole beats."""
    if not 2 <= len(op.sizes) <= CONCAT_MAX_INPUTS:
        raise EinhlsError(f"concat of {len(op.sizes)} inputs; the unit joins 2 to {CONCAT_MAX_INPUTS}",
                          node=op.name)
    for i, size in enumerate(op.sizes[:-1]):
        if size % lanes:
            raise EinhlsError(f"concat input {i} has {size} features, not a multiple of the {lanes} lanes "
                              "(its beats would not line up with the next input's)", node=op.name)
    return [_beats(size, lanes) for size in op.sizes]


def slice_beats(op: Slice, lanes: int) -> tuple[int, int, int]:
    """(IN_BEATS, FIRST, COUNT) of a Slice: the lanes must divide its start and its stop (or the
    stop is the token's end)."""
    stop = op.start + op.out_size
    if op.start % lanes or (stop % lanes and stop != op.in_size):
        raise EinhlsError(f"slice [{op.start}, {stop}) of {op.in_size} features does not fall on whole "
                          f"beats of {lanes} lanes", node=op.name)
    return _beats(op.in_size, lanes), op.start // lanes, _beats(op.out_size, lanes)


def rtl_latency(op: Op) -> int:
    """Cycles from a beat's input handshake to its output handshake in the Verilog unit when the
    output is ready (the register stages; measured in tests/test_join_units.py), for sizing the
    FIFOs of a fork-join diamond."""
    if isinstance(op, (Add, Mul)):
        return BINOP_LATENCY
    if isinstance(op, (Fork, Concat, Slice)):
        return 1
    raise EinhlsError(f"no graph unit for IR op kind {op.kind!r}", node=op.name)


def rtl_unit(op: Op, lanes: int) -> tuple[str, list[Param]]:
    """(module name, parameter overrides) of the Verilog unit of a Fork/Add/Mul/Concat/Slice op
    working at `lanes` elements per beat."""
    from .rtl import Param

    lanes = _check_lanes(op, lanes)
    width = lanes * op.in_type.bits
    if isinstance(op, Fork):
        if not 2 <= op.copies <= FORK_MAX_COPIES:
            raise EinhlsError(f"fork to {op.copies} consumers; the unit feeds 2 to {FORK_MAX_COPIES} "
                              "(chain forks for more)", node=op.name)
        return "einhls_fork", [Param("WIDTH", width), Param("N", op.copies)]
    if isinstance(op, (Add, Mul)):
        _check_bounds(op)
        a, b, rq = op.in_type, op.in_type_b, op.rq
        params = [Param("LANES", lanes), Param("SIZE", op.in_size),
                  Param("A_BITS", a.bits), Param("A_SIGNED", int(a.signed)),
                  Param("B_BITS", b.bits), Param("B_SIGNED", int(b.signed)),
                  Param("OUT_BITS", op.out_type.bits),
                  Param("A_ZP", a.zero_point, "s64"), Param("B_ZP", b.zero_point, "s64"),
                  *(Param(name, value, "u64") for name, value in _multipliers(op)),
                  Param("M_BITS", rq.multiplier_bits), Param("SHIFT", rq.shift),
                  Param("ZP", rq.zero_point, "s64"), Param("LO", rq.lo, "s64"), Param("HI", rq.hi, "s64")]
        return ("einhls_add" if isinstance(op, Add) else "einhls_mul"), params
    if isinstance(op, Concat):
        beats = concat_beats(op, lanes)
        padded = beats + [0] * (CONCAT_MAX_INPUTS - len(beats))
        return "einhls_concat", [Param("N", len(beats)), Param("WIDTH", width),
                                 *(Param(f"BEATS{i}", n) for i, n in enumerate(padded))]
    if isinstance(op, Slice):
        in_beats, first, count = slice_beats(op, lanes)
        return "einhls_slice", [Param("WIDTH", width), Param("IN_BEATS", in_beats), Param("FIRST", first),
                                Param("COUNT", count)]
    raise EinhlsError(f"no graph unit for IR op kind {op.kind!r}", node=op.name)


def hls_function(op: Op, lanes: int) -> tuple[str, list[int]]:
    """(function in namespace einhls, its integer template arguments) of a Fork/Concat/Slice op at
    `lanes` elements per beat: fork_stream<W, BEATS, N>, concatN<W, B0, ...>,
    slice_stream<W, IN_BEATS, FIRST, COUNT>.  Add and Mul take their params header's cfg instead:
    (add_stream / mul_stream, [])."""
    lanes = _check_lanes(op, lanes)
    width = lanes * op.in_type.bits
    if isinstance(op, (Add, Mul)):
        return f"{op.kind}_stream", []
    if isinstance(op, (Fork, Concat, Slice)):
        module, params = rtl_unit(op, lanes)          # the same checks and numbers as the Verilog
        p = {param.name: int(param.value) for param in params}
        if isinstance(op, Fork):
            return "fork_stream", [width, _beats(op.in_size, lanes), op.copies]
        if isinstance(op, Concat):
            return f"concat{p['N']}", [width, *(p[f"BEATS{i}"] for i in range(p["N"]))]
        return "slice_stream", [width, p["IN_BEATS"], p["FIRST"], p["COUNT"]]
    raise EinhlsError(f"no graph unit for IR op kind {op.kind!r}", node=op.name)


def hls_unit(op: Op, lanes: int, ns: str) -> dict:
    """What templates/hls/params_join.h.j2 needs for an Add or Mul op ({'header': f'{ns}.h', 'ns': ns, ...})."""
    from .hls import CType

    lanes = _check_lanes(op, lanes)
    if not isinstance(op, (Add, Mul)):
        raise EinhlsError(f"op kind {op.kind!r} needs no parameter header (only add and mul do)", node=op.name)
    if not ns.isidentifier():
        raise EinhlsError(f"namespace {ns!r} is not a C++ identifier", node=op.name)
    _check_bounds(op)
    v_lo, v_hi = op.value_range
    rq = op.rq
    formula = ("MA * (a - A_ZP) + MB * (b - B_ZP)" if isinstance(op, Add) else "(a - A_ZP) * (b - B_ZP) * M")
    return {
        "header": f"{ns}.h", "ns": ns, "kind": op.kind, "op": op.name, "source": op.source,
        "summary": f"{'Add' if isinstance(op, Add) else 'Mul'} of {op.in_size} elements, {lanes} per beat",
        "formula": formula,
        "size": op.in_size, "lanes": lanes, "beats": _beats(op.in_size, lanes),
        "a_t": CType.of(op.in_type), "b_t": CType.of(op.in_type_b), "out_t": CType.of(op.out_type),
        "v_t": CType(True, bits_for_range(min(v_lo, -1), max(v_hi, 0))),
        "m_t": CType(False, rq.multiplier_bits),
        "a_zp": op.in_type.zero_point, "b_zp": op.in_type_b.zero_point,
        "multipliers": _multipliers(op),
        "shift": rq.shift, "zp": rq.zero_point, "lo": rq.lo, "hi": rq.hi,
    }
