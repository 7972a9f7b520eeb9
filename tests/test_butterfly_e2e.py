"""End to end: butterfly models written in PyTorch, quantized, exported, then
``einhls compile M.onnx -o OUT && einhls verify OUT`` (C-sim and RTL sim bit-exact)."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_butterfly import TorchButterflyStyle  # noqa: E402

from codegen.nn.butterfly import ButterflyLinear, ButterflyQuant, fake_quant  # noqa: E402

EINHLS = [sys.executable, "-m", "codegen.cli"]


class ButterflyMLP(torch.nn.Module):
    """A rectangular butterfly layer (20 -> 40: padding to 32, two stacks), ReLU, then a dense
    int8 layer: other scales than powers of two, a zero point on the butterfly's output."""

    def __init__(self) -> None:
        super().__init__()
        self.bfly = ButterflyLinear(20, 40, seed=11, quantize=ButterflyQuant(
            input_scale=0.031, twiddle_scale=0.0083, stage_scale=0.045, output_scale=0.052,
            output_zero_point=-5))
        g = torch.Generator().manual_seed(12)
        self.w = torch.nn.Parameter(torch.randn(10, 40, generator=g) * 0.1)

    def forward(self, x):
        h = torch.relu(self.bfly(x))
        h = fake_quant(h, 0.05, zero_point=-128)
        y = torch.nn.functional.linear(h, fake_quant(self.w, 0.002))
        return fake_quant(y, 0.04)


def export(model: torch.nn.Module, path: Path, k: int) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, k),), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"])


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EINHLS, *args], capture_output=True, text=True)


@pytest.mark.rtl
@pytest.mark.csim
def test_compile_and_verify_butterfly_mlp(tmp_path: Path) -> None:
    model_path = tmp_path / "m.onnx"
    export(ButterflyMLP(), model_path, 20)
    out = tmp_path / "out"
    proc = run("compile", str(model_path), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    report = run("report", str(out), "--json")
    assert report.returncode == 0, report.stderr
    import json
    kinds = [layer["kind"] for layer in json.loads(report.stdout)["layers"]]
    assert kinds[0] == "butterfly" and "linear" in kinds, kinds
    proc = run("verify", str(out), "--vectors", "32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "csim: bit-exact" in proc.stdout and "rtlsim: bit-exact" in proc.stdout, proc.stdout
    # the generated PYNQ driver, unchanged, against the same RTL through the simulated DMA
    proc = run("verify", str(out), "--pynq-sim", "--vectors", "8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pynqsim: bit-exact" in proc.stdout, proc.stdout


@pytest.mark.csim
def test_torch_butterfly_style_model_csim(tmp_path: Path) -> None:
    """torch_butterfly's pure-PyTorch form (Mul + ReduceSum per stage), compiled and C-simulated."""
    model_path = tmp_path / "tb.onnx"
    export(TorchButterflyStyle(32, seed=4), model_path, 32)
    out = tmp_path / "out"
    proc = run("compile", str(model_path), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = run("verify", str(out), "--csim", "--vectors", "64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "csim: bit-exact" in proc.stdout
