"""A contraction stage whose weights share a factor computes y / g, the last stage's weights carry
the product of those factors (codegen/passes/contraction.py: expand_segment): bit-exact, narrower
intermediates, fewer DSPs (no hardware: fast)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from codegen.frontend import lower_model
from codegen.ir.contraction import ContractStage
from codegen.ir.reference import quantize_input, run_reference
from codegen.passes import contraction as passes
from codegen.schedule.boards import get_board
from codegen.schedule.folding import fold
from codegen.schedule.paths import OBJECTIVES

from models.einsum_models import tt_model

FACTOR = 8


def model_with_common_factor() -> onnx.ModelProto:
    """A d = 3 TT layer whose cores' int8 codes are all multiples of FACTOR (as when a core's scale
    was aligned to a finer one)."""
    model = tt_model([4, 4, 4], [4, 4, 4], [4, 4], seed=3, shuffle=False)
    for index, init in enumerate(model.graph.initializer):
        codes = numpy_helper.to_array(init)
        if codes.ndim == 4:
            scaled = (codes.astype(np.int64) // FACTOR * FACTOR).astype(codes.dtype)
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(scaled, init.name))
    return model


def stages(graph) -> list[ContractStage]:
    return [op for op in graph.ops if isinstance(op, ContractStage)]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_shared_factors_are_bit_exact(objective: str) -> None:
    graph = lower_model(model_with_common_factor())
    codes = quantize_input(graph, np.random.default_rng(0).normal(size=(16, graph.input_size)) * 4)
    codes[0], codes[1] = graph.input_type.min, graph.input_type.max
    expanded, _ = passes.plan_contractions(graph, objective)
    np.testing.assert_array_equal(run_reference(expanded, codes), run_reference(graph, codes))


def test_inner_stages_divide_the_factor_out_and_the_last_carries_it(monkeypatch) -> None:
    graph = lower_model(model_with_common_factor())
    shared = stages(passes.expand_contractions(graph))
    monkeypatch.setattr(passes, "_common_factor", lambda w, bias: 1)
    kept = stages(passes.expand_contractions(graph))
    assert len(shared) == len(kept) == 3
    for a, b in zip(shared[:-1], kept[:-1]):
        assert np.gcd.reduce(np.abs(b.weight[b.weight != 0])) % FACTOR == 0
        np.testing.assert_array_equal(a.weight * FACTOR, b.weight)
    # the intermediates are narrower by log2(FACTOR) bits per divided stage
    assert shared[1].in_type.bits == kept[1].in_type.bits - 3
    assert shared[2].in_type.bits == kept[2].in_type.bits - 6
    np.testing.assert_array_equal(shared[-1].weight, kept[-1].weight * FACTOR ** 2)
    np.testing.assert_array_equal(shared[-1].bias, kept[-1].bias)


def test_shared_factors_save_dsps(monkeypatch) -> None:
    graph = lower_model(model_with_common_factor())
    board = get_board("zcu102")
    expanded = passes.expand_contractions(graph)
    with_sharing = fold(expanded, board, target_ii=64).totals["dsp"]
    monkeypatch.setattr(passes, "_common_factor", lambda w, bias: 1)
    without = fold(passes.expand_contractions(graph), board, target_ii=64).totals["dsp"]
    assert with_sharing < without, (with_sharing, without)


def test_a_last_stage_that_would_lose_its_cheap_products_keeps_the_factors() -> None:
    # 18-bit weights do not fit the DSP's B port: sharing would cost a second DSP per product
    assert not passes._dsp_products_kept(old_x=20, old_w=8, new_x=14, new_w=19)
    # an 8 x 4-bit product is built from LUTs; an 8 x 10-bit one would take a DSP
    assert not passes._dsp_products_kept(old_x=8, old_w=4, new_x=8, new_w=10)
    # a packable pair (8-bit input, 7-bit weights) would no longer pack with 12-bit weights
    assert not passes._dsp_products_kept(old_x=8, old_w=7, new_x=6, new_w=12)
    assert passes._dsp_products_kept(old_x=32, old_w=8, new_x=24, new_w=16)


@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.slow
def test_shared_factor_design_is_bit_exact_in_rtl_sim(tmp_path) -> None:
    """The generated Verilog and HLS C++ of a design whose last stage carries the factors (wider
    weights)."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify

    path = tmp_path / "tt_factor.onnx"
    onnx.save(model_with_common_factor(), path)
    project = compile_model(path, tmp_path / "out", CompileOptions(board="pynq-z2"), progress=lambda *_: None)
    last = stages(project.graph)[-1]
    assert np.gcd.reduce(np.abs(last.weight[last.weight != 0])) % FACTOR ** 2 == 0
    for result in verify(project, ("csim", "rtlsim"), 16, seed=2, progress=lambda *_: None):
        assert result.passed, result.line()
