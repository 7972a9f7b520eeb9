"""Einsum lowering: chains of ONNX ``Einsum`` nodes on one activation -> one IR ``Contraction``.

An ``Einsum`` with exactly one activation operand and constant operands (any letters, any operand
order, ``...`` allowed) opens a :class:`Pending` segment, the einsum counterpart of
:class:`codegen.frontend.values.Acc`.  Until a quantizer closes it, the pending segment absorbs:

* further ``Einsum`` nodes, ``MatMul`` and ``Gemm`` on it (their constants join the segment; a
  MatMul after a MatMul with nothing between - plain low rank - is the same thing);
* ``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze`` (order preserving) and ``Transpose``: the
  pending tensor is kept as a list of *atoms* (index extents in row-major order) grouped into
  axes; a reshape regroups them, splitting an atom where it must (the split is applied to every
  operand that carries it), and a transpose permutes the axes - no data moves;
* ``Add``/``Sub`` of constants (bias), ``Mul``/``Div`` by positive constants (scale), ``Relu``.

A quantizer (``QuantizeLinear``, QONNX ``Quant``) closes the segment with a requantization to its
type; anything else on the activation closes it exactly (no rounding: the accumulator's exact range
is computed from the constants, see :func:`exact_range`).  The next einsum then starts a new
segment of the *same* Contraction op, so a chain with quantizers between steps is still one
contraction with per-step requantization.  Where a reshape cannot be expressed on atoms (e.g.
(6, 4) -> (4, 6)) the segment is closed exactly and the reshape applies to the stream as usual.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import string
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import helper

from ..errors import EinhlsError
from ..ir.build import output_requant
from ..ir.contraction import Contraction, Segment, refine
from ..ir.requant import RequantParams
from ..ir.types import QType, bits_for_range
from .bias import refinement_bits
from .constants import evaluate
from .names import node_label
from .quantizers import lossless_fixed_point
from .constants import broadcast_const
from .values import Acc, Const, Real, size_of

LETTERS = string.ascii_lowercase + string.ascii_uppercase
MAX_ACC_BITS = 48            # widest exact value the IR carries (QType limit)
FLOAT_EXACT = 2.0 ** 52      # below this, float64 sums of integer products are exact
ISLAND_WEIGHT_BITS = 12       # width of the float Einsum constants of a QDQ model (island_weight_codes)

_atom_ids = itertools.count()


def _new_atom(sizes: dict[int, int], size: int) -> int:
    atom = next(_atom_ids)
    sizes[atom] = int(size)
    return atom


@dataclass
class Pending:
    """An einsum segment not yet given an output type.

    The real value is ``scale[o] * (bias[o] + einsum(x + offset, consts)[o])``, then ReLU if
    ``relu``; ``x`` are the stream codes at the segment's start (``in_type``).  Indices are atoms
    (ints, extents in ``sizes``); ``axes`` groups the output atoms into the tensor's axes.
    """
    x_atoms: list[int]
    consts: list[tuple[list[int], np.ndarray]]
    sizes: dict[int, int]
    axes: list[list[int]]
    scale: np.ndarray     # float64 [out elements], positive
    bias: np.ndarray      # int64 [out elements], accumulator units
    offset: np.ndarray    # int64 [in elements], added to the input codes
    in_type: QType
    start: int            # number of IR ops when the segment started
    hint: str
    sources: list[str] = field(default_factory=list)
    relu: bool = False
    tensor: str | None = None   # the IR tensor the segment reads
    island_constants: bool = False   # some constants were float, quantized here (island_weight_codes)
    token_atom: int | None = None    # in a stream of several tokens: the atom of the token axis

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(math.prod(self.sizes[a] for a in axis) for axis in self.axes)

    @property
    def out_atoms(self) -> list[int]:
        return [a for axis in self.axes for a in axis]

    @property
    def uniform_scale(self) -> float | None:
        return float(self.scale[0]) if np.all(self.scale == self.scale[0]) else None

    def split_atom(self, atom: int, parts: list[int]) -> list[int]:
        """Replace ``atom`` by new atoms of extents ``parts`` (row-major) in every operand."""
        new = [_new_atom(self.sizes, s) for s in parts]

        def sub(atoms: list[int]) -> list[int]:
            return [t for a in atoms for t in (new if a == atom else [a])]
        self.x_atoms = sub(self.x_atoms)
        self.consts = [(sub(a), c.reshape([self.sizes[t] for t in sub(a)])) for a, c in self.consts]
        self.axes = [sub(axis) for axis in self.axes]
        return new


# --------------------------------------------------------------------------- parsing

def parse_equation(equation: str, ranks: list[int], label: str = "Einsum") -> tuple[list[str], str]:
    """Operand index strings and the output string of an einsum equation, ``...`` expanded.

    Without ``->`` the output is implicit (ellipsis letters, then the letters used once, sorted),
    as numpy and ONNX define it.
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise EinhlsError(f"equation {equation!r} has {len(terms)} operands, the node {len(ranks)}",
                          label, "Einsum")
    used = set(eq) - set(",->.")
    free = [c for c in LETTERS if c not in used]
    ell_rank = 0
    for term, rank in zip(terms, ranks):
        if "..." in term:
            ell_rank = max(ell_rank, rank - (len(term) - 3))
    ell = "".join(free[:ell_rank])
    expanded = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            n = rank - (len(term) - 3)
            term = term.replace("...", ell[ell_rank - n:] if n else "")
        if len(term) != rank or not all(c in LETTERS for c in term):
            raise EinhlsError(f"equation {equation!r}: operand index {term!r} does not match an operand of "
                              f"rank {rank}", label, "Einsum")
        expanded.append(term)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: sum(t.count(c) for t in expanded) for c in set("".join(expanded)) - set(ell)}
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1))
    if len(set(out)) != len(out) or any(c not in "".join(expanded) for c in out):
        raise EinhlsError(f"equation {equation!r}: output index {out!r} is not valid", label, "Einsum")
    return expanded, out


def constant_operand(low, const: Const, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (zero point removed) and the per-element scale of a constant einsum operand."""
    label = node_label(node)
    if const.quantized:
        return (const.codes - const.zero_point).astype(np.int64), np.asarray(const.scale, np.float64)
    exact = lossless_fixed_point(const.value)
    if exact is not None:
        return exact[0].astype(np.int64), np.full(const.shape, exact[1])
    if low.default_type is not None and np.issubdtype(const.value.dtype, np.floating):
        from ..ir.reference import quantize
        t = low.default_type
        return quantize(const.value, t).astype(np.int64) - t.zero_point, np.full(const.shape, t.scale)
    if low.quantized_model and np.issubdtype(const.value.dtype, np.floating) and np.all(np.isfinite(const.value)):
        return island_weight_codes(const.value)
    from .messages import HOW_TO_QUANTIZE
    what = ("the constant operand is not quantized (no DequantizeLinear or Quant on it, and its float "
            "values are not on a fixed-point grid of at most 16 bits): ") if low.quantized_model else \
        "the model is a float model: "
    raise EinhlsError(what + HOW_TO_QUANTIZE, label, node.op_type)


def island_weight_codes(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and scale of a float constant of an Einsum in an otherwise quantized model.

    onnxruntime's quantize_static has no QDQ rule for Einsum, so it leaves the factors of a
    factorized layer (tensorly-torch ``FactorizedLinear``, ``implementation="factorized"``) as float
    initializers between the activation's DequantizeLinear and the next QuantizeLinear.  They are
    quantized here as quantize_static quantizes a weight, symmetric and per tensor, but at
    ISLAND_WEIGHT_BITS bits (scale max|w| / 2047, codes -2047..2047, round half to even: at 8 bits
    the three factors of a block-TT layer put the output up to 7 steps from onnxruntime, at 12 bits
    2); the accumulator and the requantization follow from these scales as for a QDQ weight.  An
    all-zero factor gets scale 1.
    """
    limit = (1 << (ISLAND_WEIGHT_BITS - 1)) - 1
    peak = float(np.max(np.abs(value), initial=0.0))
    scale = peak / limit if peak > 0 else 1.0
    codes = np.clip(np.rint(value.astype(np.float64) / scale), -limit, limit).astype(np.int64)
    return codes, np.full(value.shape, scale, dtype=np.float64)


# --------------------------------------------------------------------------- building segments

def _mergeable(value) -> bool:
    return isinstance(value, Pending) and not value.relu and value.uniform_scale is not None


def acc_to_pending(low, acc: Acc) -> Pending | None:
    """A MatMul/Gemm accumulator as a pending segment (so a following MatMul joins it: low rank)."""
    if acc.relu or low.default_type is not None or not np.all(acc.scale == acc.scale[0]):
        return None
    sizes: dict[int, int] = {}
    n_out, k_in = acc.weight.shape
    k_atom, n_atom = _new_atom(sizes, k_in), _new_atom(sizes, n_out)
    axes = [[] for _ in acc.shape[:-1]] + [[n_atom]]
    return Pending(x_atoms=[k_atom], consts=[([n_atom, k_atom], acc.weight.astype(np.int64))], sizes=sizes,
                   axes=axes, scale=acc.scale.astype(np.float64).copy(), bias=acc.bias.astype(np.int64).copy(),
                   offset=np.full(k_in, -low.stream.type.zero_point, dtype=np.int64), in_type=low.stream.type,
                   start=len(low.stream.ops), hint=acc.hint, sources=list(acc.sources))


def new_pending(low, value, node: onnx.NodeProto) -> Pending:
    """Open a segment on ``value`` (closing what is pending, quantizing a float input if asked)."""
    real = low.real_of(value, node)
    if real.relu or real.uniform_scale is None:
        real = low.materialize(real, node)
    sizes: dict[int, int] = {}
    atoms = [_new_atom(sizes, s) for s in real.shape]
    size = size_of(real.shape)
    return Pending(x_atoms=atoms, consts=[], sizes=sizes, axes=[[a] for a in atoms],
                   scale=np.full(size, real.uniform_scale), bias=np.zeros(size, np.int64),
                   offset=(real.offset - low.stream.type.zero_point).astype(np.int64),
                   in_type=low.stream.type, start=len(low.stream.ops), hint=node.name or node.op_type,
                   sources=list(real.sources), token_atom=_token_atom(low, real.shape, atoms, node))


def _token_atom(low, shape: tuple[int, ...], atoms: list[int], node: onnx.NodeProto) -> int | None:
    """The atom of the token axis of a value in a stream of several tokens ([1, L, C], [L, C], ...:
    ones, then L, then the features): the einsum applies to each token, the token index is a batch
    index that the hardware unit never sees."""
    tokens = low.stream.tokens
    if tokens == 1:
        return None
    for axis, extent in enumerate(shape[:-1]):
        if extent == tokens and all(e == 1 for e in shape[:axis]):
            return atoms[axis]
        if extent != 1:
            break
    raise EinhlsError(f"the activation {list(shape)} does not have the {tokens} tokens of the sequence as its "
                      "leading axis; an Einsum applies to each token", node_label(node), node.op_type)


def _per_token(p: Pending, values: np.ndarray, atoms: list[int], what: str, label: str) -> np.ndarray:
    """Per-element values over ``atoms`` (row-major, the token atom first) -> those of one token."""
    values = np.asarray(values)
    if p.token_atom is None:
        return values
    tokens = p.sizes[p.token_atom]
    real_atoms = [t for t in atoms if p.sizes[t] > 1]
    if not real_atoms or real_atoms[0] != p.token_atom:
        raise EinhlsError(f"the tokens of the sequence are no longer the leading axis of the einsum's {what} "
                          "(a Transpose or Reshape moved them); an Einsum applies to each token", label, "Einsum")
    rows = values.reshape(tokens, -1)
    if np.any(rows != rows[:1]):
        raise EinhlsError(f"the einsum's {what} differs from token to token", label, "Einsum")
    return rows[0]


def _pending_of(low, value, node) -> Pending:
    if _mergeable(value):
        return value
    if isinstance(value, Acc):
        pending = acc_to_pending(low, value)
        if pending is not None:
            return pending
    return new_pending(low, value, node)


def apply_einsum(low, p: Pending, act: str, consts: list[tuple[str, Const]], out: str,
                 node: onnx.NodeProto) -> Pending:
    """Join ``einsum(act, consts -> out)`` to the pending segment ``p`` (whose axes ``act`` names)."""
    label = node_label(node)
    if len(set(act)) != len(act):
        raise EinhlsError("a repeated index on the activation (a diagonal) is not supported", label,
                          node.op_type)
    if len(act) != len(p.axes):
        raise EinhlsError(f"the activation has rank {len(p.axes)}, the equation gives it {len(act)} indices",
                          label, node.op_type)
    letter_atoms = {letter: list(axis) for letter, axis in zip(act, p.axes)}
    terms, codes_list, scales = [], [], []
    for letters, const in consts:
        codes, scale = constant_operand(low, const, node)
        p.island_constants = p.island_constants or not (const.quantized or lossless_fixed_point(const.value) is not None
                                                        or low.default_type is not None)
        if len(set(letters)) != len(letters):           # a diagonal of a constant: take it now
            unique = "".join(dict.fromkeys(letters))
            codes = np.einsum(f"{letters}->{unique}", codes)
            scale = np.einsum(f"{letters}->{unique}", scale)
            letters = unique
        for letter, extent in zip(letters, codes.shape):
            if letter not in letter_atoms:
                letter_atoms[letter] = [_new_atom(p.sizes, extent)]
            elif math.prod(p.sizes[a] for a in letter_atoms[letter]) != extent:
                raise EinhlsError(f"index {letter!r} has extent {extent} in a constant operand but a different "
                                  "one elsewhere", label, node.op_type)
        terms.append(letters)
        codes_list.append(codes)
        scales.append(scale)
    missing = [c for c in out if c not in letter_atoms]
    if missing:
        raise EinhlsError(f"output index {missing[0]!r} appears in no operand", label, node.op_type)

    # output scale: the activation's, times each constant's (which may vary only along output indices)
    out_shape = [math.prod(p.sizes[a] for a in letter_atoms[c]) for c in out]
    scale_out = np.full(out_shape, p.uniform_scale, dtype=np.float64)
    for letters, scale in zip(terms, scales):
        varying = [i for i in range(scale.ndim)
                   if scale.shape[i] > 1 and not np.all(scale == np.take(scale, [0], axis=i))]
        bad = [letters[i] for i in varying if letters[i] not in out]
        if bad:
            raise EinhlsError(f"a constant's scale varies along the contracted index {bad[0]!r}: only "
                              "per-tensor scales, or scales per output index, are supported", label, node.op_type)
        reduced = scale[tuple(slice(None) if i in varying else 0 for i in range(scale.ndim))]
        order = sorted(range(len(varying)), key=lambda j: out.index(letters[varying[j]]))
        reduced = np.transpose(reduced, order) if varying else np.asarray(reduced)
        target = [out_shape[i] if c in {letters[v] for v in varying} else 1 for i, c in enumerate(out)]
        scale_out = scale_out * np.reshape(reduced, target)

    # a bias already pending goes through the new constants too (the einsum is linear)
    if np.any(p.bias):
        b = p.bias.reshape([math.prod(p.sizes[a] for a in axis) for axis in p.axes])
        bias = np.einsum(f"{act},{','.join(terms)}->{out}", b, *codes_list).reshape(-1)
    else:
        bias = np.zeros(math.prod(out_shape), np.int64)
    for letters, codes in zip(terms, codes_list):
        atoms = [t for c in letters for t in letter_atoms[c]]
        p.consts.append((atoms, codes.reshape([p.sizes[t] for t in atoms])))
    p.axes = [list(letter_atoms[c]) for c in out]
    p.scale = scale_out.reshape(-1)
    p.bias = bias.astype(np.int64)
    p.sources.append(label)
    return p


def lower_einsum(low, node: onnx.NodeProto, inputs: list) -> Pending:
    """The ``Einsum`` handler of :class:`codegen.frontend.lower.Lowering`."""
    label = node_label(node)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    equation = attrs.get("equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    acts = [i for i, v in enumerate(inputs) if not isinstance(v, Const)]
    if len(acts) != 1:
        raise EinhlsError(f"Einsum needs exactly one activation operand, it has {len(acts)}", label, node.op_type)
    terms, out = parse_equation(equation, [len(v.shape) for v in inputs], label)
    a = acts[0]
    consts = [(terms[i], inputs[i]) for i in range(len(inputs)) if i != a]
    if not consts:
        raise EinhlsError("an Einsum without a constant operand (a pure transpose or sum of the activation) "
                          "is not supported; use Transpose / ReduceSum", label, node.op_type)
    if _on_pixel_stream(low, inputs[a]):   # a CNN's activation: a 1x1 convolution or refused
        from .conv import lower_pixel_einsum
        return lower_pixel_einsum(low, node, inputs[a], terms[a], consts, out)
    p = _pending_of(low, inputs[a], node)
    return apply_einsum(low, p, terms[a], consts, out, node)


def _on_pixel_stream(low, value) -> bool:
    """Whether ``value`` is a [1, C, H, W] / [1, C, L] activation streaming pixel by pixel."""
    shape = tuple(getattr(value, "shape", ()))
    stream = low.stream
    return (getattr(low, "channels_first_input", False) and len(shape) in (3, 4) and shape[0] == 1
            and stream.tokens > 1 and size_of(shape[2:]) == stream.tokens and not _mergeable(value))


def pending_matmul(low, node: onnx.NodeProto, activation, weight: Const, transposed: bool,
                   alpha: float = 1.0) -> Pending | None:
    """``activation @ weight`` joined to a pending segment (None when it cannot join one)."""
    if not (_mergeable(activation) or isinstance(activation, Acc)):
        return None
    if isinstance(activation, Acc):
        activation = acc_to_pending(low, activation)
        if activation is None:
            return None
    if weight.value.ndim != 2:
        return None
    rank = len(activation.axes)
    act = LETTERS[:rank]
    new = LETTERS[rank]
    letters = new + act[-1] if transposed else act[-1] + new
    p = apply_einsum(low, activation, act, [(letters, weight)], act[:-1] + new, node)
    if alpha != 1.0:
        p.scale = p.scale * alpha
    return p


# --------------------------------------------------------------------------- ops on a pending

def pending_add(low, p: Pending, const: np.ndarray, node: onnx.NodeProto) -> Pending:
    """A constant added to the segment: into its bias, exactly (on a finer grid than the
    accumulator's, the segment counts in finer units first: codegen/frontend/bias.py)."""
    steps = broadcast_const(const, p.shape, node) / p.scale
    refine = 1 << refinement_bits(steps) if p.consts else 1
    if refine > 1:   # the einsum is linear in each constant: scaling one scales the sum
        atoms, codes = p.consts[-1]
        p.consts[-1] = (atoms, codes * refine)
        p.bias, p.scale = p.bias * refine, p.scale / refine
    p.bias = p.bias + np.rint(steps * refine).astype(np.int64)
    p.sources.append(node_label(node))
    return p


def pending_mul(low, p: Pending, const: np.ndarray, node: onnx.NodeProto) -> Pending | None:
    """A positive constant factor scales the pending value (ReLU commutes with it); None otherwise."""
    factor = broadcast_const(const, p.shape, node)
    if not np.all(factor > 0):
        return None
    p.scale = p.scale * factor
    p.sources.append(node_label(node))
    return p


def pending_relu(low, p: Pending, node: onnx.NodeProto) -> Pending:
    p.relu = True
    p.sources.append(node_label(node))
    return p


def pending_layout(low, node: onnx.NodeProto, inputs: list):
    """Transpose or an order-preserving reshape of a pending segment (no data moves)."""
    p: Pending = inputs[0]
    label = node_label(node)
    shape = p.shape
    if node.op_type == "Transpose":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        perm = list(attrs.get("perm", range(len(shape) - 1, -1, -1)))
        if sorted(perm) != list(range(len(shape))):
            raise EinhlsError(f"perm {perm} does not fit rank {len(shape)}", label, node.op_type)
        p.axes = [p.axes[i] for i in perm]
        p.scale = p.scale.reshape(shape).transpose(perm).reshape(-1)
        p.bias = p.bias.reshape(shape).transpose(perm).reshape(-1)
        p.sources.append(label)
        return p
    size = size_of(shape)
    probe = np.arange(size, dtype=np.int64).reshape(shape)
    rest = [c.value if c is not None else None for c in inputs[1:]]
    try:
        moved = np.asarray(evaluate(node, [probe] + rest, low.opset)[0])
    except Exception as exc:
        raise EinhlsError(f"cannot apply to shape {list(shape)}: {exc}", label, node.op_type) from exc
    if moved.size != size or not np.array_equal(moved.ravel(), np.arange(size)):
        raise EinhlsError("changes the order of the activation's elements; only reshapes that keep the "
                          "order are supported", label, node.op_type)
    atoms = [t for t in p.out_atoms if p.sizes[t] > 1]
    ref = refine([p.sizes[t] for t in atoms], list(moved.shape))
    if ref is None:   # not expressible on atoms: close the segment exactly, reshape the stream
        real = finish_pending(low, p, None, None)
        return low.lower_layout(node, [real] + inputs[1:])
    parts_atoms, parts_dims = ref
    flat = []
    for atom, parts in zip(atoms, parts_atoms):
        flat += p.split_atom(atom, parts) if len(parts) > 1 else [atom]
    axes, i = [], 0
    for parts in parts_dims:
        axes.append(flat[i:i + len(parts)])
        i += len(parts)
    p.axes = axes
    p.sources.append(label)
    return p


# --------------------------------------------------------------------------- closing a segment

def exact_range(inputs: list[str], output: str, sizes: dict[str, int], constants: list[np.ndarray],
                offset: np.ndarray, bias: np.ndarray, in_type: QType) -> tuple[np.ndarray, np.ndarray]:
    """Exact [lo, hi] of every output of ``bias + einsum(x + offset, constants)`` over all input codes.

    The einsum is linear in x: y = W x with W the dense out x in matrix, built once (in float64 when
    every partial sum provably stays below 2^52, else in int64), then lo/hi = bias + W+ x_lo + W- x_hi
    and the converse, term by term.  W is the contraction of the constants alone when every index of
    x is one of theirs (a tensor train: the cores contracted over their ranks, in x out products);
    otherwise the contraction of an identity with them (in x the product of the MACs, which took
    over a second per BERT-base-sized tensor-train layer).

    The float64 path takes the fewest passes over W (a BERT-base FFN's is 768 x 3072): the bound on
    its partial sums comes from the constants' largest magnitudes (the exact bound, one more dense
    contraction, only when that one is too large), and W+ x_hi + W- x_lo = (W s + |W| d) / 2 with
    s = x_hi + x_lo, d = x_hi - x_lo, two products with W (|W| in its place) in float64, exact while
    in_size * max|W| * max(|s|, d) stays below 2^52 (checked; otherwise the int64 sums).
    """
    x_letters, out = inputs[0], output
    in_size = math.prod(sizes[c] for c in x_letters)
    x_shape = [sizes[c] for c in x_letters]
    # W's axes: ``rows`` (x's indices, or one index over an identity's rows) then the output's
    if all(any(c in word for word in inputs[1:]) for c in x_letters):
        rows, row_shape, operands = x_letters, x_shape, []
        eq = ",".join(inputs[1:]) + "->" + rows + out
    else:
        rows = next(c for c in LETTERS if c not in sizes)
        row_shape, operands = [in_size], [np.eye(in_size).reshape([in_size] + x_shape)]
        eq = rows + x_letters + "," + ",".join(inputs[1:]) + "->" + rows + out
    bound = _partial_sum_bound(eq, sizes, constants)
    if bound >= FLOAT_EXACT:   # the exact bound: every partial sum of an entry of W is at most
        magnitudes = [np.abs(c).astype(np.float64) for c in constants]   # |constants| contracted
        if operands:
            bound = np.einsum(x_letters + "," + ",".join(inputs[1:]) + "->" + out, np.ones(x_shape), *magnitudes,
                              optimize=True).max(initial=0)
        else:
            bound = np.einsum(eq, *magnitudes, optimize=True).max(initial=0)
    x_lo = in_type.min + offset.astype(np.int64)
    x_hi = in_type.max + offset.astype(np.int64)
    if bound < FLOAT_EXACT:
        sums, spans = (x_hi + x_lo).astype(np.float64), (x_hi - x_lo).astype(np.float64)
        # every partial sum of the products is at most max(|s|, d) * max|W| * in_size (bound >= max|W|)
        if float(np.maximum(np.abs(sums), spans).max(initial=0)) * float(bound) * in_size < FLOAT_EXACT:
            signed, spread = _products_with_w(eq, ([rows + x_letters] if operands else []) + inputs[1:],
                                              operands + [c.astype(np.float64) for c in constants], sizes,
                                              rows, out, sums.reshape(row_shape), spans.reshape(row_shape))
            hi = bias + ((signed + spread) / 2).astype(np.int64)   # each term's pair sums to an even number
            lo = bias + ((signed - spread) / 2).astype(np.int64)
            return lo, hi
        w = np.einsum(eq, *operands, *[c.astype(np.float64) for c in constants], optimize=True)
        w = w.reshape(in_size, -1).astype(np.int64).T
    elif bound < 2.0 ** 62:
        w = torch.einsum(eq, *[torch.as_tensor(o, dtype=torch.int64) for o in operands],
                         *[torch.as_tensor(c, dtype=torch.int64) for c in constants])
        w = w.reshape(in_size, -1).T.numpy()
    else:   # beyond int64: Python integers (no layer that fits the IR's 48-bit values comes here)
        w = np.einsum(eq, *[o.astype(np.int64).astype(object) for o in operands],
                      *[c.astype(object) for c in constants]).reshape(in_size, -1).T
    x_extreme = max(abs(int(x_lo.min(initial=0))), abs(int(x_hi.max(initial=0))))
    if w.dtype != object and int(np.abs(w).max(initial=0)) * x_extreme * in_size >= 2 ** 62:
        w, x_lo, x_hi = w.astype(object), x_lo.astype(object), x_hi.astype(object)   # int64 would wrap
    pos, neg = np.maximum(w, 0), np.minimum(w, 0)
    hi = bias + pos @ x_hi + neg @ x_lo
    lo = bias + pos @ x_lo + neg @ x_hi
    return lo, hi


#: W larger than this (elements) is built a slice of its first output index at a time
W_SLICE_ELEMENTS = 1 << 18


def _products_with_w(eq: str, words: list[str], operands: list[np.ndarray], sizes: dict[str, int], rows: str,
                     out: str, sums: np.ndarray, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``W s`` and ``|W| d`` (flat over the output) for ``W = einsum(eq, *operands)`` (axes rows +
    out; ``words``: the operands' indices), float64.  A large W (a BERT-base FFN's: 768 x 3072,
    19 MB) is built one slice of its first output index at a time, each slice reused for |W| in
    place: a few MB that stay in cache instead of a fresh 19 MB array per layer; any order of the
    sums is exact here (the caller checked every partial sum is below 2^52)."""
    product = rows + "," + rows + out + "->" + out
    lead = out[:1]
    size = sums.size * math.prod(sizes[c] for c in out)
    slices = sizes[lead] if lead and size > W_SLICE_ELEMENTS else 1
    path, signed, spread = None, [], []
    for index in range(slices):
        part = [operand[tuple(slice(index, index + 1) if c == lead else slice(None) for c in word)]
                if slices > 1 and lead in word else operand for word, operand in zip(words, operands)]
        if path is None:
            path = np.einsum_path(eq, *part, optimize="greedy")[0]
        w = np.einsum(eq, *part, optimize=path)   # exact integers, not always contiguous: read in place
        signed.append(np.einsum(product, sums, w))
        spread.append(np.einsum(product, spans, np.abs(w, out=w)))
    if slices == 1:
        return signed[0].reshape(-1), spread[0].reshape(-1)
    return np.concatenate(signed).reshape(-1), np.concatenate(spread).reshape(-1)


def _partial_sum_bound(eq: str, sizes: dict[str, int], constants: list[np.ndarray]) -> float:
    """An upper bound on every partial sum of ``einsum(eq, [identity], *constants)``: the product of
    the operands' largest magnitudes (at least 1: an identity's) times the number of terms of a
    sum (the product of the extents of the indices summed over)."""
    inputs, output = eq.split("->")
    summed = {c for c in inputs.replace(",", "") if c not in output}
    bound = float(math.prod(sizes.get(c, 1) for c in summed))
    for c in constants:
        bound *= max(1.0, float(np.abs(c).max(initial=0)))
    return bound


def finish_pending(low, p: Pending, out_type: QType | None, node: onnx.NodeProto | None) -> Real:
    """Close the segment: append it to the stream's Contraction op; ``out_type`` None keeps it exact."""
    label = node_label(node) if node is not None else p.hint
    sources = p.sources + ([label] if node is not None else [])
    keep = [t for t in dict.fromkeys(p.x_atoms + [t for a, _ in p.consts for t in a] + p.out_atoms)
            if p.sizes[t] > 1 and t != p.token_atom]
    if p.token_atom is not None and any(p.token_atom in a for a, _ in p.consts):
        raise EinhlsError("a constant operand has an index over the tokens of the sequence; an Einsum "
                          "applies to each token", label, "Einsum")
    # in a stream of tokens the segment is what the unit does to one token
    scale = _per_token(p, p.scale, p.out_atoms, "output scale", label)
    bias = _per_token(p, p.bias, p.out_atoms, "bias", label)
    offset = _per_token(p, p.offset, p.x_atoms, "input offset", label)
    uniform = float(scale[0]) if np.all(scale == scale[0]) else None
    if len(keep) > len(LETTERS):
        raise EinhlsError(f"the contraction has {len(keep)} indices of extent > 1; at most {len(LETTERS)} "
                          "are supported", label, "Einsum")
    letter = {t: LETTERS[i] for i, t in enumerate(keep)}

    def word(atoms: list[int]) -> str:
        return "".join(letter[t] for t in atoms if p.sizes[t] > 1 and t != p.token_atom)
    inputs = [word(p.x_atoms)] + [word(a) for a, _ in p.consts]
    constants = [c.reshape([p.sizes[t] for t in a if p.sizes[t] > 1]).astype(np.int64) for a, c in p.consts]
    output = word(p.out_atoms)
    sizes = {letter[t]: p.sizes[t] for t in keep}
    lo_e, hi_e = exact_range(inputs, output, sizes, constants, offset, bias, p.in_type)
    lo, hi = int(lo_e.min(initial=0)), int(hi_e.max(initial=0))
    lo, hi = min(lo, 0), max(hi, 0)
    acc_bits = max(bits_for_range(lo, hi), 2)
    if acc_bits > MAX_ACC_BITS and p.island_constants:
        raise EinhlsError(f"the exact accumulator of this contraction needs {acc_bits} bits (more than "
                          f"{MAX_ACC_BITS}): its float factors, left by the quantizer and quantized by einhls to "
                          f"{ISLAND_WEIGHT_BITS} bits, are too many to multiply exactly (a tensorly-torch tucker or "
                          "cp layer); quantize_static of a blocktt layer is supported, or fake-quantize the "
                          "factors in PyTorch", label, "Einsum")
    if acc_bits > MAX_ACC_BITS:
        raise EinhlsError(f"the exact accumulator of this contraction needs {acc_bits} bits (more than "
                          f"{MAX_ACC_BITS}); quantize between the einsum steps (a QuantizeLinear/Quant on the "
                          "intermediate) or use narrower weights", label, "Einsum")
    acc_type = QType(True, acc_bits, scale=uniform if uniform is not None else 1.0)
    shape = p.shape
    if out_type is None:
        v_lo, v_hi = int(lo_e.min(initial=0)), int(hi_e.max(initial=0))
        if p.relu:
            v_lo, v_hi = max(v_lo, 0), max(v_hi, 0)
        out_type = QType(signed=v_lo < 0, bits=bits_for_range(v_lo, v_hi),
                         scale=uniform if uniform is not None else 1.0)
        requant = RequantParams((1,), 0, 0, v_lo, v_hi)
        real = Real.of_stream(shape, uniform) if uniform is not None else \
            Real(shape, p.scale.copy(), np.zeros(p.scale.size, np.int64))
    else:
        try:
            requant = output_requant(scale / out_type.scale, out_type, p.relu, acc_bits)
        except ValueError as exc:
            raise EinhlsError(f"cannot requantize the contraction: {exc}", label, "Einsum") from exc
        real = Real.of_stream(shape, out_type.scale)
    seg = Segment(inputs=inputs, output=output, sizes=sizes, constants=constants, in_type=p.in_type,
                  offset=offset.astype(np.int64), bias=bias.astype(np.int64), acc_type=acc_type,
                  requant=requant, out_type=out_type, source=" + ".join(sources))
    ops = low.stream.ops
    if p.start == len(ops) and ops and isinstance(ops[-1], Contraction) and ops[-1].name == low.stream.focus \
            and low.stream.readers(ops[-1].name) == 0:
        prev = ops[-1]
        ops[-1] = dataclasses.replace(prev, segments=prev.segments + [seg], out_type=out_type,
                                      out_size=seg.out_size, source=prev.source + " + " + seg.source)
    else:
        low.stream.append(Contraction(name=low.stream.name(p.hint), source=seg.source, in_type=p.in_type,
                                      out_type=out_type, in_size=seg.in_size, out_size=seg.out_size,
                                      segments=[seg]))
    return real
