"""Benchmark: the open FPGA flow (Yosys synth_ecp5, nextpnr-ecp5, ecppack) on ULX3S boards.

    python -m bench.open_flow                                  # every model x every ULX3S size
    python -m bench.open_flow --models tiny sparse64 --boards ulx3s-85f ulx3s-12f

For each (model, board): ``einhls compile`` (the scheduler folds to the board's MULT18X18D, DP16KD
and LUT4 budget at 80%), then ``einhls bitstream`` (what ``make bitstream`` runs: synth_ecp5,
nextpnr-ecp5 with the generated LPF, ecppack), two nextpnr threads, placer seed 1.  Reported:
the scheduler's estimates, the resources nextpnr placed (the whole board top: accelerator + UART
bridge), the achieved Fmax against the 25 MHz oscillator clock, the bitstream size and the time
of each tool on this machine.  No board was programmed: the timing is nextpnr's static analysis.

Models:
    tiny      int8 MLP 16 -> 16 (ReLU) -> 8, QDQ (the CI test's model)
    sparse64  one 64 x 64 int8 layer, 2:4 sparse weights, QDQ
    demo      the built-in demo (64 -> 64 -> 32 -> 10, 4-bit / 2:4 / int8 layers)

Writes bench/results/open_flow.md and open_flow.json (merged with earlier rows of other pairs).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
BOARDS = ("ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f")
MODELS = ("tiny", "sparse64", "demo")


def _qdq_mlp(layers: list[np.ndarray], name: str, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """x -> QDQ int8 -> (MatMul int8 weights -> [Relu] -> QDQ int8)*; power-of-two scales."""
    nodes, inits = [], []

    def const(value: np.ndarray, tag: str) -> str:
        inits.append(numpy_helper.from_array(value, tag))
        return tag

    def qdq(x: str, tag: str, scale: float) -> str:
        s, z = const(np.array(scale, np.float32), f"{tag}.s"), const(np.array(0, np.int8), f"{tag}.z")
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{tag}.q"], name=f"{tag}.q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tag}.q", s, z], [tag], name=tag))
        return tag

    x = qdq("x", "x_q", 2.0 ** -4)
    for i, w in enumerate(layers):
        wq = const(np.ascontiguousarray(w.T.astype(np.int8)), f"fc{i + 1}.w")
        wd = f"fc{i + 1}.wdq"
        nodes.append(helper.make_node("DequantizeLinear", [wq, const(np.array(2.0 ** -7, np.float32), f"fc{i + 1}.ws"),
                                                           const(np.array(0, np.int8), f"fc{i + 1}.wz")], [wd], name=wd))
        nodes.append(helper.make_node("MatMul", [x, wd], [f"fc{i + 1}"], name=f"fc{i + 1}"))
        x = f"fc{i + 1}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"{x}.relu"], name=f"{x}.relu"))
            x = f"{x}.relu"
        x = qdq(x, f"a{i + 1}_q", 2.0 ** -3)
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, layers[0].shape[1]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, layers[-1].shape[0]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    return model


def build_model(name: str, path: Path) -> Path:
    rng = np.random.default_rng(7)
    if name == "tiny":
        model = _qdq_mlp([rng.integers(-100, 100, size=(16, 16)), rng.integers(-100, 100, size=(8, 16))], "tiny")
    elif name == "sparse64":
        w = rng.integers(1, 100, size=(64, 64)) * rng.choice([-1, 1], size=(64, 64))
        keep = np.zeros_like(w, dtype=bool)
        for r in range(64):
            for g in range(0, 64, 4):
                keep[r, g + rng.choice(4, size=2, replace=False)] = True
        model = _qdq_mlp([np.where(keep, w, 0)], "sparse64", {"einhls.sparsity.fc1": "2:4"})
    elif name == "demo":
        from codegen.demo_model import build_demo_model
        build_demo_model(path)
        return path
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    onnx.save(model, str(path))
    return path


def run_pair(model: str, board: str, work: Path) -> dict:
    from codegen.errors import EinhlsError
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.openflow import TimingFailure, build_bitstream

    row = {"model": model, "board": board}
    onnx_path = build_model(model, work / f"{model}.onnx")
    out = work / f"{model}_{board}"
    start = time.monotonic()
    try:
        project = compile_model(onnx_path, out, CompileOptions(board=board), force=True, progress=lambda *_: None)
    except EinhlsError as exc:
        return {**row, "fits": False, "error": str(exc)}
    row["compile_s"] = round(time.monotonic() - start, 1)
    t = project.report["totals"]
    row["estimate"] = {"ii": t["ii"], "mult18": t["dsp"], "bram36": t["bram36"], "lut4": t["lut"], "ff": t["ff"]}
    try:
        info = build_bitstream(out, threads=2, seed=1, progress=lambda line: print(f"  {line}", flush=True))
    except TimingFailure:
        info = json.loads((out / "deploy" / "build_info.json").read_text())
    except EinhlsError as exc:
        return {**row, "fits": True, "error": str(exc)}
    return {**row, "fits": True, **{k: info[k] for k in ("fmax_mhz", "target_mhz", "met", "critical_ns", "seconds",
                                                          "bitstream_bytes", "utilisation")}}


def table(rows: list[dict]) -> str:
    lines = ["| model | board | interval (cycles) | MULT18X18D est. / placed | DP16KD est. / placed | LUT4 est. / placed "
             "| FF placed | Fmax (MHz) | 25 MHz met | synth s | place & route s | pack s | bitstream |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['board']} | {r['error'][:120]} | | | | | | | | | | |")
            continue
        e, u, s = r["estimate"], r["utilisation"], r["seconds"]
        size = f"{r['bitstream_bytes'] / 1e6:.2f} MB" if r.get("bitstream_bytes") else "-"
        lines.append(f"| {r['model']} | {r['board']} | {e['ii']} | {e['mult18']} / {u['MULT18X18D']} | "
                     f"{e['bram36'] * 2:g} / {u['DP16KD']} | {e['lut4']:,} / {u['LUT4']:,} | {u['FF']:,} | "
                     f"{r['fmax_mhz']:.1f} | {'yes' if r['met'] else 'no'} | {s['synth']:.0f} | {s['pnr']:.0f} | "
                     f"{s.get('pack', 0):.0f} | {size} |")
    return "\n".join(lines)


def write_results(old: list[dict], new: list[dict], argv: list[str] | None) -> list[dict]:
    """Merge ``new`` rows into the earlier ``old`` ones; write open_flow.json and open_flow.md."""
    import platform
    import subprocess
    from codegen.verify.openflow import tool
    done = {(r["model"], r["board"]) for r in new}
    rows = [r for r in old if (r["model"], r["board"]) not in done] + new
    order = {(m, b): (MODELS.index(m), BOARDS.index(b)) for m in MODELS for b in BOARDS}
    rows.sort(key=lambda r: order[(r["model"], r["board"])])
    versions = {}
    for name in ("yosys", "nextpnr"):
        done = subprocess.run([tool(name), "--version"], capture_output=True, text=True)
        found = re.search(r"Yosys [0-9.+]+|nextpnr-[0-9.]+", done.stdout + done.stderr)
        versions[name] = found.group(0) if found else "?"
    (RESULTS / "open_flow.json").write_text(json.dumps({
        "command": "python -m bench.open_flow " + " ".join(sys.argv[1:] if argv is None else argv),
        "tools": versions, "rows": rows}, indent=1) + "\n")
    (RESULTS / "open_flow.md").write_text(
        "# Open FPGA flow on ULX3S (Lattice ECP5)\n\n"
        f"`python -m bench.open_flow` (rows merged from runs with `--models` / `--boards` subsets), on a "
        f"{platform.machine()} machine with 2 cores shared with other jobs (tool times are wall-clock and "
        f"vary with the load); {versions['yosys']}; {versions['nextpnr']}. Each design "
        "is the whole board top (UART bridge + accelerator) at the board's 25 MHz oscillator clock; "
        "*est.* is the scheduler's estimate for the accelerator alone, *placed* is nextpnr's count for the "
        "whole top. Fmax is nextpnr's static timing (speed grade 6); no board was programmed.\n\n"
        + table(rows) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.open_flow", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--boards", nargs="+", default=list(BOARDS), choices=BOARDS)
    parser.add_argument("--keep", type=Path, help="keep the output folders here")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    json_path = RESULTS / "open_flow.json"
    old = json.loads(json_path.read_text())["rows"] if json_path.is_file() else []
    rows = old
    work = Path(tempfile.mkdtemp(prefix="einhls_open_flow_")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    new: list[dict] = []
    try:
        for model in args.models:
            for board in args.boards:
                print(f"{model} on {board} ...", flush=True)
                row = run_pair(model, board, work)
                print(f"  {json.dumps(row)}", flush=True)
                new.append(row)
                rows = write_results(old, new, argv)   # after every pair: a stopped sweep keeps its rows
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
