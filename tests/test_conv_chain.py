"""Decomposed convolutions with nothing between their factors (Brevitas weight-only quantizers):
the factor chain or the kernel rebuilt from the factors, whichever the scheduler's cost says is
cheaper (codegen/passes/conv_chain.py).  The choice is asserted from the costs the code computes,
the rebuilt graph's reference equals the chain's element by element, the reference equals the
Brevitas model, and both kinds are bit-exact in C-sim and RTL sim."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen.ir.reference import run_reference
from codegen.passes.conv_chain import compare_conv_chains, rebuild_conv_chains, resource_score
from codegen.project import CompileOptions, compile_model
from codegen.schedule.boards import get_board
from codegen.verify.runner import verify

from models.conv_chain import MODELS, SHAPE, build

QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("conv_chain")


@pytest.fixture(scope="module")
def chain_projects(tmp_path_factory):
    pytest.importorskip("brevitas")
    folder = tmp_path_factory.mktemp("conv_chain")
    projects = {}
    for name in MODELS:
        path, model = build(name, folder / f"{name}.onnx")
        projects[name] = (path, model, compile_model(path, folder / f"out_{name}", CompileOptions(board="pynq-z2"),
                                                     **QUIET))
    return projects


def _unchosen(project, name):
    """The graph lowered without the choice: the factor chain as lowered."""
    from codegen.frontend import load_graph
    from codegen.frontend.passes import fuse_relu
    from codegen.passes.graph import insert_forks
    return insert_forks(fuse_relu(load_graph(project[0])))


@SHARED
@pytest.mark.parametrize("name, kept", [("tucker_low_rank", "chain"), ("tucker_wide_rank", "rebuilt")])
def test_choice_follows_the_scheduler_cost(chain_projects, name, kept):
    path, _, project = chain_projects[name]
    chain = _unchosen(chain_projects[name], name)
    board = get_board("pynq-z2")
    rebuilt, choice = compare_conv_chains(chain, board)
    assert choice is not None and choice.merges, "the factors have no quantizer between them: mergeable"
    # the scores are the scheduler's totals at the compared interval, recomputed here
    assert choice.chain_score == pytest.approx(resource_score(choice.chain, board))
    assert choice.rebuilt_score == pytest.approx(resource_score(choice.rebuilt, board))
    assert choice.chain["ii"] == choice.rebuilt["ii"] == choice.interval
    cheaper = "rebuilt" if choice.rebuilt_score < choice.chain_score else "chain"
    assert choice.chosen == cheaper == kept, choice.line()
    linears = [op for op in project.graph.ops if op.kind == "linear"]
    windows = [op for op in project.graph.ops if op.kind == "window"]
    if kept == "chain":   # three factor units: 1x1, window + 3x3 core, 1x1
        assert len(linears) == 3 and windows[0].in_size == MODELS[name][2]
        assert choice.chain["macs"] < choice.rebuilt["macs"]
    else:                 # one window over the input channels and one Linear of the rebuilt kernel
        c_in, c_out = MODELS[name][:2]
        assert len(linears) == 1 and (linears[0].in_size, linears[0].out_size) == (9 * c_in, c_out)
        assert windows[0].in_size == c_in
        assert choice.rebuilt["macs"] < choice.chain["macs"]
    assert f"{kept} kept" in linears[-1].source


@SHARED
@pytest.mark.parametrize("name", sorted(MODELS))
def test_rebuilt_kernel_equals_the_chain(chain_projects, name):
    """Element by element, on random codes over the whole input range (the rebuilt kernel is the
    exact integer product of the factors, the requantization the last factor's)."""
    chain = _unchosen(chain_projects[name], name)
    rebuilt, merges = rebuild_conv_chains(chain)
    assert len(merges) == 2
    codes = np.random.default_rng(5).integers(chain.input_type.min, chain.input_type.max + 1,
                                              size=(32, chain.tokens * chain.input_size))
    assert np.array_equal(run_reference(chain, codes), run_reference(rebuilt, codes))


@SHARED
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_matches_brevitas(chain_projects, name):
    _, model, project = chain_projects[name]
    x = torch.randn(16, MODELS[name][0], *SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    got = project.predict(x.numpy())
    steps = np.abs(got - expected) / project.graph.output_type.scale
    assert steps.max() <= 1 + 1e-4 and (steps < 0.5).mean() > 0.99, steps.max()


@SHARED
@pytest.mark.csim
@pytest.mark.rtl
@pytest.mark.parametrize("name", [
    "tucker_wide_rank",
    pytest.param("tucker_low_rank", marks=pytest.mark.slow),   # the chain: lowered as before this pass
])
def test_bit_exact_at_the_scheduled_interval(chain_projects, name):
    project = chain_projects[name][2]
    results = verify(project, ("csim", "rtlsim"), vectors=4, **QUIET)
    for result in results:
        assert result.passed, result.line()
    assert results[1].measured["interval_cycles"] <= project.report["totals"]["frame_interval"]
