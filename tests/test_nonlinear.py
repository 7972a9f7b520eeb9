"""The integer references of the nonlinear units (codegen/ir/nonlinear.py): their arithmetic
properties, their error against the float ops over whole input ranges, serialisation and refusals.
The HLS and Verilog units are checked against these references in tests/test_nonlinear_units.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codegen.ir.nonlinear import (IntGelu, IntLayerNorm, IntSoftmax, isqrt_floor, make_gelu, make_layernorm,
                                  make_softmax, nonlinear_from_json)
from codegen.ir.types import QType


def s(bits: int, scale: float, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def steps_error(y: torch.Tensor, real_steps: torch.Tensor, out_type: QType) -> torch.Tensor:
    """|y - float result| in output steps; the float result is clamped to the output range
    (saturation is the output type's, not the unit's)."""
    return (y.double() - real_steps.clamp(out_type.min, out_type.max)).abs()


# --- integer square root ---------------------------------------------------------------------

def test_isqrt_floor_is_exact() -> None:
    rng = np.random.default_rng(0)
    values = [0, 1, 2, 3, 4, 8, 9, 15, 16, 17, (1 << 40) - 1, 1 << 40, (1 << 61) - 1, 3 ** 38]
    values += [k * k for k in rng.integers(0, 1 << 30, 50).tolist()]
    values += [k * k - 1 for k in rng.integers(1, 1 << 30, 50).tolist()]
    values += rng.integers(0, 1 << 62, 200).tolist()
    v = torch.tensor(values, dtype=torch.int64)
    got = isqrt_floor(v, 62)
    assert got.tolist() == [math.isqrt(int(x)) for x in values]


# --- softmax -----------------------------------------------------------------------------------

def test_softmax_every_pair_of_int8_codes() -> None:
    """Rows of two elements over every pair of int8 codes: every difference of the input range."""
    op = make_softmax(2, s(8, 1 / 16))
    grid = torch.cartesian_prod(torch.arange(-128, 128), torch.arange(-128, 128))
    y = op.reference(grid)
    err = steps_error(y, op.float_reference(grid), op.out_type)
    assert float(err.max()) < 0.75 and float(err.mean()) < 0.2, (float(err.max()), float(err.mean()))
    # shift invariance: the output depends on x1 - x0 only
    grid2 = grid.clone()
    keep = (grid2 < 127).all(dim=1)
    np.testing.assert_array_equal(op.reference(grid2[keep] + 1).numpy(), y[keep].numpy())


@pytest.mark.parametrize("in_type,out_type,size", [
    (s(8, 0.1), u(8, 1 / 256), 128),
    (s(8, 0.5), u(8, 1 / 255), 16),
    (s(16, 2.0 ** -10), u(8, 1 / 256), 128),
    (s(16, 2.0 ** -10), u(16, 2.0 ** -16), 64),
    (u(4, 0.6, zp=7), u(8, 1 / 256), 5),
])
def test_softmax_properties_and_error(in_type: QType, out_type: QType, size: int) -> None:
    op = make_softmax(size, in_type, out_type)
    gen = torch.Generator().manual_seed(size)
    x = torch.randint(in_type.min, in_type.max + 1, (3000, size), generator=gen)
    x[0], x[1] = in_type.min, in_type.max
    x[2, 0::2], x[2, 1::2] = in_type.min, in_type.max
    y = op.reference(x)
    assert int(y.min()) >= 0
    # the maximum's output is the largest, and larger inputs never get smaller outputs
    top = x.argmax(dim=1, keepdim=True)
    assert torch.equal(y.gather(1, top).squeeze(1), y.max(dim=1).values)
    order = x.argsort(dim=1)
    assert bool((y.gather(1, order).diff(dim=1) >= 0).all())
    # a constant row is uniform
    assert len(set(y[0].tolist())) == 1 and len(set(y[1].tolist())) == 1
    err = steps_error(y, op.float_reference(x), out_type)
    # rounding (half a step) plus I-BERT's polynomial (0.31% relative, below 0.002 absolute)
    assert float(err.max()) < 0.5 + 0.002 / out_type.scale, float(err.max())
    assert float(err.mean()) < 0.25 + 0.0005 / out_type.scale, float(err.mean())
    # the outputs of a row sum to one within the rounding of its elements
    total = (y.double() * out_type.scale).sum(dim=1)
    assert float((total - 1).abs().max()) <= size * out_type.scale


def test_softmax_exponentials_follow_2_to_minus_u() -> None:
    """e approximates 2^F exp(-S d) within I-BERT's polynomial error (below 0.3% of 2^F)."""
    op = make_softmax(256, s(8, 0.05))
    x = torch.arange(-128, 128).reshape(1, -1)
    e = op.exponentials(x).double()[0]
    ideal = torch.exp(-(127 - torch.arange(-128, 128).double()) * 0.05) * 2 ** op.frac_bits
    assert float((e - ideal).abs().max()) < 0.003 * 2 ** op.frac_bits


# --- LayerNorm ---------------------------------------------------------------------------------

@pytest.mark.parametrize("in_type,out_type,size", [
    (s(8, 0.05), s(8, 0.05), 384),
    (u(8, 0.02, zp=128), u(8, 0.03, zp=120), 32),
    (s(16, 2.0 ** -8), s(16, 2.0 ** -11), 384),
    (s(4, 0.5), s(4, 0.4), 13),
])
def test_layernorm_error(in_type: QType, out_type: QType, size: int) -> None:
    rng = np.random.default_rng(size)
    gamma, beta = rng.uniform(-1.5, 1.5, size), rng.uniform(-1, 1, size)
    op = make_layernorm(size, in_type, out_type, gamma, beta, eps=1e-5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(in_type.min, in_type.max + 1, (1000, size), generator=gen)
    # rows of small spread too: few distinct codes, where the variance is tiny
    centre = torch.randint(in_type.min + 2, in_type.max - 1, (500, 1), generator=gen)
    narrow = (centre + torch.randint(-2, 3, (500, size), generator=gen)).clamp(in_type.min, in_type.max)
    x = torch.cat([x, narrow])
    x[0], x[1] = in_type.min, in_type.max
    x[2, 0::2], x[2, 1::2] = in_type.min, in_type.max
    y = op.reference(x)
    err = steps_error(y, op.float_reference(x, gamma, beta, 1e-5), out_type)
    assert float(err.max()) < 0.75, float(err.max())
    assert float(err.mean()) < 0.3, float(err.mean())


def test_layernorm_constant_row_gives_beta() -> None:
    """Zero variance (and eps too small to matter): the normalised value is 0, the output beta."""
    beta = np.linspace(-1, 1, 16)
    op = make_layernorm(16, s(8, 0.1), s(8, 0.05), np.full(16, 0.7), beta, eps=0.0)
    for code in (-128, 0, 37, 127):
        y = op.reference(torch.full((1, 16), code, dtype=torch.int64))
        np.testing.assert_array_equal(y[0].numpy(), np.round(beta / 0.05).astype(np.int64))


def test_layernorm_normalised_value_is_accurate() -> None:
    """n = (x - mean) / sqrt(var + eps) with NF fraction bits, within 2 units of the last place."""
    op = make_layernorm(64, s(8, 0.1), s(8, 0.05))
    x = torch.randint(-128, 128, (200, 64), generator=torch.Generator().manual_seed(3))
    n = op.normalized(x).double() / 2 ** op.norm_frac
    xd = x.double() * 0.1
    ideal = (xd - xd.mean(1, keepdim=True)) / torch.sqrt(xd.var(1, unbiased=False, keepdim=True) + 1e-5)
    assert float((n - ideal).abs().max()) < 2 * 2.0 ** -op.norm_frac


# --- GELU --------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_type,out_type", [
    (s(8, 0.05), s(8, 0.05)),
    (u(8, 0.05, zp=100), s(8, 0.03)),
    (s(16, 2.0 ** -11), s(16, 2.0 ** -11)),
    (s(4, 0.5), u(4, 0.3, zp=2)),
])
def test_gelu_whole_input_range(in_type: QType, out_type: QType) -> None:
    codes = torch.arange(in_type.min, in_type.max + 1).reshape(1, -1)
    op = make_gelu(codes.shape[1], in_type, out_type)
    y = op.reference(codes)
    for form in ("none", "tanh"):
        err = steps_error(y, op.float_reference(codes, form), out_type)
        # I-BERT's polynomial is within 0.02 of GELU (in units of x); measured in output steps
        bound = 0.5 + 0.021 / out_type.scale
        assert float(err.max()) < bound, (form, float(err.max()), bound)
    real = (codes[0].double() - in_type.zero_point) * in_type.scale
    pos = real >= 0
    assert bool((y[0][pos].diff() >= 0).all())          # monotonic for x >= 0


def test_gelu_int16_error_is_bounded_in_real_units() -> None:
    """At a fine output scale the polynomial's own error dominates: at most 0.02 absolute."""
    in_type, out_type = s(16, 2.0 ** -11), s(16, 2.0 ** -11)
    codes = torch.arange(in_type.min, in_type.max + 1).reshape(1, -1)
    op = make_gelu(codes.shape[1], in_type, out_type)
    err = steps_error(op.reference(codes), op.float_reference(codes), out_type) * out_type.scale
    assert 0.005 < float(err.max()) < 0.02


# --- serialisation and refusals ----------------------------------------------------------------

def _ops():
    rng = np.random.default_rng(4)
    return [make_softmax(10, s(8, 0.1)),
            make_layernorm(10, s(8, 0.1), s(8, 0.05), rng.uniform(-1, 1, 10), rng.uniform(-1, 1, 10)),
            make_gelu(10, u(8, 0.05, zp=100), s(8, 0.03))]


@pytest.mark.parametrize("index", range(3))
def test_json_round_trip(index: int) -> None:
    import json

    op = _ops()[index]
    d = json.loads(json.dumps(op.to_json()))
    back = nonlinear_from_json(d, op.arrays())
    assert back == op
    x = torch.randint(op.in_type.min, op.in_type.max + 1, (20, 10), generator=torch.Generator().manual_seed(0))
    assert torch.equal(back.reference(x), op.reference(x))


def test_arrays_hold_the_per_feature_constants() -> None:
    sm, ln, ge = _ops()
    assert sm.arrays() == {} and ge.arrays() == {}
    assert set(ln.arrays()) == {"gamma", "beta"}
    assert ln.arrays()["gamma"].tolist() == list(ln.gamma)


def test_bad_inputs_are_refused() -> None:
    op = make_softmax(4, s(8, 0.1))
    with pytest.raises(TypeError, match="int64"):
        op.reference(torch.zeros((1, 4), dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        op.reference(torch.zeros((1, 5), dtype=torch.int64))
    with pytest.raises(ValueError, match="outside"):
        op.reference(torch.full((1, 4), 200, dtype=torch.int64))
    with pytest.raises(ValueError, match="more than the 62"):
        make_layernorm(4096, s(32, 1.0), s(8, 0.1))
    with pytest.raises(ValueError, match="at least 2 features"):
        make_layernorm(1, s(8, 0.1), s(8, 0.1))
    with pytest.raises(ValueError, match="unknown nonlinear unit"):
        nonlinear_from_json({"kind": "swish"})


def test_classes_are_standalone() -> None:
    """Not graph ops yet (the graph IR is being redesigned): plain frozen dataclasses."""
    from codegen.ir import graph

    for cls in (IntSoftmax, IntLayerNorm, IntGelu):
        assert not issubclass(cls, graph.Op)
