"""`einhls compress`: hardware-aware choice of factorization, sparsity and precision per linear
layer, with distillation (see docs/compress.md and codegen/compress/search.py)."""
from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import EinhlsError
from .costing import board_of, capacity_bits, export_onnx
from .distill import end_to_end, end_to_end_settings, layerwise
from .encoder import build_template, is_encoder, text_hidden_states
from .executor import make_executor
from .modules import fake_quant
from .search import Point, Progress, apply_config, choose, evaluate, pareto, record_layers, search
from .targets import Target, load_target


#: calibration sentences of the whole-encoder costing's template layer
TEMPLATE_SENTENCES = 32


@dataclass
class CompressResult:
    chosen: Point | None
    front: list[Point]
    points: list[Point]
    model: nn.Module | None
    output: Path
    summary: dict
    layers: list | None = None      # the calibrated layers (search.Layer: weights, scales, input bits)


class _ChainExport(nn.Module):
    """The compressed model's linear layers as one chain with an output quantizer (``out_bits``
    wide): what `einhls compile` builds.  For an nn.Sequential MLP it is the model itself."""

    def __init__(self, parts: list[nn.Module], out_scale: float, out_bits: int = 8) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.out_scale, self.out_bits = out_scale, out_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in self.parts:
            x = part(x)
        return fake_quant(x, self.out_scale, self.out_bits)


def _check_options(board: str, target_fps: float | None, min_accuracy: float | None, budget_s: float,
                   seed: int) -> None:
    board_of(board)   # an unknown board is refused here, naming the known ones
    if target_fps is not None and not (target_fps > 0 and math.isfinite(target_fps)):
        raise EinhlsError(f"--target-fps {target_fps}: want a positive number of frames per second")
    if min_accuracy is not None and not (0 < min_accuracy <= 1):
        raise EinhlsError(f"--min-accuracy {min_accuracy}: want a cosine in (0, 1]")
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise EinhlsError(f"--budget-s {budget_s}: want a positive number of seconds")
    if seed < 0:
        raise EinhlsError(f"--seed {seed}: want an integer >= 0")


def compress(model: nn.Module | str | Path, data: object, board: str, output: str | Path,
             target_fps: float | None = None, min_accuracy: float | None = None, budget_s: float = 300.0,
             seed: int = 0, ray_address: str | None = None, workers: int | None = None,
             level: str = "full", distill: bool = True, force: bool = False, progress: bool = True,
             command: str = "", distill_steps: tuple[int, int] = (300, 100000),
             torch_threads: int = 1, whole_encoder: bool = True,
             layers: Sequence[str] | None = None) -> CompressResult:
    """Search per-layer compression for ``board``, distill the chosen configuration, write ``output``.

    ``model``: a torch module, an ONNX file with float weights, or a Hugging Face model folder;
    ``data``: an array / tensor of samples, a .npy file, or (text models) a text file or list of
    sentences.  ``level``: "full" candidate set or "small" (fewer ranks and shapes, for tests).
    ``distill_steps``: most (layer-wise, end-to-end) steps; each stage also stops at its share of
    the budget.  ``torch_threads``: torch's intra-op threads in this process while compressing
    (the executor's processes are the parallelism; more threads than free cores slow small
    matrix products down by an order of magnitude on a shared machine).  ``whole_encoder``: for a
    BERT-like text encoder, cost every configuration as the whole encoder (attention products,
    softmax, LayerNorm, GELU, FIFOs, key / value buffers; see encoder.py), not only its linear
    layers.  ``layers``: names (as in ``model.named_modules()``) or regular expressions (matching
    a whole name) of the nn.Linear layers to compress; the others stay as they are (float,
    original), and the cost is that of the chain of the compressed ones (a whole encoder is costed
    only when every linear layer of it is compressed).  None: every linear layer.
    Returns the chosen point, the front, all evaluated points and the compressed model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, torch_threads))
    try:
        return _compress(model, data, board, output, target_fps, min_accuracy, budget_s, seed, ray_address,
                         workers, level, distill, force, progress, command, distill_steps, whole_encoder, layers)
    finally:
        torch.set_num_threads(threads)


def _compress(model, data, board: str, output, target_fps, min_accuracy, budget_s: float, seed: int,
              ray_address, workers, level: str, distill: bool, force: bool, progress: bool, command: str,
              distill_steps: tuple[int, int], whole_encoder: bool = True,
              only: Sequence[str] | None = None) -> CompressResult:
    start = time.monotonic()
    _check_options(board, target_fps, min_accuracy, budget_s, seed)
    if level not in ("full", "small"):
        raise EinhlsError(f"level {level!r}: want full or small")
    output = Path(output)
    if output.exists() and not force:
        raise EinhlsError(f"output folder {str(output)!r} exists (use --force to replace it)")
    if isinstance(data, list) and not isinstance(model, (str, Path)):
        raise EinhlsError("text data needs a model with a tokenizer (a Hugging Face model folder)")
    target = load_target(model, data)
    target.restrict(only)
    board_obj = board_of(board)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(target.count())
    held = max(1, target.count() // 5)
    heldout, train = target.subset(np.sort(order[:held])), target.subset(np.sort(order[held:]))
    with torch.no_grad():
        teacher_held = target.run(target.model, heldout)
        teacher_train = target.run(target.model, train)
    bars = Progress(progress)
    layers = record_layers(target, train, seed)
    whole = None
    # the whole-encoder template splices a candidate into every linear unit of every layer: with a
    # --layers filter the others would be float units it cannot cost, so only their chain is costed
    if whole_encoder and target.only is None and target.kind == "text" \
            and is_encoder(target.model, [layer.name for layer in layers]):
        whole = build_template(target.model, [layer.name for layer in layers],
                               text_hidden_states(target, list(train)[:TEMPLATE_SENTENCES]), board, target.tokens)
    executor = make_executor(ray_address, workers)
    deadline = start + 0.5 * budget_s
    result = search(target, layers, heldout, teacher_held, board, executor, seed, deadline, target_fps, level,
                    bars, eval_deadline=start + 0.7 * budget_s, whole=whole)
    if not result.points:
        raise EinhlsError(f"--budget-s {budget_s:g}: no configuration was evaluated in time "
                          f"(every layer needs at least one costed candidate); give more time")
    points = result.points
    chosen = choose(points, min_accuracy, target_fps)
    student = None
    if chosen is not None and distill and any(s.kind != "dense" for s in chosen.config.values()) \
            or (chosen is None and distill):
        # nothing met the objective before recovery: distill the most accurate point among the
        # fastest half that fits (the one recovery is most likely to lift over the floor)
        base = chosen or _recovery_candidate(points, target_fps, board_obj)
        if base is not None:
            student = apply_config(target.model, layers, base.config, seed, result.modules)
            remaining = start + budget_s - time.monotonic()
            stage1_end = time.monotonic() + 0.4 * max(remaining, 0)
            layerwise(student, layers, executor, steps=distill_steps[0], seed=seed, deadline=stage1_end,
                      progress=bars.phase("distill: layer-wise", len(layers)))
            stage2_end = start + budget_s - 0.05 * budget_s
            steps = end_to_end(target, student, train, teacher_train, seed, stage2_end, max_steps=distill_steps[1],
                               progress=bars.phase("distill: end to end", None), **end_to_end_settings(target.kind))
            bars.close()
            distilled = evaluate(target, layers, base.config, result.graphs, heldout, teacher_held, board_obj,
                                 seed, f"{base.label} + distillation", "distilled", model=student,
                                 unfit_ii=result.reference_ii if target_fps else None, whole=result.whole)
            distilled.extra = {"distill_steps": steps, "before_distillation": base.accuracy}
            points.append(distilled)
            chosen = choose(points, min_accuracy, target_fps) or chosen
    front = pareto(points)
    for p in front:
        p.front = True
    if chosen is not None:
        chosen.chosen = True
        if chosen.origin != "distilled":
            student = apply_config(target.model, layers, chosen.config, seed, result.modules)
    if hasattr(executor, "shutdown") and ray_address:
        executor.shutdown()
    summary = _summary(target, board_obj, layers, result, chosen, budget_s, time.monotonic() - start, seed,
                       target_fps, min_accuracy, command)
    reported = chosen or next((p for p in points if p.origin == "distilled"), None)
    if reported is not None:
        # what a continued run (resume.py) starts from, whether or not it met the objective
        summary["reported"] = reported_record(reported, board_obj)
    if result.whole is not None and reported is not None:
        # the table's estimate against the scheduler's fold of the real whole-encoder graph
        full = result.whole.full({layer.name: result.graphs[(layer.kind, reported.config[layer.name])]
                                  for layer in layers}, board_obj)
        summary["whole_encoder_fold"] = {"label": reported.label, "table": reported.cost.to_json(board_obj),
                                         "full_fold": full.to_json(board_obj),
                                         "full_fold_sequences_per_s": board_obj.clock_mhz * 1e6 / (full.cycles * target.tokens)}
    encoder_states = None
    if student is not None and target.kind == "text" and is_encoder(student, [layer.name for layer in layers]):
        encoder_states = text_hidden_states(target, list(train)[:TEMPLATE_SENTENCES], target.tokens)
    _write(output, force, target, board_obj, layers, points, reported, student, summary, encoder_states)
    return CompressResult(chosen, front, points, student, output, summary, layers)


def reported_record(point: Point, board) -> dict:
    """The reported point (the chosen one, else the distilled one) as config.json keeps it: enough
    for a continued run to carry on from its model.pt without searching again."""
    return {"label": point.label, "origin": point.origin, "accuracy": point.accuracy, "sequences_per_s": point.fps,
            "cost": point.cost.to_json(board), "extra": point.extra,
            "layers": {name: spec.to_json() for name, spec in point.config.items()}}


def data_digest(samples: object) -> str:
    """A digest of the samples (a continued run must train and score on the same data)."""
    import hashlib
    if isinstance(samples, list):
        return hashlib.sha256("\n".join(samples).encode()).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(torch.as_tensor(samples).numpy()).tobytes()).hexdigest()


def _recovery_candidate(points: list[Point], target_fps: float | None, board) -> Point | None:
    """What to distill when nothing meets the objective yet: among the points that fit and reach
    the throughput (else those that fit, else all), the most accurate of the fastest half (at
    equal intervals, of the smaller half by area-time: when every configuration is held to the
    same interval, by the softmax of a whole encoder, the hardware still differs)."""
    pool = [p for p in points if p.cost.fits and (target_fps is None or p.fps >= target_fps)] \
        or [p for p in points if p.cost.fits] or list(points)
    if not pool:
        return None
    pool.sort(key=lambda p: (p.cost.cycles, p.cost.area_time(board)))
    fast = pool[:max(1, math.ceil(len(pool) / 2))]
    return max(fast, key=lambda p: p.accuracy)


def _summary(target: Target, board, layers, result, chosen: Point | None, budget_s: float, elapsed: float,
             seed: int, target_fps, min_accuracy, command: str) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "board": board.name, "tokens_per_frame": target.tokens, "reference_interval_cycles": result.reference_ii,
        "layers": len(layers), "budget_s": budget_s, "elapsed_s": round(elapsed, 1), "device": device,
        "seed": seed, "target_fps": target_fps, "min_accuracy": min_accuracy, "command": command,
        # a continued run (resume.py) rebuilds the same target from it: the same layers compressed
        "layers_filter": None if target.only is None else list(target.only),
        "linear_layers_total": len(target.all_linear_names()),
        "model": target.source, "data_sha256": data_digest(target.samples), "samples": target.count(),
        "onchip_capacity_bits": capacity_bits(board),
        "costing": ("the whole encoder (every layer's attention products, softmax, LayerNorm, GELU, FIFOs and "
                    "key / value buffers, its linear units the chosen candidates): where the units besides the "
                    "linear ones alone overflow the board, each configuration's real whole-encoder graph folded by "
                    "the scheduler at their fastest interval on an unbounded board; else its linear chain folded "
                    "on what the board leaves plus those units' cost measured once on the dense encoder "
                    "(encoder.py)"
                    if result.whole is not None else "the chain of the compressed linear layers, folded by the scheduler"
                    + ("" if target.only is None else
                       f" ({len(layers)} of the model's {len(target.all_linear_names())} linear layers, selected by "
                       f"--layers; the others stay float and are not costed)")),
        "input_bits": {layer.name: layer.in_bits for layer in layers},
        "whole_encoder_table": None if result.whole is None else {"floor_ii": result.whole.floor_ii,
                                                                  **result.whole.other},
        "candidates_evaluated": sum(len(v) for v in result.candidates.values()),
        "candidates_not_buildable": result.skipped,
        "chosen": None if chosen is None else {
            "label": chosen.label, "origin": chosen.origin, "accuracy": chosen.accuracy,
            "sequences_per_s": chosen.fps, "weights_on_chip_bits": chosen.cost.weight_bits,
            **chosen.cost.to_json(board), **chosen.extra,
            "layers": {name: spec.to_json() for name, spec in chosen.config.items()}},
        "objective": "fastest meeting the accuracy floor" if target_fps is None or min_accuracy is not None
        else "most accurate reaching the throughput",
    }


def front_table(points: list[Point], board) -> str:
    """Every evaluated point; for a design that does not fit the board even at its slowest, the
    scheduler's numbers are those of the same design on an unbounded board (fits: no)."""
    head = ("| | configuration | origin | accuracy (cosine) | interval (cycles/token) | sequences/s | DSP | "
            "BRAM36 | URAM | LUT | weight bits | fits | cycles x DSP |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
    rows = []
    for p in sorted(points, key=lambda p: (p.cost.cycles, -p.accuracy)):
        mark = "**chosen**" if p.chosen else ("front" if p.front else "")
        c = p.cost
        rows.append(f"| {mark} | {p.label} | {p.origin} | {p.accuracy:.4f} | {c.cycles} | {p.fps:.1f} | {c.dsp} | "
                    f"{c.bram36:g} | {c.uram} | {c.lut} | {c.weight_bits} | {'yes' if c.fits else 'no'} | "
                    f"{c.cycles_x_dsp} |")
    return head + "\n".join(rows) + "\n"


def uniform_table(rows: list[dict], metric: str = "accuracy") -> str:
    """`search.versus_uniform` rows (with a board) as a markdown table: every uniform setting
    against the searched configuration of least cycles x DSP at least as accurate, and the least
    area-time searched at that accuracy (4-bit products are LUTs, which cycles x DSP does not
    count).  ``metric``: the accuracy's name in the header ("accuracy", "cosine")."""
    head = (f"| uniform setting | {metric} | cycles/token | cycles x DSP | area-time | searched, least cycles x DSP at "
            f">= {metric} | {metric} | cycles/token | cycles x DSP | least area-time searched at >= {metric} |\n"
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        s = r["search"]
        lines.append(f"| {r['uniform']} | {r['uniform_accuracy']:.4f} | {r['uniform_cycles']} | "
                     f"{r['uniform_cycles_x_dsp']} | {r['uniform_area_time']:.2f} | {s or 'none reaches it'} | "
                     + (f"{r['search_accuracy']:.4f} | {r['search_cycles']} | {r['search_cycles_x_dsp']} | "
                        f"{r['search_least_area_time_value']:.2f} |" if s else "- | - | - | - |"))
    return head + "\n".join(lines) + "\n"


def _plot(points: list[Point], path: Path, board) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for origin, marker in (("uniform", "s"), ("search", "o"), ("distilled", "^")):
        ps = [p for p in points if p.origin == origin]
        if ps:
            ax.scatter([p.cost.cycles for p in ps], [p.accuracy for p in ps], marker=marker, label=origin, alpha=0.7)
    front = sorted([p for p in points if p.front], key=lambda p: p.cost.cycles)
    ax.plot([p.cost.cycles for p in front], [p.accuracy for p in front], "k--", lw=1, label="Pareto front")
    for p in points:
        if p.chosen:
            ax.scatter([p.cost.cycles], [p.accuracy], s=220, facecolors="none", edgecolors="red", lw=2,
                       label="chosen")
    ax.set_xscale("log")
    ax.set_xlabel(f"interval, cycles per token (scheduler, {board.name})")
    ax.set_ylabel("accuracy (output cosine to the original)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _export_parts(target: Target, student: nn.Module, layers) -> tuple[list[nn.Module], bool]:
    """The modules to export in order, and whether that is the whole model (an MLP) or only its
    chain of linear layers."""
    if isinstance(student, nn.Sequential) and all(isinstance(m, nn.ReLU) or not isinstance(m, (nn.Sequential,))
                                                  for m in student):
        return list(student), True
    modules = dict(student.named_modules())
    return [modules[layer.name] for layer in layers], False


def _write(output: Path, force: bool, target: Target, board, layers, points, reported: Point | None,
           student: nn.Module | None, summary: dict, encoder_states: list[np.ndarray] | None = None) -> None:
    """OUT: the front, config.json, and for the reported point (the chosen one, else the distilled
    one) its torch model and ONNX export: the whole compressed encoder of a BERT-like model
    (``encoder_states``: its calibration inputs), else the whole MLP or its chain of linear layers."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        (staging / "front.md").write_text(front_table(points, board))
        (staging / "front.json").write_text(json.dumps([p.row(board) for p in points], indent=1, sort_keys=True))
        _plot(points, staging / "front.png", board)
        if reported is not None and student is not None:
            torch.save(student, staging / "model.pt")
            if encoder_states is not None:
                from .encoder_export import export_encoder
                export_encoder(student, encoder_states, staging / "model.onnx")
                count = len(student.encoder.layer)
                summary["onnx"] = (f"model.onnx: the whole compressed encoder ({count} layers, {reported.label}) at "
                                   f"{target.tokens} tokens: hidden states [1, {target.tokens}, H] in and out (token "
                                   "embeddings and pooling on the host); the linear layers carry the search's "
                                   "quantizers, the other units 16-bit activations calibrated on the training text")
            else:
                parts, whole = _export_parts(target, student, layers)
                summary["onnx"] = "model.onnx: the whole compressed model" if whole else \
                    "linear_chain.onnx: the compressed linear layers as one chain (the units costed); the " \
                    "model's other operators are not exported"
                if whole and target.only is not None:
                    # the layers --layers left out are exported float: einhls compile refuses a model
                    # whose input reaches a float layer before any quantizer
                    summary["onnx"] += (" (the layers not selected by --layers are float in it: quantize them "
                                        "before `einhls compile`)")
                export_onnx(_ChainExport(parts, layers[-1].out_scale, layers[-1].in_bits), layers[0].shape[0],
                            staging / ("model.onnx" if whole else "linear_chain.onnx"))
        (staging / "config.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {output}", file=sys.stderr)


__all__ = ["compress", "CompressResult", "front_table", "uniform_table"]
