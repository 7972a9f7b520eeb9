"""Depthwise and grouped convolutions on the N:M Linear unit with one N:M group per kernel tap
(M = the channels of a tap): k*k multiplier slots per output channel, as a dedicated depthwise unit
has, where the generic detection (groups of at most 16) paid C / 16 times that.  Reference against
onnxruntime, C-sim and RTL sim bit-exact."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from codegen.frontend.conv import tap_aligned_pattern
from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models.ort_qdq import export_quantized
from onnx_oracle import onnx_session

QUIET = dict(progress=lambda *_: None)


def test_tap_aligned_pattern_on_block_diagonal_kernels():
    rng = np.random.default_rng(0)
    for channels, taps, group in [(32, 9, 32), (64, 9, 64), (6, 9, 6), (48, 3, 48), (32, 9, 16), (128, 9, 128)]:
        per_group = channels // group
        kernel = np.zeros((channels, taps, channels), dtype=np.int64)
        for o in range(channels):
            g = o // (channels // group)
            kernel[o, :, g * per_group:(g + 1) * per_group] = rng.integers(1, 100, size=(taps, per_group))
        pattern = tap_aligned_pattern(kernel.reshape(channels, -1), channels)
        m = channels if channels <= 64 else 64
        assert pattern == (per_group, m), (channels, group, pattern)
    # a dense kernel, and a depthwise one over 8 channels (detect_nm's 1:8 is already tap-aligned)
    assert tap_aligned_pattern(rng.integers(1, 9, size=(16, 9 * 16)), 16) is None
    eight = np.zeros((8, 9, 8), dtype=np.int64)
    for o in range(8):
        eight[o, :, o] = 3
    assert tap_aligned_pattern(eight.reshape(8, -1), 8) is None


@pytest.fixture(scope="module")
def depthwise_project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("depthwise")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(32, 32, 3, groups=8))
    path = export_quantized(model, folder / "dw32.onnx", shape=(1, 32, 5, 5))
    return path, compile_model(path, folder / "out", CompileOptions(board="pynq-z2"), **QUIET)


@pytest.mark.xdist_group("conv_depthwise")
def test_depthwise_uses_k_squared_multipliers_per_channel(depthwise_project):
    model, project = depthwise_project
    linears = [op for op in project.graph.ops if op.kind == "linear"]
    assert [op.sparsity for op in linears] == [(1, 32), (4, 32)]
    layers = [layer for layer in project.report["layers"] if layer["kind"] == "linear"]
    for op, layer in zip(linears, layers):
        useful = op.out_size * 9 * op.sparsity[0]                     # non-zero products per output pixel
        assert layer["multipliers"] == math.ceil(useful / layer["cycles"]), layer
    x = np.random.default_rng(3).normal(0, 1, size=(8, 32, 5, 5)).astype(np.float32)
    session = onnx_session(str(model))
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    steps = np.abs(project.predict(x) - expected) / project.graph.output_type.scale
    assert steps.max() <= 1 + 1e-4, steps.max()


@pytest.fixture(scope="module")
def depthwise_sim(depthwise_project):
    return verify(depthwise_project[1], ("csim", "rtlsim"), vectors=4, **QUIET)


@pytest.mark.xdist_group("conv_depthwise")
@pytest.mark.csim
@pytest.mark.rtl
def test_depthwise_bit_exact(depthwise_sim):
    for result in depthwise_sim:
        assert result.passed, result.line()


@pytest.mark.xdist_group("conv_depthwise")
def test_slow_reader_gets_a_larger_line_buffer(depthwise_project):
    """The second window is unpadded and read by a Linear slower than its own beats (24 cycles a
    window against 9 taps x 2 beats): with the minimum 4 rows the writer would wait for the frame's
    last output row (the model says 280 cycles a frame against 225; RTL sim measured 252), so the
    scheduler buffers 8 rows and costs them (report buffer_bits)."""
    from codegen.schedule.conv_cost import coupled_frame_cycles
    _, project = depthwise_project
    first, second = [op for op in project.graph.ops if op.kind == "window"]
    assert (first.buffer_rows, second.min_buffer_rows, second.buffer_rows) == (4, 4, 8)
    layers = {layer["name"]: layer for layer in project.report["layers"]}
    reader = project.graph.consumers(second.outputs[0])[0][0]
    producer = project.graph.producer(second.inputs[0])
    lanes = project.design.schedule(second).in_lanes
    beats = 32 // lanes
    pixel, window = layers[producer.name]["ii"], layers[reader.name]["ii"]
    assert window > 9 * beats                                    # the reader is the slower side
    frame = project.report["totals"]["frame_interval"]
    assert coupled_frame_cycles(second, 4, pixel, window, beats) > frame
    assert coupled_frame_cycles(second, 8, pixel, window, beats) == frame == 25 * pixel
    assert layers[second.name]["buffer_bits"] == 8 * 5 * beats * lanes * second.in_type.bits


@pytest.mark.xdist_group("conv_depthwise")
@pytest.mark.csim
@pytest.mark.rtl
def test_depthwise_interval_meets_the_schedule(depthwise_project, depthwise_sim):
    """Measured in RTL sim at the scheduled interval (252 against 225 before the line buffer was
    sized for the slower reader)."""
    assert depthwise_sim[1].measured["interval_cycles"] <= depthwise_project[1].report["totals"]["frame_interval"]
