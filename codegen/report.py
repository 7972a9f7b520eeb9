"""`einhls report`: the estimates of report.json as a table, with measurements beside them."""
from __future__ import annotations

import dataclasses


COLUMNS = (("layer", "name", "<"), ("kind", "kind", "<"), ("in>out", None, ">"), ("N:M", "sparsity", ">"),
           ("simd x pe", None, ">"), ("mults", "multipliers", ">"), ("dense eq.", "dense_multipliers", ">"),
           ("cycles", "cycles", ">"), ("II", "ii", ">"), ("DSP", "dsp", ">"), ("BRAM36", "bram36", ">"),
           ("LUT", "lut", ">"), ("FF", "ff", ">"), ("MACs", "macs", ">"), ("weight bits", "weight_bits", ">"))


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
            return f"{layer['repeats']}x {layer['simd']}x{layer['pe']}"
        if layer["kind"] == "butterfly":  # P butterfly units (2 inputs each)
            return f"P={layer['units']}"
        return f"{layer['simd']}x{layer['pe']}" if layer["kind"] == "linear" else f"{layer['in_lanes']} lanes"
    value = layer.get(key)
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_report(project) -> str:
    report, measured = project.report, project.measured
    rows = [[_cell(layer, title, key) for title, key, _ in COLUMNS] for layer in report["layers"]]
    t = report["totals"]
    rows.append(["total", "", "", "", "", str(t["multipliers"]), "", "", str(t["ii"]), str(t["dsp"]),
                 f"{t['bram36']:g}", str(t["lut"]), str(t["ff"]),
                 str(sum(performed_macs(layer) for layer in report["layers"])), str(t["weight_bits"])])
    widths = [max(len(title), *(len(r[i]) for r in rows)) for i, (title, _, _) in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(f"{c:{a}{w}}" for c, w, (_, _, a) in zip(cells, widths, COLUMNS))
    lines = [f"einhls report: {project.path}  board {report['board']} ({report['part']}) at {report['clock_mhz']:g} MHz",
             fmt([title for title, _, _ in COLUMNS]), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows[:-1]] + [fmt(["-" * w for w in widths]), fmt(rows[-1])]
    u = report["utilisation"]
    lines.append(f"estimated: interval {t['ii']} cycles ({report['throughput_fps']:g} frames/s), latency "
                 f"{t['latency']} cycles ({report['latency_us']:g} us); utilisation DSP {u['dsp']:.1%}, "
                 f"BRAM {u['bram36']:.1%}, LUT {u['lut']:.1%}, FF {u['ff']:.1%}")
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
                     f"interval {m.get('interval_cycles')} cycles (estimate {t['ii']})")
    if "yosys" in measured:
        y = measured["yosys"]
        lines.append(f"measured ({y.get('yosys', 'Yosys')} synth_xilinx -family {y.get('family')}): "
                     f"LUT {y['LUT']} (+{y['LUT_MEM']} as ROM), FF {y['FF']}, DSP {y['DSP']}, "
                     f"BRAM36 {y['BRAM']:g}, CARRY {y['CARRY']} "
                     f"(estimates: LUT {t['lut']}, FF {t['ff']}, DSP {t['dsp']}, BRAM36 {t['bram36']:g})")
    return "\n".join(lines)


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
                       "own multiplexed input, cannot")
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

    print(f"yosys: synth_xilinx -family {project.design.board.yosys_family} on {project.path / 'rtl'} ...")
    try:
        counts = synth_counts(project.path / "rtl", project.design.top_name,
                              project.design.board.yosys_family, project.path / "build" / "yosys")
    except YosysError as exc:
        raise EinhlsError(f"Yosys could not synthesize {project.path / 'rtl'}: {exc}") from None
    counts["family"] = project.design.board.yosys_family
    project.save_measured({"yosys": counts})
    return counts


def plot_report(project, path) -> None:
    """Per-layer estimated cycles against the interval, and DSP/LUT shares: where the time and the
    resources go (a PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = project.report
    layers = report["layers"]
    names = [layer["name"] for layer in layers]
    fig, (ax_cycles, ax_res) = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 2.5))
    ax_cycles.barh(names, [layer["ii"] for layer in layers], color="tab:blue", label="estimated II")
    measured = project.measured.get("rtlsim", {}).get("interval_cycles")
    if measured:
        ax_cycles.axvline(measured, color="tab:red", linestyle="--", label=f"measured interval ({measured})")
    ax_cycles.set_xlabel("cycles per frame")
    ax_cycles.invert_yaxis()
    ax_cycles.legend(loc="lower right")
    totals = report["totals"]
    for i, key in enumerate(("dsp", "lut", "ff")):
        share = [100.0 * layer[key] / max(totals[key], 1) for layer in layers]
        ax_res.barh([y + 0.25 * i for y in range(len(names))], share, height=0.25, label=key.upper())
    ax_res.set_yticks(range(len(names)), names)
    ax_res.invert_yaxis()
    ax_res.set_xlabel("% of the design's total (estimates)")
    ax_res.legend(loc="lower right")
    fig.suptitle(f"{project.path.name}: {report['board']} at {report['clock_mhz']:g} MHz, "
                 f"interval {totals['ii']} cycles")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
