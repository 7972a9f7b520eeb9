"""`einhls report`: the estimates of report.json as a table, with measurements beside them."""
from __future__ import annotations


COLUMNS = (("layer", "name", "<"), ("kind", "kind", "<"), ("in>out", None, ">"), ("N:M", "sparsity", ">"),
           ("simd x pe", None, ">"), ("mults", "multipliers", ">"), ("dense eq.", "dense_multipliers", ">"),
           ("cycles", "cycles", ">"), ("II", "ii", ">"), ("DSP", "dsp", ">"), ("BRAM36", "bram36", ">"),
           ("URAM", "uram", ">"), ("ROM in", "rom_kind", "<"), ("LUT", "lut", ">"), ("FF", "ff", ">"), ("MACs", "macs", ">"), ("weight bits", "weight_bits", ">"))


def _cell(layer: dict, title: str, key: str | None) -> str:
    if title == "in>out":
        return f"{layer['in_size']}>{layer['out_size']}"
    if title == "simd x pe":
        if layer["kind"] == "contract":   # a contraction stage: the Linear unit, R times per frame
            return f"{layer['repeats']}x {layer['simd']}x{layer['pe']}"
        if layer["kind"] == "butterfly":  # P butterfly units (2 inputs each)
            return f"P={layer['units']}"
        return f"{layer['simd']}x{layer['pe']}" if layer["kind"] == "linear" else f"{layer['in_lanes']} lanes"
    value = layer.get(key)
    if value is None or value == "":
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_report(project) -> str:
    report, measured = project.report, project.measured
    rows = [[_cell(layer, title, key) for title, key, _ in COLUMNS] for layer in report["layers"]]
    t = report["totals"]
    rows.append(["total", "", "", "", "", str(t["multipliers"]), "", "", str(t["ii"]), str(t["dsp"]),
                 f"{t['bram36']:g}", str(t.get("uram", 0)), "", str(t["lut"]), str(t["ff"]), str(t["macs"]), str(t["weight_bits"])])
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
    if project.design.board.open_flow:
        lines.append(f"units on {report['board']}: DSP = {project.design.board.dsp_kind}, LUT = "
                     f"{project.design.board.lut_kind}, BRAM36 = two {project.design.board.bram_kind} (18 Kb each)")
    for note in report.get("notes", []):
        lines.append(f"schedule: {note}")
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
        lines.append(f"fifo: {fifo['depth']} beats in front of {fifo['op']} input {fifo['input']} "
                     f"({fifo['tensor']}), from the latency difference of the reconverging paths")
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
