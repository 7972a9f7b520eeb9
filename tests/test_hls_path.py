"""The Vitis HLS path on designs that stress it (issue 15): wide words, contraction stages.

The tensor-train 512 -> 512 layer (TT cores 8x8x8 by 8x8x8, ranks 8, 8) on the zcu104 builds
internal words of 1152 bits (SIMD inputs of one contraction step) while every stream between the
processes is narrower than 1024: AP_INT_MAX_W must come from every width a kernel builds, not only
from the streams.  C-sim is compared element by element with the PyTorch integer reference.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from codegen.project import CompileOptions, compile_model
from codegen.verify.csim import CXX, CXXFLAGS, ap_types_dir
from codegen.verify.runner import verify

from models.einsum_models import tt_model

pytestmark = [pytest.mark.csim,
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
              pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")]


@pytest.fixture(scope="module")
def tt512(tmp_path_factory):
    root = tmp_path_factory.mktemp("tt512")
    model = root / "tt512.onnx"
    model.write_bytes(tt_model([8, 8, 8], [8, 8, 8], [8, 8]).SerializeToString())
    return compile_model(model, root / "out", CompileOptions(board="zcu104"), progress=lambda *_: None)


def test_tt512_zcu104_csim_bit_exact(tt512):
    (result,) = verify(tt512, ("csim",), 16, seed=5, progress=lambda *_: None)
    assert result.passed, result.line()


def test_tt512_has_words_wider_than_1024_inside_a_kernel(tt512):
    """The case the width list once missed: the wide word is inside contract_linear, not a stream."""
    top = (tt512.path / "hls" / f"{tt512.design.top_name}.cpp").read_text()
    streams = [int(w) for w in re.findall(r"hls::stream<ap_uint<(\d+)> >", top)]
    assert streams and max(streams) <= 1024
    header = (tt512.path / "hls" / f"{tt512.design.top_name}.h").read_text()
    assert re.search(r"#define AP_INT_MAX_W (\d+)", header), "the 1152-bit word needs AP_INT_MAX_W"


def test_kernels_refuse_to_compile_without_the_width_limit(tt512, tmp_path):
    """Without the AP_INT_MAX_W define the kernels' static_asserts stop g++ (no run-time abort)."""
    hls = tmp_path / "hls"
    shutil.copytree(tt512.path / "hls", hls)
    header = hls / f"{tt512.design.top_name}.h"
    header.write_text(re.sub(r"#define AP_INT_MAX_W \d+", "", header.read_text()))
    proc = subprocess.run([CXX, *CXXFLAGS, "-isystem", str(ap_types_dir()), "-I", str(hls), "-fsyntax-only",
                           str(hls / f"{tt512.design.top_name}.cpp")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "exceeds AP_INT_MAX_W" in proc.stderr, proc.stderr[-2000:]
