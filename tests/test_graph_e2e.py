"""Graph-shaped models end to end: torch export + onnxruntime quantize_static, `einhls compile`,
C-sim and RTL sim bit-exact (random input gaps and output back-pressure), measured interval
against the schedule, the skip FIFO that the schedule sizes, and the PYNQ driver on one of them."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models.graph_models import MODELS, export_quantized

pytestmark = [pytest.mark.rtl, pytest.mark.csim]
QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("graph_e2e")   # the tests that share the compiled models: one worker


@pytest.fixture(scope="module")
def graph_projects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graph_e2e")
    projects = {}
    for name in MODELS:
        model = folder / f"{name}.onnx"
        export_quantized(name, model)
        projects[name] = compile_model(model, folder / f"out_{name}", CompileOptions(board="pynq-z2"), **QUIET)
    return projects


@SHARED
@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_model_is_bit_exact_at_the_scheduled_interval(graph_projects, name):
    project = graph_projects[name]
    kinds = {op.kind for op in project.graph.ops}
    assert "fork" in kinds and kinds & {"add", "mul", "concat"}
    results = verify(project, ("csim", "rtlsim"), vectors=12, **QUIET)
    for result in results:
        assert result.passed, result.line()
    measured = results[1].measured
    totals = project.report["totals"]
    # forks and joins add no cycles per frame: the design runs at its slowest stage's interval
    assert measured["interval_cycles"] <= totals["frame_interval"], (measured, totals)
    assert project.report["fifos"], "a reconverging graph has FIFOs sized by the schedule"


def deep_skip_model(path, layers: int = 5, width: int = 16) -> None:
    """x -> `layers` Linear layers -> + x: a skip connection around a block many frames long."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(11)
    nodes, inits = [], []

    def const(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def qdq(x, scale, tag):
        s, z = const(f"{tag}_s", scale), const(f"{tag}_z", 0, np.int8)
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{tag}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tag}_q", s, z], [f"{tag}_dq"]))
        return f"{tag}_dq"
    x = qdq("x", 2**-4, "in")
    skip, h = x, x
    for i in range(layers):
        w = const(f"w{i}", rng.integers(-8, 9, size=(width, width)) * 2**-6)
        nodes.append(helper.make_node("MatMul", [h, w], [f"mm{i}"]))
        h = qdq(f"mm{i}", 2**-4, f"l{i}")
    nodes.append(helper.make_node("Add", [skip, h], ["sum"]))
    y = qdq("sum", 2**-3, "out")
    graph = helper.make_graph(nodes, "deep_skip", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))


def test_skip_fifo_sized_by_the_schedule_runs_at_full_rate_and_a_smaller_one_stalls(tmp_path):
    """Four beats per token: the computed skip FIFO keeps the full rate; capped at 2 beats only one
    token fits in the long path at a time and the interval collapses to about the path's latency."""
    model = tmp_path / "deep_skip.onnx"
    deep_skip_model(model)
    options = CompileOptions(board="zcu104", target_ii=4)
    project = compile_model(model, tmp_path / "ok", options, **QUIET)
    fifo = project.report["fifos"][0]
    totals = project.report["totals"]
    assert totals["latency"] > 4 * totals["frame_interval"], "the long path holds several frames"
    results = verify(project, ("rtlsim",), vectors=16, **QUIET)
    assert results[0].passed, results[0].line()
    assert results[0].measured["interval_cycles"] == totals["frame_interval"]

    small = compile_model(model, tmp_path / "small", dataclasses.replace(options, fifo_depth_limit=2), **QUIET)
    assert small.report["fifos"][0]["depth"] == 2 < fifo["depth"]
    results = verify(small, ("rtlsim",), vectors=16, **QUIET)
    assert results[0].passed, results[0].line()
    assert results[0].measured["interval_cycles"] > 4 * totals["frame_interval"]


def test_a_skip_fifo_below_one_token_deadlocks_and_verify_names_the_stream(tmp_path):
    """One element per beat: a Linear unit needs all 24 beats of a token before it answers, so a
    2-beat skip FIFO deadlocks the fork; `einhls verify` stops (exit 1) naming a blocked stream."""
    model = tmp_path / "deep_skip.onnx"
    deep_skip_model(model, layers=2, width=24)
    options = CompileOptions(board="zcu104", target_ii=24, fifo_depth_limit=2)
    small = compile_model(model, tmp_path / "small", options, **QUIET)
    assert small.report["fifos"][0]["depth"] == 2
    cli = subprocess.run([sys.executable, "-m", "codegen.cli", "verify", str(small.path), "--rtlsim",
                          "--vectors", "2"], capture_output=True, text=True, timeout=900)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    line = next((l for l in cli.stdout.splitlines() if l.startswith("rtlsim: STALLED")), cli.stdout)
    assert "no output beat for" in line and "stream w_" in line, line


@SHARED
def test_pynq_driver_runs_a_graph_model(graph_projects):
    """The generated PYNQ driver, unchanged, against the RTL of a model with a skip connection."""
    results = verify(graph_projects["residual_mlp"], ("pynqsim",), vectors=4, **QUIET)
    assert results[0].passed, results[0].line()
