"""Static rules the generated Vitis HLS C++ must follow to reach II = 1 with correct hardware.

``einhls compile`` runs :func:`check_hls` on the ``hls/`` folder it has just written (into its
staging folder, so a refusal leaves no output behind) and refuses the design with exit code 2,
naming the rule and the place, when one is broken.  The rules are the ones the C-sim values can
never show (docs/hardware.md, "HLS rules"):

``no-false-dependence``
    No ``DEPENDENCE ... false`` pragma: declaring a real dependence false gives wrong hardware
    (UG1399).  Stage-to-stage buffers declare the true distance instead.
``one-pipelined-loop``
    Every function holding a pipelined loop is a dataflow process made of exactly one top-level
    loop (or a perfect loop nest) whose innermost level carries ``PIPELINE II=1``, so it flattens
    and rewinds from frame to frame; every loop inside a pipelined loop is unrolled.  Code under
    ``#ifndef __SYNTHESIS__`` or the C-sim check macros is not hardware and is skipped.
``dataflow-calls-only``
    A ``DATAFLOW`` function holds no loop: only declarations and process calls (canonical form).
``no-runtime-division``
    In every kernel of the library (the processes' pipelined bodies), ``/`` and ``%`` appear only
    between compile-time constants (configuration members, upper-case constants, literals):
    address arithmetic uses counters, compile-time tables and nested unrolled loops (an unrolled
    index is a constant to the tool, but not to this text check, so none is divided).
``lanes-divide``
    A contraction's Linear unit takes input lanes dividing SIMD and output lanes dividing PE (fixed
    wiring, no run-time lane selection; a span fold writes one row of PE a beat); a permutation buffer reads a power of two of lanes dividing
    its bank count.
``conflict-free-banks``
    Every input beat of a permutation buffer writes distinct banks under the emitted skew
    (rechecked exhaustively here), so each bank has one write port.
``butterfly-raw-distance``
    Simulating each butterfly stage group's issue loop (stage, cycle and gap counters as the kernel
    runs them), every read of the working buffer comes at least RAW_DISTANCE cycles after the write
    it needs: the distance its DEPENDENCE pragma declares.
``ap-int-width``
    AP_INT_MAX_W covers every ap_int width the kernels build (checked again in C++ by static_assert).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EinhlsError

DIVISION_FREE_KERNELS = ("einhls_contract.h", "einhls_butterfly.h", "einhls_linear.h", "einhls_stream.h",
                         "einhls_softmax.h", "einhls_layernorm.h", "einhls_gelu.h", "einhls_requant.h",
                         "einhls_relu.h", "einhls_graph.h", "einhls_axis.h", "einhls_csim.h", "einhls_actmatmul.h",
                         "einhls_window.h", "einhls_mask.h", "einhls_tokenmean.h",
                         "einhls_maskedmean.h")
AP_INT_DEFAULT_MAX_W = 1024


@dataclass(frozen=True)
class Violation:
    rule: str
    place: str
    detail: str

    def __str__(self) -> str:
        return f"HLS rule {self.rule} broken at {self.place}: {self.detail}"


# --- source text --------------------------------------------------------------------------------

_SKIPPED_BLOCK = re.compile(r"^\s*#\s*(ifndef\s+__SYNTHESIS__|ifdef\s+EINHLS_CSIM_\w+|if\s+defined\(EINHLS_CSIM_\w+\).*)\s*$")


def _hardware_text(text: str) -> str:
    """The text with comments, and blocks that are not hardware (C-sim only), blanked out; line
    numbers and columns stay where they were."""
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    text = re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)
    lines = text.split("\n")
    depth = 0          # nesting of #if inside a skipped block
    skipping = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not skipping and _SKIPPED_BLOCK.match(line):
            skipping, depth = True, 0
            lines[i] = ""
            continue
        if skipping:
            if stripped.startswith("#if"):
                depth += 1
            elif stripped.startswith("#endif"):
                if depth == 0:
                    skipping = False
                else:
                    depth -= 1
            lines[i] = ""
    return "\n".join(lines)


def _matching(text: str, open_at: int, pair: str = "{}") -> int:
    """Index of the bracket closing the one at ``open_at``."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == pair[0]:
            depth += 1
        elif text[i] == pair[1]:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced brackets")


@dataclass
class _Function:
    name: str
    body: str          # text between the braces
    start: int         # offset of the body in the file text


def _functions(text: str) -> list[_Function]:
    found = []
    for m in re.finditer(r"^[ \t]*(?:static\s+|inline\s+)*(?:void|[\w:<>]+)\s+(\w+)\s*\(", text, flags=re.M):
        name = m.group(1)
        if name in {"if", "for", "while", "switch", "return", "sizeof"}:
            continue
        params_end = _matching(text, m.end() - 1, "()")
        rest = text[params_end + 1:]
        head = re.match(r"\s*(const\s*)?\{", rest)
        if not head:
            continue
        open_at = params_end + 1 + head.end() - 1
        close = _matching(text, open_at)
        found.append(_Function(name, text[open_at + 1:close], open_at + 1))
    return found


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass
class _Loop:
    at: int            # offset of "for" / "while" in the body
    body: str
    body_at: int


def _top_level_loops(body: str) -> list[_Loop]:
    """Loops at nesting depth 0 of ``body`` (a braced loop body or a function body)."""
    loops = []
    depth = 0
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            m = re.compile(r"\b(for|while)\s*\(").match(body, i)
            if m and (i == 0 or not (body[i - 1].isalnum() or body[i - 1] == "_")):
                cond_end = _matching(body, m.end() - 1, "()")
                brace = re.match(r"\s*\{", body[cond_end + 1:])
                if brace:
                    open_at = cond_end + 1 + brace.end() - 1
                    close = _matching(body, open_at)
                    loops.append(_Loop(i, body[open_at + 1:close], open_at + 1))
                    i = close + 1
                    continue
                end = body.index(";", cond_end)
                loops.append(_Loop(i, body[cond_end + 1:end + 1], cond_end + 1))
                i = end + 1
                continue
        i += 1
    return loops


def _first_pragma(body: str) -> str:
    for line in body.split("\n"):
        if line.strip():
            return line.strip() if line.strip().startswith("#pragma") else ""
    return ""


def _pragmas_at_top(body: str) -> list[str]:
    pragmas = []
    for line in body.split("\n"):
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#pragma"):
            break
        pragmas.append(s.upper())
    return pragmas


def _check_unrolled_inside(file: str, text: str, func: _Function, loop_body: str, body_at: int,
                           out: list[Violation]) -> None:
    for inner in _top_level_loops(loop_body):
        place = f"{file}:{_line_of(text, body_at + inner.at)} ({func.name})"
        if not any("UNROLL" in p for p in _pragmas_at_top(inner.body)):
            out.append(Violation("one-pipelined-loop", place, "a loop inside a pipelined loop is not unrolled"))
        _check_unrolled_inside(file, text, func, inner.body, body_at + inner.body_at, out)
    # loops nested in plain blocks (if / else) of the pipelined body
    for m in re.finditer(r"\b(if|else)\b[^{;]*\{", loop_body):
        open_at = m.end() - 1
        # only blocks at depth 0 of this body
        if loop_body[:m.start()].count("{") != loop_body[:m.start()].count("}"):
            continue
        close = _matching(loop_body, open_at)
        _check_unrolled_inside(file, text, func, loop_body[open_at + 1:close], body_at + open_at + 1, out)


def check_kernel_text(file: str, source: str) -> list[Violation]:
    """The text rules on one kernel header (or generated source)."""
    out: list[Violation] = []
    text = _hardware_text(source)
    for m in re.finditer(r"#pragma\s+HLS\s+DEPENDENCE\b[^\n]*", text, flags=re.I):
        if re.search(r"\bfalse\b", m.group(0), flags=re.I):
            out.append(Violation("no-false-dependence", f"{file}:{_line_of(text, m.start())}", m.group(0).strip()))
    for func in _functions(text):
        where = f"{file}:{_line_of(text, func.start)} ({func.name})"
        if re.search(r"#pragma\s+HLS\s+DATAFLOW", func.body, flags=re.I):
            if _top_level_loops(func.body):
                out.append(Violation("dataflow-calls-only", where, "a DATAFLOW region holds a loop"))
            continue
        if not re.search(r"#pragma\s+HLS\s+PIPELINE", func.body, flags=re.I):
            continue
        loops = _top_level_loops(func.body)
        if len(loops) != 1:
            out.append(Violation("one-pipelined-loop", where,
                                 f"a dataflow process with {len(loops)} top-level loops (one flattened pipelined "
                                 "loop rewinds; loops in sequence drain between them)"))
            continue
        loop, body_at = loops[0], func.start + loops[0].body_at
        while not any(p.startswith("#PRAGMA HLS PIPELINE") for p in _pragmas_at_top(loop.body)):
            inner = _top_level_loops(loop.body)
            # a perfect nest: nothing but labels and pragmas around the one inner loop
            outside = loop.body[:inner[0].at] if len(inner) == 1 else loop.body
            if len(inner) == 1:
                outside += loop.body[inner[0].body_at + len(inner[0].body) + 1:]
            if len(inner) != 1 or re.sub(r"#pragma[^\n]*|\w+\s*:(?!:)|\s", "", outside):
                out.append(Violation("one-pipelined-loop", f"{file}:{_line_of(text, body_at)} ({func.name})",
                                     "the loop is neither pipelined nor a perfect nest around a pipelined loop"))
                break
            loop, body_at = inner[0], body_at + inner[0].body_at
        else:
            _check_unrolled_inside(file, text, func, loop.body, body_at, out)
        if file in DIVISION_FREE_KERNELS:
            out += _runtime_divisions(file, text, func)
    return out


_CONSTANT = r"(?:\(?\s*(?:[A-Z]\w*::)?[A-Z][A-Z0-9_]*|\d+[uUlL]*|\))"


def _runtime_divisions(file: str, text: str, func: _Function) -> list[Violation]:
    out = []
    for line_no, line in enumerate(func.body.split("\n")):
        s = line.strip()
        if s.startswith(("static_assert", "#")) or re.match(r"const\s+unsigned\s+[A-Z][A-Z0-9_]*\s*=", s):
            continue
        for m in re.finditer(r"(?<![/*])\s*([/%])(?![/=*])\s*", line):
            left = line[:m.start()].rstrip()
            right = line[m.end():]
            left_ok = re.search(r"(?:[A-Z]\w*::)?[A-Z][A-Z0-9_]*\)?$|\d+[uUlL]*$", left)
            right_ok = re.match(r"\(?\s*(?:[A-Z]\w*::)?[A-Z][A-Z0-9_]*|\d", right)
            if not (left_ok and right_ok):
                place = f"{file}:{_line_of(text, func.start) + line_no} ({func.name})"
                out.append(Violation("no-runtime-division", place, f"'{m.group(1)}' on a run-time value: {s}"))
    return out


# --- plan rules ---------------------------------------------------------------------------------

def _butterfly_raw_distance(unit) -> int:
    """The smallest distance, in issue cycles, between a working-buffer write and the read of the
    next stage in the same stage group (one process), with each group's issue loop run as the
    kernel runs it (counters and gaps); -1 when a group's loop count is not its stages and gaps."""
    from ..ir.butterfly import pair_elements

    c = unit.c
    total = c.n * c.stacks

    def cycle_of(stage: int) -> np.ndarray:
        e0, e1 = pair_elements(total, 1 << c.stride_log[stage])
        cyc = np.empty(total, dtype=np.int64)
        q = np.arange(total // 2)
        cyc[e0] = q // c.units
        cyc[e1] = q // c.units
        return cyc

    smallest = math.inf
    for roms in unit.groups:
        group = roms.group
        issue_of_stage = []            # issue cycle of each stage's cycle 0, from the group's start
        t = 0
        for local in range(group.stages):
            issue_of_stage.append(t)
            t += c.stage_cycles + roms.gaps[local]
        if t != group.issue:
            return -1
        for local in range(group.stages - 1):
            s = group.first + local
            written = issue_of_stage[local] + cycle_of(s)
            read = issue_of_stage[local + 1] + cycle_of(s + 1)
            smallest = min(smallest, int(np.min(read - written)))
    return int(smallest) if smallest != math.inf else unit.raw_distance


def check_plan(plan) -> list[Violation]:
    from ..schedule.contraction import bank_of
    from .butterfly import ButterflyUnit
    from .contraction import ContractUnit, PermuteUnit
    from .hls import internal_widths

    out: list[Violation] = []
    widest = 0
    for stage in plan.stages:
        unit = stage.unit
        widest = max([widest, *internal_widths(unit)])
        name = getattr(unit, "op", "repack")
        if isinstance(unit, ContractUnit):
            lin = unit.linear
            if lin.simd % lin.in_lanes or lin.k % lin.in_lanes:
                out.append(Violation("lanes-divide", f"{unit.header} ({name})",
                                     f"{lin.in_lanes} input lanes do not divide SIMD {lin.simd} and K {lin.k}"))
            if lin.pe % lin.out_lanes or (lin.n % lin.out_lanes and not unit.rep_n):   # a span fold: a row a beat
                out.append(Violation("lanes-divide", f"{unit.header} ({name})",
                                     f"{lin.out_lanes} output lanes do not divide PE {lin.pe} and N {lin.n}"))
        elif isinstance(unit, PermuteUnit):
            if unit.banks % unit.out_lanes or unit.banks & (unit.banks - 1):
                out.append(Violation("lanes-divide", f"{unit.header} ({name})",
                                     f"{unit.out_lanes} read lanes do not divide {unit.banks} banks (a power of two)"))
            digits = np.indices(unit.extents[::-1]).reshape(len(unit.extents), -1)[::-1]   # digit 0 first
            pos = sum(d * st for d, st in zip(digits, unit.strides))
            beats = unit.in_beats
            padded = np.full(beats * unit.in_lanes, -1, dtype=np.int64)
            padded[:pos.size] = pos
            bank = np.where(padded < 0, -1 - np.arange(padded.size) % unit.in_lanes,
                            bank_of(np.maximum(padded, 0), unit.banks, unit.skew, unit.skew_mul))
            rows = np.sort(bank.reshape(beats, unit.in_lanes), axis=1)
            clash = np.argwhere(rows[:, 1:] == rows[:, :-1])
            if clash.size:
                out.append(Violation("conflict-free-banks", f"{unit.header} ({name})",
                                     f"input beat {int(clash[0][0])} writes bank {int(rows[clash[0][0], clash[0][1]])} "
                                     "twice"))
        elif isinstance(unit, ButterflyUnit):
            distance = _butterfly_raw_distance(unit)
            if distance < unit.raw_distance:
                out.append(Violation("butterfly-raw-distance", f"{unit.header} ({name})",
                                     f"a stage reads a result {distance} cycles after its write; the pipeline "
                                     f"needs {unit.raw_distance}"))
    limit = plan.ap_int_max_w or AP_INT_DEFAULT_MAX_W
    if widest > limit:
        out.append(Violation("ap-int-width", f"{plan.top}.h", f"a {widest}-bit word with AP_INT_MAX_W {limit}"))
    return out


def check_hls(plan, hls_dir: Path) -> None:
    """Every rule on the written hls/ folder and its plan; EinhlsError naming the first broken one."""
    violations = check_plan(plan)
    for path in sorted(Path(hls_dir).iterdir()):
        if path.suffix in (".h", ".cpp"):
            violations += check_kernel_text(path.name, path.read_text())
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise EinhlsError(f"{violations[0]}{more}; the HLS C++ was not emitted")
