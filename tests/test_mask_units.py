"""Golden tests of the padding-mask unit (MaskScores: padding keys of the attention scores get the
masked code) alone, in Verilog and in HLS C++, and of the masked softmax it makes with the integer
softmax after it.

Ops come from ``make_mask_scores`` (codegen/ir/mask.py) and unit parameters from
codegen/emit/mask.py, as the emitters get them; expected codes come from ``MaskScores.reference``
only, compared element by element.  Every case runs several sequences back to back: all keys but
the first masked (scores all at the minimum), none masked (scores all at the maximum), every key
masked, then random masks and scores.  The RTL runs with no pauses, then with random input gaps
on both streams and random output back-pressure (``testbench/cocotb/join_units_tb.py``).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from codegen.emit.mask import hls_unit, rtl_unit
from codegen.emit.hls_rules import check_kernel_text
from codegen.errors import EinhlsError
from codegen.ir.mask import MaskScores, make_mask_scores, mask_gap
from codegen.ir.nonlinear import make_softmax
from codegen.ir.types import QType
from codegen.resources import resource_dir
from codegen.schedule.design import OpSchedule
from codegen.schedule.mask_cost import maskscores_cost

import test_attention_units as amm
from unit_csim import build_and_run, write_unit_header
from unit_rtlsim import build_and_simulate, case_config

SEQUENCES = 7


@dataclass
class Case:
    name: str
    op: MaskScores
    lanes: int

    @property
    def schedule(self) -> OpSchedule:
        return OpSchedule(self.op.name, self.lanes, self.lanes, self.lanes, self.lanes)


def case(name: str, heads: int, tokens: int, lanes: int, scores: QType, mask: QType = QType(True, 8)) -> Case:
    return Case(name, make_mask_scores(name, f"Add_{name}", scores, mask, heads, tokens), lanes)


CASES = {c.name: c for c in [
    case("h1_l4_x1", 1, 4, 1, QType(True, 8, 0.05, 3)),
    case("h2_l6_x3_uint8", 2, 6, 3, QType(False, 8, 0.02, 128), QType(False, 8)),
    case("h3_l8_x8", 3, 8, 8, QType(True, 8, 0.3, -7)),
    case("h2_l5_x5_int16", 2, 5, 5, QType(True, 16, 0.001, 0), QType(True, 16)),
    case("h1_l1_x1", 1, 1, 1, QType(True, 8, 0.1, 0)),
]}


def sequences(op: MaskScores, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores [count*L, heads*L] and the mask [count*L, 1]: the fixed sequences of the module
    docstring first, then random ones (random codes of the mask type: nonzero = a token)."""
    rng = np.random.default_rng(seed)
    rows = count * op.tokens
    x = rng.integers(op.in_type.min, op.in_type.max + 1, size=(rows, op.in_size), dtype=np.int64)
    m = rng.integers(0, 2, size=(rows, 1), dtype=np.int64)
    m[rng.random(rows) < 0.2] = op.in_type_b.min if op.in_type_b.min < 0 else op.in_type_b.max
    fixed = [(op.in_type.min, [1] + [0] * (op.tokens - 1)), (op.in_type.max, [1] * op.tokens),
             (op.in_type.min, [0] * op.tokens)]
    for k, (code, keep) in enumerate(fixed[:count]):
        x[k * op.tokens:(k + 1) * op.tokens] = code
        m[k * op.tokens:(k + 1) * op.tokens, 0] = keep
    return x, m


def reference(op: MaskScores, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return op.reference(torch.as_tensor(x), torch.as_tensor(m)).numpy().astype(np.int64)


# --- the op and the masked softmax (no simulator) ---------------------------------------------

def test_masked_code_makes_the_softmax_leave_padding_keys_out() -> None:
    """softmax(mask(x)) equals the integer softmax over the kept keys alone, and 0 (the output zero
    point) for every padding key: the large negative of the float op, exactly."""
    rng = np.random.default_rng(3)
    for scores in (QType(True, 8, 0.05, 0), QType(True, 8, 0.4, -3), QType(False, 8, 0.01, 128), QType(True, 12, 0.002)):
        tokens, heads = 9, 2
        op = make_mask_scores("m", "t", scores, QType(True, 8), heads, tokens)
        softmax = make_softmax(tokens, op.out_type)
        for trial in range(40):
            x = rng.integers(scores.min, scores.max + 1, size=(tokens, heads * tokens), dtype=np.int64)
            if trial == 0:   # the extremes: the kept key at the minimum, the masked ones at the maximum
                x[:] = scores.max
                x[:, ::tokens] = scores.min
            keep = rng.random(tokens) < 0.6
            keep[rng.integers(tokens)] = True
            if trial == 0:
                keep[:] = False
                keep[0] = True
            y = softmax.reference(op.reference(torch.as_tensor(x), torch.as_tensor(keep[:, None].astype(np.int64)))
                                  .reshape(-1, tokens)).numpy().reshape(tokens, heads, tokens)
            alone = make_softmax(int(keep.sum()), scores)
            want = alone.reference(torch.as_tensor(x.reshape(tokens, heads, tokens)[:, :, keep].reshape(-1, int(keep.sum()))))
            np.testing.assert_array_equal(y[:, :, keep].reshape(-1, int(keep.sum())), want.numpy())
            assert np.all(y[:, :, ~keep] == softmax.out_type.zero_point)


def test_gap_is_the_smallest_that_underflows() -> None:
    for scores in (QType(True, 8, 0.05), QType(True, 8, 2.0), QType(False, 4, 0.3, 8)):
        gap = mask_gap(scores)
        unit = make_softmax(4, QType(True, 16, scores.scale))
        z = lambda d: ((d * unit.exp_mult) >> unit.exp_shift) >> unit.frac_bits   # noqa: E731
        assert z(gap) >= unit.frac_bits + 1 > z(gap - 1) or gap == 1


def test_all_padding_row_is_uniform_and_json_round_trips() -> None:
    op = make_mask_scores("m", "t", QType(True, 8, 0.1), QType(True, 8), 1, 4, inputs=("s", "k"))
    y = op.reference(torch.arange(16).reshape(4, 4) - 8, torch.zeros(4, 1, dtype=torch.int64))
    assert torch.all(y == op.masked_code)
    again = MaskScores.from_json_fields(dict(name=op.name, source=op.source, in_type=op.in_type,
                                             out_type=op.out_type, in_size=op.in_size, out_size=op.out_size,
                                             inputs=op.inputs), op.to_json(), {})
    assert again == op
    with pytest.raises(ValueError, match="whole sequences"):
        op.reference(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 1, dtype=torch.int64))


def test_unit_parameters_cost_and_refusals() -> None:
    c = CASES["h2_l6_x3_uint8"]
    module, params = rtl_unit(c.op, c.schedule)
    p = {q.name: q.value for q in params}
    assert module == "einhls_mask"
    assert (p["TOKENS"], p["HEADS"], p["LANES"], p["IN_BITS"], p["IN_SIGNED"]) == (6, 2, 3, 8, 0)
    assert p["MASKED"] == c.op.masked_code < 0 and p["OUT_BITS"] == c.op.out_type.bits
    cost = maskscores_cost(c.op, c.schedule, "DSP48E2")
    assert cost.ii == 2 * 6 // 3 and cost.dsp == 0 and cost.buffer_bits == 12
    with pytest.raises(EinhlsError, match="4 lanes do not divide a row of 6 keys") as info:
        rtl_unit(c.op, OpSchedule(c.op.name, 4, 4, 4, 4))
    assert f"node {c.op.name!r}" in str(info.value)


def test_hls_kernel_follows_the_rules() -> None:
    text = (resource_dir("hls_kernels") / "einhls_mask.h").read_text()
    assert check_kernel_text("einhls_mask.h", text) == []


# --- RTL simulation ------------------------------------------------------------------------------

def run_rtl(cases: list[Case], folder: Path, count: int, seed: int) -> list[tuple[Case, dict, np.ndarray]]:
    from codegen.emit.rtl import KERNEL_DEPS

    amm._verilator()
    specs, expected = [], []
    for index, c in enumerate(cases):
        x, m = sequences(c.op, count, seed + index)
        module, params = rtl_unit(c.op, c.schedule)
        rows = count * c.op.tokens
        specs.append({"index": index, "name": c.name, "module": module, "params": params,
                      "inputs": [amm.stream_spec(c.op.in_type, c.op.in_size, c.lanes, x, rows),
                                 {**amm.stream_spec(c.op.in_type_b, 1, c.lanes, m, rows), "beats": rows}],
                      "outputs": [amm.stream_spec(c.op.out_type, c.op.out_size, c.lanes, None, rows)]})
        expected.append(reference(c.op, x, m))
    rtl = folder / "rtl"
    sources = amm.write_wrapper(specs, rtl)
    for name in ("einhls_mask", *KERNEL_DEPS["einhls_mask"]):
        shutil.copyfile(resource_dir("rtl_kernels") / f"{name}.v", rtl / f"{name}.v")
        sources.insert(0, rtl / f"{name}.v")
    got = build_and_simulate(sources, amm.WRAPPER_TOP, folder, case_config(specs, seed))
    return list(zip(cases, got, expected))


@pytest.fixture(scope="module")
def rtl_results(tmp_path_factory) -> dict:
    runs = run_rtl(list(CASES.values()), tmp_path_factory.mktemp("mask_rtl"), SEQUENCES, seed=5)
    return {c.name: (c, got, expected) for c, got, expected in runs}


@pytest.mark.rtl
@pytest.mark.parametrize("name", CASES)
def test_rtl_unit_matches_reference(name: str, rtl_results) -> None:
    c, got, expected = rtl_results[name]
    free, paused = got["phases"]
    for label, record in (("no pauses", free), ("random pauses", paused)):
        amm.check_outputs(f"{c.name} ({label})", record["outputs"][0], expected)
        assert record["extra_beats"] == [0], (c.name, label)
    assert np.any(expected == c.op.masked_code) and np.any(expected != c.op.masked_code)
    # one score beat per cycle once a sequence's mask is in: the sequences after the first take
    # exactly their beats (the next mask loads while the scores pass)
    cycles = free["out_cycles"][0]
    per_sequence = c.op.tokens * c.op.in_size // c.lanes
    later = cycles[per_sequence:]
    assert later[-1] - later[0] == len(later) - 1, (c.name, "cycles lost between sequences")


@pytest.mark.rtl
def test_wrapper_lint_clean(tmp_path: Path) -> None:
    from codegen.emit.rtl import LINT_WAIVERS
    specs = []
    for index, c in enumerate(CASES.values()):
        module, params = rtl_unit(c.op, c.schedule)
        specs.append({"index": index, "name": c.name, "module": module, "params": params,
                      "inputs": [amm.stream_spec(c.op.in_type, c.op.in_size, c.lanes, None, 1),
                                 amm.stream_spec(c.op.in_type_b, 1, c.lanes, None, 1)],
                      "outputs": [amm.stream_spec(c.op.out_type, c.op.out_size, c.lanes, None, 1)]})
    sources = amm.write_wrapper(specs, tmp_path)
    shutil.copyfile(resource_dir("rtl_kernels") / "einhls_mask.v", tmp_path / "einhls_mask.v")
    proc = subprocess.run([amm._verilator(), "--lint-only", "-Wall", str(resource_dir("rtl_kernels") / LINT_WAIVERS),
                           str(tmp_path / "einhls_mask.v"), *map(str, sources), "--top-module", amm.WRAPPER_TOP],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- C simulation --------------------------------------------------------------------------------

@amm.needs_csim
@pytest.mark.parametrize("name", CASES)
def test_csim_unit_matches_reference(name: str, csim_results) -> None:
    c, got, expected = csim_results[name]
    np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.fixture(scope="module")
def csim_results(tmp_path_factory) -> dict:
    from codegen.verify.csim import read_vectors, write_vectors

    folder = tmp_path_factory.mktemp("mask_csim")
    specs, expected = [], []
    cases = list(CASES.values())
    for index, c in enumerate(cases):
        x, m = sequences(c.op, SEQUENCES, 40 + index)
        expected.append(reference(c.op, x, m))
        write_vectors(folder / f"c{index}_a.txt", x)
        write_vectors(folder / f"c{index}_b.txt", m)
        unit = hls_unit(c.op, c.schedule, f"msk{index}", f"msk{index}.h")
        write_unit_header(folder, unit)
        specs.append({"name": c.name, "ns": unit.ns, "header": unit.header, "widths": unit.widths})
    build_and_run(folder, ["einhls_mask.h"], "mask_units.cpp.j2", specs, "mask_units")
    return {c.name: (c, read_vectors(folder / f"c{i}_out.txt", c.op.out_size), e)
            for i, (c, e) in enumerate(zip(cases, expected))}
