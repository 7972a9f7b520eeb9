"""What the Linear-unit packing benchmarks (bench/int4_packing.py, bench/token_pairs.py) share: a
Yosys run of one design, the estimate-against-Yosys cells of their tables, and the run that writes
bench/results/NAME.{json,md}."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def synth(design, work: Path, family: str = "xc7") -> dict:
    """Yosys ``synth_xilinx`` counts of ``design``'s Verilog (emitted under ``work``)."""
    from codegen.emit.rtl import emit_rtl
    from codegen.verify.yosys import synth_counts
    emit_rtl(design, work)
    counts = synth_counts(work / "rtl", design.top_name, family, work / "yosys")
    return {k: counts[k] for k in ("LUT", "LUT_MEM", "FF", "DSP", "BRAM")}


def scheduled_cells(row: dict) -> str:
    """DSP, LUT (logic + distributed RAM), FF as estimate / Yosys, then Yosys's block RAM."""
    e, m = row["estimate"], row["measured"]
    return (f"{e['DSP']} / {m['DSP']} | {e['LUT']} / {m['LUT'] + m['LUT_MEM']} ({m['LUT']} + {m['LUT_MEM']}) "
            f"| {e['FF']} / {m['FF']} | {m['BRAM']:g}")


def sweep_cells(row: dict) -> str:
    """LUT estimate, Yosys (logic + RAM) and the relative error, then the same for FF."""
    e, m = row["estimate"], row["measured"]
    lut = m["LUT"] + m["LUT_MEM"]
    return (f"{e['LUT']} | {lut} ({m['LUT']} + {m['LUT_MEM']}) | {e['LUT'] / lut - 1:+.0%} "
            f"| {e['FF']} | {m['FF']} | {e['FF'] / m['FF'] - 1:+.0%}")


def run(name: str, command: str, scheduled: Callable[[Path], list[dict]],
        sweep: Callable[[Path], list[dict]], table: Callable[[dict], str],
        parts: dict[str, Callable[[Path], list[dict]]] | None = None) -> None:
    """Measure both parts (and any further ``parts``, stored under their key) in a scratch folder,
    write the JSON and the Markdown table, print it."""
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = {"command": command, "yosys_family": "xc7", "scheduled": scheduled(work), "sweep": sweep(work)}
        for key, part in (parts or {}).items():
            data[key] = part(work / key)
    data["seconds"] = time.time() - start
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    text = table(data)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
