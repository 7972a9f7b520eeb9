"""The RTL simulation harness itself (testbench/cocotb/test_einhls.py driven by
codegen/verify/rtlsim.py): the second, paused pass limited to the first vectors, and its checks
still failing on a wrong design."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codegen.emit.cocotb_tb import emit_cocotb_tb
from codegen.emit.rtl import emit_rtl
from codegen.examples import chain_graph, manual_design
from codegen.ir.reference import random_inputs, run_reference
from codegen.verify.rtlsim import RUN_DIR, run_rtlsim

pytestmark = pytest.mark.rtl


def chain_project(out: Path):
    """Two Linear layers with a lane converter between them (fc1 writes 2 elements per beat, fc2
    reads 5), so the handshakes inside stall and the output comes in bursts."""
    design = manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                           "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)})
    emit_rtl(design, out)
    emit_cocotb_tb(design, out)
    return design


def test_paused_vectors_out_of_range_is_refused_before_any_build(tmp_path):
    design = chain_project(tmp_path)
    inputs = random_inputs(design.graph, 3, seed=1)
    expected = run_reference(design.graph, inputs)
    for paused in (0, 4):
        result = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work", paused_vectors=paused)
        assert not result.passed and "paused_vectors must be between 1 and the 3 vectors" in result.error
    assert not (tmp_path / "work" / RUN_DIR).exists()


def test_only_the_first_vectors_take_the_paused_pass(tmp_path):
    """Six vectors back to back, the first two again with random gaps and back-pressure: both
    passes compared with the reference element by element, and a wrong expected element in a
    vector that only the first pass sends still fails the check."""
    design = chain_project(tmp_path)
    inputs = random_inputs(design.graph, 6, seed=2)
    expected = run_reference(design.graph, inputs)
    result = run_rtlsim(tmp_path, inputs, expected, tmp_path / "work", seed=3, paused_vectors=2)
    assert result.passed, result.line()
    results = json.loads((tmp_path / "work" / RUN_DIR / "results.json").read_text())
    assert results["paused_vectors"] == 2 and len(results["outputs_backpressure"]) == 2
    assert np.array_equal(np.asarray(results["outputs_backpressure"]), expected[:2])
    assert np.array_equal(np.asarray(results["outputs"]), expected)
    assert len(results["frame_gaps"]) == 5 and result.measured["interval_cycles"] > 0

    wrong = expected.copy()
    wrong[4, 1] += 1                        # only in the back-to-back pass
    result = run_rtlsim(tmp_path, inputs, wrong, tmp_path / "work", seed=3, paused_vectors=2)
    assert not result.passed and (result.mismatch.vector, result.mismatch.element) == (4, 1)
