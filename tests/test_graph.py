"""The dataflow-graph IR: structure, passes, references, front end on branching models exported by
torch and quantized by onnxruntime, FIFO depths, and end to end through compile + verify."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from codegen.ir.build import make_linear, make_relu
from codegen.ir.graph import GRAPH_INPUT, Graph
from codegen.ir.joins import make_add, make_concat, make_fork, make_mul, make_slice
from codegen.ir.reference import dequantize_output, quantize_input, run_reference
from codegen.ir.types import QType
from codegen.passes.graph import insert_forks

from models.graph_models import MODELS, export_quantized
from onnx_oracle import onnx_session

I8 = QType(True, 8, 2**-4)


def _linear(name: str, k: int, n: int, seed: int, in_type: QType = I8, out_type: QType = I8):
    rng = np.random.default_rng(seed)
    return make_linear(name, name, rng.integers(-20, 21, size=(n, k)), rng.integers(-50, 51, size=n),
                       in_type, in_type.scale * 2**-6, out_type)


def residual_graph(width: int = 8, tokens: int = 1) -> Graph:
    """input -> fc1 -> fc2 -> add(input, fc2) : a skip connection."""
    fc1, fc2 = _linear("fc1", width, width, 1), _linear("fc2", width, width, 2)
    add = dataclasses.replace(make_add("add", "add", I8, I8, QType(True, 8, 2**-3), width),
                              inputs=(GRAPH_INPUT, "fc2"))
    return Graph("residual", I8, width, [fc1, fc2, add], tokens=tokens)


def test_chain_is_wired_and_checked():
    graph = residual_graph()
    graph.check()
    assert graph.ops[0].inputs == (GRAPH_INPUT,) and graph.ops[1].inputs == ("fc1",)
    assert graph.output == "add" and not graph.is_chain
    assert [op.name for op, _ in graph.consumers(GRAPH_INPUT)] == ["fc1", "add"]


def test_check_refuses_a_read_before_write_and_a_size_mismatch():
    graph = residual_graph()
    bad = dataclasses.replace(graph, ops=[graph.ops[2], graph.ops[0], graph.ops[1]], output="add")
    with pytest.raises(AssertionError, match="before it is written"):
        bad.check()
    wrong = dataclasses.replace(graph.ops[2], in_size=7)
    with pytest.raises(AssertionError):
        dataclasses.replace(graph, ops=graph.ops[:2] + [wrong]).check()


def test_json_round_trip_keeps_wiring_and_results():
    graph = insert_forks(residual_graph(tokens=3))
    again = Graph.from_json(graph.to_json(), graph.arrays())
    assert again.to_json() == graph.to_json()
    codes = np.random.default_rng(0).integers(-128, 128, size=(5, 3 * 8))
    assert np.array_equal(run_reference(graph, codes), run_reference(again, codes))


def test_reference_matches_numpy_for_every_join_kind():
    rng = np.random.default_rng(3)
    a_t, b_t, o_t = QType(True, 8, 0.05, 3), QType(False, 6, 0.11, 7), QType(True, 9, 0.07, -4)
    a = torch.as_tensor(rng.integers(a_t.min, a_t.max + 1, size=(50, 5)))
    b = torch.as_tensor(rng.integers(b_t.min, b_t.max + 1, size=(50, 5)))
    add, mul = make_add("a", "a", a_t, b_t, o_t, 5), make_mul("m", "m", a_t, b_t, o_t, 5)
    real_a, real_b = (a.numpy() - 3) * 0.05, (b.numpy() - 7) * 0.11
    for op, real in ((add, real_a + real_b), (mul, real_a * real_b)):
        want = np.clip(np.round(real / 0.07) - 4, o_t.min, o_t.max)
        got = op.reference(a, b).numpy()
        assert np.abs(got - want).max() <= 1   # one rounding of an integer multiplier
        assert got.min() >= o_t.min and got.max() <= o_t.max
    cat = make_concat("c", "c", a_t, [5, 5])
    assert np.array_equal(cat.reference(a, a).numpy(), np.concatenate([a.numpy()] * 2, axis=1))
    sl = make_slice("s", "s", a_t, 5, 1, 4)
    assert np.array_equal(sl.reference(a).numpy(), a.numpy()[:, 1:4])
    fork = make_fork("f", "f", a_t, 5, 3)
    assert len(fork.reference(a)) == 3 and fork.outputs == ("f:0", "f:1", "f:2")


def test_add_with_power_of_two_scales_is_exact():
    a_t, b_t, o_t = QType(True, 8, 2**-4), QType(True, 8, 2**-2), QType(True, 8, 2**-3)
    op = make_add("a", "a", a_t, b_t, o_t, 4)
    grid = torch.as_tensor(np.array(np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))).reshape(2, -1).T)
    got = op.reference(grid[:, :1], grid[:, 1:]).numpy().ravel()
    want = np.clip(np.round((grid[:, 0].numpy() * 2**-4 + grid[:, 1].numpy() * 2**-2) / 2**-3), -128, 127)
    assert np.array_equal(got, want)


def test_insert_forks_gives_every_tensor_one_reader():
    graph = insert_forks(residual_graph())
    graph.check()
    fork = graph.op("fork_input")
    assert fork.copies == 2 and graph.op("fc1").inputs == ("fork_input:0",)
    assert graph.op("add").inputs == ("fork_input:1", "fc2")
    for tensor in graph.tensors():
        assert len(graph.consumers(tensor)) <= 1
    codes = np.random.default_rng(1).integers(-128, 128, size=(7, 8))
    assert np.array_equal(run_reference(graph, codes), run_reference(residual_graph(), codes))


def test_fuse_relu_keeps_a_relu_whose_input_is_also_read_elsewhere():
    from codegen.frontend.passes import fuse_relu
    fc = _linear("fc", 8, 8, 4)
    relu = make_relu("relu", "relu", I8, 8)
    add = dataclasses.replace(make_add("add", "add", I8, I8, I8, 8), inputs=("fc", "relu"))
    graph = Graph("g", I8, 8, [fc, relu, add])
    assert [op.kind for op in fuse_relu(graph).ops] == ["linear", "relu", "add"]
    chain = Graph("c", I8, 8, [_linear("fc", 8, 8, 4), make_relu("relu", "relu", I8, 8)])
    fused = fuse_relu(chain)
    assert [op.kind for op in fused.ops] == ["linear"] and fused.output == "fc"


def test_fifo_depth_grows_with_the_latency_of_the_long_path():
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold
    board = get_board("zcu104")

    def skip_depth(layers: int) -> int:
        ops = [_linear(f"fc{i}", 16, 16, i) for i in range(layers)]
        add = dataclasses.replace(make_add("add", "add", I8, I8, I8, 16), inputs=(GRAPH_INPUT, f"fc{layers - 1}"))
        design = fold(insert_forks(Graph("g", I8, 16, ops + [add])), board).design
        return design.fifo_depths[("add", 0)]
    short, long = skip_depth(1), skip_depth(6)
    assert long > short >= 4


@pytest.fixture(scope="module")
def graph_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graph_models")
    paths = {}
    for name in MODELS:
        paths[name] = folder / f"{name}.onnx"
        export_quantized(name, paths[name])
    return paths


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_agrees_with_onnxruntime(graph_models, name):
    """quantize_static QDQ models with skip connections, branches and tokens: the integer reference
    is within one output step of onnxruntime running the same file (exact here)."""
    from codegen.frontend import load_graph
    graph = load_graph(graph_models[name])
    graph.check()
    shape = MODELS[name][1]
    x = np.random.default_rng(7).normal(0, 1, size=(30,) + shape[1:]).astype(np.float32)
    session = onnx_session(graph_models[name], basic=True)   # the extended optimisations change QDQ results
    want = np.concatenate([session.run(None, {"x": xi[None]})[0].reshape(1, -1) for xi in x])
    got = dequantize_output(graph, run_reference(graph, quantize_input(graph, x)))
    assert np.abs(got - want).max() <= graph.output_type.scale * 1.0001
    kinds = {op.kind for op in graph.ops}
    assert kinds & {"add", "mul", "concat"}
    if len(shape) == 3:
        assert graph.tokens == shape[1]


def test_brevitas_qonnx_residual_agrees_with_qonnx(tmp_path):
    """A residual block written by Brevitas' export_qonnx (Quant nodes, 4- and 8-bit weights): the
    integer reference against qonnx executing the same file."""
    pytest.importorskip("brevitas")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from codegen.frontend import load_graph
    from models.brevitas_mlp import export_brevitas_residual
    path = tmp_path / "residual.onnx"
    export_brevitas_residual(path)
    graph = load_graph(path)
    graph.check()
    assert [op.kind for op in graph.ops].count("add") == 1
    model = ModelWrapper(str(path))
    x = np.random.default_rng(0).normal(0, 2, size=(25, 16)).astype(np.float32)
    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    want = np.concatenate([execute_onnx(model, {name_in: xi[None]})[name_out] for xi in x])
    got = dequantize_output(graph, run_reference(graph, quantize_input(graph, x)))
    assert np.abs(got - want).max() <= graph.output_type.scale * 0.01
