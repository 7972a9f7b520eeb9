"""Calibration of the scheduler's cost model against Yosys and RTL simulation.

    python -m bench.calibrate --cycles         # sweep (Yosys xc7 + xcup, Verilator cycles), then fit
    python -m bench.calibrate --fit            # refit and rewrite the table from the stored sweep only (seconds)
    python -m bench.calibrate --only actmatmul # sweep the missing points of one sweep kind only

Every point of the sweep is a one-unit design built by the same code the compiler uses: dense and
N:M Linear (single tokens and token pairs), requant, Add, butterfly, a tensor-train contraction
pipeline (contraction stages, a requant and a permute), and the graph and Transformer units of
bench/calibrate_units.py (ReLU, Mul, Concat, Slice, sliding window, regroup, tap maximum, attention
product, score mask, token mean, masked token mean, with the forks and slices that feed them) folded
by the compiler at several intervals; the IR op, a schedule, ``emit_rtl`` and Yosys
``synth_xilinx -family xc7`` and ``-family xcup`` on the whole generated top, as ``einhls report
--synth`` does.  The nonlinear units (softmax, layernorm, gelu) go under the AXI4-Stream top of
their unit tests.  Measured: LUT (logic), LUT_MEM (LUTs used as memory), FF, DSP, BRAM (36 Kb
equivalents), URAM; with ``--cycles``, the interval and latency in Verilator (the unit-test harness,
bit-exact against the reference) of the Linear points of CYCLE_POINTS and one point of every other
kind built as a design (CYCLE_KEYS).  Yosys counts and cycles are stored per point as they are
measured (an interrupted sweep keeps them; a rerun measures only what is missing).

The fit (codegen/schedule/calibration.py) writes codegen/schedule/calibrated.json: per unit kind and
family, non-negative least-squares coefficients on the features of that unit (the terms of the
first-order model in codegen/schedule/cost.py, or an offset and a scale of it; the lane converters
between units, codegen/schedule/lane_cost.py, a group of their own), fitted on the points not held
back; then, on the token-pair points alone, a correction over that estimate (calibration.pair_features).  Every
third point of each sweep kind (``held_back``, by position in GRID) is kept out of the fit and
checked by tests/test_calibration.py.  Data: bench/results/calibration.json, table: calibration.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from bench.calibrate_units import (GRAPH_UNIT_TARGETS, TOKEN_PAIR_SHAPES, design_extras,  # noqa: E402
                                   graph_unit_design, token_pair_design)

COMMAND = "python -m bench.calibrate"
FAMILIES = ("xc7", "xcup")
MEASURES = ("LUT", "LUT_MEM", "FF", "DSP", "BRAM", "CARRY", "URAM")

# --- the grid -----------------------------------------------------------------------------------
# (kind, params); params rebuild the point with calibration.build_point (cheap, no tools)
GRID: list[tuple[str, dict]] = [
    # dense int8 64x64 (power-of-two scales: requant by shifting) at every SIMD x PE of 64 and 16 products
    *[("linear", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe})
      for si, pe in ((1, 64), (2, 32), (4, 16), (8, 8), (16, 4), (32, 2), (64, 1), (4, 4), (8, 2), (2, 8),
                     (16, 16), (8, 16))],
    ("linear", {"k": 128, "n": 32, "a": 8, "w": 8, "simd": 16, "pe": 4}),
    ("linear", {"k": 32, "n": 128, "a": 8, "w": 8, "simd": 4, "pe": 16}),
    # 4-bit: LUT multipliers
    *[("linear", {"k": 64, "n": 64, "a": 4, "w": 4, "simd": si, "pe": pe})
      for si, pe in ((8, 8), (4, 4), (16, 8))],
    # 2:4 sparse int8
    *[("linear_nm", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe, "nm": [2, 4]})
      for si, pe in ((8, 8), (4, 16), (16, 4), (8, 4))],
    # the same layers with the weight ROM forced into block RAM (the scheduler chooses between the two)
    *[("linear", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe, "rom": "bram"})
      for si, pe in ((1, 64), (4, 16), (8, 8), (16, 4))],
    ("linear", {"k": 64, "n": 64, "a": 4, "w": 4, "simd": 8, "pe": 8, "rom": "bram"}),
    # more block-RAM ROM shapes (the first is held back: the 23rd Linear point)
    *[("linear", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe, "rom": "bram"})
      for si, pe in ((2, 32), (8, 16))],
    *[("linear_nm", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe, "nm": [2, 4], "rom": "bram"})
      for si, pe in ((8, 8), (4, 16))],
    *[("requant", {"size": 64, "lanes": lanes}) for lanes in (1, 4, 16)],
    *[("add", {"size": 64, "lanes": lanes}) for lanes in (1, 4, 16)],
    *[("butterfly", {"n": 64, "units": p}) for p in (1, 4, 16, 2, 8)],
    # block RAM and LUT ROM regimes of the twiddle ROM at other sizes (the ROM leaves block RAM
    # where it is at most 64 words deep: P >= 4 at n = 64; see calibration.butterfly_features)
    *[("butterfly", {"n": n, "units": p}) for n, p in ((32, 2), (32, 4), (32, 8), (128, 4), (128, 8), (128, 16),
                                                      (32, 1), (128, 32))],
    *[("contract", {"target": t}) for t in (64, 128, 256)],
    *[(kind, {"lanes": lanes}) for kind in ("softmax", "layernorm", "gelu") for lanes in (1, 2, 4)],
    # the graph and Transformer units, each in a one-unit graph folded at several intervals
    # (bench/calibrate_units.py)
    *[(kind, {"target": t}) for kind, targets in GRAPH_UNIT_TARGETS.items() for t in targets],
    # token-pair Linear (TOKEN_PACK = 2), dense and 2:4
    *[("linear_tp", {"simd": simd, "pe": pe, **({"nm": list(nm)} if nm else {})})
      for nm, simd, pe in TOKEN_PAIR_SHAPES],
    # N:M int8 whose row pairs share their index pattern: PE pairs share a DSP and its input
    # multiplexer (einhls_linear PACK = 2 on an N:M layer, packing.py pack_config)
    *[("linear_nm", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe, "nm": list(nm), "pairs": True})
      for nm, si, pe in (((2, 4), 16, 4), ((2, 4), 8, 4), ((2, 4), 4, 16), ((2, 8), 16, 4), ((2, 4), 32, 2),
                         ((2, 8), 8, 2), ((2, 4), 16, 8), ((2, 4), 4, 8), ((2, 8), 8, 4), ((2, 8), 32, 2),
                         ((2, 4), 32, 4))],
    *[("linear_nm", {"k": 64, "n": 64, "a": 8, "w": 8, "simd": si, "pe": pe, "nm": [2, 4], "pairs": True,
                     "rom": "bram"}) for si, pe in ((16, 2), (8, 4), (8, 8))],
]

DSP_KIND = {"xc7": "DSP48E1", "xcup": "DSP48E2"}


def point_key(kind: str, params: dict) -> str:
    return kind + ":" + ",".join(f"{k}={params[k]}" for k in sorted(params))


NONLINEAR_KINDS = ("softmax", "layernorm", "gelu")
NONLINEAR_SIZE = 64


def _lanes(size: int, cycles: int) -> int:
    return max(1, min(size, math.ceil(size / cycles)))


def nonlinear_unit(kind: str):
    """The softmax / layernorm / gelu unit of a point (int8, 64 features, seeded parameters)."""
    import numpy as np

    from codegen.ir.nonlinear import make_gelu, make_layernorm, make_softmax
    from codegen.ir.types import QType

    rng = np.random.default_rng(0)
    int8 = QType(True, 8, 0.05)
    if kind == "softmax":
        return make_softmax(NONLINEAR_SIZE, QType(True, 8, 1 / 16), QType(False, 8, 1 / 256))
    if kind == "layernorm":
        return make_layernorm(NONLINEAR_SIZE, int8, QType(True, 8, 1 / 32), rng.uniform(0.5, 1.5, NONLINEAR_SIZE),
                              rng.uniform(-0.5, 0.5, NONLINEAR_SIZE))
    return make_gelu(NONLINEAR_SIZE, int8, int8)


def build_point(kind: str, params: dict):
    """The Design of one grid point (no tools run; a few milliseconds, a TT model a second)."""
    import dataclasses

    from codegen.examples import linear_graph, manual_design
    from codegen.ir.build import make_requant
    from codegen.ir.graph import GRAPH_INPUT, Graph
    from codegen.ir.joins import make_add
    from codegen.ir.types import QType
    from codegen.passes.graph import insert_forks
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold

    if kind in ("linear", "linear_nm"):
        k, n, simd, pe = params["k"], params["n"], params["simd"], params["pe"]
        nm = tuple(params["nm"]) if params.get("nm") else None
        out_type = QType(True, params["a"], 2.0 ** -3)
        graph = linear_graph(k, n, QType(True, params["a"], 2.0 ** -4), params["w"], out_type, sparsity=nm, seed=1,
                             row_pairs=bool(params.get("pairs")))
        cycles = math.ceil(k / simd) * math.ceil(n / pe)
        design = manual_design(graph, {"layer0": (simd, pe, _lanes(k, cycles), _lanes(n, cycles))})
        if params.get("rom"):
            design.rom_kinds["layer0"] = params["rom"]
        return design
    if kind == "requant":
        size, lanes = params["size"], params["lanes"]
        op = make_requant("rq", "rq", QType(True, 16, 2.0 ** -8), QType(True, 8, 0.0517), size)
        graph = Graph(name="unit", input_type=op.in_type, input_size=size, ops=[op],
                      input_shape=(1, size), output_shape=(1, size))
        return manual_design(graph, {"rq": (lanes, lanes, lanes, lanes)})
    if kind == "add":
        size, lanes = params["size"], params["lanes"]
        a, b = QType(True, 8, 0.05), QType(True, 8, 0.07)
        add = dataclasses.replace(make_add("add", "add", a, b, QType(True, 8, 0.1), size),
                                  inputs=(GRAPH_INPUT, GRAPH_INPUT))
        graph = insert_forks(Graph(name="unit", input_type=a, input_size=size, ops=[add],
                                   input_shape=(1, size), output_shape=(1, size)))
        return manual_design(graph, {op.name: (lanes, lanes, lanes, lanes) for op in graph.ops})
    if kind == "butterfly":
        from codegen.examples import butterfly_graph
        t = QType(True, 8, 2.0 ** -4)
        graph = butterfly_graph(params["n"], t, 8, t, t)
        op = graph.ops[0]
        from codegen.schedule.butterfly import timing
        target = timing(op, params["units"]).compute
        return fold(graph, get_board("zcu104"), target_ii=target).design
    if kind == "contract":
        return fold(tt_graph(), get_board("zcu104"), target_ii=params["target"]).design
    if kind in GRAPH_UNIT_TARGETS:
        return graph_unit_design(kind, params["target"])
    if kind == "linear_tp":
        return token_pair_design(params)
    raise ValueError(kind)


def stored_schedules(design) -> dict[str, list[int]]:
    """The design's schedules as stored with its measurements (simd, pe, lanes in, out, token pack)."""
    return {name: [s.simd, s.pe, s.in_lanes, s.out_lanes, s.token_pack] for name, s in sorted(design.schedules.items())}


def tt_graph():
    """A tensor-train layer 64 -> 64 (cores 4x4x4, ranks 4), int8, lowered as the compiler does."""
    from codegen.project import CompileOptions, lower
    from models.einsum_models import tt_model
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tt.onnx"
        onnx.save(tt_model((4, 4, 4), (4, 4, 4), (4, 4), seed=3), str(path))
        return lower(path, CompileOptions(board="zcu104"))


def emit_point(kind: str, params: dict, work: Path) -> tuple[Path, str]:
    """Write the point's Verilog; returns (rtl folder, top module)."""
    if kind in NONLINEAR_KINDS:
        from models.nonlinear_units import TOP, emit_rtl_project
        emit_rtl_project(nonlinear_unit(kind), params["lanes"], work)
        return work / "rtl", TOP
    from codegen.emit.rtl import emit_rtl
    design = build_point(kind, params)
    emit_rtl(design, work)
    return work / "rtl", design.top_name


def synth_point(kind: str, params: dict, work: Path) -> dict:
    """Yosys counts of one point on both families."""
    from codegen.verify.yosys import synth_counts

    rtl, top = emit_point(kind, params, work)
    out = {}
    for family in FAMILIES:
        counts = synth_counts(rtl, top, family, work / f"yosys_{family}")
        out[family] = {k: counts[k] for k in MEASURES}
    return out


#: the Linear points whose interval and latency are measured in RTL simulation (--cycles)
CYCLE_POINTS = {("linear", 1, 64, 8), ("linear", 8, 8, 8), ("linear", 4, 4, 8), ("linear_nm", 8, 8, 8)}
#: kinds whose one-unit design does not run in RTL simulation (none since the scheduler sizes the
#: FIFO in front of a score mask's scores for the mask sequence it reads first: folding.input_ready)
NO_CYCLES: tuple[str, ...] = ()
#: one representative of every other kind built as a design (the nonlinear units run under their
#: unit-test top, not the generated one: their cycles are checked by tests/test_nonlinear_units.py)
CYCLE_KEYS = {point_key(kind, params) for kind, params in (
    ("requant", {"size": 64, "lanes": 4}), ("add", {"size": 64, "lanes": 4}), ("butterfly", {"n": 64, "units": 4}),
    ("contract", {"target": 128}), ("linear_tp", {"simd": 8, "pe": 4, "nm": [2, 4]}),
    ("linear_tp", {"simd": 8, "pe": 4}),
    *[(kind, {"target": targets[1]}) for kind, targets in GRAPH_UNIT_TARGETS.items() if kind not in NO_CYCLES])}


def measures_cycles(kind: str, params: dict) -> bool:
    if kind in ("linear", "linear_nm"):
        return not params.get("rom") and params["k"] == 64 and params["n"] == 64 \
            and (kind, params["simd"], params["pe"], params["a"]) in CYCLE_POINTS
    return point_key(kind, params) in CYCLE_KEYS


def cycles_point(kind: str, params: dict, work: Path) -> dict | None:
    """Interval and latency in Verilator (the unit-test harness: the generated top, AXI4-Stream,
    frames back to back, bit-exact against the reference) for the points of measures_cycles."""
    if not measures_cycles(kind, params):
        return None
    from codegen.emit.cocotb_tb import emit_cocotb_tb
    from codegen.emit.rtl import emit_rtl
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.verify.rtlsim import run_rtlsim

    design = build_point(kind, params)
    emit_rtl(design, work)
    emit_cocotb_tb(design, work)
    inputs = random_inputs(design.graph, 6, seed=100)
    result = run_rtlsim(work, inputs, run_reference(design.graph, inputs), work / "work", seed=100)
    if not result.passed:
        raise RuntimeError(f"{point_key(kind, params)}: {result.line()}")
    return {k: result.measured[k] for k in ("interval_cycles", "mean_interval_cycles", "latency_cycles")}


def held_back(data: dict) -> set[str]:
    """Every third point of each unit kind (the 2nd, 5th, ...): kept out of the fit, checked by
    tests/test_calibration.py."""
    keys, seen = set(), {}
    for point in data["points"]:
        index = seen.get(point["kind"], 0)
        seen[point["kind"]] = index + 1
        if index % 3 == 1:
            keys.add(point["key"])
    return keys


def point_ops(kind: str, params: dict, dsp_kind: str, calibrated: bool,
              model: dict | None = None) -> list[tuple[str, object, object, object]]:
    """(op kind, op, schedule, cost) of every op of a point: the first-order cost (cost.py alone)
    or, with ``calibrated``, the scheduler's estimate (op_cost, calibration included; ``model``
    in place of calibrated.json)."""
    return point_estimate(kind, params, dsp_kind, calibrated, model)[0]


_DESIGNS: dict[str, object] = {}


def _built(kind: str, params: dict):
    """build_point, once per point (the estimates of a point on two families, calibrated and not,
    read the same design; nothing here changes it)."""
    key = point_key(kind, params)
    if key not in _DESIGNS:
        _DESIGNS[key] = build_point(kind, params)
    return _DESIGNS[key]


def point_estimate(kind: str, params: dict, dsp_kind: str, calibrated: bool,
                   model: dict | None = None) -> tuple[list[tuple[str, object, object, object]], dict]:
    """point_ops and what the scheduler adds for the whole design (design_extras: FIFOs, frame
    interval, latency; empty for the nonlinear units, which run under their unit-test top)."""
    from codegen.schedule import calibration
    from codegen.schedule.cost import COST_FUNCTIONS, linear_cost
    from codegen.schedule.design import OpSchedule
    from codegen.schedule.nonlinear_cost import nonlinear_cost

    if kind in NONLINEAR_KINDS:
        lanes = params["lanes"]
        s = OpSchedule(kind, lanes, lanes, lanes, lanes)
        cost = nonlinear_cost(nonlinear_unit(kind), lanes, dsp_kind)
        if calibrated:
            calibration.apply(kind, None, s, dsp_kind, cost, model=model)
        return [(kind, None, s, cost)], {}
    design = _built(kind, params)
    out = []
    for op in design.graph.ops:
        s = design.schedules[op.name]
        rom_kind = design.rom_kinds.get(op.name)
        if op.kind == "linear" and rom_kind:
            cost = linear_cost(op, s, dsp_kind, rom_kind=rom_kind)
        else:
            cost = COST_FUNCTIONS[op.kind](op, s, dsp_kind)
        if calibrated:
            calibration.apply(op.kind, op, s, dsp_kind, cost, model=model)
        out.append((op.kind, op, s, cost))
    extras = design_extras(design, {op.name: c for (_, op, _, c) in out}, dsp_kind, model, calibrated)
    extras["schedules"] = stored_schedules(design)
    return out, extras


def measured_value(counts: dict, target: str) -> float:
    from codegen.schedule.calibration import TARGETS
    return float(sum(counts[k] for k in TARGETS[target]))


def fit_and_store(data: dict) -> dict:
    """Fit the coefficients on the points not held back; write codegen/schedule/calibrated.json."""
    from codegen.schedule import calibration

    model = fit_model(data)
    calibration.CALIBRATED_PATH.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
    calibration._load.cache_clear()
    model["summary"] = compare(data)
    return model


def group_of(kind: str, op, s, dsp_kind: str) -> str | None:
    from codegen.schedule import calibration
    if calibration.stage_two(kind, op, s, dsp_kind):
        return None          # fitted in the second stage (TOKEN_PAIR_GROUP, NM_PAIR_GROUP)
    return calibration.GROUP_OF_KIND.get(kind)


def fit_model(data: dict) -> dict:
    """The coefficients fitted on the stored sweep (no tools run): first every group on the points
    without token pairs, then the token-pair correction on the token-pair points, over the first
    stage's estimate."""
    from codegen.schedule import calibration
    from codegen.schedule.lane_cost import LANES_GROUP, converter_terms

    back = held_back(data)
    model = {"command": COMMAND, "yosys": data.get("yosys"), "held_back": sorted(back), "families": {}}
    fitted = [p for p in data["points"] if p["key"] not in back]
    for family in FAMILIES:
        dsp_kind = DSP_KIND[family]
        rows = {target: [] for target in calibration.TARGETS}
        pair_points = []
        for point in fitted:
            if family not in point.get("yosys", {}):
                continue
            ops, extras = point_estimate(point["kind"], point["params"], dsp_kind, calibrated=False)
            if any(calibration.stage_two(k, op, s, dsp_kind) for k, op, s, _ in ops):
                pair_points.append(point)
                continue
            for target in calibration.TARGETS:
                feats = [(group_of(k, op, s, dsp_kind), calibration.features(k, op, s, dsp_kind, c)[target])
                         for k, op, s, c in ops if group_of(k, op, s, dsp_kind)]
                # the lane converters between units: their LUTs a group of their own
                # (schedule/lane_cost.py); their flip-flops are counted, as the FIFOs' memory is
                if target == "lut":
                    feats += [(LANES_GROUP, converter_terms(c)[target]) for c in extras.get("converters", [])]
                # the FIFOs are counted structurally (fifo_memory), not fitted
                fixed = extras.get("fifo_lut", 0) if target == "lut" else extras.get("lanes_ff", 0)
                rows[target].append((feats, measured_value(point["yosys"][family], target) - fixed))
        groups: dict = {}
        # a group seen in fewer than two fitted points keeps its first-order estimate (one point
        # cannot tell an offset from a scale)
        seen: dict[str, int] = {}
        for feats, _ in rows["lut"]:
            for group in {g for g, _ in feats}:
                seen[group] = seen.get(group, 0) + 1
        for target, target_rows in rows.items():
            target_rows = [([(g, f) for g, f in feats if seen[g] >= 2], y) for feats, y in target_rows]
            target_rows = [(feats, y) for feats, y in target_rows if any(f for _, f in feats)]
            if not target_rows:
                continue
            for group, coef in calibration.fit(target_rows).items():
                groups.setdefault(group, {})[target] = {k: round(v, 6) for k, v in coef.items()}
        model["families"][family] = groups
        # second stage: offset and scale of the first stage's estimate of token pairs and of N:M
        # PE pairs, each group on its own points
        pair_rows = {target: [] for target in calibration.TARGETS}
        stage_features = {calibration.TOKEN_PAIR_GROUP: calibration.pair_features,
                          calibration.NM_PAIR_GROUP: calibration.nm_pair_features}
        for point in pair_points:
            ops, _ = point_estimate(point["kind"], point["params"], dsp_kind, calibrated=True, model=model)
            group, op, s = next((calibration.stage_two(k, op, s, dsp_kind), op, s) for k, op, s, _ in ops
                                if calibration.stage_two(k, op, s, dsp_kind))
            for target in calibration.TARGETS:
                estimate = float(sum(getattr(c, target) for *_, c in ops))
                pair_rows[target].append(([(group, stage_features[group](op, s, target, estimate))],
                                          measured_value(point["yosys"][family], target)))
        for target, target_rows in pair_rows.items():
            if target_rows:
                for group, coef in calibration.fit(target_rows).items():
                    groups.setdefault(group, {})[target] = {k: round(v, 6) for k, v in coef.items()}
    return model


def point_summary(point: dict, family: str) -> dict:
    """Estimate (calibrated) and measurement of one point on one family."""
    counts = point["yosys"][family]
    ops, extras = point_estimate(point["kind"], point["params"], DSP_KIND[family], calibrated=True)
    first, first_extras = point_estimate(point["kind"], point["params"], DSP_KIND[family], calibrated=False)
    est = {"lut": sum(c.lut for *_, c in ops) + extras.get("fifo_lut", 0) + extras.get("lanes_lut", 0),
           "ff": sum(c.ff for *_, c in ops) + extras.get("lanes_ff", 0),
           "dsp": sum(c.dsp for *_, c in ops),
           "bram36": sum(c.bram36 for *_, c in ops) + extras.get("fifo_bram36", 0.0),
           "uram": sum(c.uram for *_, c in ops) + extras.get("fifo_uram", 0)}
    meas = {"lut": measured_value(counts, "lut"), "ff": counts["FF"], "dsp": counts["DSP"],
            "bram36": counts["BRAM"], "uram": counts.get("URAM", 0)}
    row = {"key": point["key"], "kind": point["kind"], "family": family, "estimate": est,
           "first_order_lut": sum(c.lut for *_, c in first) + first_extras.get("fifo_lut", 0)
           + first_extras.get("lanes_lut", 0), "measured": meas}
    if "schedules" in extras:
        row["schedules"] = extras["schedules"]
    if extras.get("converters"):
        row["converters"] = [f"{c.where}: {c.lanes_in} -> {c.lanes_out} lanes" for c in extras["converters"]]
        row["converter_lut"], row["converter_ff"] = extras["lanes_lut"], extras["lanes_ff"]
    if point.get("rtlsim") and family == FAMILIES[0]:
        sim = point["rtlsim"]
        # the mean gap between frames is the throughput the frame interval estimates (a unit with
        # several frames in flight, the butterfly, delivers them in bursts: the median is a gap
        # inside a burst)
        row["cycles"] = {"interval_est": extras.get("frame_interval", max(c.ii for *_, c in ops)),
                         "interval_meas": sim.get("mean_interval_cycles", sim["interval_cycles"]),
                         "interval_median": sim["interval_cycles"],
                         "latency_est": extras.get("latency", sum(c.latency for *_, c in ops)),
                         "latency_meas": point["rtlsim"]["latency_cycles"]}
    return row


def compare(data: dict) -> dict:
    """Estimate (calibrated op_cost) against measurement for every point: the rows of the table,
    and the worst relative error on the held-back points per target."""
    back = held_back(data)
    rows, worst = [], {}
    for point in data["points"]:
        for family in FAMILIES:
            if family not in point.get("yosys", {}):
                continue
            row = point_summary(point, family)
            row["held_back"] = point["key"] in back
            rows.append(row)
            if row["held_back"]:
                for target in ("lut", "ff", "dsp", "bram36"):
                    error = abs(row["estimate"][target] - row["measured"][target]) / max(row["measured"][target], 1)
                    worst[target] = max(worst.get(target, 0.0), round(error, 4))
    return {"worst_held_back_error": worst, "rows": rows}


def _error(est: float, meas: float) -> float:
    return (est - meas) / max(meas, 1)


def kind_summary(summary: dict) -> list[dict]:
    """Per sweep kind: points, and the mean and largest held-back error of LUT and FF."""
    out = []
    for kind in dict.fromkeys(k for k, _ in GRID):
        rows = [r for r in summary["rows"] if r["kind"] == kind]
        back = [r for r in rows if r["held_back"]]
        entry = {"kind": kind, "points": len({r["key"] for r in rows}), "held_back": len({r["key"] for r in back})}
        for target in ("lut", "ff"):
            errors = [abs(_error(r["estimate"][target], r["measured"][target])) for r in back]
            first = [abs(_error(r["first_order_lut"], r["measured"]["lut"])) for r in back] if target == "lut" else []
            entry[target] = (sum(errors) / len(errors), max(errors)) if errors else None
            if first:
                entry["first_order_lut"] = (sum(first) / len(first), max(first))
        out.append(entry)
    return out


def write_table(data: dict, path: Path, command: str) -> str:
    summary = compare(data)
    pct = lambda pair: f"{100 * pair[0]:.0f}% / {100 * pair[1]:.0f}%" if pair else "–"  # noqa: E731
    lines = [f"Made by `{command}` ({data.get('yosys')}, synth_xilinx -family xc7 / xcup on the "
             "generated one-unit design; `--fit` redoes the fit and this table from the stored counts).  "
             "Estimate = the scheduler's calibrated cost model (codegen/schedule/calibrated.json) of the "
             "whole one-unit design (its ops, the FIFOs where its paths reconverge and the lane "
             "converters between its units, codegen/schedule/lane_cost.py); first-order = "
             "cost.py and lane_cost.py without calibration.  LUT counts include LUTs used as memory.  "
             "Held-back points (*) were not used in the fit (every third point of each kind, by position "
             "in the grid).",
             "",
             f"Worst held-back error: {summary['worst_held_back_error']}",
             "",
             "## Held-back error per kind (mean / largest, both families)",
             "",
             "| kind | points | held back | LUT | LUT first-order | FF |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for entry in kind_summary(summary):
        lines.append(f"| {entry['kind']} | {entry['points']} | {entry['held_back']} | {pct(entry['lut'])} | "
                     f"{pct(entry.get('first_order_lut'))} | {pct(entry['ff'])} |")
    lines += ["", "## Every point", "",
              "| point | family | LUT est | LUT meas | LUT first-order | FF est | FF meas | DSP est | DSP meas | BRAM36 est | BRAM36 meas |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary["rows"]:
        e, m = r["estimate"], r["measured"]
        mark = " *" if r["held_back"] else ""
        lines.append(f"| {r['key']}{mark} | {r['family']} | {e['lut']:,} | {m['lut']:,.0f} | "
                     f"{r['first_order_lut']:,} | {e['ff']:,} | {m['ff']:,} | {e['dsp']} | {m['dsp']} | "
                     f"{e['bram36']:g} | {m['bram36']:g} |")
    cycles = [r for r in summary["rows"] if "cycles" in r]
    if cycles:
        lines += ["", "## Cycles in RTL simulation", "",
                  "Verilator through the unit-test harness (the generated top, AXI4-Stream, bit-exact "
                  "against the reference, 6 frames back to back); interval = mean cycles between frames "
                  "(the median beside it), latency = first input beat to the first frame's last output "
                  "beat.  Estimate = the scheduler's frame interval and longest-path latency.", "",
                  "| point | interval est | interval meas (median) | latency est | latency meas |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for r in cycles:
            c = r["cycles"]
            lines.append(f"| {r['key']} | {c['interval_est']} | {c['interval_meas']:g} ({c['interval_median']}) | "
                         f"{c['latency_est']} | {c['latency_meas']} |")
    table = "\n".join(lines) + "\n"
    path.write_text(table)
    return table


def load() -> dict:
    """The stored sweep, in GRID order (points no longer in the grid are left out)."""
    path = RESULTS / "calibration.json"
    data = json.loads(path.read_text()) if path.is_file() else {"command": COMMAND, "points": []}
    stored = {p["key"]: p for p in data["points"]}
    data["points"] = [stored[point_key(k, p)] for k, p in GRID if point_key(k, p) in stored]
    return data


def save(data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration.json").write_text(json.dumps(data, indent=1) + "\n")


def sweep(only: str | None, cycles: bool) -> None:
    from codegen.verify.yosys import yosys_version

    data = load()
    grid = {point_key(k, p) for k, p in GRID}
    done = {p["key"]: p for p in data["points"] if p["key"] in grid}
    data["command"] = COMMAND
    data["yosys"] = yosys_version()
    data["families"] = list(FAMILIES)
    start_all = time.time()
    for kind, params in GRID:
        if only and kind != only:
            continue
        key = point_key(kind, params)
        entry = done.get(key, {"key": key, "kind": kind, "params": params})
        with tempfile.TemporaryDirectory() as tmp:
            start = time.time()
            if "yosys" not in entry:
                entry["yosys"] = synth_point(kind, params, Path(tmp) / "synth")
                if kind not in NONLINEAR_KINDS:
                    entry["schedules"] = stored_schedules(build_point(kind, params))
            if cycles and "mean_interval_cycles" not in entry.get("rtlsim", {}):
                try:
                    measured = cycles_point(kind, params, Path(tmp) / "sim")
                except Exception as error:       # noqa: BLE001 (kept with the point, the sweep goes on)
                    entry["rtlsim_error"] = f"{type(error).__name__}: {error}"[:500]
                    measured = None
                if measured:
                    entry["rtlsim"] = measured
                    entry.pop("rtlsim_error", None)
            entry["seconds"] = round(time.time() - start, 1)
        done[key] = entry
        data["points"] = [done[point_key(k, p)] for k, p in GRID if point_key(k, p) in done]
        save(data)   # after every point: an interrupted sweep keeps what it measured
        print(f"{time.time() - start_all:7.0f} s  {key}  {entry['yosys']}  {entry.get('rtlsim', '')}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="refit from the stored sweep only (no Yosys)")
    parser.add_argument("--only", help="sweep only this sweep kind (linear, actmatmul, linear_tp, ...)")
    parser.add_argument("--cycles", action="store_true", help="also measure cycles in Verilator (CYCLE_POINTS, CYCLE_KEYS)")
    args = parser.parse_args(argv)
    kinds = list(dict.fromkeys(kind for kind, _ in GRID))
    if args.only and args.only not in kinds:
        parser.error(f"--only {args.only!r}: not a sweep kind (one of {', '.join(kinds)})")
    if not args.fit:
        sweep(args.only, args.cycles)
    model = fit_and_store(load())
    table = write_table(load(), RESULTS / "calibration.md", COMMAND)
    print(table)
    print("worst held-back error:", model["summary"]["worst_held_back_error"])


if __name__ == "__main__":
    main()
