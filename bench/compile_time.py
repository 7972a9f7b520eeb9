"""Benchmark: compile time and peak memory of `einhls compile` on BERT-base-sized models.

    python -m bench.compile_time

Cases (int8 activations, power-of-two scales, random weights with a fixed seed; QDQ ONNX written
with onnx.helper, built before the clock starts):

  refuse_bert_chain   12 x (768 -> 3072 -> 768), int8 weights (56.6 M weights, 56.6 MB): more
                      than any board here holds; must be refused (exit 2, naming the sizes) in
                      under 5 s, on every board.
  bert_ffn_2of4_int4  one BERT-base feed-forward block 768 -> 3072 -> 768, 2:4 sparse with int4
                      weights (opset 21), for zcu104: compiled end to end (lowering, scheduling,
                      emission of HLS, Verilog, testbenches).
  minilm_ffn_kv260    one MiniLM feed-forward block 384 -> 1536 -> 384, int8, for kv260 (weights
                      in UltraRAM).
  bert_tt_chain       the 12-block chain of refuse_bert_chain compressed to fit: every Linear a
                      tensor train (768 = 8 x 8 x 12, 3072 = 12 x 16 x 16, rank 4, random 8-bit
                      cores), written by torch.onnx.export + quantize_static
                      (tests/models/bert_base.py), for zcu102 (its contraction stages' buffers
                      take more block RAM than the zcu104 has).
  bert_base_encoder   a whole BERT-base-sized encoder (12 layers of attention, 12 heads of 64,
                      LayerNorm, GELU; tensor-train FFNs as above, 1:8 attention projections,
                      4-bit weights, 16 tokens) for zcu104: lowered and scheduled, and refused
                      there (it does not fit any board here); the time to that answer.
  bert_base_encoder_tt
                      the same encoder compressed harder: the attention projections tensor
                      trains too (768 = 8 x 8 x 12 both sides, rank 4), for zcu102: the weights
                      are small, but the contraction stages' buffers (block RAM only) do not fit;
                      the time to that answer.
  bert_base_encoder_fit
                      the encoder compressed until it fits (tests/models/bert_base.py FITTING:
                      every Linear a two-core tensor train of rank 2, 768 = 24 x 32, 3072 = 48 x
                      64), for zcu102: compiled end to end (lowering, scheduling, emission).
  bert_base_encoder_fit_zcu104
                      the same model for zcu104, where the stages' buffers can go to UltraRAM:
                      still refused (the time to that answer).

Every case runs in a fresh Python process (`python -m codegen.cli compile ...`), so the wall time
includes interpreter start and imports, and the peak memory (ru_maxrss of the child) is that
compile's alone; cpu_s is the child's user + system CPU time, which other jobs on the machine
change less than the wall time.  Writes bench/results/compile_time.json and compile_time.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper
import onnx

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
BOARDS = ("pynq-z1", "pynq-z2", "ultra96-v2", "zcu102", "zcu104", "kv260")


def _chain(path: Path, sizes: list[int], blocks: int, bits: int, two_of_four: bool, seed: int) -> Path:
    """blocks x (MatMul sizes[0] -> sizes[1], Relu, MatMul sizes[1] -> sizes[0]) with QDQ."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, array, elem=None):
        if elem == TensorProto.INT4:
            inits.append(helper.make_tensor(name, elem, list(array.shape), array.ravel().tolist()))
        else:
            inits.append(numpy_helper.from_array(array, name))
        return name

    def qdq(x, scale, zp, tag):
        s = const(f"{tag}_s", np.array(scale, dtype=np.float32))
        z = const(f"{tag}_z", np.array(zp, dtype=np.int8))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{tag}_q"], name=f"{tag}_q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tag}_q", s, z], [f"{tag}_dq"], name=f"{tag}_dq"))
        return f"{tag}_dq"

    lo, hi = -(1 << (bits - 1)) + 1, 1 << (bits - 1)
    elem = TensorProto.INT4 if bits == 4 else TensorProto.INT8
    x = qdq("x", 2.0 ** -4, 0, "in")
    count = 0
    for b in range(blocks):
        for k, n in ((sizes[0], sizes[1]), (sizes[1], sizes[0])):
            count += 1
            w = rng.integers(lo, hi, size=(k, n)).astype(np.int8)
            if two_of_four:   # keep 2 of every 4 consecutive inputs (MatMul weights are [in, out])
                keep = np.argsort(rng.random((k // 4, 4, n)), axis=1)[:, :2, :]
                mask = np.zeros((k // 4, 4, n), dtype=bool)
                np.put_along_axis(mask, keep, True, axis=1)
                w = np.where(mask.reshape(k, n), w, 0).astype(np.int8)
            wq = const(f"w{count}", w, elem)
            ws = const(f"w{count}_s", np.array(2.0 ** -9, dtype=np.float32))
            wz = const(f"w{count}_z", np.array(0, dtype=np.int8), elem)
            if elem == TensorProto.INT4:
                inits.pop()
                inits.append(helper.make_tensor(f"w{count}_z", elem, [], [0]))
            nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [f"w{count}_dq"], name=f"w{count}_dq"))
            nodes.append(helper.make_node("MatMul", [x, f"w{count}_dq"], [f"mm{count}"], name=f"fc{count}"))
            x = f"mm{count}"
            if k == sizes[0]:
                nodes.append(helper.make_node("Relu", [x], [f"relu{count}"], name=f"relu{count}"))
                x = qdq(f"relu{count}", 2.0 ** -4, -128, f"a{count}")
            else:
                x = qdq(x, 2.0 ** -4, 0, f"a{count}")
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, sizes[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, sizes[0]])], inits)
    opset = 21 if bits == 4 else 13
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset >= 21 else 8
    onnx.save(model, str(path))
    return path


_CHILD = """
import resource, sys
from codegen.cli import main
code = main(sys.argv[1:])
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _run(model: Path, board: str, out: Path) -> dict:
    """One `einhls compile` in a child process: wall seconds, seconds per phase (from the time its
    `[i/4] ...` progress lines arrive), exit code, its peak RSS, last line."""
    import resource
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, "compile", str(model), "--board", board,
                             "-o", str(out), "--force"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT.parent)
    lines, marks = [], []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("["):
            marks.append((line.split("]")[1].strip().split()[0], time.perf_counter() - start))
    proc.wait()
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    peak = next((int(l.split()[1]) for l in lines if l.startswith("peak_rss_kb")), 0)
    lines = [l for l in lines if not l.startswith("peak_rss_kb")]
    # a phase lasts from its progress line to the next one (the last: to the process's end);
    # before the first line: interpreter start, imports and the capacity check
    phases = {"start": round(marks[0][1], 2) if marks else round(wall, 2)}
    for (name, at), (_, until) in zip(marks, marks[1:] + [("end", wall)]):
        phases[name] = round(until - at, 2)
    return {"board": board, "exit_code": proc.returncode, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "phases_s": phases,
            "peak_rss_mb": round(peak / 1024, 1), "message": lines[-1] if lines else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    results = {"command": "python -m bench.compile_time", "machine": f"{platform.machine()}, "
               f"{os.cpu_count()} CPUs visible", "load_average_at_start": os.getloadavg()[0], "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chain = _chain(tmp / "bert_chain.onnx", [768, 3072], 12, 8, False, 0)
        results["cases"]["refuse_bert_chain"] = [_run(chain, board, tmp / f"out_{board}") for board in BOARDS]
        ffn = _chain(tmp / "bert_ffn.onnx", [768, 3072], 1, 4, True, 1)
        results["cases"]["bert_ffn_2of4_int4"] = [_run(ffn, "zcu104", tmp / "out_ffn")]
        mini = _chain(tmp / "minilm.onnx", [384, 1536], 1, 8, False, 2)
        results["cases"]["minilm_ffn_kv260"] = [_run(mini, "kv260", tmp / "out_mini")]
        sys.path.insert(0, str(ROOT.parent))
        from tests.models.bert_base import FITTING, export_bert_base, export_tt_chain
        print("building the tensor-train chain and the BERT-base encoder (not timed) ...", flush=True)
        tt_chain = export_tt_chain(tmp / "bert_tt_chain.onnx")
        results["cases"]["bert_tt_chain"] = [_run(tt_chain, "zcu102", tmp / "out_tt_chain")]
        encoder = export_bert_base(tmp / "bert_base_encoder.onnx")
        results["cases"]["bert_base_encoder"] = [_run(encoder, "zcu104", tmp / "out_encoder")]
        encoder_tt = export_bert_base(tmp / "bert_base_encoder_tt.onnx", projections="tt")
        results["cases"]["bert_base_encoder_tt"] = [_run(encoder_tt, "zcu102", tmp / "out_encoder_tt")]
        encoder_fit = export_bert_base(tmp / "bert_base_encoder_fit.onnx", **FITTING)
        results["cases"]["bert_base_encoder_fit"] = [_run(encoder_fit, "zcu102", tmp / "out_encoder_fit")]
        results["cases"]["bert_base_encoder_fit_zcu104"] = [_run(encoder_fit, "zcu104", tmp / "out_fit_zcu104")]
    results["load_average_at_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compile_time.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# Compile time (`python -m bench.compile_time`)", "",
             "Wall time of `einhls compile` in a fresh process (imports included), its CPU time and peak RSS. "
             f"Machine: {results['machine']}; load average {results['load_average_at_start']:.1f} at the start, "
             f"{results['load_average_at_end']:.1f} at the end (other jobs: the wall times grow with it).", "",
             "Phases: `start` = interpreter, imports and the ONNX capacity check; then lowering, scheduling, "
             "emitting (HLS, Verilog, testbenches, Vivado, driver) and the reference vectors.", "",
             "| case | board | exit | wall (s) | CPU (s) | phases (s) | peak RSS (MB) | last line |",
             "|---|---|---|---|---|---|---|---|"]
    for case, rows in results["cases"].items():
        for r in rows:
            msg = r["message"].replace("|", "/")[:160]
            phases = ", ".join(f"{k} {v}" for k, v in r["phases_s"].items())
            lines.append(f"| {case} | {r['board']} | {r['exit_code']} | {r['wall_s']} | {r.get('cpu_s', '')} | {phases} | "
                         f"{r['peak_rss_mb']} | {msg} |")
    (RESULTS / "compile_time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
