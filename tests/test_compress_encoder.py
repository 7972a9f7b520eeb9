"""`einhls compress` on a BERT-like encoder writes the whole compressed encoder as one QDQ ONNX
(codegen/compress/encoder_export.py) that `einhls compile` takes as is: all-MiniLM-L6-v2 with a
mix of the search's forms (dense 8 / 4-bit, N:M, low rank, tensor train) and the search's own
input quantization (calibrated per-tensor scales, 8 or 16 bits per layer), at a few tokens.  The
default run lowers and schedules two layers and checks the IR reference against the torch model
the search scores; compile + C-sim of one layer and the 6-layer export's compile + C-sim are slow."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen.compress.modules import Spec

from models import minilm

QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("compress_encoder")
LENGTH = 8
ROLES = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense")
#: per role, the form in layers 0 and 1: every kind the search can build for MiniLM
FORMS = {
    "attention.self.query": (Spec("dense", 8), Spec("nm", 4, n=2, m=8)),
    "attention.self.key": (Spec("nm", 4, n=2, m=4), Spec("dense", 4)),
    "attention.self.value": (Spec("lowrank", 8, rank=48), Spec("nm", 8, n=4, m=8)),
    "attention.output.dense": (Spec("dense", 4), Spec("lowrank", 4, rank=32)),
    "intermediate.dense": (Spec("tt", 8, rank=8, in_factors=(8, 6, 8), out_factors=(8, 12, 16)),
                           Spec("nm", 4, n=1, m=4)),
    "output.dense": (Spec("nm", 4, n=2, m=8), Spec("dense", 8)),
}


#: layers 2.. of the six-layer export: small enough that the whole encoder's weights fit a zcu104
SMALL = {role: Spec("nm", 4, n=1, m=4) if role.endswith("dense") and not role.startswith("attention")
         else Spec("nm", 4, n=2, m=8) for role in ROLES}


def _config(layers) -> dict:
    config = {}
    for layer in layers:
        index, role = int(layer.name.split(".")[2]), layer.name.split(".", 3)[-1]
        config[layer.name] = FORMS[role][index] if index < 2 else SMALL[role]
    return config


@pytest.fixture(scope="module")
def student():
    """MiniLM with every linear layer replaced by its ``_config`` form, calibrated (input scales and
    widths, as compress records them) on the project's sentences; and the target."""
    from codegen.compress.search import apply_config, record_layers
    from codegen.compress.targets import load_target
    torch.set_num_threads(1)
    texts = minilm.sentences()[:24]
    target = load_target(str(minilm.model_dir()), texts)
    layers = record_layers(target, texts, 0)
    return apply_config(target.model, layers, _config(layers), 0), layers, target


def _export(student, tmp_path, count: int):
    from codegen.compress.encoder import text_hidden_states
    from codegen.compress.encoder_export import export_encoder
    model, layers, target = student
    states = text_hidden_states(target, minilm.sentences()[:24], LENGTH)
    return export_encoder(model, states, tmp_path / "encoder.onnx", layers=count)


def _linear_units(layers, count: int) -> list:
    """The lowered linear units the first ``count`` encoder layers must have, in order, with the
    input width and scale the search chose (a low-rank layer is two units; a tensor train none:
    its contraction stages)."""
    units = []
    for layer in layers:
        if int(layer.name.split(".")[2]) >= count:
            continue
        spec = _config([layer])[layer.name]
        if spec.kind == "tt":
            continue
        units.append((layer.name, layer.in_bits, layer.in_scale))
        if spec.kind == "lowrank":
            units.append((layer.name + " (second factor)", layer.in_bits, None))
    return units


@SHARED
def test_whole_encoder_export_lowers_schedules_and_follows_the_torch_model(student, tmp_path):
    from codegen.compress.costing import fold_cost
    from codegen.compress.encoder_export import EncoderLayers
    from codegen.ir.reference import quantize, run_reference
    from codegen.project import CompileOptions, lower
    from codegen.schedule.boards import get_board
    model, layers, target = student
    count = 2
    graph = lower(_export(student, tmp_path, count), CompileOptions(board="kv260"))
    assert graph.tokens == LENGTH
    linears = [op for op in graph.ops if op.kind == "linear"]
    want = _linear_units(layers, count)
    assert len(linears) == len(want), [op.name for op in linears]
    # the search's input quantization reaches the hardware as it is: width and calibrated scale
    assert [op.in_type.bits for op in linears] == [bits for _, bits, _ in want]
    assert {16, 8} <= {bits for _, bits, _ in want}      # both widths occur in these layers
    for op, (name, _, scale) in zip(linears, want):
        if scale is not None:
            assert op.in_type.scale == pytest.approx(scale, rel=1e-6), name
    assert sum(op.kind == "contract" for op in graph.ops) >= 2   # the tensor train's stages
    assert sum(op.kind == "softmax" for op in graph.ops) == count
    # the IR reference (what C-sim and RTL sim reproduce bit for bit) against the torch model the
    # search scores and distillation trains, on sentences not used for calibration
    runner = EncoderLayers(model, count).eval()
    from codegen.compress.encoder import text_hidden_states
    out_type = graph.output_type
    for x in text_hidden_states(target, minilm.sentences()[40:43], LENGTH):
        ours = (run_reference(graph, quantize(x.reshape(1, -1), graph.input_type)).reshape(-1).astype(np.float64)
                - out_type.zero_point) * out_type.scale
        with torch.no_grad():
            theirs = runner(torch.as_tensor(x)).numpy().reshape(-1).astype(np.float64)
        cosine = float(ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs))
        assert cosine > 0.999, cosine
    cost = fold_cost(graph, get_board("kv260"), None, None)
    assert cost.cycles > 0 and cost.weight_bits > 0


@pytest.mark.slow
@SHARED
def test_one_layer_export_compiles_and_is_bit_exact_in_csim(student, tmp_path):
    """`einhls compile` of the one-layer export for the KV260, C-sim bit-exact against the IR
    reference (about a minute of g++ and simulation here)."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify
    project = compile_model(_export(student, tmp_path, 1), tmp_path / "hw", CompileOptions(board="kv260"), **QUIET)
    (result,) = verify(project, ("csim",), vectors=0, stored=2, **QUIET)
    assert result.passed, result.line()


@pytest.mark.slow
@SHARED
def test_six_layer_export_compiles_and_is_bit_exact_in_csim(student, tmp_path):
    """The whole encoder (all six layers; layers 2-5 at 2:8 / 1:4 with 4-bit weights so that the
    weights fit on chip) as compress exports it, compiled as is for the zcu104 (the KV260 cannot
    hold six layers' key / value buffers and FIFOs beside the weights) and C-sim bit-exact on one
    stored vector."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify
    project = compile_model(_export(student, tmp_path, None), tmp_path / "hw", CompileOptions(board="zcu104"),
                            **QUIET)
    assert sum(op.kind == "softmax" for op in project.graph.ops) == 6
    (result,) = verify(project, ("csim",), vectors=0, stored=1, **QUIET)
    assert result.passed, result.line()
