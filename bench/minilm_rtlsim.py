"""all-MiniLM-L6-v2's encoder layer 0 (dense int8) in RTL simulation at a sequence length: the
cycles the Verilog takes, measured, against the schedule, and the wall time of the run.

    python -m bench.minilm_rtlsim [--tokens 128] [--board kv260] [--sequences 2] [--paused 1]

The layer is exported at 16 tokens and moved to ``--tokens`` by the sequence-length pass (as the
tests do), compiled for ``--board``, and verified by ``einhls verify --rtlsim``'s code path
(codegen.verify.runner.verify): ``--sequences`` stored sequences back to back (latency, and the
interval between the last two completions), then the first ``--paused`` of them again with random
input gaps and output back-pressure; every element of every sequence of both passes compared with
the integer reference.  The simulation's own wall time and simulated cycles come from cocotb's
summary; the rest of ``verify`` is the Verilator build (cached by the hash of the Verilog: a run
that found it built says so), the reference and the run's set-up.

Adds a row to bench/results/minilm.json (key ``rtlsim``, one row per board and length, with the
command) and rewrites bench/results/minilm.md (bench.minilm's writer).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from codegen.project import CompileOptions, compile_model  # noqa: E402
from codegen.verify.runner import verify  # noqa: E402
from models import minilm  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXPORT_LENGTH = 16
CLOCK_NS = 10      # testbench/cocotb/test_einhls.py


def simulation_summary(sim_log: Path) -> tuple[int, float] | None:
    """(simulated clock cycles, wall seconds) from the cocotb regression's summary line (SIM TIME in
    ns at the test bench's 10 ns clock, REAL TIME)."""
    if not sim_log.is_file():
        return None
    match = re.search(r"TESTS=\d+ PASS=\d+ FAIL=\d+ SKIP=\d+\s+([\d.]+)\s+([\d.]+)", sim_log.read_text())
    return (round(float(match.group(1)) / CLOCK_NS), float(match.group(2))) if match else None


def measure(tokens: int, board: str, sequences: int, paused: int, work: Path) -> dict:
    layer = minilm.export_layers(work / "layer.onnx", EXPORT_LENGTH)
    start = time.time()
    project = compile_model(layer, work / "out", CompileOptions(board=board, sequence_length=tokens),
                            progress=lambda *_: None)
    compile_s = time.time() - start
    printed = io.StringIO()        # run_rtlsim says whether it built Verilator or found the build cached
    start = time.time()
    with contextlib.redirect_stdout(printed):
        (result,) = verify(project, ("rtlsim",), vectors=0, stored=sequences, paused=paused, progress=print)
    verify_s = time.time() - start
    print(printed.getvalue(), end="", flush=True)
    totals = project.report["totals"]
    simulated, sim_s = simulation_summary(project.path / "build" / "rtlsim" / "rtlsim_run" / "sim.log") or (None, None)
    measured = result.measured or {}
    interval = measured.get("interval_cycles")
    latency = measured.get("latency_cycles")
    return {
        "model": "all-MiniLM-L6-v2 layer 0, dense int8", "board": board, "tokens": tokens,
        "passed": result.passed, "result": result.line(),
        "sequences_back_to_back": sequences, "sequences_paused": paused,
        "schedule_cycles_per_token": totals["ii"], "schedule_cycles_per_sequence": totals["frame_interval"],
        "schedule_latency_cycles": totals["latency"],
        "measured_interval_cycles": interval,
        "measured_cycles_per_token": round(interval / tokens, 1) if interval else None,
        "measured_latency_cycles": latency,
        "compile_s": round(compile_s, 1), "verify_s": round(verify_s, 1),
        "simulation_s": round(sim_s, 1) if sim_s is not None else None,
        "build_reused": "reusing the Verilator build" in printed.getvalue(),
        "simulated_cycles": simulated,
        "simulated_cycles_per_s": round(simulated / sim_s) if sim_s and simulated else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--board", default="kv260")
    parser.add_argument("--sequences", type=int, default=2, help="stored sequences back to back (>= 2 for an interval)")
    parser.add_argument("--paused", type=int, default=1, help="of them again with random gaps and back-pressure")
    args = parser.parse_args(argv)
    command = (f"python -m bench.minilm_rtlsim --tokens {args.tokens} --board {args.board} "
               f"--sequences {args.sequences} --paused {args.paused}")
    with tempfile.TemporaryDirectory() as tmp:
        row = measure(args.tokens, args.board, args.sequences, args.paused, Path(tmp))
    row["command"] = command
    print(json.dumps(row), flush=True)

    from bench.minilm import write_markdown
    path = RESULTS / "minilm.json"
    data = json.loads(path.read_text()) if path.is_file() else {"command": "python -m bench.minilm",
                                                                "accuracy": [], "schedule": []}
    rows = [r for r in data.get("rtlsim", []) if (r["board"], r["tokens"]) != (row["board"], row["tokens"])]
    data["rtlsim"] = sorted(rows + [row], key=lambda r: (r["tokens"], r["board"]))
    path.write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(data)
    if not row["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
