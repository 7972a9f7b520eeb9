"""Golden tests of the token-mean units (TokenMean: mean pooling over a sequence; MaskedTokenMean:
over its real tokens) alone, in Verilog and in HLS C++, and of their references against the float
mean.

Ops come from ``make_token_mean`` (codegen/ir/pooling.py), unit parameters from
codegen/emit/pooling.py; expected codes from ``TokenMean.reference`` only, element by element.
Every case runs several sequences back to back: all-minimum codes, all-maximum codes, then random;
the masked cases with one real token, all real, none real (the count clamped to 1), then random
masks.
The RTL runs with no pauses, then with random input gaps and output back-pressure.
The cases named ``*_ov`` are the two-bank units (the schedule's ``overlap``, einhls_tokenmean.v
OVERLAP = 1; in HLS the means written with the last token): the same reference, and with no pauses
a sequence every TOKENS x BEATS cycles (the one-bank unit: (TOKENS + 1) x BEATS).
"""
from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from codegen.emit.hls_rules import check_kernel_text
from codegen.emit.pooling import hls_unit, masked_hls_unit, masked_rtl_unit, rtl_unit
from codegen.ir.pooling import MaskedTokenMean, TokenMean, make_masked_token_mean, make_token_mean
from codegen.ir.types import QType
from codegen.resources import resource_dir
from codegen.schedule.design import OpSchedule
from codegen.schedule.pooling_cost import maskedmean_cost, tokenmean_cost

import test_attention_units as amm
import test_join_units as joins
from unit_csim import build_and_run, write_unit_header
from unit_rtlsim import build_and_simulate, case_config

SEQUENCES = 6


@dataclass
class Case:
    name: str
    op: TokenMean
    lanes: int
    overlap: int = 0

    @property
    def schedule(self) -> OpSchedule:
        return OpSchedule(self.op.name, self.lanes, self.lanes, self.lanes, self.lanes, overlap=self.overlap)


def case(name: str, size: int, tokens: int, lanes: int, in_type: QType, out_type: QType | None = None,
         overlap: int = 0) -> Case:
    return Case(name, make_token_mean(name, f"ReduceMean_{name}", in_type, size, tokens, out_type), lanes, overlap)


CASES = {c.name: c for c in [
    case("c6_l4_x3", 6, 4, 3, QType(True, 8, 0.05, 3)),
    case("c5_l7_x1_uint8", 5, 7, 1, QType(False, 8, 0.02, 128), QType(True, 8, 0.01, -4)),
    case("c8_l1_x8", 8, 1, 8, QType(True, 8, 0.1, 0)),
    case("c4_l16_x2_int16", 4, 16, 2, QType(True, 16, 0.001, 7)),
    case("c6_l3_x6_tie", 6, 3, 6, QType(True, 8, 0.25, 0), QType(True, 8, 0.5, 0)),
    # two banks: several beats a token, one token a sequence (the banks take turns every BEATS
    # cycles), one beat a token, 16-bit codes (the bench packs whole beats: lanes divide the size)
    case("c6_l4_x2_ov", 6, 4, 2, QType(True, 8, 0.05, 3), overlap=1),
    case("c4_l1_x2_uint8_ov", 4, 1, 2, QType(False, 8, 0.02, 128), QType(True, 8, 0.01, -4), overlap=1),
    case("c8_l3_x8_ov", 8, 3, 8, QType(True, 8, 0.1, 0), overlap=1),
    case("c4_l16_x1_int16_ov", 4, 16, 1, QType(True, 16, 0.001, 7), overlap=1),
]}


MASKED = {c.name: c for c in [
    Case("m_c6_l4_x3", make_masked_token_mean("m_c6_l4_x3", "Div", QType(True, 8, 0.05, 3), QType(True, 8), 6, 4), 3),
    Case("m_c5_l7_x1_uint8", make_masked_token_mean("m_c5_l7_x1_uint8", "Div", QType(False, 8, 0.02, 128),
                                                    QType(False, 8), 5, 7, QType(True, 8, 0.01, -4)), 1),
    Case("m_c8_l16_x4", make_masked_token_mean("m_c8_l16_x4", "Div", QType(True, 8, 0.1, 0), QType(True, 8),
                                               8, 16), 4),
    Case("m_c6_l4_x3_ov", make_masked_token_mean("m_c6_l4_x3_ov", "Div", QType(True, 8, 0.05, 3), QType(True, 8),
                                                 6, 4), 3, overlap=1),
    Case("m_c5_l3_x5_uint8_ov", make_masked_token_mean("m_c5_l3_x5_uint8_ov", "Div", QType(False, 8, 0.02, 128),
                                                       QType(False, 8), 5, 3, QType(True, 8, 0.01, -4)), 5,
         overlap=1),
]}


def masked_sequences(op: MaskedTokenMean, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = sequences(op, count, seed)
    m = (rng.random((count * op.tokens, 1)) < 0.6).astype(np.int64)
    m[rng.random(len(m)) < 0.1] = op.in_type_b.min if op.in_type_b.min < 0 else op.in_type_b.max   # nonzero codes
    for k, keep in enumerate([[1] + [0] * (op.tokens - 1), [1] * op.tokens, [0] * op.tokens][:count]):
        m[k * op.tokens:(k + 1) * op.tokens, 0] = keep
    x[2 * op.tokens:3 * op.tokens] = op.in_type.max if count > 2 else x[2 * op.tokens:3 * op.tokens]
    return x, m


def sequences(op: TokenMean, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(op.in_type.min, op.in_type.max + 1, size=(count * op.tokens, op.in_size), dtype=np.int64)
    x[:op.tokens] = op.in_type.min
    x[op.tokens:2 * op.tokens] = op.in_type.max
    return x


def reference(op: TokenMean, x: np.ndarray) -> np.ndarray:
    return op.reference(torch.as_tensor(x)).numpy().astype(np.int64)


def test_reference_is_the_rounded_float_mean() -> None:
    for c in CASES.values():
        op = c.op
        x = sequences(op, 20, 1)
        real = ((x - op.in_type.zero_point) * op.in_type.scale).reshape(20, op.tokens, op.in_size).mean(axis=1)
        want = np.clip(np.round(real / op.out_type.scale) + op.out_type.zero_point, op.out_type.min, op.out_type.max)
        got = reference(op, x)
        # one rounding of the exact sum; the float mean of the test breaks exact ties (sums of L
        # codes over L = 4 end in .5 often) by its own rounding noise
        assert np.abs(got - want).max() <= 1, c.name
        assert np.mean(got == want) > 0.9, c.name


def test_masked_reference_is_the_rounded_float_mean_over_real_tokens() -> None:
    for c in MASKED.values():
        op = c.op
        x, m = masked_sequences(op, 40, 2)
        keep = (m.reshape(40, op.tokens, 1) != 0)
        real = ((x - op.in_type.zero_point) * op.in_type.scale).reshape(40, op.tokens, op.in_size)
        mean = (real * keep).sum(axis=1) / np.maximum(keep.sum(axis=1), 1)
        want = np.clip(np.round(mean / op.out_type.scale) + op.out_type.zero_point, op.out_type.min, op.out_type.max)
        got = op.reference(torch.as_tensor(x), torch.as_tensor(m)).numpy()
        assert np.abs(got - want).max() <= 1, c.name
        assert np.mean(got == want) > 0.9, c.name
        assert np.all(got[2] == op.out_type.zero_point)          # no real token: the mean of nothing, 0
        # one real token (the first): its own codes, requantized to the output type
        np.testing.assert_array_equal(got[0], reference(make_token_mean("t", "t", op.in_type, op.in_size, 1,
                                                                        op.out_type), x[:1])[0])


def test_parameters_cost_and_json() -> None:
    c = CASES["c6_l4_x3"]
    module, params = rtl_unit(c.op, c.schedule)
    p = {q.name: q.value for q in params}
    assert module == "einhls_tokenmean" and (p["SIZE"], p["LANES"], p["TOKENS"], p["IN_ZP"]) == (6, 3, 4, 3)
    assert p["MULT"] == c.op.requant.multiplier[0] and p["SHIFT"] == c.op.requant.shift
    cost = tokenmean_cost(c.op, c.schedule, "DSP48E2")
    assert cost.ii == (4 + 1) * 2
    two_banks = tokenmean_cost(c.op, dataclasses.replace(c.schedule, overlap=1), "DSP48E2")
    assert (two_banks.ii, two_banks.latency) == (4 * 2, cost.latency)
    assert two_banks.lut > cost.lut and two_banks.buffer_bits == 2 * cost.buffer_bits
    assert "OVERLAP" not in {q.name for q in params}
    _, with_banks = rtl_unit(c.op, dataclasses.replace(c.schedule, overlap=1))
    assert {q.name: q.value for q in with_banks}["OVERLAP"] == 1
    assert hls_unit(c.op, dataclasses.replace(c.schedule, overlap=1), "tm", "tm.h").function == \
        "tokenmean_overlap_stream"
    assert hls_unit(c.op, c.schedule, "tm", "tm.h").function == "tokenmean_stream"
    assert c.op.out_tokens(8) == 2
    with pytest.raises(ValueError, match="whole sequences"):
        c.op.out_tokens(6)
    again = TokenMean.from_json_fields(dict(name=c.op.name, source=c.op.source, in_type=c.op.in_type,
                                            out_type=c.op.out_type, in_size=c.op.in_size, out_size=c.op.out_size,
                                            inputs=c.op.inputs), c.op.to_json(), {})
    assert again == c.op
    text = (resource_dir("hls_kernels") / "einhls_tokenmean.h").read_text()
    assert check_kernel_text("einhls_tokenmean.h", text) == []


@pytest.fixture(scope="module")
def rtl_results(tmp_path_factory) -> dict:
    from codegen.emit.rtl import LINT_WAIVERS

    amm._verilator()
    folder = tmp_path_factory.mktemp("tokenmean_rtl")
    cases = list(CASES.values()) + list(MASKED.values())
    specs, expected = [], []
    for index, c in enumerate(cases):
        if isinstance(c.op, MaskedTokenMean):   # two streams: s0 the tokens, s1 the mask
            x, m = masked_sequences(c.op, SEQUENCES, 30 + index)
            module, params = masked_rtl_unit(c.op, c.schedule)
            inputs = [amm.stream_spec(c.op.in_type, c.op.in_size, c.lanes, x, len(x)),
                      amm.stream_spec(c.op.in_type_b, 1, c.lanes, m, len(m))]
            expected.append(c.op.reference(torch.as_tensor(x), torch.as_tensor(m)).numpy())
            kind = "add"   # the join wrapper's form for units with s0 / s1 ports
        else:
            x = sequences(c.op, SEQUENCES, 30 + index)
            module, params = rtl_unit(c.op, c.schedule)
            inputs = [amm.stream_spec(c.op.in_type, c.op.in_size, c.lanes, x, len(x))]
            expected.append(reference(c.op, x))
            kind = c.op.kind
        specs.append({"index": index, "name": c.name, "kind": kind, "module": module, "params": params,
                      "inputs": inputs,
                      "outputs": [amm.stream_spec(c.op.out_type, c.op.out_size, c.lanes, None, SEQUENCES)]})
    sources = joins._write_wrapper(specs, folder / "rtl")   # one s_axis per unit: the join wrapper's form
    lint = subprocess.run([amm._verilator(), "--lint-only", "-Wall", str(resource_dir("rtl_kernels") / LINT_WAIVERS),
                           *map(str, sources), "--top-module", joins.WRAPPER_TOP], capture_output=True, text=True)
    got = build_and_simulate(sources, joins.WRAPPER_TOP, folder, case_config(specs, 3))
    return {c.name: (c, g, e) for c, g, e in zip(cases, got, expected)}, lint


@pytest.mark.rtl
def test_rtl_lint_clean(rtl_results) -> None:
    _, lint = rtl_results
    assert lint.returncode == 0, lint.stderr


@pytest.mark.rtl
@pytest.mark.parametrize("name", [*CASES, *MASKED])
def test_rtl_unit_matches_reference(name: str, rtl_results) -> None:
    c, got, expected = rtl_results[0][name]
    for label, record in zip(("no pauses", "random pauses"), got["phases"]):
        amm.check_outputs(f"{name} ({label})", record["outputs"][0], expected)
        assert record["extra_beats"] == [0], (name, label)
    assert len(np.unique(expected)) > 2


@pytest.mark.rtl
@pytest.mark.parametrize("name", [*CASES, *MASKED])
def test_rtl_unit_sequence_interval(name: str, rtl_results) -> None:
    """With no pauses, the cycles between the first input beats of consecutive sequences (after the
    first two, the steady state): TOKENS x BEATS with two banks, (TOKENS + 1) x BEATS with one, the
    cost model's interval."""
    c, got, _ = rtl_results[0][name]
    beats = -(-c.op.in_size // c.lanes)
    starts = got["phases"][0]["in_cycles"][0][::c.op.tokens * beats]
    assert len(starts) == SEQUENCES
    gaps = set(np.diff(starts[1:]).tolist())
    want = c.op.tokens * beats + (0 if c.overlap else beats)
    cost = (tokenmean_cost if isinstance(c.op, TokenMean) else maskedmean_cost)(c.op, c.schedule, "DSP48E2")
    assert gaps == {want} == {cost.ii}, (name, gaps, want, cost.ii)


@amm.needs_csim
@pytest.mark.parametrize("name", CASES)
def test_csim_unit_matches_reference(name: str, csim_results) -> None:
    c, got, expected, steps = csim_results[name]
    np.testing.assert_array_equal(got, expected, err_msg=name)
    check_steps(c, steps)


@pytest.fixture(scope="module")
def csim_results(tmp_path_factory) -> dict:
    from codegen.verify.csim import read_vectors, write_vectors

    folder = tmp_path_factory.mktemp("tokenmean_csim")
    cases = list(CASES.values())
    specs, expected = [], []
    for index, c in enumerate(cases):
        x = sequences(c.op, SEQUENCES, 50 + index)
        expected.append(reference(c.op, x))
        write_vectors(folder / f"c{index}_a.txt", x)
        unit = hls_unit(c.op, c.schedule, f"tm{index}", f"tm{index}.h")
        write_unit_header(folder, unit)
        specs.append({"name": c.name, "ns": unit.ns, "header": unit.header, "function": unit.function})
    build_and_run(folder, ["einhls_tokenmean.h"], "tokenmean_units.cpp.j2", specs, "tokenmean_units")
    steps = step_counts(folder, [f"tm{index}" for index in range(len(cases))])
    return {c.name: (c, read_vectors(folder / f"c{i}_out.txt", c.op.out_size), e, steps[i])
            for i, (c, e) in enumerate(zip(cases, expected))}


def step_counts(folder, namespaces: list[str]) -> list[tuple[int, int]]:
    """(calls, most pipelined steps in one call) of each case's unit, found by its cfg namespace in
    the process signature (tests/unit_csim.py leaves the counts in cycles.tsv)."""
    counts = amm.process_counts(folder)
    found = []
    for ns in namespaces:
        mine = [v for signature, v in counts.items() if f"{ns}::cfg" in signature]
        assert len(mine) == 1, (ns, counts)
        found.append(mine[0])
    return found


def check_steps(c: Case, steps: tuple[int, int]) -> None:
    """One call a sequence, and the cost model's interval in steps of II = 1 per call: TOKENS x
    BEATS with the means written along the last token, TOKENS x BEATS + BEATS without."""
    beats = -(-c.op.in_size // c.lanes)
    cost = (tokenmean_cost if isinstance(c.op, TokenMean) else maskedmean_cost)(c.op, c.schedule, "DSP48E2")
    assert steps == (SEQUENCES, c.op.tokens * beats + (0 if c.overlap else beats)), (c.name, steps)
    assert steps[1] == cost.ii


@amm.needs_csim
@pytest.mark.parametrize("name", MASKED)
def test_csim_masked_unit_matches_reference(name: str, masked_csim_results) -> None:
    c, got, expected, steps = masked_csim_results[name]
    np.testing.assert_array_equal(got, expected, err_msg=name)
    check_steps(c, steps)


@pytest.fixture(scope="module")
def masked_csim_results(tmp_path_factory) -> dict:
    from codegen.verify.csim import read_vectors, write_vectors

    folder = tmp_path_factory.mktemp("maskedmean_csim")
    cases = list(MASKED.values())
    specs, expected = [], []
    for index, c in enumerate(cases):
        x, m = masked_sequences(c.op, SEQUENCES, 60 + index)
        expected.append(c.op.reference(torch.as_tensor(x), torch.as_tensor(m)).numpy())
        write_vectors(folder / f"c{index}_a.txt", x)
        write_vectors(folder / f"c{index}_b.txt", m)
        unit = masked_hls_unit(c.op, c.schedule, f"mm{index}", f"mm{index}.h")
        write_unit_header(folder, unit)
        specs.append({"name": c.name, "ns": unit.ns, "header": unit.header, "function": unit.function})
    build_and_run(folder, ["einhls_maskedmean.h"], "maskedmean_units.cpp.j2", specs, "maskedmean_units")
    assert check_kernel_text("einhls_maskedmean.h", (folder / "einhls_maskedmean.h").read_text()) == []
    steps = step_counts(folder, [f"mm{index}" for index in range(len(cases))])
    return {c.name: (c, read_vectors(folder / f"c{i}_out.txt", c.op.out_size), e, steps[i])
            for i, (c, e) in enumerate(zip(cases, expected))}
