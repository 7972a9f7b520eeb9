"""Expansion of each ``Contraction`` op into a pipeline of hardware stages (the fused-einsum mapping).

For every segment of a Contraction (see :mod:`codegen.ir.contraction`):

1. A contraction path is chosen with :func:`codegen.schedule.paths.best_path` (objective ``macs``,
   ``latency``, ``resources`` or ``product``), never storing more constant elements than the model
   gives (``max_weight_elems``), so merging cores back into a dense matrix is never chosen.
2. Steps between two constants are done here, once, exactly in integers (offline merges).
3. Every step that touches the activation becomes a :class:`ContractStage`: the activation's free
   indices are the R repeats (in their current order), the contracted ones the K inputs, the
   constant's free indices the N outputs, and W the constant reshaped to N x K.  Indices shared by
   the activation, the constant and the result (batch indices, which TT/Tucker/low rank never
   produce) are expanded block-diagonally.  The stage reads its input through a
   :class:`Transposition` done by address generation where its input buffer is written: no copy
   pass.  The N order of a stage is chosen so that the next stage's contracted indices come last,
   and the last stage's order follows the output, so most gathers and the final permutation vanish.
4. Intermediates keep their exact integer width, computed per element by interval arithmetic
   through the stages; the last stage applies the segment's requantization.  When the segment's
   bias or multipliers vary along the repeats (a per-output bias after a TT layer), the last stage
   stays exact and an elementwise ``Requant`` applies them.  A final ``Permute`` puts the output
   in the model's order when the last stage's (r, n) order is not it.
5. A stage before the last whose weights share a factor g (codes that are all multiples of 256,
   from a core whose scale was aligned to a finer one) computes y / g; the last stage's weights
   carry the product of those factors, so the output is unchanged and every intermediate is
   narrower (fewer DSPs per product, DSP packing possible again): see ``expand_segment``.

A stage with R = 1 and no gather is a plain ``Linear`` op (the plain Linear unit, with N:M
sparsity detection).  Every result is bit-identical to the Contraction's reference (integer
arithmetic is exact in any order); ``tests/test_contraction.py`` checks it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import EinhlsError
from ..frontend.sparsity import saves_multipliers
from ..ir.contraction import Contraction, ContractStage, Permute, Segment, Transposition
from ..ir.graph import Graph, Op, Requant
from ..ir.requant import RequantParams
from ..ir.sparsity import detect_nm
from ..ir.types import QType, bits_for_range, dot_product_range
from ..schedule.packing import DSP_B_BITS, DSP_PREADDER_BITS, LUT_MULT_MAX_BITS

MAX_BITS = 48   # the widest QType (accumulators included) einhls builds
from ..schedule.paths import OBJECTIVES, PathCost, best_path

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
INT64_SAFE = 2.0 ** 62


@dataclass
class SegmentPlan:
    """The chosen path of one segment, for reports."""
    contraction: str
    segment: int
    equation: str
    objective: str
    path: list[tuple[int, int]]
    macs: int
    dense_macs: int
    offline_macs: int
    weight_elems: int
    model_weight_elems: int
    stages: list[str]

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "path": [list(p) for p in self.path]}


# --------------------------------------------------------------------------- helpers

def _exact_einsum(eq: str, *operands: np.ndarray) -> np.ndarray:
    """Integer einsum, exact: int64 when the absolute bound allows it, else Python integers."""
    bound = np.einsum(eq, *[np.abs(o).astype(np.float64) for o in operands], optimize=True)
    if bound.size == 0 or bound.max() < INT64_SAFE:
        return np.einsum(eq, *[o.astype(np.int64) for o in operands], optimize=True)
    raise EinhlsError(f"merging constants ({eq}) gives values beyond 62 bits; choose another contraction "
                      "objective")


def _transposition(src: str, dst: str, sizes: dict[str, int]) -> Transposition | None:
    """The permutation that reorders a frame indexed ``src`` (row-major) into order ``dst``."""
    t = Transposition(tuple(sizes[c] for c in src), tuple(src.index(c) for c in dst))
    return None if t.identity else t.simplified()


def _signed_type(lo: int, hi: int, scale: float = 1.0) -> QType:
    return QType(signed=lo < 0, bits=bits_for_range(lo, hi), scale=scale)


def _weight_type(w: np.ndarray) -> QType:
    w_lo, w_hi = int(min(w.min(initial=0), 0)), int(max(w.max(initial=0), 0))
    try:
        return QType(signed=w_lo < 0, bits=bits_for_range(w_lo, w_hi))
    except ValueError as exc:
        raise EinhlsError(f"a merged constant needs {bits_for_range(w_lo, w_hi)} bits: {exc}") from exc


def _stage_range(w: np.ndarray, bias: np.ndarray, x_lo: np.ndarray, x_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element interval of y[r, n] = bias[n] + sum_k w[n, k] x[r, k] (x_lo, x_hi: [R, K])."""
    pos, neg = np.maximum(w, 0).T, np.minimum(w, 0).T   # [K, N]
    hi = x_hi @ pos + x_lo @ neg + bias[None, :]
    lo = x_lo @ pos + x_hi @ neg + bias[None, :]
    return lo, hi


class StageTooWide(ValueError):
    """A stage's accumulator or exact output needs more bits than einhls builds."""

    def __init__(self, what: str, bits: int) -> None:
        super().__init__(f"its {what} needs {bits} bits")
        self.what, self.bits = what, bits


def _acc_type(w: np.ndarray, bias: np.ndarray, in_type: QType, scale: float = 1.0) -> QType:
    """The accumulator of a stage: exact for *any* input of its type (what the Linear unit's
    wrap-around argument and the emitters check), so at least as wide as the reachable range."""
    lo, hi = dot_product_range(w, bias, in_type.min, in_type.max)
    bits = max(bits_for_range(lo, hi), 2)
    if bits > MAX_BITS:
        raise StageTooWide("accumulator", bits)
    return QType(True, bits, scale=scale)


def _exact_type(lo: int, hi: int) -> QType:
    """The exact (unquantized) output of a stage that no quantizer follows."""
    bits = bits_for_range(lo, hi)
    if bits > MAX_BITS:
        raise StageTooWide("exact output", bits)
    return _signed_type(lo, hi)


def _too_wide(exc: StageTooWide, stage: int, stages: int, description: str, in_type: QType,
              source: str) -> EinhlsError:
    return EinhlsError(
        f"contraction stage {stage} of {stages} ({description.split(':')[0]}) is too wide: its {exc.what} "
        f"needs {exc.bits} bits, more than the {MAX_BITS} einhls builds (its input has {in_type.bits}); "
        f"einsum steps with no quantizer between them grow exactly, so use narrower types (for a float "
        f"model a narrower --default-type, fewer bits W in fixed<W,I>) or quantize the intermediate "
        f"results", node=source)


def _per_n(values: np.ndarray, r: int, n: int) -> np.ndarray | None:
    """values [R*N] (natural order) as one value per n when they do not depend on r, else None."""
    v = np.asarray(values).reshape(r, n)
    return v[0].copy() if np.all(v == v[:1]) else None


# --------------------------------------------------------------------------- one segment

def plan_segment(seg: Segment, objective: str = "macs", **score_args) -> PathCost:
    """The chosen path of a segment (the activation is operand 0)."""
    return best_path(list(seg.inputs), seg.output, dict(seg.sizes), objective, activation=0,
                     max_weight_elems=seg.weight_elems, **score_args)


class _KeepFactors(Exception):
    """Moving the inner stages' common weight factors into the last stage would cost products there."""


def _common_factor(w: np.ndarray, bias: np.ndarray) -> int:
    """The greatest common divisor of every weight and bias of a stage (1 when there is none)."""
    values = np.abs(np.concatenate([w.reshape(-1), bias.reshape(-1)]))
    values = values[values != 0]
    return int(np.gcd.reduce(values)) if values.size else 1


def _dsp_products_kept(old_x: int, old_w: int, new_x: int, new_w: int) -> bool:
    """Whether the last stage's products stay as cheap with its weights ``new_w`` bits wide and
    its input ``new_x`` bits (instead of ``old_w``, ``old_x``): one DSP port (B, 18 bits) still
    holds the weight, a LUT multiplier stays one, and a DSP shared by two weights stays possible
    (two weights and the product's guard bits through the pre-adder, schedule/packing.py)."""
    if new_w > DSP_B_BITS:
        return False
    if min(old_x, old_w) <= LUT_MULT_MAX_BITS and min(new_x, new_w) > LUT_MULT_MAX_BITS:
        return False
    limit = DSP_PREADDER_BITS["DSP48E1"]
    packable = lambda x, wb: x <= DSP_B_BITS and 2 * wb + x + 1 <= limit   # noqa: E731
    return packable(new_x, new_w) or not packable(old_x, old_w)


def expand_segment(seg: Segment, name: str, contraction: str, objective: str = "macs",
                   **score_args) -> tuple[list[Op], SegmentPlan]:
    """The ops that compute one segment, bit-identical to ``seg.reference``.

    A stage before the last whose weights (and bias) share a factor g computes y / g instead of y:
    its weights are divided by g, so they and every intermediate after them are narrower (a weight
    code that is a multiple of 256, from a core whose scale was aligned to another's, takes 8 bits
    less, and so does the next stage's input: fewer DSPs per product, DSP packing possible again),
    and the last stage's weights are multiplied by the product of those factors, so its
    accumulator, and the output, are unchanged.  Done when it leaves the last stage's products as
    cheap (_dsp_products_kept), else the segment is expanded as it is."""
    cost = plan_segment(seg, objective, **score_args)
    try:
        return _expand_segment(seg, name, contraction, objective, cost, share_factors=True)
    except _KeepFactors:
        return _expand_segment(seg, name, contraction, objective, cost, share_factors=False)


def _expand_segment(seg: Segment, name: str, contraction: str, objective: str, cost: PathCost,
                    share_factors: bool) -> tuple[list[Op], SegmentPlan]:
    sizes = dict(seg.sizes)
    online_steps = [s for s in cost.steps if s.online]
    n_online = len(online_steps)

    # operands: letters + array (None for the activation, whose letters are its current order)
    operands: list[tuple[str, np.ndarray | None]] = [(seg.inputs[0], None)] + \
        [(letters, c.astype(np.int64)) for letters, c in zip(seg.inputs[1:], seg.constants)]
    offset = seg.offset.astype(np.int64)
    uniform_offset = bool(np.all(offset == offset[0])) if offset.size else True
    final_bias = seg.bias.astype(np.int64).copy()   # over seg.output, row-major
    if not uniform_offset:  # a per-element input offset goes to the output through the einsum
        x = offset.reshape([sizes[c] for c in seg.inputs[0]])
        final_bias = final_bias + _exact_einsum(seg.equation, x, *seg.constants).reshape(-1)
    lo = np.full(seg.in_size, seg.in_type.min, dtype=np.int64)
    hi = np.full(seg.in_size, seg.in_type.max, dtype=np.int64)
    in_type = seg.in_type
    ops: list[Op] = []
    descriptions: list[str] = []
    online_index = 0
    carried = 1   # the product of the factors divided out of the stages so far

    for pair, step in zip(cost.path, cost.steps):
        i, j = sorted(pair)
        (la, a), (lb, b) = operands[i], operands[j]
        rest = [op for k, op in enumerate(operands) if k not in (i, j)]
        if a is not None and b is not None:   # offline: merge two constants now, exactly
            merged = _exact_einsum(f"{la},{lb}->{step.result}", a, b)
            operands = rest + [(step.result, merged)]
            continue
        (xa, _), (cl, c) = ((la, a), (lb, b)) if a is None else ((lb, b), (la, a))
        res = set(step.result)
        last = online_index == n_online - 1
        r_letters = [ch for ch in xa if ch in res and ch not in cl]
        if last:  # the output's order of the repeats (the gather absorbs it)
            r_letters = sorted(r_letters, key=seg.output.index)
        k_side = [ch for ch in xa if ch not in r_letters]
        batch = [ch for ch in xa if ch in res and ch in cl]
        n_side = [ch for ch in cl if ch in res and ch not in xa] + batch
        if last:
            n_side = sorted(n_side, key=seg.output.index)
        else:  # the next online step's contracted indices last, in its order
            nxt = online_steps[online_index + 1]
            nxt_contracted = [ch for ch in nxt.left + nxt.right if ch not in nxt.result]
            n_side = sorted(n_side, key=lambda ch: (ch in nxt_contracted,
                                                     nxt_contracted.index(ch) if ch in nxt_contracted else 0))
        gather = _transposition(xa, "".join(r_letters + k_side), sizes)
        # W[N-side, K-side]: batch indices block-diagonal, activation-only contracted ones broadcast
        used = set("".join(op for op, _ in operands)) | set(seg.output) | set(sizes)
        fresh = iter(ch for ch in LETTERS if ch not in used)
        prime = {ch: next(fresh) for ch in batch}
        for ch, p in prime.items():
            sizes[p] = sizes[ch]
        k_letters = "".join(prime.get(ch, ch) for ch in k_side)
        terms, arrays = [cl], [c]
        for ch in batch:
            terms.append(ch + prime[ch])
            arrays.append(np.eye(sizes[ch], dtype=np.int64))
        for ch in k_side:
            if ch not in cl and ch not in batch:
                terms.append(ch)
                arrays.append(np.ones(sizes[ch], dtype=np.int64))
        target = "".join(n_side) + k_letters
        w = _exact_einsum(",".join(terms) + "->" + target, *arrays)
        r_size = math.prod(sizes[ch] for ch in r_letters)
        n_size = math.prod(sizes[ch] for ch in n_side)
        k_size = math.prod(sizes[ch] for ch in k_side)
        w = w.reshape(n_size, k_size)
        bias = np.zeros(n_size, dtype=np.int64)
        if online_index == 0 and uniform_offset and offset.size and offset[0] != 0:
            bias = bias + int(offset[0]) * w.sum(axis=1)
        if share_factors and not last:
            factor = _common_factor(w, bias)
            if factor > 1:
                w, bias, carried = w // factor, bias // factor, carried * factor
        elif share_factors and carried > 1:
            old_x = bits_for_range(min(int(lo.min()), 0) * carried, max(int(hi.max()), 0) * carried)
            old_w = _weight_type(w).bits
            w = w * carried
            if not _dsp_products_kept(old_x, old_w, in_type.bits, _weight_type(w).bits):
                raise _KeepFactors
        # exact interval of every output element
        g = gather.gather() if gather is not None else np.arange(r_size * k_size)
        s_lo, s_hi = _stage_range(w, bias, lo[g].reshape(r_size, k_size), hi[g].reshape(r_size, k_size))
        natural = "".join(r_letters + n_side)
        stage_name = f"{name}_st{online_index + 1}"
        description = (f"{xa},{cl}->{natural}: R={r_size} repeats of K={k_size} -> N={n_size}"
                       + (f", gather {xa}->{''.join(r_letters + k_side)}" if gather is not None else "")
                       + (f", batch {''.join(batch)} block-diagonal" if batch else ""))
        try:
            if not last:
                lo_v, hi_v = int(s_lo.min(initial=0)), int(s_hi.max(initial=0))
                acc = _acc_type(w, bias, in_type)
                out_type = _exact_type(lo_v, hi_v)
                requant = RequantParams((1,), 0, 0, lo_v, hi_v)
                tail: list[Op] = []
            else:
                nat_perm = _transposition(seg.output, natural, sizes)
                fb = final_bias if nat_perm is None else final_bias[nat_perm.gather()]
                rq = seg.requant
                mults = np.asarray(rq.multiplier_for(seg.out_size))
                if nat_perm is not None:
                    mults = mults[nat_perm.gather()]
                bias_n, mult_n = _per_n(fb, r_size, n_size), _per_n(mults, r_size, n_size)
                tail = []
                if bias_n is not None and mult_n is not None:   # the last stage requantizes
                    bias = bias + bias_n
                    s_lo, s_hi = s_lo + bias_n[None, :], s_hi + bias_n[None, :]
                    acc = _acc_type(w, bias, in_type, seg.acc_type.scale)
                    multiplier = tuple(int(m) for m in mult_n) if len(set(mult_n.tolist())) > 1 else (int(mult_n[0]),)
                    requant = dataclasses.replace(rq, multiplier=multiplier)
                    out_type = seg.out_type
                else:   # bias or multipliers vary along the repeats: exact stage, then an elementwise Requant
                    lo_v, hi_v = int(s_lo.min(initial=0)), int(s_hi.max(initial=0))
                    acc = _acc_type(w, bias, in_type)
                    out_type = _exact_type(lo_v, hi_v)
                    requant = RequantParams((1,), 0, 0, lo_v, hi_v)
                    multiplier = tuple(int(m) for m in mults) if len(set(mults.tolist())) > 1 else (int(mults[0]),)
                    tail.append(Requant(name=f"{name}_rq", source=seg.source, in_type=out_type,
                                        out_type=seg.out_type, in_size=seg.out_size, out_size=seg.out_size,
                                        offset=fb.astype(np.int64), requant=dataclasses.replace(rq, multiplier=multiplier)))
                if nat_perm is not None:
                    perm = _transposition(natural, seg.output, sizes)
                    tail.append(Permute(name=f"{name}_perm", source=seg.source, in_type=seg.out_type,
                                        out_type=seg.out_type, in_size=seg.out_size, out_size=seg.out_size,
                                        transposition=perm, contraction=contraction))
        except StageTooWide as exc:
            raise _too_wide(exc, online_index + 1, n_online, description, in_type, seg.source) from None
        try:
            weight_type = _weight_type(w)
            stage = ContractStage(name=stage_name, source=seg.source, in_type=in_type, out_type=out_type,
                                  in_size=r_size * k_size, out_size=r_size * n_size, repeats=r_size, weight=w,
                                  bias=bias, weight_type=weight_type, acc_type=acc, requant=requant,
                                  gather=gather, contraction=contraction, step=description)
        except ValueError as exc:
            raise EinhlsError(f"stage {online_index + 1} of {seg.equation}: {exc}", node=seg.source) from exc
        ops.append(_as_linear_if_plain(stage))
        ops += tail
        descriptions.append(description)
        lo, hi = s_lo.reshape(-1), s_hi.reshape(-1)
        in_type = out_type
        operands = rest + [(natural, None)]
        online_index += 1

    plan = SegmentPlan(contraction=contraction, segment=0, equation=seg.equation, objective=objective,
                       path=list(cost.path), macs=cost.macs, dense_macs=seg.in_size * seg.out_size,
                       offline_macs=cost.offline_macs, weight_elems=cost.weight_elems,
                       model_weight_elems=seg.weight_elems, stages=descriptions)
    return ops, plan


def _as_linear_if_plain(stage: ContractStage) -> Op:
    """R = 1 with no gather is a plain Linear (and may use the N:M sparse unit)."""
    if stage.repeats != 1 or stage.gather is not None:
        return stage
    linear = stage.as_linear()
    return dataclasses.replace(linear, sparsity=saves_multipliers(detect_nm(linear.weight), linear.in_size))


# --------------------------------------------------------------------------- the pass

def fuse_permutes(ops: list[Op]) -> list[Op]:
    """A Permute directly before a ContractStage becomes part of that stage's gather (one buffer)."""
    out: list[Op] = []
    for op in ops:
        prev = out[-1] if out else None
        if isinstance(op, ContractStage) and isinstance(prev, Permute):
            gather = prev.transposition if op.gather is None else prev.transposition.then(op.gather)
            if gather is not None:
                out[-1] = dataclasses.replace(op, gather=None if gather.identity else gather,
                                              in_type=prev.in_type, source=op.source)
                continue
        out.append(op)
    return out


def expand_contraction(op: Contraction, objective: str = "macs", **score_args) -> tuple[list[Op], list[SegmentPlan]]:
    ops: list[Op] = []
    plans = []
    for index, seg in enumerate(op.segments):
        name = op.name if len(op.segments) == 1 else f"{op.name}_g{index}"
        seg_ops, plan = expand_segment(seg, name, op.name, objective, **score_args)
        plan.segment = index
        ops += seg_ops
        plans.append(plan)
    return fuse_permutes(ops), plans


def check_expansion(op: Contraction, stages: list[Op], rows: int, seed: int = 0) -> None:
    """Raises AssertionError unless the chain of ``stages`` computes ``op`` exactly: on ``rows``
    random vectors over the whole input range, the first all minimum codes, the second all
    maximum (the stages' accumulators are sized for every input, so any input may show a fault)."""
    t = op.in_type
    x = np.random.default_rng(seed).integers(t.min, t.max + 1, size=(max(rows, 2), op.in_size), dtype=np.int64)
    x[0], x[1] = t.min, t.max
    x = torch.as_tensor(x)
    y = x
    for stage in stages:
        y = stage.reference(y)
    if not torch.equal(y, op.reference(x)):
        raise AssertionError(f"internal error: the expanded contraction {op.name!r} differs from its reference")


def plan_contractions(graph: Graph, objective: str = "macs", self_check: bool = False,
                      **score_args) -> tuple[Graph, list[SegmentPlan]]:
    """The expanded graph and the path chosen for every segment (for report.json).  With
    ``self_check`` each contraction's stages are compared with it on random inputs first
    (:func:`check_expansion`; a few vectors of the contraction alone, not the whole graph)."""
    if objective not in OBJECTIVES:
        raise EinhlsError(f"unknown contraction objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    plans: list[SegmentPlan] = []
    for op in graph.ops:
        if isinstance(op, Contraction):
            op = graph.op(op.name)   # its inputs as rewired by the expansions before it
            new, seg_plans = expand_contraction(op, objective, **score_args)
            if self_check:
                check_expansion(op, new, 4 * graph.tensor_tokens(op.inputs[0]))
            graph = graph.replace_op(op.name, new)
            plans += seg_plans
    return graph, plans


def expand_contractions(graph: Graph, objective: str = "macs", self_check: bool = False, **score_args) -> Graph:
    """Every Contraction op replaced by its pipeline of stages (see the module docstring)."""
    return plan_contractions(graph, objective, self_check, **score_args)[0]
