"""Continuing a compress run: more end-to-end distillation of the point a previous run reported.

A run that met its budget before its chosen (or distilled) point was good enough leaves in its
output folder everything needed to carry on: the compressed torch model (``model.pt``), the
point's configuration and hardware cost (``config.json``: ``reported``; the cost depends on the
configuration only, not on the trained values, so it is not folded again), the front
(``front.json``) and the seed and digest of the data.  :func:`resume` loads them, draws the same
train / held-out split from the same seed and data, trains the model end to end on the original
model's outputs for the new budget (a fresh Adam state: the previous optimizer's moments are not
kept), scores it on the held-out split and writes a new output folder: the previous points, the
continued one, the model and its ONNX export.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import EinhlsError
from .costing import HwCost, board_of
from .distill import end_to_end, end_to_end_settings
from .modules import Spec
from .search import Point, Progress, pareto
from .targets import accuracy, load_target

#: config.json fields of a run that :func:`resume` needs
NEEDED = ("reported", "model", "seed", "board", "data_sha256")


def load_previous(previous: str | Path) -> tuple[dict, list[dict], nn.Module]:
    """(config.json, front.json rows, the torch model) of a previous run's output folder."""
    folder = Path(previous)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise EinhlsError(f"--resume {str(folder)!r}: no config.json there (not an `einhls compress` output folder)")
    config = json.loads(config_path.read_text())
    missing = [key for key in NEEDED if config.get(key) is None]
    if missing:
        raise EinhlsError(f"--resume {str(folder)!r}: config.json has no {', '.join(missing)} (a run that reported "
                          f"no distilled or chosen point, or one written before runs could be continued)")
    if not (folder / "model.pt").is_file():
        raise EinhlsError(f"--resume {str(folder)!r}: no model.pt there")
    model = torch.load(folder / "model.pt", weights_only=False)
    rows = json.loads((folder / "front.json").read_text()) if (folder / "front.json").is_file() else []
    return config, rows, model


def _cost(record: dict) -> HwCost:
    return HwCost(**{name: record[name] for name in HwCost.__dataclass_fields__})


def _point(row: dict, config: dict | None = None) -> Point:
    extra = {k: v for k, v in row.items() if k not in HwCost.__dataclass_fields__ and k not in
             ("label", "origin", "accuracy", "sequences_per_s", "front", "chosen", "cycles_x_dsp", "area_time", "edp")}
    return Point(row["label"], config or {}, float(row["accuracy"]), _cost(row), float(row["sequences_per_s"]),
                 row["origin"], extra=extra)


def resume(previous: str | Path, data: object, output: str | Path, budget_s: float, force: bool = False,
           progress: bool = True, command: str = "", max_steps: int = 100000, torch_threads: int = 1,
           model: nn.Module | str | Path | None = None):
    """Carry on distilling the point that the run in ``previous`` reported, for ``budget_s``
    seconds, on ``data`` (the same samples as that run: checked by digest); write ``output``.
    ``model``: the original model, when the run was given a torch module (a file or folder is
    taken from config.json).  Returns a CompressResult (chosen: the continued point when the
    previous run had chosen one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, torch_threads))
    try:
        return _resume(previous, data, output, budget_s, force, progress, command, max_steps, model)
    finally:
        torch.set_num_threads(threads)


def _resume(previous, data, output, budget_s: float, force: bool, progress: bool, command: str, max_steps: int,
            model):
    from . import TEMPLATE_SENTENCES, CompressResult, _write, data_digest, reported_record
    from .encoder import is_encoder, text_hidden_states
    start = time.monotonic()
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise EinhlsError(f"--budget-s {budget_s}: want a positive number of seconds")
    output = Path(output)
    if output.exists() and not force:
        raise EinhlsError(f"output folder {str(output)!r} exists (use --force to replace it)")
    config, rows, student = load_previous(previous)
    if model is None and config["model"].startswith("<"):
        raise EinhlsError(f"--resume {str(previous)!r}: that run was given a torch module; pass the same module "
                          f"(model=...) to continue it")
    target = load_target(config["model"] if model is None else model, data)
    # the layers the run compressed (its --layers filter): an MLP's export records them again below
    target.restrict(config.get("layers_filter"))
    if data_digest(target.samples) != config["data_sha256"]:
        raise EinhlsError(f"--data: not the samples the run in {str(previous)!r} used (their digest differs); a "
                          f"continued run trains and scores on the same data and split")
    board = board_of(config["board"])
    seed = int(config["seed"])
    torch.manual_seed(seed)
    # the split of compress(): the same permutation of the same samples
    order = np.random.default_rng(seed).permutation(target.count())
    held = max(1, target.count() // 5)
    heldout, train = target.subset(np.sort(order[:held])), target.subset(np.sort(order[held:]))
    with torch.no_grad():
        teacher_held = target.run(target.model, heldout)
        teacher_train = target.run(target.model, train)
    reported = config["reported"]
    before = reported["accuracy"]
    bars = Progress(progress)
    steps = end_to_end(target, student, train, teacher_train, seed + 1 + len(rows), start + 0.9 * budget_s,
                       max_steps=max_steps, progress=bars.phase("distill: end to end (continued)", None),
                       **end_to_end_settings(target.kind))
    bars.close()
    with torch.no_grad():
        acc = accuracy(target.run(student, heldout), teacher_held)
    layer_config = {name: Spec.from_json(spec) for name, spec in reported["layers"].items()}
    base_label = reported["label"].split(" + distillation")[0]
    previous_steps = int(reported.get("extra", {}).get("distill_steps_total",
                                                         reported.get("extra", {}).get("distill_steps", 0)))
    continued = Point(f"{base_label} + distillation ({previous_steps + steps} steps)", layer_config, acc,
                      _cost(reported["cost"]), float(reported["sequences_per_s"]), "distilled",
                      extra={"distill_steps": steps, "distill_steps_total": previous_steps + steps,
                             "before_distillation": reported.get("extra", {}).get("before_distillation"),
                             "before_continuing": before})
    points = [_point(row) for row in rows] + [continued]
    for p in pareto(points):
        p.front = True
    was_chosen = config.get("chosen") is not None
    continued.chosen = was_chosen
    elapsed = time.monotonic() - start
    summary = dict(config)
    summary.update({
        "command": command, "budget_s": budget_s, "elapsed_s": round(elapsed, 1),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "budget_s_total": float(config.get("budget_s_total", config["budget_s"])) + budget_s,
        "elapsed_s_total": round(float(config.get("elapsed_s_total", config["elapsed_s"])) + elapsed, 1),
        "continued_from": str(previous), "reported": reported_record(continued, board),
    })
    if was_chosen:
        summary["chosen"] = {**summary["chosen"], "accuracy": acc, "label": continued.label, **continued.extra}
    names = list(layer_config)
    states = None
    if target.kind == "text" and is_encoder(student, names):
        states = text_hidden_states(target, list(train)[:TEMPLATE_SENTENCES], target.tokens)
    layers = None
    if states is None:   # an MLP's export needs its calibrated layers: record them again (same seed)
        from .search import record_layers
        layers = record_layers(target, train, seed)
    _write(output, force, target, board, layers, points, continued, student, summary, states)
    return CompressResult(continued if was_chosen else None, [p for p in points if p.front], points, student,
                          output, summary, layers)
