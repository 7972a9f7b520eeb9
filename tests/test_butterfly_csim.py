"""Golden tests of the HLS C++ butterfly unit (hls_kernels/einhls_butterfly.h) on its own:
C-simulation with g++ and the ap_types headers must equal the PyTorch integer reference on many
vectors (first all-minimum, then all-maximum inputs), for the same designs as the RTL tests
(tests/models/butterfly_cases.py) plus the slow ones, which are cheap in C-sim.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.butterfly_cases import CASES, SLOW  # noqa: E402

from codegen.emit.butterfly import emit_unit_csim  # noqa: E402
from codegen.ir.butterfly import sylvester_hadamard  # noqa: E402
from codegen.ir.reference import random_inputs, run_reference  # noqa: E402
from codegen.verify.csim import CXX, CXXFLAGS, ap_types_dir, read_vectors, write_vectors  # noqa: E402

pytestmark = [pytest.mark.csim,
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
              pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")]

VECTORS = 200


@pytest.mark.parametrize("name", [*CASES, *SLOW])
def test_butterfly_unit_csim(name: str, tmp_path: Path) -> None:
    design = (CASES.get(name) or SLOW[name])()
    op = design.graph.ops[0]
    emit_unit_csim(design, tmp_path)
    binary = tmp_path / "butterfly_unit"
    proc = subprocess.run([CXX, *CXXFLAGS, "-isystem", str(ap_types_dir()), "-I", str(tmp_path),
                           str(tmp_path / "butterfly_unit.cpp"), "-o", str(binary)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs = random_inputs(design.graph, VECTORS, seed=12)
    expected = run_reference(design.graph, inputs)
    if "identity" in name:
        np.testing.assert_array_equal(expected, inputs)
    if "hadamard" in name:
        np.testing.assert_array_equal(expected, inputs @ sylvester_hadamard(op.n).T)
    write_vectors(tmp_path / "inputs.txt", inputs)
    proc = subprocess.run([str(binary), str(tmp_path / "inputs.txt"), str(tmp_path / "outputs.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(read_vectors(tmp_path / "outputs.txt", op.out_size), expected)
