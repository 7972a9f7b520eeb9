"""`einhls compress`: candidates, scheduler costs, the search on a digits MLP, its ONNX export through
`einhls compile` + `einhls verify`, executors (process pool, Ray) and the command line."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codegen.compress.modules import Spec, build, channel_scales, fake_quant, nm_mask
from codegen.compress.search import balanced_factors, candidate_specs, factorizations, versus_uniform
from onnx_oracle import onnx_session


@pytest.fixture(scope="module")
def digits():
    from codegen.compress.digits import train_digits_mlp
    torch.set_num_threads(1)   # tiny products: more threads than free cores only slow them down
    model, x, test_acc = train_digits_mlp(hidden=64, seed=0, epochs=25)
    assert test_acc > 0.9   # a real classifier, so accuracy losses mean something
    return model, x[:300]


@pytest.fixture(scope="module")
def searched(digits, tmp_path_factory):
    """One search + distillation on the digits MLP (shared by the tests that read its outputs)."""
    from codegen.compress import compress
    model, x = digits
    out = tmp_path_factory.mktemp("compress") / "digits"
    result = compress(model, x, "pynq-z2", out, min_accuracy=0.99, budget_s=900, seed=0, workers=1,
                      level="small", progress=False, distill_steps=(100, 300))
    return result


def test_factorizations_cover_two_to_five_factors():
    for n in (64, 384, 1536):
        for d in range(2, 6):
            options = factorizations(n, d)
            assert options, (n, d)
            assert all(math.prod(f) == n and len(f) == d and min(f) >= 2 for f in options)
        assert max(balanced_factors(n, 3)) == min(max(f) for f in factorizations(n, 3))
    assert factorizations(7, 2) == []


def test_candidate_set_per_layer():
    square = candidate_specs(384, 384)
    kinds = {s.kind for s in square}
    assert kinds == {"dense", "nm", "lowrank", "tt", "butterfly"}
    assert {(s.n, s.m) for s in square if s.kind == "nm"} == {(1, 4), (2, 4), (2, 8), (4, 8)}
    assert {len(s.in_factors) for s in square if s.kind == "tt"} == {2, 3, 4, 5}
    assert {s.bits for s in square} == {4, 8}
    assert "butterfly" not in {s.kind for s in candidate_specs(384, 1536)}
    # low rank only where it stores fewer weights than the dense layer
    assert all(s.rank * (384 + 1536) < 384 * 1536 for s in candidate_specs(384, 1536) if s.kind == "lowrank")


def test_nm_mask_and_narrow_weights():
    torch.manual_seed(0)
    w = torch.randn(6, 16)
    mask = nm_mask(w, 2, 8)
    groups = (mask.reshape(6, 2, 8) != 0).sum(-1)
    assert torch.all(groups == 2)
    # the kept ones are the two largest magnitudes of each group (numpy reference)
    wn = np.abs(w.numpy()).reshape(6, 2, 8)
    top = np.sort(np.argsort(-wn, axis=-1)[..., :2], axis=-1)
    kept = np.sort(np.nonzero(mask.numpy().reshape(6, 2, 8))[-1].reshape(6, 2, 2), axis=-1)
    assert np.array_equal(top, kept)
    lin = nn.Linear(16, 6)
    q = build(Spec("nm", 4, n=2, m=8), lin, 2 ** -5)
    eff = q.effective_weight().detach()
    scale = channel_scales(lin.weight * q.mask, 4)[:, None]   # per output channel
    codes = eff / scale
    assert torch.equal(codes, codes.round()) and codes.min() >= -8 and codes.max() <= 7
    assert torch.all((eff.reshape(6, 2, 8) != 0).sum(-1) <= 2)
    x = torch.tensor([0.3, -0.04, 5.0])
    assert torch.allclose(fake_quant(x, 2 ** -5), torch.tensor([0.3125, -0.03125, 127 / 32]))


def test_scheduler_costs_follow_the_form():
    """Costs come from einhls' fold of the lowered layer: checked against what the forms imply."""
    from codegen.compress.costing import fold_cost, lower_layer
    from codegen.schedule.boards import get_board
    torch.manual_seed(1)
    lin = nn.Linear(64, 64)
    board = get_board("pynq-z2")
    costs = {}
    for spec in (Spec("dense", 8), Spec("nm", 8, n=2, m=4), Spec("dense", 4), Spec("lowrank", 8, rank=8)):
        graph = lower_layer(build(spec, lin, 2 ** -5, torch.randn(32, 64)), 2 ** -4, "pynq-z2")
        costs[spec.label] = fold_cost(graph, board, target_ii=16)
    assert costs["dense w8"].weight_bits == 64 * 64 * 8
    assert costs["dense w4"].weight_bits == 64 * 64 * 4
    assert costs["2:4 w8"].effective_macs * 2 == costs["dense w8"].effective_macs
    assert costs["lowrank r8 w8"].effective_macs == 2 * 64 * 8
    assert costs["dense w4"].dsp < costs["dense w8"].dsp   # 4-bit products are built from LUTs
    assert all(c.cycles == 16 and c.fits for c in costs.values())


def test_search_front_choice_and_outputs(searched):
    result = searched
    out = result.output
    for name in ("front.md", "front.png", "front.json", "config.json", "model.pt", "model.onnx"):
        assert (out / name).exists(), name
    assert result.chosen is not None and result.chosen.accuracy >= 0.99 and result.chosen.cost.fits
    # the chosen point is the fastest that meets the floor
    meeting = [p for p in result.points if p.accuracy >= 0.99 and p.cost.fits]
    assert result.chosen.cost.cycles == min(p.cost.cycles for p in meeting)
    # the front: nothing evaluated is both faster and more accurate than a front point
    for p in result.front:
        assert not any(q.cost.cycles < p.cost.cycles and q.accuracy > p.accuracy for q in result.points)
    config = json.loads((out / "config.json").read_text())
    assert config["chosen"]["label"] == result.chosen.label
    assert set(config["chosen"]["layers"]) == {"0", "2", "4"}
    assert "**chosen**" in (out / "front.md").read_text()


def test_search_beats_uniform_settings(searched):
    """At equal or better accuracy, a searched mixed configuration costs fewer cycles x DSP than
    the int8 hand settings: uniform 2:4, uniform low rank, uniform TT rank.  (Uniform 4-bit
    settings use LUT multipliers, 0 DSP: cycles x DSP cannot rank them.)"""
    rows = {r["uniform"]: r for r in versus_uniform(searched.points)}
    hand = [label for label in rows if label.startswith(("uniform 2:4", "uniform lowrank", "uniform tt"))
            and label.endswith("w8")]
    assert hand
    for label in hand:
        r = rows[label]
        assert r["search"] is not None, label
        assert r["search_accuracy"] >= r["uniform_accuracy"]
        assert r["search_cycles_x_dsp"] < r["uniform_cycles_x_dsp"], r


def test_distillation_recovers(searched):
    distilled = [p for p in searched.points if p.origin == "distilled"]
    assert distilled
    assert distilled[0].accuracy >= distilled[0].extra["before_distillation"]


def test_exported_onnx_matches_torch_and_compiles(searched, tmp_path):
    """model.onnx is what the compressed torch model computes, and `einhls compile` + C-sim take it
    as is (bit-exact against the IR reference)."""

    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify
    out = searched.output
    model = torch.load(out / "model.pt", weights_only=False)
    x = torch.rand(8, 64)
    session = onnx_session(str(out / "model.onnx"))
    got = np.concatenate([session.run(None, {"x": row[None].numpy()})[0] for row in x])
    with torch.no_grad():
        want = model(x).numpy()
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.99
    project = compile_model(out / "model.onnx", tmp_path / "hw", CompileOptions(board="pynq-z2"),
                            progress=lambda *_: None)
    (result,) = verify(project, ("csim",), vectors=8, seed=1, progress=lambda *_: None)
    assert result.passed, result.line()


def test_same_seed_same_front_any_worker_count(digits, tmp_path):
    from codegen.compress import compress
    model, x = digits
    fronts = []
    for workers in (1, 2):
        r = compress(model, x[:150], "pynq-z2", tmp_path / f"w{workers}", min_accuracy=0.95, budget_s=200,
                     seed=3, workers=workers, level="small", distill=False, progress=False)
        fronts.append([(p.label, round(p.accuracy, 10), p.cost.cycles, p.cost.dsp, p.cost.lut) for p in r.front])
    assert fronts[0] == fronts[1] and fronts[0]


def test_ray_local_same_front_as_pool(digits, tmp_path):
    pytest.importorskip("ray")
    from codegen.compress import compress
    model, x = digits
    fronts = []
    for ray_address in (None, "local"):
        r = compress(model, x[:150], "pynq-z2", tmp_path / f"r{ray_address}", min_accuracy=0.95, budget_s=400,
                     seed=3, workers=1, level="small", distill=False, progress=False, ray_address=ray_address)
        fronts.append([(p.label, round(p.accuracy, 10), p.cost.cycles, p.cost.dsp, p.cost.lut) for p in r.front])
    assert fronts[0] == fronts[1] and fronts[0]


def _float_onnx(model: nn.Module, path: Path) -> Path:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    return path


@pytest.mark.parametrize("extra, needle", [
    (["--target-fps", "-3"], "--target-fps"),
    (["--min-accuracy", "1.5"], "--min-accuracy"),
    (["--budget-s", "0"], "--budget-s"),
    (["--board", "nosuchboard"], "unknown board"),
])
def test_cli_bad_options_exit_2_one_line(digits, tmp_path, capsys, extra, needle):
    from codegen.cli import main
    model, x = digits
    onnx_path = _float_onnx(model, tmp_path / "mlp.onnx")
    np.save(tmp_path / "x.npy", x[:20])
    args = ["compress", str(onnx_path), "--board", "pynq-z2", "--data", str(tmp_path / "x.npy"),
            "-o", str(tmp_path / "out")] + extra
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("einhls: error:") and needle in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_text_data_for_tensor_model_and_quantized_onnx(digits, tmp_path, capsys, demo_model):
    from codegen.cli import main
    model, x = digits
    onnx_path = _float_onnx(model, tmp_path / "mlp.onnx")
    text = tmp_path / "t.txt"
    text.write_text("one sentence\nanother one\n")
    assert main(["compress", str(onnx_path), "--board", "pynq-z2", "--data", str(text), "-o", str(tmp_path / "o")]) == 2
    assert "tokenizer" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", x[:20])
    assert main(["compress", str(demo_model), "--board", "pynq-z2", "--data", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "o")]) == 2
    assert "float weights" in capsys.readouterr().err


def test_cli_compresses_a_float_onnx_mlp(digits, tmp_path, capsys):
    from codegen.cli import main
    model, x = digits
    onnx_path = _float_onnx(model, tmp_path / "mlp.onnx")
    np.save(tmp_path / "x.npy", x[:150])
    rc = main(["compress", str(onnx_path), "--board", "pynq-z2", "--data", str(tmp_path / "x.npy"),
               "--min-accuracy", "0.98", "--budget-s", "60", "--candidates", "small", "--no-distill",
               "--workers", "2", "-o", str(tmp_path / "out")])
    assert rc == 0
    assert "chosen:" in capsys.readouterr().out
    chosen = json.loads((tmp_path / "out" / "config.json").read_text())["chosen"]
    assert chosen["accuracy"] >= 0.98
    # --resume continues that run's point on the same data (no new search)
    rc = main(["compress", str(onnx_path), "--board", "pynq-z2", "--data", str(tmp_path / "x.npy"),
               "--budget-s", "10", "--resume", str(tmp_path / "out"), "-o", str(tmp_path / "more")])
    assert rc == 0
    assert "continued:" in capsys.readouterr().out
    config = json.loads((tmp_path / "more" / "config.json").read_text())
    assert config["continued_from"] == str(tmp_path / "out")
    assert config["budget_s_total"] == pytest.approx(60 + 10)
    np.save(tmp_path / "other.npy", x[:100])
    assert main(["compress", str(onnx_path), "--board", "pynq-z2", "--data", str(tmp_path / "other.npy"),
                 "--budget-s", "10", "--resume", str(tmp_path / "out"), "-o", str(tmp_path / "other")]) == 2
    assert "digest" in capsys.readouterr().err and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_exported_onnx_rtl_sim_cycles(searched, tmp_path):
    """The compressed digits MLP in RTL simulation: bit-exact, and the measured interval is the
    scheduler's."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify
    project = compile_model(searched.output / "model.onnx", tmp_path / "hw", CompileOptions(board="pynq-z2"),
                            progress=lambda *_: None)
    (result,) = verify(project, ("rtlsim",), vectors=8, seed=1, progress=lambda *_: None)
    assert result.passed, result.line()
    assert result.measured["interval_cycles"] == project.report["totals"]["ii"]


def test_resume_continues_the_reported_point(searched, digits, tmp_path):
    """A continued run (codegen/compress/resume.py) starts from the previous run's model.pt and
    draws the same held-out split: with no steps its score is the previous one; with a few steps
    the step counts and budgets add up, and the continued model is written and exported again."""
    from codegen.compress.resume import resume
    from codegen.errors import EinhlsError
    model, x = digits
    previous = json.loads((searched.output / "config.json").read_text())["reported"]
    same = resume(searched.output, x, tmp_path / "none", budget_s=5, model=model, max_steps=0, progress=False)
    (still,) = [p for p in same.points if p.extra.get("before_continuing") is not None]
    assert still.accuracy == pytest.approx(previous["accuracy"], abs=1e-6)
    more = resume(searched.output, x, tmp_path / "more", budget_s=20, model=model, max_steps=25, progress=False)
    config = json.loads((tmp_path / "more" / "config.json").read_text())
    steps_before = previous["extra"].get("distill_steps", 0)
    assert config["reported"]["extra"]["distill_steps"] == 25
    assert config["reported"]["extra"]["distill_steps_total"] == steps_before + 25
    assert config["budget_s_total"] == pytest.approx(900 + 20)
    assert config["reported"]["cost"] == previous["cost"]      # the same configuration: the same hardware
    rows = json.loads((tmp_path / "more" / "front.json").read_text())
    assert len(rows) == len(searched.points) + 1
    for name in ("model.pt", "model.onnx", "front.md", "front.png"):
        assert (tmp_path / "more" / name).exists(), name
    assert more.model is not None
    # a continued run trains and scores on the data it started with, nothing else
    with pytest.raises(EinhlsError, match="digest"):
        resume(searched.output, x[:200], tmp_path / "other", budget_s=5, model=model, progress=False)
    with pytest.raises(EinhlsError, match="torch module"):
        resume(searched.output, x, tmp_path / "nomodel", budget_s=5, progress=False)


def test_layers_filter_selects_by_name_or_regex(digits):
    """`--layers` / compress(layers=...): names or whole-name regular expressions; a pattern that
    selects no linear layer is refused, naming it."""
    from codegen.compress.targets import load_target
    from codegen.errors import EinhlsError
    model, x = digits
    target = load_target(model, x)
    assert target.linear_names() == ["0", "2", "4"]
    target.restrict(["2"])
    assert target.linear_names() == ["2"]
    target.restrict([r"[04]"])
    assert target.linear_names() == ["0", "4"]
    target.restrict(None)
    assert target.linear_names() == ["0", "2", "4"]
    with pytest.raises(EinhlsError, match="'1'.*matches no linear layer"):   # "1" is the ReLU, not a linear
        target.restrict(["2", "1"])
    with pytest.raises(EinhlsError, match="matches no linear layer"):        # fullmatch: "0" is not "0x"
        target.restrict(["0x"])


def test_layers_filter_compresses_only_the_matching_layers(digits, tmp_path):
    """Only the selected layer is searched, configured and replaced; the others stay the original
    float nn.Linear; the filter is recorded so a continued run rebuilds the same target."""
    from codegen.compress import compress
    from codegen.compress.resume import resume
    model, x = digits
    result = compress(model, x[:150], "pynq-z2", tmp_path / "out", min_accuracy=0.9, budget_s=60, seed=0,
                      workers=1, level="small", distill=False, progress=False, layers=["2"])
    assert [layer.name for layer in result.layers] == ["2"]
    assert result.points and all(set(p.config) == {"2"} for p in result.points)
    student = result.model
    assert student is not None
    for name in ("0", "4"):
        kept = dict(student.named_modules())[name]
        assert type(kept) is nn.Linear
        assert torch.equal(kept.weight, dict(model.named_modules())[name].weight)
    assert type(dict(student.named_modules())["2"]) is not nn.Linear
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["layers_filter"] == ["2"] and list(config["input_bits"]) == ["2"]
    assert "1 of the model's 3 linear layers" in config["costing"]
    again = resume(tmp_path / "out", x[:150], tmp_path / "more", budget_s=5, model=model, max_steps=0,
                   progress=False)
    assert [layer.name for layer in again.layers] == ["2"]


def test_cli_layers_matching_nothing_exits_2_one_line(digits, tmp_path, capsys):
    from codegen.cli import main
    model, x = digits
    onnx_path = _float_onnx(model, tmp_path / "mlp.onnx")
    np.save(tmp_path / "x.npy", x[:20])
    assert main(["compress", str(onnx_path), "--board", "pynq-z2", "--data", str(tmp_path / "x.npy"),
                 "--layers", "2", r"encoder\.layer\.\d+", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("einhls: error: --layers") and "matches no linear layer" in err and "\n" not in err
    assert r"encoder\\.layer" in err and not (tmp_path / "out").exists()
