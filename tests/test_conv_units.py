"""The sliding-window unit of convolutions: its integer reference, and golden tests of the Verilog
(rtl_kernels/einhls_window.v) and HLS C++ (hls_kernels/einhls_window.h) units.

* Reference: ``Window.reference`` against torch's ``unfold`` (the im2col of a convolution) on
  kernels, strides, paddings (asymmetric too), dilations, 1-D and 2-D, several zero points.
* Units: IR graphs of windows alone (input -> window -> window -> tap maximum), built with the IR
  constructors and compiled by ``compile_graph`` exactly as a model is; expected codes come from the
  reference; C-sim runs the HLS units, RTL sim the Verilog ones first back to back, then with random
  input gaps and output back-pressure (testbench/cocotb/test_einhls.py), element by element.  The
  measured frame interval is the scheduled one (one beat per cycle on the longer side).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen.errors import EinhlsError
from codegen.ir.conv import make_tapmax, make_window
from codegen.ir.graph import Graph
from codegen.ir.types import QType
from codegen.project import CompileOptions, compile_graph
from codegen.verify.runner import verify

QUIET = dict(progress=lambda *_: None)

REFERENCE_CASES = [
    # (height, width, channels, kernel, stride, pads t/l/b/r, dilation)
    (5, 7, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (6, 6, 2, (2, 3), (2, 1), (0, 1, 1, 0), (1, 2)),
    (8, 8, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (7, 5, 1, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
    (4, 9, 2, (2, 2), (3, 2), (1, 0, 0, 1), (2, 3)),
    (1, 16, 4, (1, 3), (1, 1), (0, 2, 0, 2), (1, 2)),    # 1-D, dilated
    (1, 9, 3, (1, 2), (1, 2), (0, 0, 0, 0), (1, 1)),     # 1-D, strided
    (3, 3, 5, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),     # one window = the whole image
]


def unfold_windows(x: torch.Tensor, case, pad_code: int) -> torch.Tensor:
    """[B*H*W, C] pixel-major codes -> [B*OH*OW, kh*kw*C] with torch.nn.functional.unfold."""
    h, w, c, kernel, stride, pads, dilation = case
    img = x.reshape(-1, h, w, c).permute(0, 3, 1, 2).to(torch.float64)
    padded = torch.nn.functional.pad(img - pad_code, (pads[1], pads[3], pads[0], pads[2])) + pad_code
    cols = torch.nn.functional.unfold(padded, kernel, dilation=dilation, stride=stride)   # [B, C*kh*kw, L]
    taps = kernel[0] * kernel[1]
    return cols.reshape(img.shape[0], c, taps, -1).permute(0, 3, 2, 1).reshape(-1, taps * c).to(torch.int64)


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}_k{c[3]}_s{c[4]}_p{c[5]}_d{c[6]}")
@pytest.mark.parametrize("qtype", [QType(True, 8, 0.1, -3), QType(False, 4, 0.2, 5), QType(True, 16, 0.01, 0)],
                         ids=["int8_zp", "uint4_zp", "int16"])
def test_window_reference_equals_unfold(case, qtype):
    h, w, c, kernel, stride, pads, dilation = case
    op = make_window("w", "test", qtype, c, h, w, kernel, stride, pads, dilation)
    rng = np.random.default_rng(7)
    x = torch.as_tensor(rng.integers(qtype.min, qtype.max + 1, size=(3 * h * w, c)))
    got = op.reference(x)
    assert got.shape == (3 * op.out_tokens(h * w), kernel[0] * kernel[1] * c)
    assert torch.equal(got, unfold_windows(x, case, qtype.zero_point))


def test_tapmax_reference():
    op = make_tapmax("m", "test", QType(False, 4, 0.2, 5), 3, 4)
    x = torch.as_tensor(np.random.default_rng(3).integers(0, 16, size=(10, 12)))
    assert torch.equal(op.reference(x), x.reshape(10, 4, 3).amax(dim=1))


def test_window_refusals():
    t = QType(True, 8, 0.1, 0)
    with pytest.raises(ValueError, match="padding"):
        make_window("w", "t", t, 2, 5, 5, (3, 3), pads=(3, 0, 0, 0))     # a window of padding only
    with pytest.raises(ValueError, match="larger than"):
        make_window("w", "t", t, 2, 2, 2, (3, 3))
    with pytest.raises(ValueError, match="outside the input type"):
        make_window("w", "t", QType(False, 4, 0.1, 0), 2, 5, 5, (3, 3), pad_code=16)
    with pytest.raises(ValueError, match="positive"):
        make_window("w", "t", t, 2, 5, 5, (3, 3), stride=(0, 1))


def window_chain(qtype: QType) -> Graph:
    """5x7 pixels of 2 channels -> a 3x2 window (stride 2x1, asymmetric pads, dilation 2x1) -> a 1x3
    window (stride 1x2, pads left and right) over the 2x7 windows of 12 features -> per feature the
    largest of the 3 taps."""
    first = make_window("win_a", "test", qtype, 2, 5, 7, (3, 2), (2, 1), (1, 1, 1, 0), (2, 1))
    assert (first.out_height, first.out_width) == (2, 7)
    second = make_window("win_b", "test", qtype, first.out_size, 2, 7, (1, 3), (1, 2), (0, 1, 0, 1), (1, 1),
                         pad_code=qtype.min + 1)   # any code may pad (here not the zero point): it is a parameter
    # then the largest of the 3 taps per channel (MaxPool's second half)
    biggest = make_tapmax("max_b", "test", qtype, first.out_size, 3)
    return Graph(name="window_chain", input_type=qtype, input_size=2, ops=[first, second, biggest],
                 input_shape=(1, 2, 5, 7), output_shape=(1, 12, 2, 4), output_is_float=False, tokens=35)


def _check_units(graph: Graph, folder, **options):
    project = compile_graph(graph, folder, CompileOptions(board="pynq-z2", **options), **QUIET)
    assert project.graph.output_tokens == graph.output_tokens
    results = verify(project, ("csim", "rtlsim"), vectors=6, **QUIET)
    for result in results:
        assert result.passed, result.line()
    measured = results[1].measured
    assert measured["interval_cycles"] <= project.report["totals"]["frame_interval"], \
        (measured, project.report["totals"])
    return project


@pytest.mark.rtl
@pytest.mark.csim
def test_window_units_bit_exact_with_pauses(tmp_path):
    """int8 with a zero point: windows and tap maximum, back to back and with random pauses."""
    _check_units(window_chain(QType(True, 8, 0.1, -3)), tmp_path / "chain")


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.csim
def test_window_units_several_lanes_unsigned(tmp_path):
    """uint5 with a zero point at a short interval: several channels per beat (lanes dividing C)."""
    project = _check_units(window_chain(QType(False, 5, 0.1, 7)), tmp_path / "lanes", target_ii=2)
    assert max(s.in_lanes for s in project.design.schedules.values()) > 1


def test_compile_graph_refuses_an_existing_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(EinhlsError, match="exists"):
        compile_graph(window_chain(QType(True, 8, 0.1, 0)), tmp_path / "out", **QUIET)


def test_window_coupling_model_on_random_geometries():
    """The line-buffer model of schedule/conv_cost.py on random kernels, strides, dilations and pads:
    it never deadlocks at the minimum rows, no frame beats the slower side alone, and more rows
    never make a frame slower."""
    import random
    from codegen.schedule.conv_cost import choose_window_rows, coupled_frame_cycles
    rng = random.Random(1)
    checked = 0
    while checked < 200:
        kernel = (rng.randint(1, 4), rng.randint(1, 4))
        stride, dilation = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 2), rng.randint(1, 2))
        extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        pads = tuple(rng.randint(0, extent[i % 2] - 1) for i in range(4))
        try:
            op = make_window("w", "w", QType(signed=True, bits=8, scale=1.0), 4, rng.randint(1, 8), rng.randint(1, 8),
                             kernel, stride, pads, dilation)
        except ValueError:
            continue
        checked += 1
        beats = rng.choice([1, 2, 4])
        pixel = rng.randint(beats, 20)
        window = rng.randint(kernel[0] * kernel[1] * beats, 80)
        alone = max(op.height * op.width * pixel, op.out_height * op.out_width * window)
        small = coupled_frame_cycles(op, op.min_buffer_rows, pixel, window, beats)
        large = coupled_frame_cycles(op, 4 * op.min_buffer_rows, pixel, window, beats)
        assert alone <= large <= small, (op, alone, large, small)
        rows, frame, ideal = choose_window_rows(op, 4 // beats, pixel, window)
        assert ideal == alone and frame >= alone and rows >= op.min_buffer_rows
