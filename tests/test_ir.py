"""IR unit tests: the rounding rule, multipliers, bit growth, serialisation."""
import numpy as np
import torch

from codegen.examples import chain_graph
from codegen.ir.graph import Graph
from codegen.ir.reference import run_reference
from codegen.ir.requant import multiplier_and_shift, rne_shift
from codegen.ir.types import QType, bits_for_range, dot_product_range, parse_fixed


def test_rne_shift_is_round_half_to_even_for_numpy_and_torch():
    p = np.arange(-300, 301, dtype=np.int64)
    for shift in range(0, 6):
        want = np.round(p / 2.0**shift).astype(np.int64)  # NumPy rounds half to even
        assert np.array_equal(rne_shift(p, shift), want)
        assert torch.equal(rne_shift(torch.from_numpy(p), shift), torch.from_numpy(want))


def test_power_of_two_multiplier_is_a_pure_shift():
    assert multiplier_and_shift(2.0**-7) == ((1,), 7)
    mults, shift = multiplier_and_shift(np.array([0.3, 0.0123]))
    assert abs(mults[0] / 2**shift - 0.3) < 2**-15 and len(mults) == 2


def test_bit_growth_is_exact_on_the_weights():
    w = np.array([[127, -128, 3], [0, 0, 1]])
    lo, hi = dot_product_range(w, np.zeros(2, dtype=np.int64), -128, 127)
    assert (lo, hi) == (-128 * 127 - 128 * 127 - 128 * 3, 127 * 127 + 128 * 128 + 127 * 3)
    assert bits_for_range(-128, 127) == 8 and bits_for_range(0, 255) == 8 and bits_for_range(-129, 0) == 9


def test_parse_fixed():
    t = parse_fixed("fixed<16,6>")
    assert (t.signed, t.bits, t.frac_bits) == (True, 16, 10)
    assert parse_fixed("ufixed<8,0>").signed is False


def test_graph_json_roundtrip_keeps_the_reference():
    g = chain_graph()
    again = Graph.from_json(g.to_json(), g.arrays())
    x = np.random.default_rng(0).integers(-128, 128, size=(10, g.input_size))
    assert np.array_equal(run_reference(g, x), run_reference(again, x))
    assert QType.from_json(g.input_type.to_json()) == g.input_type
