"""A convolution written with Einsum: a CP conv whose 1x1 factors are ``torch.einsum`` over the
channels (kept as ONNX Einsum by both torch exporters) around a depthwise Conv.  Each channel-mixing
Einsum on the pixel stream is a 1x1 convolution (a Linear per pixel); an Einsum that contracts over
the pixels is refused by name.  Float model with --default-type: the reference against
onnxruntime, C-sim and RTL sim bit-exact."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from codegen.project import CompileOptions, compile_model
from codegen.verify.runner import verify

from models.einsum_conv import SHAPE, export_float, export_qdq
from onnx_oracle import onnx_session

QUIET = dict(progress=lambda *_: None)
SHARED = pytest.mark.xdist_group("conv_einsum")
DEFAULT_TYPE = "fixed<16,6>"


@pytest.fixture(scope="module")
def einsum_projects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv_einsum")
    projects = {}
    for exporter, dynamo in (("dynamo", True), ("legacy", False)):
        path = export_float(folder / f"cp_{exporter}.onnx", dynamo=dynamo)
        projects[exporter] = (path, compile_model(path, folder / f"out_{exporter}",
                                                  CompileOptions(board="pynq-z2", default_type=DEFAULT_TYPE), **QUIET))
    return projects


@SHARED
@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_einsum_factors_are_pointwise_convs(einsum_projects, exporter):
    path, project = einsum_projects[exporter]
    assert [n.op_type for n in onnx.load(str(path)).graph.node if n.op_type in ("Einsum", "Conv")] == \
        ["Einsum", "Conv", "Einsum"]
    layers = [(op.kind, op.in_size, op.out_size) for op in project.graph.ops if op.kind in ("window", "linear")]
    assert layers == [("linear", 8, 6), ("window", 6, 54), ("linear", 54, 6), ("linear", 6, 16)]
    assert project.graph.tokens == 36 and project.graph.channels_first


@SHARED
@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_reference_matches_onnxruntime(einsum_projects, exporter):
    """Within fixed-point rounding of onnxruntime's float model (fixed<16,6>: steps of 2^-10; each of
    the three factors rounds its output once)."""
    path, project = einsum_projects[exporter]
    x = (np.random.default_rng(3).integers(-256, 256, size=(8,) + SHAPE[1:]) / 128).astype(np.float32)
    session = onnx_session(str(path))
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    got = project.predict(x)
    assert got.shape == expected.shape == (8, 16, 6, 6)
    assert np.abs(got - expected).max() < 8 * 2.0 ** -10, np.abs(got - expected).max()


@SHARED
@pytest.mark.csim
@pytest.mark.rtl
def test_einsum_conv_bit_exact(einsum_projects):
    project = einsum_projects["dynamo"][1]
    results = verify(project, ("csim", "rtlsim"), vectors=4, **QUIET)
    for result in results:
        assert result.passed, result.line()
    assert results[1].measured["interval_cycles"] <= project.report["totals"]["frame_interval"]


def _cli(path, out, capsys, *extra) -> tuple[int, str]:
    from codegen.cli import main
    capsys.readouterr()
    code = main(["compile", str(path), "-o", str(out), *extra])
    return code, capsys.readouterr().err


def test_einsum_over_pixels_refused_by_name(tmp_path, capsys):
    path = export_float(tmp_path / "spatial.onnx", spatial_einsum=True)
    code, err = _cli(path, tmp_path / "out", capsys, "--default-type", DEFAULT_TYPE)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("einhls: error:") and "(Einsum)" in lines[0], err
    assert "'brhw,hk->brkw' is not that" in lines[0] and not (tmp_path / "out").exists()


def test_qdq_einsum_conv_refused_by_name(tmp_path, capsys):
    """quantize_static leaves the Einsum (and so the model's input) in float: refused at the first
    Einsum, with how to quantize its input."""
    path = export_qdq(tmp_path / "qdq.onnx")
    code, err = _cli(path, tmp_path / "out", capsys)
    assert code == 2 and err.startswith("einhls: error:") and "(Einsum)" in err and "before any quantizer" in err, err
