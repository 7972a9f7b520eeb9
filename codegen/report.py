"""`einhls report`: the estimates of report.json as a table, with measurements beside them."""
from __future__ import annotations

import dataclasses


COLUMNS = (("layer", "name", "<"), ("kind", "kind", "<"), ("in>out", None, ">"), ("N:M", "sparsity", ">"),
           ("simd x pe", None, ">"), ("mults", "multipliers", ">"), ("dense eq.", "dense_multipliers", ">"),
           ("cycles", "cycles", ">"), ("II", "ii", ">"), ("DSP", "dsp", ">"), ("BRAM36", "bram36", ">"),
           ("URAM", "uram", ">"), ("ROM in", "rom_kind", "<"), ("LUT", "lut", ">"), ("FF", "ff", ">"), ("MACs", "macs", ">"), ("weight bits", "weight_bits", ">"))


def performed_macs(layer: dict) -> int:
    """MACs the unit performs per frame: an N:M layer multiplies N of every M inputs, so a 2:4
    layer performs half its dense count (report.json's ``macs`` is the dense count)."""
    if layer.get("sparsity"):
        n, m = (int(v) for v in layer["sparsity"].split(":"))
        return layer["macs"] * n // m
    return layer["macs"]


def _cell(layer: dict, title: str, key: str | None) -> str:
    if title == "MACs":
        return str(performed_macs(layer))
    if title == "in>out":
        return f"{layer['in_size']}>{layer['out_size']}"
    if title == "simd x pe":
        if layer["kind"] == "contract":   # a contraction stage: the Linear unit, R times per frame
            if layer.get("span"):         # a span fold: the PE slots over all R repeats' outputs
                return f"{layer['simd']}x{layer['pe']} span {layer['repeats']}"
            return f"{layer['repeats']}x {layer['simd']}x{layer['pe']}"
        if layer["kind"] == "butterfly":  # P butterfly units (2 inputs each)
            return f"P={layer['units']}"
        if layer["kind"] == "linear":   # "pairs": two tokens per weight read (einhls_linear TOKEN_PACK)
            return f"{layer['simd']}x{layer['pe']}" + (" pairs" if layer.get("token_pack") == 2 else "") \
                + (" quads" if layer.get("pe_pack") == 4 else "")   # "quads": four PEs per DSP (PACK = 4)
        # a token mean with two banks of sums (einhls_tokenmean OVERLAP)
        return f"{layer['in_lanes']} lanes" + (", two banks" if layer.get("overlap") else "")
    value = layer.get(key)
    if value is None or value == "":
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_report(project) -> str:
    report, measured = project.report, project.measured
    rows = [[_cell(layer, title, key) for title, key, _ in COLUMNS] for layer in report["layers"]]
    t = report["totals"]
    rows.append(["total", "", "", "", "", str(t["multipliers"]), "", "", str(t["ii"]), str(t["dsp"]),
                 f"{t['bram36']:g}", str(t.get("uram", 0)), "", str(t["lut"]), str(t["ff"]),
                 str(sum(performed_macs(layer) for layer in report["layers"])), str(t["weight_bits"])])
    widths = [max(len(title), *(len(r[i]) for r in rows)) for i, (title, _, _) in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(f"{c:{a}{w}}" for c, w, (_, _, a) in zip(cells, widths, COLUMNS))
    lines = [f"einhls report: {project.path}  board {report['board']} ({report['part']}) at {report['clock_mhz']:g} MHz",
             fmt([title for title, _, _ in COLUMNS]), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows[:-1]] + [fmt(["-" * w for w in widths]), fmt(rows[-1])]
    u = report["utilisation"]
    per_frame = "" if report.get("tokens", 1) == 1 else \
        f" per token, {t['frame_interval']} per frame of {report['tokens']} tokens"
    lines.append(f"estimated: interval {t['ii']} cycles{per_frame} ({report['throughput_fps']:g} frames/s), latency "
                 f"{t['latency']} cycles ({report['latency_us']:g} us); utilisation DSP {u['dsp']:.1%}, "
                 f"BRAM {u['bram36']:.1%}, URAM {u.get('uram', 0):.1%}, LUT {u['lut']:.1%}, FF {u['ff']:.1%}")
    lines += balance_lines(project)
    if project.design.board.open_flow:
        lines.append(f"units on {report['board']}: DSP = {project.design.board.dsp_kind}, LUT = "
                     f"{project.design.board.lut_kind}, BRAM36 = two {project.design.board.bram_kind} (18 Kb each)")
    for note in report.get("notes", []):
        lines.append(f"schedule: {note}")
    lines += [f"sparsity: {line}" for line in sparsity_lines(project)]
    for c in report.get("contractions", []):
        lines.append(f"contraction {c['contraction']}: {c['macs']} MACs, {c['multipliers']} multipliers, "
                     f"{c['weight_bits']} weight bits, {c['buffer_bits']} buffer bits; stages:")
        for st in c["stages"]:
            lines.append(f"  {st['name']}: {st['step']}; {st['macs']} MACs, {st['cycles']} cycles, "
                         f"{st['multipliers']} multipliers, {st['buffer_bits']} buffer bits")
    for layer in report["layers"]:
        if layer["kind"] == "butterfly":
            lines.append(f"butterfly {layer['name']}: n={layer['butterfly_n']} x {layer['stacks']} stack(s), "
                         f"{len(layer['strides'])} stages of {layer['stage_cycles']} cycles on {layer['units']} units, "
                         f"{layer['contexts']} frame(s) in flight; roofline {layer['roofline_cycles']} cycles, "
                         f"estimate {layer['ii']}")
    if "rtlsim" in measured:
        m = measured["rtlsim"]
        lines.append(f"measured (RTL sim): latency {m.get('latency_cycles')} cycles (estimate {t['latency']}), "
                     f"interval {m.get('interval_cycles')} cycles (estimate {t.get('frame_interval', t['ii'])})")
    for fifo in report.get("fifos", []):
        where = (f", in UltraRAM packed {fifo['uram_packed_lanes']} lanes a word"
                 if fifo.get("uram_packed_lanes") else "")
        lines.append(f"fifo: {fifo['depth']} beats in front of {fifo['op']} input {fifo['input']} "
                     f"({fifo['tensor']}), from the latency difference of the reconverging paths{where}")
    if "yosys" in measured:
        y = measured["yosys"]
        if y.get("family") == "ecp5":
            cells = y.get("cells", {})
            lines.append(f"measured ({y.get('yosys', 'Yosys')} synth_ecp5): LUT4 {y['LUT']} "
                         f"(+{y['LUT_MEM']} as RAM), FF {y['FF']}, MULT18X18D {y['DSP']}, "
                         f"DP16KD {cells.get('DP16KD', 0)} (= BRAM36 {y['BRAM']:g}), CCU2C {y['CARRY']} "
                         f"(estimates: LUT4 {t['lut']}, FF {t['ff']}, MULT18X18D {t['dsp']}, BRAM36 {t['bram36']:g})")
        else:
            lines.append(f"measured ({y.get('yosys', 'Yosys')} synth_xilinx -family {y.get('family')}): "
                         f"LUT {y['LUT']} (+{y['LUT_MEM']} as ROM), FF {y['FF']}, DSP {y['DSP']}, "
                         f"BRAM36 {y['BRAM']:g}, CARRY {y['CARRY']} "
                         f"(estimates: LUT {t['lut']}, FF {t['ff']}, DSP {t['dsp']}, BRAM36 {t['bram36']:g})")
    if "nextpnr" in measured:
        n = measured["nextpnr"]
        verdict = "meets" if n["met"] else "MISSES"
        lines.append(f"measured ({n.get('tool', 'nextpnr-ecp5')}, {n['device']}): Fmax {n['fmax_mhz']:.1f} MHz, "
                     f"{verdict} the {n['target_mhz']:g} MHz clock; critical path {n['critical_from']} -> "
                     f"{n['critical_to']}; placed LUT4 {n['utilisation'].get('LUT4', '?')}, "
                     f"MULT18X18D {n['utilisation'].get('MULT18X18D', '?')}, DP16KD {n['utilisation'].get('DP16KD', '?')}; "
                     f"synth {n['seconds']['synth']:.0f} s, place and route {n['seconds']['pnr']:.0f} s, "
                     f"pack {n['seconds'].get('pack', 0):.0f} s")
    return "\n".join(lines)


def balance_lines(project) -> list[str]:
    """What binds the design, each stage's distance from the interval, and the MACs per cycle
    achieved against the board's peak (the roofline of ``einhls report --plot``)."""
    data = plot_data(project)
    interval = data["stages"]["interval"]
    stages = ", ".join(f"{name} {cycles} ({100.0 * cycles / interval:.0f}%)"
                       for name, cycles in zip(data["names"], data["stages"]["cycles"]))
    roof = data["roofline"]
    return [f"binding: {data['binds']}",
            f"stages (cycles per token, % of the {interval}-cycle interval): {stages}",
            f"roofline: {roof['achieved']:.4g} MACs per cycle achieved, {roof['design_peak']} the design's "
            f"multipliers could do, {roof['board_peak']} the board's peak ({roof['dsp']} DSPs x "
            f"{roof['per_dsp']} products{' + LUT multipliers' if roof['lut_peak'] else ''})"]


def board_peak(project) -> dict:
    """The board's MACs per cycle: every DSP busy with as many products as the design's widths let
    it pack (two int8 products per DSP48 pre-adder; one when an operand is wider; four when every
    Linear layer is narrow and one already packs four), plus the LUT
    multipliers the design already has (they are not bounded by the DSP count)."""
    from .ir.graph import Linear
    from .schedule.packing import DSP_PREADDER_BITS, lut_multipliers

    from .schedule.packing import pe_quad_config, quad_config

    board = project.design.board
    linears = [op for op in project.graph.ops if isinstance(op, Linear)]
    wide = [op for op in linears if not lut_multipliers(op)]
    per_dsp = 2 if board.dsp_kind in DSP_PREADDER_BITS and all(
        max(op.in_type.bits, op.weight_type.bits) <= 8 for op in wide) else 1
    # narrow layers pack four products per DSP: PE pairs x token pairs, or PE quads for one vector
    if linears and not wide and any(quad_config(op, project.design.schedule(op), board.dsp_kind)[0]
                                    or pe_quad_config(op, project.design.schedule(op), board.dsp_kind)[0]
                                    for op in linears):
        per_dsp = 4
    lut_peak = sum(layer["multipliers"] for layer in project.report["layers"]
                   if layer.get("dsp", 0) == 0 and layer["multipliers"])
    return {"dsp": board.dsp, "per_dsp": per_dsp, "lut_peak": lut_peak,
            "board_peak": board.dsp * per_dsp + lut_peak}


def _dense_twin(op):
    return dataclasses.replace(op, sparsity=None) if getattr(op, "sparsity", None) else op


def sparsity_effect(project) -> dict | None:
    """What N:M sparsity buys in this design, from the cost model: each sparse layer against its
    dense twin at the same cycles, and the whole model folded dense with the same options.
    None when no layer is sparse."""
    from .errors import EinhlsError
    from .schedule.cost import op_cost
    from .schedule.design import OpSchedule
    from .schedule.folding import fold, linear_options

    graph, design = project.graph, project.design
    sparse = [op for op in graph.ops if getattr(op, "sparsity", None)]
    if not sparse:
        return None
    kind = design.board.dsp_kind
    layers = []
    for op in sparse:
        s = design.schedules[op.name]
        mine = op_cost(op, s, kind)
        dense = _dense_twin(op)
        _, simd, pe = next((o for o in linear_options(dense) if o[0] <= mine.cycles),
                           min(linear_options(dense), key=lambda o: o[0]))
        twin = op_cost(dense, OpSchedule(op.name, simd, pe, s.in_lanes, s.out_lanes), kind)
        layers.append({"name": op.name, "sparsity": "{}:{}".format(*op.sparsity), "cycles": mine.cycles,
                       "dsp": mine.dsp, "dense_dsp": twin.dsp, "lut": mine.lut, "dense_lut": twin.lut,
                       "multipliers": mine.multipliers, "dense_multipliers": twin.multipliers})
    options = project.meta.get("options", {})
    totals = project.report["totals"]
    whole = {"ii": totals["ii"], "dsp": totals["dsp"], "lut": totals["lut"]}
    try:
        dense_totals = fold(dataclasses.replace(graph, ops=[_dense_twin(op) for op in graph.ops]), design.board,
                            design.clock_mhz, options.get("max_util", 0.8), options.get("target_ii")).totals
        whole.update(dense_ii=dense_totals["ii"], dense_dsp=dense_totals["dsp"], dense_lut=dense_totals["lut"])
    except EinhlsError as exc:
        whole["dense_error"] = str(exc)
    return {"layers": layers, "design": whole}


def sparsity_lines(project) -> list[str]:
    """Plain statements of what sparsity saves here, and when it saves no DSP."""
    effect = sparsity_effect(project)
    if effect is None:
        return []
    lines = []
    for layer in effect["layers"]:
        head = (f"{layer['name']} ({layer['sparsity']}) has {layer['multipliers']} multipliers where its dense twin "
                f"has {layer['dense_multipliers']} at the same {layer['cycles']} cycles")
        if layer["dsp"] >= layer["dense_dsp"]:
            if layer["dense_dsp"] == 0:
                why = "both build these products from LUTs"
            elif layer["dense_dsp"] < layer["dense_multipliers"]:
                why = ("the dense layer packs two products into one DSP48, which an N:M multiplier, with its "
                       "own multiplexed input, cannot unless its row pairs share their index pattern")
            else:
                why = "the multiplexers and index ROMs cost what the multipliers save"
            saved_lut = layer["dense_lut"] - layer["lut"]
            lines.append(f"{head}, but saves no DSP: {layer['dsp']} DSP against {layer['dense_dsp']} dense ({why})"
                         + (f"; it saves {saved_lut} LUT" if saved_lut > 0 else ""))
        else:
            lines.append(f"{head}: {layer['dsp']} DSP against {layer['dense_dsp']} dense")
    d = effect["design"]
    if "dense_error" in d:
        lines.append(f"the same model dense does not fit with these options ({d['dense_error']})")
        return lines
    verdict = ("so sparsity saves no DSP in this design" if d["dsp"] >= d["dense_dsp"] and d["ii"] >= d["dense_ii"]
               else "so sparsity buys a shorter interval" if d["ii"] < d["dense_ii"]
               else f"so sparsity saves {d['dense_dsp'] - d['dsp']} DSP" + (
                   f" at {d['ii'] - d['dense_ii']} cycles more per frame" if d["ii"] > d["dense_ii"] else ""))
    lines.append(f"the same model dense folds to interval {d['dense_ii']} cycles with {d['dense_dsp']} DSP "
                 f"(this design: {d['ii']} cycles, {d['dsp']} DSP), {verdict}")
    return lines


def synthesize(project) -> dict:
    """Run Yosys on the generated RTL and store its counts in measured.json."""
    from .errors import EinhlsError
    from .verify.yosys import YosysError, synth_counts

    from .verify.yosys import synth_command
    print(f"yosys: {synth_command(project.design.board.yosys_family, project.design.top_name)} "
          f"on {project.path / 'rtl'} ...")
    try:
        counts = synth_counts(project.path / "rtl", project.design.top_name,
                              project.design.board.yosys_family, project.path / "build" / "yosys")
    except YosysError as exc:
        raise EinhlsError(f"Yosys could not synthesize {project.path / 'rtl'}: {exc}") from None
    counts["family"] = project.design.board.yosys_family
    project.save_measured({"yosys": counts})
    return counts


RESOURCES = (("dsp", "DSP"), ("bram36", "BRAM36"), ("uram", "URAM"), ("lut", "LUT"), ("ff", "FF"))


def plot_data(project) -> dict:
    """What `einhls report --plot` draws, as numbers.

    ``resources``: per resource, each layer's share of the *board* (not of the design) and the
    budget (--max-util); ``binding``: the resource closest to its budget.  ``stages``: each layer's
    cycles per frame against the pipeline's interval (a balanced pipeline has every stage near it).
    ``macs``: per layer, the MACs performed per cycle at the pipeline's interval against the peak,
    one MAC per multiplier per cycle.
    """
    report = project.report
    layers, totals = report["layers"], report["totals"]
    board = project.design.board
    budget = float(project.meta.get("options", {}).get("max_util", 0.8))
    capacity = {"dsp": board.dsp, "bram36": board.bram36, "uram": board.uram, "lut": board.lut, "ff": board.ff}
    resources = {key: {"label": label, "capacity": capacity[key],
                       "layers": [100.0 * layer.get(key, 0) / capacity[key] for layer in layers],
                       "total": 100.0 * totals.get(key, 0) / capacity[key]}
                 for key, label in RESOURCES if capacity[key] > 0}   # no URAM on 7-series boards
    largest = max(resources, key=lambda key: resources[key]["total"])
    interval = totals["ii"]
    floor = interval_floor(project)
    if project.meta.get("options", {}).get("target_ii") is not None:
        binds = f"the interval was requested (--target-ii); {resources[largest]['label']} is the largest share"
    elif interval <= floor:
        binds = (f"no resource binds: {interval} cycles is the fastest this pipeline can run; "
                 f"{resources[largest]['label']} is the largest share")
    else:
        faster, over = next_faster_design(project, budget)
        binds = (f"{', '.join(over)} bind{'s' if len(over) == 1 else ''}: at {faster} cycle{'s' if faster != 1 else ''} "
                 f"{'it' if len(over) == 1 else 'they'} would exceed the budget" if over else
                 f"{resources[largest]['label']} is the largest share")
    # a Linear layer with token pairs makes its multipliers' products for two tokens each step
    macs = [{"name": layer["name"], "achieved": performed_macs(layer) / interval,
             "peak": layer["multipliers"] * layer.get("token_pack", 1)}
            for layer in layers if layer["multipliers"]]
    return {"names": [layer["name"] for layer in layers], "budget": 100.0 * budget,
            "resources": resources, "largest": largest, "binds": binds, "floor": floor,
            "stages": {"cycles": [layer["ii"] for layer in layers], "interval": interval,
                       "measured": project.measured.get("rtlsim", {}).get("interval_cycles")},
            "macs": macs,
            "roofline": {**board_peak(project), "achieved": sum(m["achieved"] for m in macs),
                         "design_peak": sum(m["peak"] for m in macs)},
            "macs_total": {"achieved": sum(m["achieved"] for m in macs), "peak": sum(m["peak"] for m in macs)}}


def _mac_options(op) -> list | None:
    from .ir.butterfly import Butterfly
    from .ir.contraction import ContractStage
    from .ir.graph import Linear
    from .schedule.butterfly import butterfly_options
    from .schedule.contraction import stage_options
    from .schedule.folding import linear_options
    if isinstance(op, Linear):
        return linear_options(op)
    if isinstance(op, ContractStage):
        return stage_options(op)
    return butterfly_options(op) if isinstance(op, Butterfly) else None


def next_faster_design(project, budget: float) -> tuple[int | None, list[str]]:
    """The next shorter interval the scheduler could have chosen, and the resources over budget
    there (what binds the design to its interval)."""
    from .schedule.cost import op_cost
    from .schedule.folding import fits, fold_for_target, totals_of

    graph, board = project.graph, project.design.board
    options = {op.name: opts for op in graph.ops if (opts := _mac_options(op))}
    interval = project.report["totals"]["ii"]
    faster = [c for opts in options.values() for c, _, _ in opts if c < interval]
    faster += [size for size in [graph.input_size] + [op.out_size for op in graph.ops] if size < interval]
    if not faster:
        return None, []
    target = max(faster)
    # the same search as the scheduler's (codegen/schedule/folding.py fold): shapes, ROM kinds
    from .schedule.calibration import FAMILY_OF_DSP
    from .schedule.choice import ShapeChooser
    from .schedule.cost import place_roms
    chooser = ShapeChooser(board) if board.dsp_kind in FAMILY_OF_DSP else None
    schedules = fold_for_target(graph, target, options, chooser)
    costs = {op.name: op_cost(op, schedules[op.name], board.dsp_kind) for op in graph.ops}
    if chooser is not None:
        chooser.place(graph, schedules, costs)
    linear = {op.name for op in graph.ops if op.kind == "linear"}
    place_roms({name: costs[name] for name in linear}, board,
               fixed_bram36=sum(c.bram36 for name, c in costs.items() if name not in linear))
    totals = totals_of(costs)
    over = fits(totals, board, budget)
    return target, [item.split()[0] for item in over]


def interval_floor(project) -> int:
    """The shortest interval this graph can reach on any board: the widest top-level stream
    allowed, and every MAC unit at full parallelism (what the scheduler searches down to)."""
    import math

    from .schedule.folding import MAX_TOP_TDATA_BITS

    graph = project.graph
    floor = max(math.ceil(graph.input_size * graph.input_type.bits / MAX_TOP_TDATA_BITS),
                math.ceil(graph.output_size * graph.output_type.bits / MAX_TOP_TDATA_BITS), 1)
    for op in graph.ops:
        options = _mac_options(op)
        if options:
            floor = max(floor, min(c for c, _, _ in options))
    return floor


def draw_report(project):
    """The report's figure (matplotlib, Agg): three panels, legends outside the bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = plot_data(project)
    report = project.report
    names = data["names"]
    rows = len(names)
    fig = plt.figure(figsize=(13, 3.2 + 0.75 * max(rows, 4)), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.0, max(rows, 2) / 2.5])
    ax_res = fig.add_subplot(grid[0, :])
    ax_cyc = fig.add_subplot(grid[1, 0])
    ax_mac = fig.add_subplot(grid[1, 1])
    colors = plt.get_cmap("tab20").colors

    # 1. resources against the board: one stacked bar per resource, a segment per layer
    keys = list(data["resources"])
    for i, name in enumerate(names):
        left = [sum(data["resources"][k]["layers"][:i]) for k in keys]
        ax_res.barh(range(len(keys)), [data["resources"][k]["layers"][i] for k in keys], left=left,
                    color=colors[i % len(colors)], label=name, edgecolor="white", linewidth=0.5)
    ax_res.axvline(data["budget"], color="black", linestyle="--", linewidth=1)
    top = max(100.0, *(data["resources"][k]["total"] for k in keys))
    ax_res.text(data["budget"], -0.68, f" budget {data['budget']:.0f}%", va="center", fontsize=8)
    for j, key in enumerate(keys):      # totals in a column right of every bar and of the budget line
        r = data["resources"][key]
        ax_res.text(top * 1.02, j, f"{r['total']:.1f}% of {r['capacity']:,}", va="center", fontsize=8,
                    fontweight="bold" if key == data["largest"] else "normal")
    ax_res.set_yticks(range(len(keys)), [data["resources"][k]["label"] for k in keys])
    ax_res.set_ylim(len(keys) - 0.5, -0.9)
    ax_res.set_xlim(0, top * 1.2)
    ax_res.set_xlabel(f"% of the {report['board']}'s resources (estimates), split by layer")
    ax_res.set_title(f"resources against the board: {data['binds']}", loc="left", fontsize=10)
    ax_res.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, title="layer",
                  title_fontsize=8)

    # 2. per-stage cycles against the interval
    interval = data["stages"]["interval"]
    cycles = data["stages"]["cycles"]
    bar_colors = ["tab:red" if c >= interval else "tab:blue" for c in cycles]
    ax_cyc.barh(range(rows), cycles, color=bar_colors)
    ax_cyc.axvline(interval, color="black", linestyle="--", linewidth=1)
    for i, c in enumerate(cycles):
        ax_cyc.text(c, i, f" {c} ({100.0 * c / interval:.0f}%)", va="center", fontsize=8)
    measured = data["stages"]["measured"]
    unit = "token" if report.get("tokens", 1) > 1 else "frame"
    title = f"cycles per {unit} against the interval ({interval}, dashed)"
    if measured:
        ax_cyc.axvline(measured, color="tab:green", linestyle=":", linewidth=1.5)
        title += f"; measured {measured} (dotted)"
    ax_cyc.set_yticks(range(rows), names, fontsize=8)
    ax_cyc.set_ylim(rows - 0.5, -0.5)
    ax_cyc.set_xlim(0, max(interval, measured or 0, *cycles) * 1.3)
    ax_cyc.set_xlabel(f"cycles per {unit} (red: sets the interval)")
    ax_cyc.set_title(title, loc="left", fontsize=10)

    # 3. achieved MACs per cycle against the peak (one MAC per multiplier per cycle)
    macs = data["macs"]
    ys = range(len(macs))
    ax_mac.barh(ys, [m["peak"] for m in macs], color="lightgray")
    ax_mac.barh(ys, [m["achieved"] for m in macs], height=0.5, color="tab:orange")
    for i, m in enumerate(macs):
        share = 100.0 * m["achieved"] / m["peak"] if m["peak"] else 0.0
        ax_mac.text(max(m["peak"], m["achieved"]), i, f" {m['achieved']:.4g} / {m['peak']} ({share:.0f}%)",
                    va="center", fontsize=8)
    ax_mac.set_yticks(list(ys), [m["name"] for m in macs], fontsize=8)
    ax_mac.set_ylim(len(macs) - 0.5, -0.5)
    ax_mac.set_xlim(0, max([m["peak"] for m in macs] + [1]) * 1.45)
    t = data["macs_total"]
    roof = data["roofline"]
    ax_mac.set_xlabel(f"MACs per cycle; design: {t['achieved']:.4g} of {t['peak']} peak; board peak "
                      f"{roof['board_peak']} ({100.0 * t['achieved'] / max(roof['board_peak'], 1):.0f}% of it)")
    ax_mac.set_title("MACs per cycle: achieved (orange) against the peak (gray, one per multiplier)",
                     loc="left", fontsize=10)

    fig.suptitle(f"{project.path.name}: {report['board']} at {report['clock_mhz']:g} MHz, "
                 f"interval {interval} cycles, latency {report['totals']['latency']} cycles (estimates)",
                 fontsize=11)
    return fig


def plot_report(project, path) -> dict:
    """Write the report's figure as a PNG; returns the numbers drawn (:func:`plot_data`)."""
    import matplotlib.pyplot as plt

    fig = draw_report(project)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return plot_data(project)
