"""The command line of CONTRACT.md: exit codes, no half-written output, determinism."""
from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from codegen.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codegen.cli", *args], capture_output=True, text=True)


def test_boards_lists_required_boards():
    r = run("boards")
    assert r.returncode == 0
    for name in ("pynq-z2", "ultra96-v2", "kv260", "zcu104"):
        assert name in r.stdout
    data = json.loads(run("boards", "--json").stdout)
    assert data["kv260"]["dsp"] == 1248


def test_usage_error_is_exit_2():
    r = run("compile")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def _qdq_linear(path: Path, unary: str | None = None, with_init: bool = True, float_model: bool = False,
                in_shape: list | None = None) -> Path:
    op_type = "MatMul"
    rng = np.random.default_rng(0)
    w = rng.integers(-7, 8, size=(8, 4)).astype(np.float32) * 0.125
    nodes, inits = [], []
    if float_model:
        nodes.append(helper.make_node(op_type, ["x", "w"], ["y"], name="mm"))
    else:
        inits += [numpy_helper.from_array(np.array(0.0625, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in"),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_in"),
                  helper.make_node(unary or "Identity", ["xd"], ["xu"], name="odd_one"),
                  helper.make_node(op_type, ["xu", "w"], ["y0"], name="mm"),
                  helper.make_node("QuantizeLinear", ["y0", "s", "z"], ["yq"], name="q_out"),
                  helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"], name="dq_out")]
    if with_init:
        inits.append(numpy_helper.from_array(w, "w"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape or [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("case", ["truncated", "unsupported", "missing_initializer", "float_model", "no_file",
                                  "dynamic_features"])
def test_bad_input_exit_2_and_no_output(tmp_path, case):
    model = tmp_path / "m.onnx"
    if case == "truncated":
        _qdq_linear(model)
        model.write_bytes(model.read_bytes()[: len(model.read_bytes()) // 2])
    elif case == "unsupported":
        _qdq_linear(model, unary="Softsign")  # not a layer einhls builds
    elif case == "missing_initializer":
        _qdq_linear(model, with_init=False)
    elif case == "float_model":
        _qdq_linear(model, float_model=True)
    elif case == "dynamic_features":  # a symbolic feature size cannot be fixed like a batch
        _qdq_linear(model, in_shape=["batch", "features"])
    out = tmp_path / "out"
    r = run("compile", str(model), "--board", "pynq-z2", "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("einhls: error:") and "Traceback" not in r.stderr
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    if case == "unsupported":
        assert "odd_one" in r.stderr and "Softsign" in r.stderr
    if case == "float_model":
        assert "--default-type" in r.stderr


def test_existing_output_needs_force(tmp_path):
    model = _qdq_linear(tmp_path / "m.onnx")
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out)]) == 0
    assert main(["compile", str(model), "-o", str(out)]) == 2
    assert main(["compile", str(model), "-o", str(out), "--force"]) == 0


def test_same_input_gives_byte_identical_output(tmp_path):
    model = _qdq_linear(tmp_path / "m.onnx")
    assert main(["compile", str(model), "-o", str(tmp_path / "a")]) == 0
    assert main(["compile", str(model), "-o", str(tmp_path / "b")]) == 0
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")

    def same(c: filecmp.dircmp) -> bool:
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        return not (mismatch or errors or c.left_only or c.right_only) and all(same(s) for s in c.subdirs.values())
    assert same(cmp)


def test_report_json_is_one_object(tmp_path):
    model = _qdq_linear(tmp_path / "m.onnx")
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out)]) == 0
    r = run("report", str(out), "--json")
    data = json.loads(r.stdout)
    assert data["layers"][0]["macs"] == 32 and data["totals"]["ii"] >= 1
    text = run("report", str(out)).stdout
    assert "layer" in text and "DSP" in text
    png = tmp_path / "report.png"
    assert run("report", str(out), "--plot", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deploy_without_bitstream_is_exit_2(tmp_path):
    model = _qdq_linear(tmp_path / "m.onnx")
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out)]) == 0
    r = run("deploy", str(out))
    assert r.returncode == 2 and "bitstream" in r.stderr
