"""Four 4-bit products per DSP in the Linear unit (PE pairs x token pairs, and PE quads for one
vector), measured by Yosys.

    python -m bench.int4_packing         # about 2.5 minutes on 2 loaded cores (17 Yosys runs)

Three parts, written to bench/results/int4_packing.md and .json:

1. The issue's comparison: a dense a4w4 64x64 layer at 64 cycles a token (POINTS): the
   scheduler's choice on pynq-z2 for one token (no pairs: LUT multipliers) and for a sequence of
   2 tokens, the four-products-per-DSP shape SIMD 8 x PE 4 ((w[2q+1] * 2^T + w[2q]) *
   (x_t1 * 2^S + x_t0)) built for pynq-z2, and the scheduler's choice on kv260 (synthesized for
   xcup); DSP / LUT (logic + distributed RAM) / FF / block RAM from Yosys ``synth_xilinx`` beside
   the scheduler's estimate and FINN's RTL MVU int4 figure.
2. The quad cost model (codegen/schedule/cost.py _quad_cost) against Yosys at several SIMD x PE
   (weight ROM where the cost model puts it); tests/test_quad_pack.py checks the stored points.
3. PE quads (``pe_quads``): the same layer for ONE vector, four PEs per DSP
   ((w[4q+3] * 2^(3S) + w[4q+2] * 2^(2S) + w[4q+1] * 2^S + w[4q]) * x, einhls_linear PACK = 4) at
   several SIMD x PE and both ROM kinds on xc7 (the first row is the issue's SIMD 8 x PE 8 at 64
   cycles), and the scheduler's choice on kv260 for one vector (synthesized for xcup), each beside
   the cost model's estimate (cost.py _pe_quad_cost); tests/test_pe_quad.py checks the stored
   xc7 points.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from bench.linear_yosys import run, scheduled_cells, sweep_cells, synth  # noqa: E402

COMMAND = "python -m bench.int4_packing"
FINN_INT4 = {"LUT": 1558, "DSP": 16}   # FINN RTL MVU, a4w4 64x64, same Yosys (README yardstick table)
#: (simd, pe) of the cost-model sweep, all four products per DSP, 2 tokens
SWEEP = [(8, 4), (16, 2), (4, 8), (16, 4), (8, 2)]


#: (simd, pe, ROM kind) of the PE-quad part, one vector; the first is the issue's shape (64 cycles)
PE_QUAD_SWEEP = [(8, 8, "bram"), (8, 8, "lutram"), (16, 4, "bram"), (16, 4, "lutram"), (4, 16, "bram"),
                 (8, 4, "bram"), (16, 8, "lutram")]


def layer(tokens: int):
    from test_quad_pack import s, token_graph
    return token_graph(64, 64, s(4), 4, s(4, 2.0), tokens, seed=3)


#: (label, board, tokens, forced (simd, pe) with token pairs or None for the scheduler's choice, Yosys family)
POINTS = [
    ("scheduler, pynq-z2, 1 token", "pynq-z2", 1, None, "xc7"),
    ("scheduler, pynq-z2, 2 tokens", "pynq-z2", 2, None, "xc7"),
    ("quad SIMD 8 x PE 4, pynq-z2, 2 tokens", "pynq-z2", 2, (8, 4), "xc7"),
    ("scheduler, kv260, 2 tokens", "kv260", 2, None, "xcup"),
]


def scheduled(work: Path) -> list[dict]:
    from codegen.schedule.boards import get_board
    from codegen.schedule.cost import op_cost
    from codegen.schedule.folding import fold
    from codegen.schedule.packing import quad_config
    from test_quad_pack import quad
    rows = []
    for index, (label, board, tokens, forced, family) in enumerate(POINTS):
        b = get_board(board)
        result = fold(layer(tokens), b, target_ii=64)
        design, cost = result.design, result.costs["layer0"]
        if forced:
            design = quad(layer(tokens), *forced, 1, 1, board=board)
            cost = op_cost(design.graph.ops[0], design.schedules["layer0"], b.dsp_kind)
            design.rom_kinds["layer0"] = cost.rom_kind
        s = design.schedules["layer0"]
        op = design.graph.ops[0]
        measured = synth(design, work / f"point_{index}", family)
        rows.append({"label": label, "board": board, "family": family, "tokens": tokens, "simd": s.simd,
                     "pe": s.pe, "token_pack": s.token_pack, "quad": list(quad_config(op, s, b.dsp_kind)),
                     "rom": design.rom_kinds.get("layer0", ""), "cycles_per_token": cost.ii,
                     "estimate": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp}, "measured": measured})
        print(rows[-1], flush=True)
    return rows


def sweep(work: Path) -> list[dict]:
    from codegen.schedule.cost import op_cost
    from test_quad_pack import quad
    rows = []
    for simd, pe in SWEEP:
        design = quad(layer(2), simd, pe, 1, 1)
        cost = op_cost(design.graph.ops[0], design.schedules["layer0"], "DSP48E1")
        design.rom_kinds["layer0"] = cost.rom_kind
        measured = synth(design, work / f"{simd}x{pe}")
        rows.append({"simd": simd, "pe": pe, "rom": cost.rom_kind,
                     "estimate": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp}, "measured": measured})
        print(rows[-1], flush=True)
    return rows


def pe_quads(work: Path) -> list[dict]:
    from codegen.examples import manual_design
    from codegen.schedule.boards import get_board
    from codegen.schedule.cost import linear_cost
    from codegen.schedule.design import OpSchedule
    from codegen.schedule.folding import fold
    from codegen.schedule.packing import pe_quad_config
    rows = []
    points = [(simd, pe, rom, "pynq-z2", "xc7", False) for simd, pe, rom in PE_QUAD_SWEEP]
    points.append((0, 0, "", "kv260", "xcup", True))
    for simd, pe, rom, board, family, scheduler in points:
        b = get_board(board)
        if scheduler:
            result = fold(layer(1), b, target_ii=64)
            design, cost = result.design, result.costs["layer0"]
            rom = design.rom_kinds.get("layer0", "")
        else:
            design = manual_design(layer(1), {"layer0": (simd, pe, 1, 1)}, board=board)
            design.schedules["layer0"] = OpSchedule("layer0", simd, pe, 1, 1, pe_pack=4)
            design.rom_kinds["layer0"] = rom
            cost = linear_cost(design.graph.ops[0], design.schedules["layer0"], b.dsp_kind, rom_kind=rom)
        s = design.schedules["layer0"]
        measured = synth(design, work / f"{s.simd}x{s.pe}_{rom}_{family}", family)
        rows.append({"label": f"scheduler, {board}, 1 vector" if scheduler else f"PE quads {s.simd} x {s.pe}",
                     "board": board, "family": family, "simd": s.simd, "pe": s.pe, "pe_pack": s.pe_pack,
                     "quad": list(pe_quad_config(design.graph.ops[0], s, b.dsp_kind)), "rom": rom,
                     "cycles": cost.ii, "estimate": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp},
                     "measured": measured})
        print(rows[-1], flush=True)
    return rows


def table(data: dict) -> str:
    lines = ["# Four 4-bit products per DSP in the Linear unit (Yosys synth_xilinx)", "",
             f"Made by `{COMMAND}` ({data['seconds']:.0f} s).  LUT = logic + distributed RAM (LUT_MEM).", "",
             "## a4w4 64x64 at 64 cycles a token", "",
             "| design | Yosys family | SIMD x PE | products per DSP | ROM | cycles/token | DSP est / Yosys "
             "| LUT est / Yosys (logic + RAM) | FF est / Yosys | BRAM36 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["scheduled"]:
        per_dsp = "4 (PE pairs x token pairs)" if r["quad"][0] else "- (LUT multipliers)"
        lines.append(f"| {r['label']} | {r['family']} | {r['simd']} x {r['pe']} | {per_dsp} | {r['rom']} "
                     f"| {r['cycles_per_token']} | {scheduled_cells(r)} |")
    lines.append(f"| FINN MVU int4 (its README figure) | xc7 | | | | | {FINN_INT4['DSP']} | {FINN_INT4['LUT']:,} | | |")
    lines += ["", "## The quad cost model against Yosys (a4w4 64x64, 2 tokens, four products per DSP)", "",
              "| SIMD x PE | ROM | DSP est / Yosys | LUT est | LUT Yosys (logic + RAM) | error "
              "| FF est | FF Yosys | error |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in data["sweep"]:
        lines.append(f"| {r['simd']} x {r['pe']} | {r['rom']} | {r['estimate']['DSP']} / {r['measured']['DSP']} "
                     f"| {sweep_cells(r)} |")
    lines += ["", "## PE quads: four PEs per DSP for one vector (a4w4 64x64, no token axis)", "",
              "(w[4q+3] * 2^(3S) + w[4q+2] * 2^(2S) + w[4q+1] * 2^S + w[4q]) * x, einhls_linear PACK = 4; "
              "S and the chain from schedule/packing.py pe_quad_config.", "",
              "| design | Yosys family | SIMD x PE | S, chain | ROM | cycles | DSP est / Yosys | LUT est "
              "| LUT Yosys (logic + RAM) | error | FF est | FF Yosys | error | BRAM36 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data.get("pe_quads", []):
        lines.append(f"| {r['label']} | {r['family']} | {r['simd']} x {r['pe']} | {r['quad'][0]}, {r['quad'][1]} "
                     f"| {r['rom']} | {r['cycles']} | {r['estimate']['DSP']} / {r['measured']['DSP']} "
                     f"| {sweep_cells(r)} | {r['measured']['BRAM']:g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    run("int4_packing", COMMAND, scheduled, sweep, table, parts={"pe_quads": pe_quads})


if __name__ == "__main__":
    main()
