"""Softmax, LayerNorm and GELU as graph ops, from the float islands onnxruntime's quantize_static
leaves in a torch export: the integer units against onnxruntime on the same QDQ model (each unit
alone on onnxruntime's own input codes, and the whole model), the graph ops' JSON round trip, the
model compiled and bit-exact in C-sim and RTL sim, and an unrecognised island refused by name."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from codegen.errors import EinhlsError
from codegen.frontend import load_graph
from codegen.ir.graph import Graph
from codegen.ir.nonlinear import graph_op, make_gelu, make_layernorm, make_softmax
from codegen.ir.reference import quantize, run_reference
from codegen.ir.types import QType
from codegen.project import CompileOptions, compile_model
from codegen.schedule.cost import COST_FUNCTIONS
from codegen.verify.runner import verify

from models.xformer_islands import decomposed_norm_model, islands_model, sigmoid_model, tanh_gelu_model
from onnx_oracle import onnx_session

QUIET = dict(progress=lambda *_: None)
NONLINEAR = ("softmax", "layernorm", "gelu")
SHAPE = (1, 4, 16)
# measured below: LayerNorm and Softmax 1 step, GELU 2 (onnxruntime rounds erf, x (1 + erf) and
# the product with 0.5 separately; the unit rounds once)
MAX_STEPS = {"softmax": 1, "layernorm": 1, "gelu": 2}


@pytest.fixture(scope="module")
def islands(tmp_path_factory):
    return islands_model(tmp_path_factory.mktemp("islands") / "islands.onnx")


def _ort(model: onnx.ModelProto):
    return onnx_session(model)


def test_quantize_static_islands_become_integer_units(islands):
    graph = load_graph(islands)
    kinds = [op.kind for op in graph.ops]
    assert [k for k in kinds if k in NONLINEAR] == ["layernorm", "gelu", "softmax"], kinds
    gelu = next(op for op in graph.ops if op.kind == "gelu")
    # the whole Erf GELU (Div, Erf, Add, Mul, Mul and quantize_static's quantizers between them) is one unit
    for node in ("/act/Div", "/act/Erf", "/act/Add", "/act/Mul", "/act/Mul_1"):
        assert node in gelu.source.split(" + "), gelu.source
    assert graph.output_is_float and graph.tokens == 4


def _unit_errors(path, sigma: float = 1.5) -> dict[str, tuple[str, int]]:
    """Each unit run on onnxruntime's own input codes, against onnxruntime's output codes: the
    largest difference in output steps per unit (name -> (kind, steps))."""
    model = onnx.load(path)
    graph = load_graph(path)
    nodes = {n.name: n for n in model.graph.node}
    producer = {out: n for n in model.graph.node for out in n.output}
    probes = {}
    for op in graph.ops:
        if op.kind in NONLINEAR:
            labels = op.source.split(" + ")
            codes_in = producer[nodes[labels[0]].input[0]].input[0]   # the DequantizeLinear's codes
            codes_out = nodes[labels[-1]].output[0]                    # the QuantizeLinear's codes
            assert nodes[labels[-1]].op_type == "QuantizeLinear"
            probes[op.name] = (op, codes_in, codes_out)
            for tensor in (codes_in, codes_out):
                model.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.INT8, None))
    session = _ort(model)
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(3)
    worst = {name: (op.kind, 0) for name, (op, _, _) in probes.items()}
    for _ in range(40):
        x = rng.normal(0, sigma, SHAPE).astype(np.float32)
        outs = dict(zip(names, session.run(None, {"x": x})))
        for name, (op, codes_in, codes_out) in probes.items():
            x_codes = torch.as_tensor(outs[codes_in].reshape(-1, op.in_size).astype(np.int64))
            y = op.reference(x_codes).numpy()
            steps = int(np.abs(y - outs[codes_out].reshape(y.shape)).max())
            worst[name] = (op.kind, max(worst[name][1], steps))
    return worst


def test_each_unit_is_within_its_measured_error_of_onnxruntime(islands):
    worst = _unit_errors(islands)
    assert sorted(kind for kind, _ in worst.values()) == sorted(NONLINEAR)
    for name, (kind, steps) in worst.items():
        assert steps <= MAX_STEPS[kind], (name, steps)


def _within_steps_of_onnxruntime(path, steps: int) -> None:
    graph = load_graph(path)
    session = _ort(onnx.load(path))
    rng = np.random.default_rng(5)
    t = graph.output_type
    for _ in range(20):
        x = rng.normal(0, 1, SHAPE).astype(np.float32)
        y = session.run(None, {"x": x})[0]
        ours = run_reference(graph, quantize(x.reshape(1, -1), graph.input_type))
        theirs = np.round(y.reshape(1, -1) / t.scale) + t.zero_point
        assert np.abs(ours - theirs).max() <= steps


def test_model_reference_is_within_one_step_of_onnxruntime(islands):
    _within_steps_of_onnxruntime(islands, 1)


def test_decomposed_layernorm_is_one_unit(tmp_path):
    path, module = decomposed_norm_model(tmp_path / "decomposed.onnx")
    graph = load_graph(path)
    norms = [op for op in graph.ops if op.kind == "layernorm"]
    assert len(norms) == 1
    for node in ("/norm/ReduceMean", "/norm/Sub", "/norm/Pow", "/norm/Sqrt", "/norm/Div", "/norm/Mul", "/norm/Add_1"):
        assert node in norms[0].source.split(" + "), norms[0].source
    # onnxruntime rounds the variance and its square root to int8 on the way (up to 8 output steps
    # off here), so the unit is held to the float LayerNorm of the module on the same input codes:
    # the rounding plus the int8 gamma and beta quantize_static stored
    unit = norms[0].unit
    t = unit.in_type
    x = torch.as_tensor(np.random.default_rng(4).integers(t.min, t.max + 1, (64, unit.size)))
    x[0] = t.zero_point          # a constant row: zero variance
    want = unit.float_reference(x, module.norm.weight.detach().numpy(), module.norm.bias.detach().numpy(),
                                module.norm.eps)
    have = unit.reference(x)
    inside = (want > unit.out_type.min) & (want < unit.out_type.max)
    assert float((have - want)[inside].abs().max()) <= 1.0
    _within_steps_of_onnxruntime(path, 3)   # and the model output (after a Linear) stays close to onnxruntime's


def test_tanh_gelu_is_one_unit(tmp_path):
    path = tanh_gelu_model(tmp_path / "tanh.onnx")
    graph = load_graph(path)
    gelus = [op for op in graph.ops if op.kind == "gelu"]
    assert len(gelus) == 1
    for node in ("/act/Mul", "/act/Mul_1", "/act/Add", "/act/Tanh", "/act/Add_1", "/act/Mul_5"):
        assert node in gelus[0].source.split(" + "), gelus[0].source
    # every input code against the float tanh GELU (onnxruntime rounds x^2, x^3, tanh ... to int8);
    # the unit is I-BERT's erf polynomial, measured 1.64 output steps from the tanh form here
    unit = gelus[0].unit
    t = unit.in_type
    x = torch.arange(t.min, t.max + 1, dtype=torch.int64).reshape(-1, 1).repeat(1, unit.size)
    want = unit.float_reference(x, approximate="tanh")
    inside = (want > unit.out_type.min) & (want < unit.out_type.max)
    assert float((unit.reference(x) - want)[inside].abs().max()) <= 2.0


def test_graph_ops_round_trip_through_json_and_have_costs():
    s8, u8 = QType(True, 8, 0.05, 3), QType(False, 8, 1 / 256)
    rng = np.random.default_rng(0)
    units = [make_layernorm(16, s8, QType(True, 8, 0.03, -2), rng.uniform(0.5, 1.5, 16), rng.uniform(-1, 1, 16)),
             make_gelu(16, QType(True, 8, 0.03, -2), s8), make_softmax(16, s8, u8)]
    ops = [graph_op(f"n{i}_{u.kind}", u.kind, u) for i, u in enumerate(units)]
    graph = Graph("nl", s8, 16, ops, tokens=3)
    graph.check()
    again = Graph.from_json(graph.to_json(), graph.arrays())
    assert [op.unit for op in again.ops] == units
    x = np.random.default_rng(1).integers(s8.min, s8.max + 1, (5, 48))
    assert np.array_equal(run_reference(again, x), run_reference(graph, x))
    # the graph op computes what its unit computes, token by token
    codes = torch.as_tensor(x.reshape(-1, 16), dtype=torch.int64)
    assert torch.equal(ops[0].reference(codes), units[0].reference(codes))
    for kind in NONLINEAR:
        assert kind in COST_FUNCTIONS


def test_unrecognised_float_island_is_refused_naming_its_node(tmp_path):
    model = sigmoid_model(tmp_path / "sigmoid.onnx")
    with pytest.raises(EinhlsError, match=r"/Sigmoid.*not recognised"):
        load_graph(model)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "codegen.cli", "compile", str(model), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("einhls: error: node '/Sigmoid'"), run.stderr
    assert "Traceback" not in run.stderr and not out.exists()


@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.parametrize("target_ii", [None, 6])   # the units at 1 lane, and at 3 lanes (16 = 5 x 3 + 1)
def test_islands_model_is_bit_exact_in_csim_and_rtlsim(islands, tmp_path, target_ii):
    options = CompileOptions(board="pynq-z2", target_ii=target_ii)
    project = compile_model(islands, tmp_path / "out", options, **QUIET)
    assert {op.kind for op in project.graph.ops} >= set(NONLINEAR)
    lanes = {project.design.schedule(op).in_lanes for op in project.graph.ops if op.kind in NONLINEAR}
    assert lanes == ({1} if target_ii is None else {3}), lanes
    results = verify(project, ("csim", "rtlsim"), vectors=8, **QUIET)
    for result in results:
        assert result.passed, result.line()
    measured = results[1].measured
    assert measured["interval_cycles"] <= project.report["totals"]["frame_interval"], measured
    # the report's latency within 15% of the measured one (938 / 463 measured, 913 / 444 estimated:
    # four tokens through units of one token's latency, the last token an interval per token later)
    latency = project.report["totals"]["latency"]
    assert abs(latency - measured["latency_cycles"]) <= 0.15 * measured["latency_cycles"], (latency, measured)


def _verilog_int(text: str) -> int | str:
    """A parameter literal of the unit-test harness as a number (strings stay strings)."""
    if text.startswith('"'):
        return text.strip('"')
    sign = -1 if text.startswith("-") else 1
    return sign * int(text.lstrip("-").split("'sd")[-1].split("'d")[-1])


def test_compiler_unit_parameters_equal_the_unit_test_harness():
    """codegen/emit/nonlinear.py (what einhls compile emits) and the stand-alone harness of the unit
    tests (tests/models/nonlinear_units.py) configure every unit-test case identically."""
    from codegen.emit.nonlinear import hls_unit, rtl_unit
    from models.nonlinear_units import hls_params, rtl_params, unit_cases

    for name, (factory, lanes) in unit_cases().items():
        unit = factory()
        op = graph_op("n0_unit", name, unit)
        harness = hls_params(unit, lanes)
        ours = hls_unit(op, lanes, "unit", "nonlinear_params.h")
        for key in ("unsigned_constants", "int_constants", "wide_constants", "types", "arrays"):
            assert [tuple(v) for v in getattr(ours, key)] == [tuple(v) for v in harness[key]], (name, key)
        module, params, mems = rtl_unit(0, op, lanes)
        want, want_mems = rtl_params(unit, lanes)
        have = {p.name: p.value for p in params}
        assert list(have) == [n for n, _ in want], name
        for key, text in want:
            if key not in ("GAMMA_FILE", "BETA_FILE"):
                assert have[key] == _verilog_int(text), (name, key)
        assert [m.words for m in mems] == list(want_mems.values()), name


def test_folding_stops_at_the_interval_floor_of_the_serial_units(islands):
    """LayerNorm's square root and reciprocal take a fixed number of cycles per token whatever its
    lanes: the scheduler does not buy a faster interval elsewhere that the design cannot reach."""
    from codegen.schedule.boards import get_board
    from codegen.schedule.folding import fold

    graph = load_graph(islands)
    result = fold(graph, get_board("kv260"))
    norm = next(op for op in graph.ops if op.kind == "layernorm")
    floor = result.costs[norm.name].ii
    assert result.totals["ii"] == floor == result.target_ii
    for op in graph.ops:   # each Linear is folded to the floor, not fully parallel
        if op.kind == "linear":
            assert floor // 2 < result.costs[op.name].cycles <= floor, (op.name, result.costs[op.name].cycles)


def _island_model(node: onnx.NodeProto, opset: int, quantized_output: bool = True) -> onnx.ModelProto:
    """x [1, 4, 16] -> QuantizeLinear -> DequantizeLinear -> ``node`` (t -> u) [-> Q -> DQ] -> y."""
    inits = [helper.make_tensor("s_in", TensorProto.FLOAT, [], [0.04]),
             helper.make_tensor("z_in", TensorProto.INT8, [], [3]),
             helper.make_tensor("s_out", TensorProto.FLOAT, [], [0.02]),
             helper.make_tensor("z_out", TensorProto.INT8, [], [-20])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["t"], name="dq_in"), node]
    if quantized_output:
        nodes += [helper.make_node("QuantizeLinear", ["u", "s_out", "z_out"], ["uq"], name="q_out"),
                  helper.make_node("DequantizeLinear", ["uq", "s_out", "z_out"], ["y"], name="dq_out")]
    out = "y" if quantized_output else "u"
    graph = helper.make_graph(nodes, "island", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, SHAPE)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_onnx_gelu_op_is_the_gelu_unit():
    from codegen.frontend import lower_model

    model = _island_model(helper.make_node("Gelu", ["t"], ["u"], name="gelu"), 20)
    graph = lower_model(model)
    assert [op.kind for op in graph.ops] == ["gelu"]
    session = _ort(model)
    x = np.random.default_rng(2).normal(0, 2, SHAPE).astype(np.float32)
    ours = run_reference(graph, quantize(x.reshape(1, -1), graph.input_type))
    t = graph.output_type
    theirs = np.round(session.run(None, {"x": x})[0].reshape(1, -1) / t.scale) + t.zero_point
    assert np.abs(ours - theirs).max() <= 1


def test_softmax_over_another_axis_and_an_island_without_quantizer_are_refused():
    from codegen.frontend import lower_model

    model = _island_model(helper.make_node("Softmax", ["t"], ["u"], name="sm", axis=1), 17)
    with pytest.raises(EinhlsError, match=r"node 'sm' \(Softmax\): Softmax over axis 1 .*only over the last axis"):
        lower_model(model)
    model = _island_model(helper.make_node("Softmax", ["t"], ["u"], name="sm"), 17, quantized_output=False)
    with pytest.raises(EinhlsError, match=r"softmax island \(sm\) needs a QuantizeLinear"):
        lower_model(model)
