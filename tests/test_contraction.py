"""Einsum front end and the fused-contraction expansion pass (no hardware: fast).

* Tensor-train layers with scrambled letters, axis orders and operand orders (d = 2..5, odd ranks,
  rank 1, non-square tensorizations, 4/8/16-bit), Tucker, CP-like vectors, plain low rank (two
  MatMuls), einsum chains with Reshape/Transpose, with and without a quantizer between the steps:
  the integer reference equals the float model exactly (power-of-two scales), and onnxruntime
  within one output step.
* The expansion into stages (every path objective) is bit-identical to the Contraction reference.
* Transpositions: composition, simplification, the permutation buffer's conflict-free layout.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest

from codegen.errors import EinhlsError
from codegen.frontend import lower_model
from codegen.frontend.einsum import parse_equation
from codegen.ir.contraction import Contraction, ContractStage, Permute, Transposition, refine
from codegen.ir.graph import Graph, Linear, Requant
from codegen.ir.reference import dequantize_output, quantize_input, run_reference
from codegen.passes.contraction import check_expansion, expand_contraction, plan_contractions
from codegen.schedule.contraction import _conflict_free, permute_layout
from codegen.schedule.paths import OBJECTIVES

from models.einsum_models import (Builder, chain_model, float_reference, low_rank_model, per_channel_model,
                                  random_codes, tt_model, tucker_model)
from onnx_oracle import onnx_session

TT_CASES = {
    "d2_nonsquare": dict(in_factors=[4, 6], out_factors=[5, 3], ranks=[3], seed=1),
    "d3_rank1_odd": dict(in_factors=[4, 4, 4], out_factors=[2, 8, 4], ranks=[1, 5], seed=2),
    "d4": dict(in_factors=[2, 3, 2, 2], out_factors=[3, 2, 2, 2], ranks=[3, 5, 2], seed=3),
    "d5_w4": dict(in_factors=[2, 2, 2, 2, 2], out_factors=[2, 2, 3, 2, 2], ranks=[3, 3, 3, 3], seed=4, bits=4),
    "d3_a4_w4": dict(in_factors=[4, 4, 4], out_factors=[4, 4, 4], ranks=[3, 3], seed=6, bits=4, act_bits=4),
    "d2_a16": dict(in_factors=[3, 5], out_factors=[5, 3], ranks=[7], seed=5, act_bits=16),
    "d2_w16_a4": dict(in_factors=[4, 4], out_factors=[2, 8], ranks=[3], seed=7, bits=16, act_bits=4, out_bits=8),
}


def check_model(model: onnx.ModelProto, vectors: int = 24, seed: int = 0) -> Graph:
    """Lower, compare with the float model, expand with every objective, compare bit for bit."""
    graph = lower_model(model)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(vectors, graph.input_size)) * 2
    codes = quantize_input(graph, x)
    codes[0], codes[1] = graph.input_type.min, graph.input_type.max
    real_in = (codes - graph.input_type.zero_point) * graph.input_type.scale
    got = dequantize_output(graph, run_reference(graph, codes))
    np.testing.assert_array_equal(got, float_reference(model, real_in).astype(np.float32))
    expected = run_reference(graph, codes)
    for objective in OBJECTIVES:
        expanded, plans = plan_contractions(graph, objective, self_check=True)
        expanded.check()
        assert not any(isinstance(op, Contraction) for op in expanded.ops)
        np.testing.assert_array_equal(run_reference(expanded, codes), expected, err_msg=objective)
        for plan in plans:
            assert plan.weight_elems <= plan.model_weight_elems   # compression is never undone
    return graph


@pytest.mark.parametrize("case", sorted(TT_CASES))
def test_tensor_train_any_letters_and_order(case):
    graph = check_model(tt_model(**TT_CASES[case]))
    assert [op.kind for op in graph.ops] == ["contraction"]
    assert len(graph.ops[0].segments) == 1


def test_expansion_self_check_catches_a_wrong_pipeline():
    """The compile-time self-check (each contraction against its own stages) fails on a pipeline
    that computes something else: a stage left out, or one stage's weights negated."""
    import dataclasses
    graph = lower_model(tt_model(**TT_CASES[sorted(TT_CASES)[0]]))
    op = graph.ops[0]
    stages, _ = expand_contraction(op)
    check_expansion(op, stages, 8)
    with pytest.raises(AssertionError, match="differs from its reference"):
        check_expansion(op, stages[:-1], 8)
    last = next(i for i in reversed(range(len(stages))) if isinstance(stages[i], ContractStage))
    wrong = dataclasses.replace(stages[last], weight=-stages[last].weight)
    with pytest.raises(AssertionError, match="differs from its reference"):
        check_expansion(op, [*stages[:last], wrong, *stages[last + 1:]], 8)


def test_a_contraction_reading_another_contraction_expands():
    """The second of two Contractions in a row reads the first one's expanded pipeline (its input
    was renamed by the first expansion), bit-identical to the unexpanded pair."""
    graph = lower_model(tt_model(in_factors=[4, 4], out_factors=[4, 4], ranks=[3], seed=7, bits=8, act_bits=8,
                                 out_bits=8))
    first = replace(graph.ops[0], inputs=())
    pair = Graph(name="pair", input_type=graph.input_type, input_size=graph.input_size,
                 ops=[first, replace(first, name="second", in_type=first.out_type)])
    pair.check()
    expanded, _ = plan_contractions(pair, self_check=True)
    expanded.check()
    assert not any(isinstance(op, Contraction) for op in expanded.ops)
    t = graph.input_type
    codes = np.random.default_rng(1).integers(t.min, t.max + 1, size=(16, graph.input_size))
    codes[0], codes[1] = t.min, t.max
    np.testing.assert_array_equal(run_reference(expanded, codes), run_reference(pair, codes))


def test_tt_exact_accumulator_too_wide_is_refused():
    with pytest.raises(EinhlsError, match="more than 48"):
        lower_model(tt_model([3, 4, 5], [5, 4, 3], [2, 3], seed=5, bits=16, act_bits=16))


def test_onnxruntime_agrees_within_one_step():
    model = tt_model(**TT_CASES["d4"])
    graph = lower_model(model)
    codes = quantize_input(graph, np.random.default_rng(1).normal(size=(16, graph.input_size)))
    real_in = ((codes - graph.input_type.zero_point) * graph.input_type.scale).astype(np.float32)
    sess = onnx_session(model)
    ours = dequantize_output(graph, run_reference(graph, codes))
    theirs = np.concatenate([sess.run(None, {"x": row[None]})[0] for row in real_in])
    assert np.abs(ours - theirs).max() <= graph.output_type.scale


def test_chain_with_quantizer_between_steps_is_one_contraction_of_two_segments():
    graph = check_model(chain_model(quantize_between=True))
    (op,) = graph.ops
    assert isinstance(op, Contraction) and len(op.segments) == 2
    assert op.segments[0].out_type.bits == 8           # the quantizer between the steps


def test_chain_without_quantizer_keeps_the_intermediate_exact():
    graph = check_model(chain_model(quantize_between=False))
    (op,) = graph.ops
    assert len(op.segments) == 1                       # reshape + transpose merged into one einsum
    assert len(op.segments[0].constants) == 2


def test_chain_reshape_that_regroups_atoms_splits_them():
    check_model(chain_model(quantize_between=True, transpose=False))


def test_low_rank_two_matmuls_are_one_contraction_and_two_linear_stages():
    graph = check_model(low_rank_model(k=24, n=20, rank=3))
    (op,) = graph.ops
    assert isinstance(op, Contraction) and len(op.segments[0].constants) == 2
    expanded, _ = plan_contractions(graph)
    assert [type(o) for o in expanded.ops] == [Linear, Linear]
    assert expanded.ops[0].out_size == 3               # the rank


def test_low_rank_with_large_rank_is_merged_offline_into_one_dense_layer():
    graph = lower_model(low_rank_model(k=6, n=5, rank=4))
    expanded, plans = plan_contractions(graph)
    assert [type(o) for o in expanded.ops] == [Linear]  # 6*5 weights < 4*(6+5): merging saves both
    assert plans[0].offline_macs > 0


def test_low_rank_with_relu():
    check_model(low_rank_model(relu=True))


def test_tucker():
    graph = check_model(tucker_model())
    assert len(graph.ops[0].segments[0].constants) == 3


def test_per_output_channel_scale_of_a_core():
    graph = check_model(per_channel_model())
    expanded, _ = plan_contractions(graph)
    assert isinstance(expanded.ops[-1], (Requant, Permute))


def test_ellipsis_and_implicit_output():
    assert parse_equation("...ij,jk", [3, 2]) == (["aij", "jk"], "aik")
    assert parse_equation("b i j, a j -> b a i", [3, 2]) == (["bij", "aj"], "bai")
    assert parse_equation("ij,jk->...ik", [2, 2])[1] == "ik"
    with pytest.raises(EinhlsError):
        parse_equation("ij,jk->ix", [2, 2])


def test_einsum_errors_name_the_node():
    rng = np.random.default_rng(0)
    b = Builder()
    x = b.reshape(b.qdq("x", 2.0 ** -4), [1, 4, 4])
    w = b.weight(random_codes(rng, (4, 3), 8), 2.0 ** -6)
    y = b.node("Einsum", [x, w], equation="zii,ic->zc")      # a diagonal of the activation
    y = b.qdq(y, 2.0 ** -2)
    with pytest.raises(EinhlsError, match="diagonal") as info:
        lower_model(b.model([1, 16], y, [1, 3]))
    assert "einsum" in str(info.value).lower()


def test_scale_varying_along_a_contracted_index_is_refused():
    rng = np.random.default_rng(0)
    b = Builder()
    x = b.qdq("x", 2.0 ** -4)
    name = b.fresh("w")
    from models.einsum_models import _int_tensor
    from onnx import numpy_helper
    b.inits.append(_int_tensor(name, random_codes(rng, (6, 3), 8), 8))
    s = b.const((2.0 ** -rng.integers(4, 8, size=6)).astype(np.float32), "ws")
    z = b.fresh("wz")
    b.inits.append(numpy_helper.from_array(np.zeros(6, np.int8), z))
    w = b.node("DequantizeLinear", [name, s, z], axis=0)
    y = b.qdq(b.node("Einsum", [x, w], equation="zk,kc->zc"), 2.0 ** -2)
    with pytest.raises(EinhlsError, match="contracted index"):
        lower_model(b.model([1, 6], y, [1, 3]))


# --------------------------------------------------------------------------- transpositions

def test_refinement_and_composition():
    assert refine([6, 4], [3, 8]) == ([[3, 2], [4]], [[3], [2, 4]])
    assert refine([6, 4], [4, 6]) is None
    rng = np.random.default_rng(0)
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(1, 5, size=rng.integers(1, 5)))
        a = Transposition(shape, tuple(int(v) for v in rng.permutation(len(shape))))
        dest = [shape[i] for i in a.axes]
        b = Transposition(tuple(dest), tuple(int(v) for v in rng.permutation(len(dest))))
        x = np.arange(a.size)
        c = a.then(b)
        assert c is not None and np.array_equal(x[a.gather()][b.gather()], x[c.gather()])
        s = a.simplified()
        assert np.array_equal(a.gather(), s.gather())
        assert np.array_equal(a.scatter()[a.gather()], x)


def test_permute_layout_is_conflict_free_and_a_skew_fixes_strided_writes():
    t = Transposition((8, 12), (1, 0))                       # a transpose: writes at stride 12... 8
    layout = permute_layout(t, 4, 4)
    assert layout.write_lanes == 4 and _conflict_free(t.scatter(), 4, layout.banks, layout.skew)
    assert not _conflict_free(Transposition((8, 8), (1, 0)).scatter(), 8, 8, 0)   # same bank: col
    assert _conflict_free(Transposition((8, 8), (1, 0)).scatter(), 8, 8, 1)       # skewed: distinct


def test_stage_json_round_trip(tmp_path):
    graph, _ = plan_contractions(lower_model(tt_model(**TT_CASES["d3_rank1_odd"])))
    assert any(isinstance(op, ContractStage) and op.gather is not None for op in graph.ops)
    again = Graph.from_json(graph.to_json(), graph.arrays())
    codes = np.random.default_rng(0).integers(-128, 128, size=(5, graph.input_size))
    np.testing.assert_array_equal(run_reference(graph, codes), run_reference(again, codes))
    contraction = lower_model(tt_model(**TT_CASES["d4"]))
    again = Graph.from_json(contraction.to_json(), contraction.arrays())
    codes = np.random.default_rng(1).integers(-128, 128, size=(5, contraction.input_size))
    np.testing.assert_array_equal(run_reference(contraction, codes), run_reference(again, codes))
