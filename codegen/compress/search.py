"""The search: per-layer candidates costed by the scheduler and by their error, combined into
whole-model configurations, evaluated end to end, kept on a Pareto front, chosen by objective.

1. Calibration: the original model runs on the calibration samples; every nn.Linear's inputs are
   recorded (a seeded subsample of rows), its input scale is calibrated from their magnitude
   (peak / largest code), and its input width is chosen (``input_bits``): 8 bits, or 16 where
   int8 inputs alone already cost the layer more than ``INT8_INPUT_ERROR_LIMIT`` of its output
   (the layers fed by activation outliers: in a BERT encoder the LayerNorm outputs of the
   residual stream and the GELU output).
2. Candidates (``candidate_specs``): dense, N:M 1:4 / 2:4 / 2:8 / 4:8 by magnitude, low rank
   (truncated SVD), tensor-train (the most balanced tensorization of the in/out sizes into 2..5
   factors, several ranks; TT-SVD), butterfly (square layers; fitted by least squares), each at
   4- and 8-bit weights.  Each candidate gets (through the executor, so in parallel):
   * its error: relative squared error of the layer's output on the recorded inputs;
   * its hardware cost: the scheduler's fold of the exported, lowered layer at the reference
     interval (``costing.reference_interval``), once per (shape, candidate).
3. Combination: for a sweep of trade-off weights lambda, every layer takes the candidate that
   minimises area_time + lambda x error (a Lagrangian relaxation of "least hardware for an error
   budget"); the uniform settings (every layer the same candidate) are added as baselines.
4. Every configuration is evaluated end to end: accuracy (mean output cosine to the original
   model on held-out samples) and the scheduler's fold of the whole chain of units (interval,
   sequences per second, DSP, BRAM, URAM, LUT, weights on chip).  The Pareto front over
   (frame interval, accuracy) is kept; the objective picks the chosen point.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import EinhlsError
from .costing import HwCost, board_of, chain_graph, fold_cost, lower_layer, reference_interval
from .encoder import prepare_costing
from .modules import Spec, act_scale, build, fake_quant
from .targets import Target, accuracy

NM_PATTERNS = ((1, 4), (2, 4), (2, 8), (4, 8))
TT_RANKS = (4, 8, 16)
LOWRANK_FRACTIONS = (16, 8, 4, 2)     # rank = min(in, out) / fraction
CALIB_ROWS = 256
#: relative squared output error that int8 inputs (at the calibrated scale, float weights) may
#: cost a layer before its input is kept at 16 bits
INT8_INPUT_ERROR_LIMIT = 1e-3


def factorizations(n: int, d: int) -> list[tuple[int, ...]]:
    """Every way to write n as an ordered... (sorted, descending) product of d factors >= 2."""
    out = []

    def walk(rest: int, parts: int, most: int, acc: tuple[int, ...]) -> None:
        if parts == 1:
            if 2 <= rest <= most:
                out.append(acc + (rest,))
            return
        for f in range(min(most, rest), 1, -1):
            if rest % f == 0:
                walk(rest // f, parts - 1, f, acc + (f,))

    walk(n, d, n, ())
    return out


def balanced_factors(n: int, d: int) -> tuple[int, ...] | None:
    """The most balanced factorization of n into d factors (smallest largest factor), or None."""
    options = factorizations(n, d)
    return min(options, key=lambda f: (max(f), f)) if options else None


def candidate_specs(in_f: int, out_f: int, level: str = "full", row_pairs: bool = False) -> list[Spec]:
    """The candidate forms of an in_f -> out_f layer, cheapest to evaluate first.  ``row_pairs``
    adds int8 N:M masks shared by row pairs (Spec.pairs): for one vector such a layer takes half
    the DSPs of one with per-row masks (N:M PE pairs); with 4-bit weights the products are LUTs,
    and over an even token count token pairs halve the DSPs already, so only there and only int8."""
    bits_options = (8, 4)
    specs = [Spec("dense", b) for b in bits_options]
    specs += [Spec("nm", b, n=n, m=m) for (n, m) in NM_PATTERNS for b in bits_options if in_f >= m]
    if row_pairs and out_f % 2 == 0:
        specs += [Spec("nm", 8, n=n, m=m, pairs=True) for (n, m) in NM_PATTERNS if in_f >= m]
    low = min(in_f, out_f)
    fractions = LOWRANK_FRACTIONS if level == "full" else (8, 2)
    for fraction in fractions:
        rank = max(1, low // fraction)
        if rank * (in_f + out_f) < in_f * out_f:          # fewer weights than the dense layer
            specs += [Spec("lowrank", b, rank=rank) for b in bits_options]
    dims = range(2, 6) if level == "full" else (2, 3)
    ranks = TT_RANKS if level == "full" else (4, 8)
    for d in dims:
        fin, fout = balanced_factors(in_f, d), balanced_factors(out_f, d)
        if fin is None or fout is None:
            continue
        for rank in ranks:
            specs += [Spec("tt", b, rank=rank, in_factors=fin, out_factors=fout) for b in bits_options]
    if in_f == out_f and level == "full":
        specs += [Spec("butterfly", b) for b in bits_options]
    return specs


def _linear_of(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        if bias is not None:
            linear.bias.copy_(torch.from_numpy(bias))
    return linear


def error_task(weight: np.ndarray, bias: np.ndarray | None, calib: np.ndarray, in_scale: float,
               spec_jsons: list[dict], seed: int, in_bits: int = 8) -> list[float]:
    """Relative squared error of each candidate's output to the layer's on the recorded inputs
    (one task per layer and family of forms: the weights travel to the worker once)."""
    linear = _linear_of(weight, bias)
    x = torch.from_numpy(calib)
    with torch.no_grad():
        ref = linear(x)
    errors = []
    for spec_json in spec_jsons:
        torch.manual_seed(seed)
        try:
            module = build(Spec.from_json(spec_json), linear, in_scale, x, seed=seed, in_bits=in_bits)
        except (ValueError, RuntimeError):
            errors.append(float("inf"))
            continue
        with torch.no_grad():
            got = module(x)
        errors.append(float(((got - ref) ** 2).sum() / (ref ** 2).sum().clamp(min=1e-30)))
    return errors


def cost_task(weight: np.ndarray, bias: np.ndarray | None, calib: np.ndarray, in_scale: float,
              out_scale: float, spec_json: dict, seed: int, board: str, target_ii: int, in_bits: int = 8):
    """(HwCost, lowered graph) of a candidate, or (None, reason) when einhls cannot build it."""
    from ..errors import EinhlsError
    torch.manual_seed(seed)
    linear = _linear_of(weight, bias)
    try:
        module = build(Spec.from_json(spec_json), linear, in_scale, torch.from_numpy(calib), seed=seed,
                       in_bits=in_bits)
        graph = lower_layer(module, out_scale, board, out_bits=in_bits)
        return fold_cost(graph, board_of(board), target_ii), graph
    except (EinhlsError, ValueError, RuntimeError, AssertionError) as exc:
        return None, " ".join(str(exc).split())[:200]


@dataclass
class Layer:
    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    calib: np.ndarray          # recorded inputs [rows, in]
    in_scale: float            # at in_bits
    out_scale: float           # of the exported layer's output quantizer (in_bits wide)
    in_bits: int = 8
    int8_input_error: float = 0.0   # what int8 inputs alone cost the layer (relative squared error)

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape[1], self.weight.shape[0]

    @property
    def kind(self) -> tuple[int, int, int]:
        """What its hardware cost depends on: (in, out, input bits)."""
        return self.weight.shape[1], self.weight.shape[0], self.in_bits


@dataclass
class Candidate:
    spec: Spec
    error: float
    cost: HwCost | None


@dataclass
class Point:
    """One evaluated whole-model configuration."""
    label: str
    config: dict[str, Spec]
    accuracy: float
    cost: HwCost
    fps: float
    origin: str               # "search" | "uniform" | "distilled"
    front: bool = False
    chosen: bool = False
    extra: dict = field(default_factory=dict)

    def row(self, board) -> dict:
        return {"label": self.label, "origin": self.origin, "accuracy": self.accuracy,
                "sequences_per_s": self.fps, **self.cost.to_json(board), "front": self.front,
                "chosen": self.chosen, **self.extra}


def record_layers(target: Target, samples: object, seed: int) -> list[Layer]:
    """Run the original model on the calibration samples and record every linear layer's inputs
    and output magnitude (for the int8 scales)."""
    names = target.linear_names()
    modules = dict(target.model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    peaks: dict[str, list[float]] = {n: [0.0, 0.0] for n in names}
    hooks = []
    for name in names:
        def hook(module, inputs, output, name=name):
            x = inputs[0].detach().reshape(-1, module.in_features)
            if target.kind == "text":
                x = x[x.abs().sum(1) > 0]
            seen[name].append(x)
            peaks[name][0] = max(peaks[name][0], float(x.abs().max()))
            peaks[name][1] = max(peaks[name][1], float(output.detach().abs().max()))
        hooks.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            target.run(target.model, samples)
    finally:
        for h in hooks:
            h.remove()
    rng = np.random.default_rng(seed)
    layers = []
    for name in names:
        x = torch.cat(seen[name]).numpy()
        if len(x) > CALIB_ROWS:
            x = x[np.sort(rng.choice(len(x), CALIB_ROWS, replace=False))]
        m = modules[name]
        error = int8_input_error(m, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                                 act_scale(peaks[name][0], 8))
        bits = input_bits(error)
        layers.append(Layer(name, m.weight.detach().numpy().copy(),
                            m.bias.detach().numpy().copy() if m.bias is not None else None,
                            np.ascontiguousarray(x, dtype=np.float32),
                            act_scale(peaks[name][0], bits), act_scale(peaks[name][1], bits), bits, error))
    return layers


def int8_input_error(linear: nn.Module, x: torch.Tensor, scale: float) -> float:
    """Relative squared error of ``linear``'s output (float weights) when its input ``x`` is
    quantized to int8 at ``scale``."""
    with torch.no_grad():
        ref = nn.functional.linear(x, linear.weight)
        got = nn.functional.linear(fake_quant(x, scale, 8), linear.weight)
    return float(((got - ref) ** 2).sum() / (ref ** 2).sum().clamp(min=1e-30))


def input_bits(int8_error: float) -> int:
    """The input width a layer gets: 16 bits where int8 inputs alone cost too much."""
    return 16 if int8_error > INT8_INPUT_ERROR_LIMIT else 8


def apply_config(model: nn.Module, layers: list[Layer], config: dict[str, Spec], seed: int,
                 cache: dict | None = None) -> nn.Module:
    """A copy of ``model`` with every layer replaced by its configured compressed module (built
    once per (layer, form) when a ``cache`` dict is given; the model gets copies)."""
    student = copy.deepcopy(model)
    modules = dict(student.named_modules())
    for layer in layers:
        spec = config[layer.name]
        key = (layer.name, spec)
        if cache is not None and key in cache:
            module = copy.deepcopy(cache[key])
        else:
            module = build(spec, _linear_of(layer.weight, layer.bias), layer.in_scale,
                           torch.from_numpy(layer.calib), seed=seed, in_bits=layer.in_bits)
            if cache is not None:
                cache[key] = module
                module = copy.deepcopy(module)
        parent_name, _, child = layer.name.rpartition(".")
        setattr(modules[parent_name] if parent_name else student, child, module)
    del modules
    return student


def pareto(points: list[Point]) -> list[Point]:
    """Points no other point beats on both frame interval (lower) and accuracy (higher)."""
    front = []
    for p in points:
        dominated = any((q.cost.cycles <= p.cost.cycles and q.accuracy >= p.accuracy)
                        and (q.cost.cycles < p.cost.cycles or q.accuracy > p.accuracy) for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p.cost.cycles)


def choose(points: list[Point], min_accuracy: float | None, target_fps: float | None) -> Point | None:
    """The objective: the fastest point (fitting the board) that meets the accuracy floor, or, with
    only a throughput asked, the most accurate fitting point that reaches it."""
    fitting = [p for p in points if p.cost.fits]
    if target_fps is not None and min_accuracy is None:
        ok = [p for p in fitting if p.fps >= target_fps]
        return max(ok, key=lambda p: (p.accuracy, -p.cost.cycles_x_dsp)) if ok else None
    floor = 0.99 if min_accuracy is None else min_accuracy
    ok = [p for p in fitting if p.accuracy >= floor and (target_fps is None or p.fps >= target_fps)]
    return min(ok, key=lambda p: (p.cost.cycles, p.cost.cycles_x_dsp, -p.accuracy)) if ok else None


class Progress:
    """One-line progress on stderr (a tqdm bar when tqdm is installed)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def phase(self, text: str, total: int | None = None) -> Callable[[int, int], None]:
        self.close()
        if not self.enabled:
            return lambda done, total: None
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=text, leave=True, dynamic_ncols=True, mininterval=2.0)

            def update(done: int, _total: int) -> None:
                self.bar.update(done - self.bar.n)
            return update
        except ImportError:
            import sys
            print(text, file=sys.stderr)
            return lambda done, total: None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class SearchResult:
    layers: list[Layer]
    candidates: dict[str, list[Candidate]]
    points: list[Point]
    graphs: dict
    reference_ii: int
    skipped: list[str]
    modules: dict = field(default_factory=dict)   # built compressed modules, per (layer, form)
    whole: object = None                          # the encoder.EncoderCosting configurations were costed with


def layer_candidates(layers: list[Layer], level: str, row_pairs: bool = False) -> dict[str, list[Spec]]:
    return {layer.name: candidate_specs(*layer.shape, level, row_pairs) for layer in layers}


def search(target: Target, layers: list[Layer], eval_samples: object, teacher_out: torch.Tensor,
           board_name: str, executor, seed: int, deadline: float, target_fps: float | None,
           level: str, progress: Progress, eval_deadline: float, whole=None) -> SearchResult:
    """``whole``: an encoder.EncoderTemplate to cost every configuration as the whole encoder
    (through the table of encoder.EncoderCosting, measured here once the dense candidates are
    costed); None: as the chain of its linear layers."""
    board = board_of(board_name)
    # row-pair N:M masks save DSPs only where tokens are not paired (an odd count: one vector)
    specs = layer_candidates(layers, level, row_pairs=target.tokens % 2 == 1)
    total_macs = sum(w * h for layer in layers for w, h in [layer.shape])
    ref_ii = reference_interval(total_macs, board, target.tokens, target_fps)
    # error tasks: every (layer, spec), spec-major so a budget cut leaves every layer the same set
    # error tasks: one per (layer, family of forms), family-major so that a budget cut leaves
    # every layer with the same families
    error_tasks, error_keys = [], []
    for family in ("dense", "nm", "lowrank", "tt", "butterfly"):
        for layer in layers:
            group = [s for s in specs[layer.name] if s.kind == family]
            if group:
                error_tasks.append((layer.weight, layer.bias, layer.calib, layer.in_scale,
                                    [s.to_json() for s in group], seed, layer.in_bits))
                error_keys.append((layer.name, group))
    # cost tasks: once per (in, out, input bits; spec), on the first layer of that kind; spec-major
    first_of_shape: dict[tuple[int, int, int], Layer] = {}
    for layer in layers:
        first_of_shape.setdefault(layer.kind, layer)
    cost_keys, cost_tasks = [], []
    for index in range(max(len(v) for v in specs.values())):
        for shape, layer in first_of_shape.items():
            if index < len(specs[layer.name]):
                spec = specs[layer.name][index]
                cost_keys.append((shape, spec))
                cost_tasks.append((layer.weight, layer.bias, layer.calib, layer.in_scale, layer.out_scale,
                                   spec.to_json(), seed, board_name, ref_ii, layer.in_bits))
    # interleave so that both halves progress together under a budget
    merged = []
    ratio = max(1, len(error_tasks) // max(1, len(cost_tasks)))
    e, c = 0, 0
    while e < len(error_tasks) or c < len(cost_tasks):
        for _ in range(ratio):
            if e < len(error_tasks):
                merged.append(("error", e))
                e += 1
        if c < len(cost_tasks):
            merged.append(("cost", c))
            c += 1
    bar = progress.phase(f"candidates ({len(layers)} layers, {len(cost_keys)} shapes x forms)", len(merged))
    results = executor.map(_dispatch, [(kind, error_tasks[i] if kind == "error" else cost_tasks[i])
                                       for kind, i in merged], deadline=deadline, progress=bar)
    errors, costs, graphs, skipped = {}, {}, {}, []
    for (kind, i), result in zip(merged, results):
        if result is None:
            continue
        if kind == "error":
            name, group = error_keys[i]
            errors.update({(name, spec): err for spec, err in zip(group, result)})
        else:
            cost, graph = result
            if cost is None:
                skipped.append(f"{cost_keys[i][1].label} {cost_keys[i][0][0]}->{cost_keys[i][0][1]}: {graph}")
            else:
                costs[cost_keys[i]] = cost
                graphs[cost_keys[i]] = graph
    candidates = {layer.name: [Candidate(s, errors[(layer.name, s)], costs.get((layer.kind, s)))
                               for s in specs[layer.name]
                               if (layer.name, s) in errors and (layer.kind, s) in costs
                               and math.isfinite(errors[(layer.name, s)])]
                  for layer in layers}
    # every layer needs at least its dense int8 form to be combinable
    usable = all(candidates[layer.name] for layer in layers)
    if whole is not None:
        dense = {layer.name: graphs.get((layer.kind, Spec("dense", 8))) for layer in layers}
        if any(g is None for g in dense.values()):
            raise EinhlsError("whole-encoder costing needs every layer's dense int8 candidate costed; "
                              "give more --budget-s")
        progress.phase("whole-encoder cost table (one fold of the dense encoder)", None)
        whole = prepare_costing(whole, dense, board)
    points: list[Point] = []
    modules: dict = {}
    if usable:
        configs = combine(layers, candidates, board)
        bar = progress.phase("configurations (end to end)", len(configs))
        for n, (label, origin, config) in enumerate(configs):
            if time.monotonic() > eval_deadline and len(points) >= 2:
                break
            points.append(evaluate(target, layers, config, graphs, eval_samples, teacher_out, board, seed,
                                   label, origin, cache=modules, unfit_ii=ref_ii if target_fps else None,
                                   whole=whole))
            bar(n + 1, len(configs))
    progress.close()
    return SearchResult(layers, candidates, points, graphs, ref_ii, skipped, modules, whole)


def _dispatch(kind: str, args: tuple):
    return error_task(*args) if kind == "error" else cost_task(*args)


def combine(layers: list[Layer], candidates: dict[str, list[Candidate]], board) -> list[tuple[str, str, dict]]:
    """Searched configurations (a lambda sweep) and the uniform baselines, deduplicated; the dense
    int8 model first."""
    configs: list[tuple[str, str, dict]] = []
    seen = set()

    def add(label: str, origin: str, config: dict) -> None:
        key = tuple(sorted((k, v) for k, v in config.items()))
        if key not in seen:
            seen.add(key)
            configs.append((label, origin, config))

    uniform_specs = []
    for cand in candidates[layers[0].name]:
        if all(any(c.spec.kind == cand.spec.kind and c.spec.bits == cand.spec.bits and c.spec.n == cand.spec.n
                   and c.spec.m == cand.spec.m and c.spec.pairs == cand.spec.pairs
                   and (c.spec.rank == cand.spec.rank or cand.spec.kind == "lowrank")
                   and len(c.spec.in_factors) == len(cand.spec.in_factors) for c in candidates[l.name])
               for l in layers):
            uniform_specs.append(cand.spec)
    for spec in uniform_specs:
        config = {}
        for layer in layers:
            same = [c.spec for c in candidates[layer.name]
                    if c.spec.kind == spec.kind and c.spec.bits == spec.bits and c.spec.n == spec.n
                    and c.spec.m == spec.m and c.spec.pairs == spec.pairs
                    and len(c.spec.in_factors) == len(spec.in_factors)]
            if spec.kind == "lowrank":   # uniform: the same fraction of each layer's full rank
                first_rank_fraction = spec.rank / min(layers[0].shape)
                same.sort(key=lambda s: abs(s.rank / min(layer.shape) - first_rank_fraction))
            else:
                same = [s for s in same if s.rank == spec.rank] or same
            config[layer.name] = same[0]
        add(f"uniform {spec.label}", "uniform", config)
    scale = {layer.name: max(c.cost.area_time(board) for c in candidates[layer.name]) or 1.0 for layer in layers}
    for lam in np.logspace(-3, 4, 36):
        config = {}
        for layer in layers:
            best = min(candidates[layer.name],
                       key=lambda c: (c.cost.area_time(board) / scale[layer.name] + lam * c.error,
                                      c.error, c.spec.label))
            config[layer.name] = best.spec
        add(f"search lambda={lam:.3g}", "search", config)
    return configs


def evaluate(target: Target, layers: list[Layer], config: dict[str, Spec], graphs: dict, samples: object,
             teacher_out: torch.Tensor, board, seed: int, label: str, origin: str,
             model: nn.Module | None = None, cache: dict | None = None, unfit_ii: int | None = None,
             whole=None) -> Point:
    """Accuracy end to end and the scheduler's cost of the configuration (the fastest fold that
    fits; one that fits nowhere is costed at ``unfit_ii``, the interval asked for): the whole
    encoder when ``whole`` (an encoder.EncoderTemplate) is given, else the chain of its units."""
    student = model if model is not None else apply_config(target.model, layers, config, seed, cache)
    with torch.no_grad():
        acc = accuracy(target.run(student, samples), teacher_out)
    chain = chain_graph([graphs[(layer.kind, config[layer.name])] for layer in layers], target.tokens)
    layer_graph = {layer.name: graphs[(layer.kind, config[layer.name])] for layer in layers}
    cost = whole.cost(chain, board, unfit_ii, layer_graph) if whole is not None \
        else fold_cost(chain, board, None, unfit_ii)
    fps = board.clock_mhz * 1e6 / (cost.cycles * target.tokens)
    return Point(label, dict(config), acc, cost, fps, origin)


def versus_uniform(points: list[Point], board=None) -> list[dict]:
    """For every uniform setting, the searched configuration of lowest cycles x DSP that is at least
    as accurate (None when no searched point reaches its accuracy); with a board, the area-time
    (cycles x board share, LUT multipliers included) of both as well."""
    searched = [p for p in points if p.origin == "search"]
    rows = []
    for u in (p for p in points if p.origin == "uniform"):
        ok = [s for s in searched if s.accuracy >= u.accuracy]
        best = min(ok, key=lambda s: (s.cost.cycles_x_dsp, s.cost.cycles), default=None)
        rows.append({"uniform": u.label, "uniform_accuracy": u.accuracy, "uniform_cycles": u.cost.cycles,
                     "uniform_cycles_x_dsp": u.cost.cycles_x_dsp,
                     "search": best.label if best else None, "search_accuracy": best.accuracy if best else None,
                     "search_cycles": best.cost.cycles if best else None,
                     "search_cycles_x_dsp": best.cost.cycles_x_dsp if best else None})
        if board is not None:
            rows[-1]["uniform_area_time"] = u.cost.area_time(board)
            rows[-1]["search_area_time"] = best.cost.area_time(board) if best else None
            at_best = min(ok, key=lambda s: s.cost.area_time(board), default=None)
            rows[-1]["search_least_area_time"] = at_best.label if at_best else None
            rows[-1]["search_least_area_time_value"] = at_best.cost.area_time(board) if at_best else None
    return rows
