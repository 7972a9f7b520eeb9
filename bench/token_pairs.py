"""Token pairs in the Linear unit (einhls_linear TOKEN_PACK = 2), measured by Yosys.

    python -m bench.token_pairs          # about 6 minutes on 2 loaded cores (11 Yosys runs, xc7)

Two parts, written to bench/results/token_pairs.md and .json:

1. The issue's comparison: an int8 64x64 layer (64 cycles a token, pynq-z2, a sequence of 2
   tokens) as the scheduler builds it, dense and 2:4 sparse: DSP, LUT (logic + distributed RAM),
   FF and block RAM from ``synth_xilinx -family xc7``, beside the scheduler's estimate.
2. The cost model of token pairs against Yosys: dense and 2:4 64x64 int8 layers with token pairs
   at several SIMD x PE (weight ROM where the cost model puts it).  The estimate is the
   dense-trained calibrated model plus the structural terms of token pairs
   (codegen/schedule/cost.py token_pair_memory_luts and the N:M multiplexers of both tokens);
   tests/test_token_pairs.py checks the stored points stay within 15% (LUT).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))

from bench.linear_yosys import run, scheduled_cells, sweep_cells, synth  # noqa: E402

COMMAND = "python -m bench.token_pairs"
#: (sparsity, simd, pe) of the cost-model sweep, all with token pairs
SWEEP = [((2, 4), 8, 4), ((2, 4), 16, 2), ((2, 4), 4, 8), ((2, 4), 16, 4), ((2, 4), 8, 2),
         (None, 8, 4), (None, 16, 2), (None, 4, 4)]


def layer(tokens: int, sparsity):
    from test_token_pairs import s, token_graph
    return token_graph(64, 64, s(8), 8, s(8, 2.0), tokens, seed=3, sparsity=sparsity)


def scheduled(work: Path) -> list[dict]:
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold
    rows = []
    for name, sparsity in (("dense", None), ("2:4", (2, 4))):
        result = fold(layer(2, sparsity), get_board("pynq-z2"), target_ii=64)
        s, cost = result.design.schedules["layer0"], result.costs["layer0"]
        measured = synth(result.design, work / name.replace(":", "_"))
        rows.append({"layer": name, "simd": s.simd, "pe": s.pe, "token_pack": s.token_pack,
                     "rom": result.design.rom_kinds.get("layer0", ""), "cycles_per_token": cost.ii,
                     "estimate": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp}, "measured": measured})
    return rows


def sweep(work: Path) -> list[dict]:
    from codegen.schedule.cost import op_cost
    from test_token_pairs import paired
    rows = []
    for sparsity, simd, pe in SWEEP:
        design = paired(layer(2, sparsity), simd, pe, 1, 1)
        cost = op_cost(design.graph.ops[0], design.schedules["layer0"], "DSP48E1")
        design.rom_kinds["layer0"] = cost.rom_kind
        measured = synth(design, work / f"{simd}x{pe}_{'nm' if sparsity else 'dense'}")
        rows.append({"layer": "2:4" if sparsity else "dense", "simd": simd, "pe": pe, "rom": cost.rom_kind,
                     "estimate": {"LUT": cost.lut, "FF": cost.ff, "DSP": cost.dsp}, "measured": measured})
        print(rows[-1], flush=True)
    return rows


def table(data: dict) -> str:
    lines = [f"# Token pairs in the Linear unit (Yosys {data['yosys_family']})", "",
             f"Made by `{COMMAND}` ({data['seconds']:.0f} s).  LUT = logic + distributed RAM (LUT_MEM).", "",
             "## int8 64x64 at 64 cycles a token (pynq-z2, 2 tokens a sequence), as scheduled", "",
             "| layer | SIMD x PE | token pairs | ROM | cycles/token | DSP est / Yosys | LUT est / Yosys (logic + RAM) | FF est / Yosys | BRAM36 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in data["scheduled"]:
        lines.append(f"| {r['layer']} | {r['simd']} x {r['pe']} | {'yes' if r['token_pack'] == 2 else 'no'} | {r['rom']} "
                     f"| {r['cycles_per_token']} | {scheduled_cells(r)} |")
    lines += ["", "## The cost model of token pairs against Yosys (64x64 int8, token pairs everywhere)", "",
              "| layer | SIMD x PE | ROM | DSP | LUT est | LUT Yosys (logic + RAM) | error | FF est | FF Yosys | error |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["sweep"]:
        lines.append(f"| {r['layer']} | {r['simd']} x {r['pe']} | {r['rom']} | {r['measured']['DSP']} | {sweep_cells(r)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    run("token_pairs", COMMAND, scheduled, sweep, table)


if __name__ == "__main__":
    main()
