"""Golden tests of the attention product unit (ActMatMul: scores Q K^T, context P V) alone, in
Verilog and in HLS C++.

Ops come from ``make_actmatmul`` (codegen/ir/attention.py) and unit parameters from
codegen/emit/attention.py, as the emitters get them; expected codes come from
``ActMatMul.reference`` only, compared element by element.  Cases: both layouts, heads 1, 2, 3,
inner / cols 1 and primes, sequences of 1, 4, 6 and 7 tokens, signed and unsigned 8-bit codes
with non-zero zero points, a 4-bit case (LUT products), a power-of-two scale (round-half-to-even
ties).  Every case runs several sequences back to back: the first four are all-minimum /
all-maximum codes on a and b in every combination, the rest random.

* RTL: every case is one instance of a generated wrapper (``testbench/cocotb/actmatmul_units_top.v.j2``),
  built once with Verilator and driven by ``testbench/cocotb/join_units_tb.py`` (cocotbext-axi):
  first with no pauses, where the cycles between rows are measured and compared with the cost
  model's interval (codegen/schedule/attention_cost.py), then with random input gaps on a and b
  and random output back-pressure.
* C-sim: ``hls_kernels/einhls_actmatmul.h`` compiled with g++ and the ap_types headers, one binary
  per case, fed the same sequences.

A wider random sweep of both is marked slow.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pytest
import torch

from codegen.emit.attention import fifo_depth, folding, hls_unit, rtl_unit
from codegen.emit.hls_rules import check_kernel_text
from codegen.emit.rtl import KERNEL_DEPS, LINT_WAIVERS, verilog_value
from codegen.errors import EinhlsError
from codegen.ir.attention import ActMatMul, make_actmatmul
from codegen.ir.types import QType
from codegen.resources import resource_dir
from codegen.schedule.attention_cost import actmatmul_cost, actmatmul_options
from codegen.schedule.design import OpSchedule
from codegen.verify.csim import CXX, ap_types_dir, read_vectors, write_vectors
from unit_rtlsim import build_and_simulate, case_config

RTL_GROUP = pytest.mark.xdist_group("attention_units_rtl")
CSIM_GROUP = pytest.mark.xdist_group("attention_units_csim")
WRAPPER_TOP = "actmatmul_units_top"
SEQUENCES = 6           # per case in the RTL run: four of extremes, then random
RTL_MODULES = ("einhls_actmatmul",)


def s(bits: int, zp: int = 0, scale: float = 0.05) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, zp: int = 0, scale: float = 0.05) -> QType:
    return QType(False, bits, scale, zp)


@dataclass
class Case:
    name: str
    op: ActMatMul
    simd: int
    pe: int
    a_lanes: int
    b_lanes: int
    out_lanes: int
    b_sequences: int = 2     # 1: one sequence of b buffered (load, then rows)
    b_uram: bool = False     # the b buffer in UltraRAM (ram_style "ultra" / BIND_STORAGE impl=uram)

    @property
    def schedule(self) -> OpSchedule:
        return OpSchedule(self.op.name, self.simd, self.pe, self.a_lanes, self.out_lanes)


def spread_multiplier(a: QType, b: QType, inner: int, out: QType) -> float:
    """A requant scale that maps a few standard deviations of random dot products onto the
    output range: random rows use most codes, the extreme sequences saturate."""
    sd = (a.max - a.min) * (b.max - b.min) / 12 * max(inner, 1) ** 0.5
    return (out.max - out.min) / (6 * sd)


def case(name: str, layout: str, heads: int, inner: int, cols: int, a: QType, b: QType, out: QType,
         simd: int, pe: int, a_lanes: int, b_lanes: int, out_lanes: int, multiplier: float | None = None,
         b_sequences: int = 2, b_uram: bool = False) -> Case:
    tokens = cols if layout == "nt" else inner
    m = spread_multiplier(a, b, inner, out) if multiplier is None else multiplier
    op = make_actmatmul(name, f"MatMul_{name}", a, b, heads, inner, cols, tokens, layout, out, m)
    return Case(name, op, simd, pe, a_lanes, b_lanes, out_lanes, b_sequences, b_uram)


def _cases() -> list[Case]:
    return [
        # scores: several k and n folds per head, so the b address walk wraps every way
        case("nt_h2_k6_l4", "nt", 2, 6, 4, s(8, 3), s(8, -5), s(8, 2), 2, 2, 4, 3, 2),
        # context: P unsigned (softmax output), V signed; banks by k, words by n
        case("nn_h2_l6_n4", "nn", 2, 6, 4, u(8, 0), s(8, -3), s(8, -1), 3, 2, 2, 4, 8),
        # primes, three heads, all k of a head at once, one n at a time
        case("nt_h3_k7_l7", "nt", 3, 7, 7, u(8, 100), u(8, 17), u(8, 128), 7, 1, 7, 3, 7),
        case("nn_h1_l7_n5", "nn", 1, 7, 5, s(8, -20), u(8, 200), s(8, 0), 1, 5, 1, 5, 5),
        # ones everywhere
        case("nt_h1_k1_l1", "nt", 1, 1, 1, s(8, 1), s(8, -1), s(8, 0), 1, 1, 1, 1, 1),
        case("nn_h3_l1_n1", "nn", 3, 1, 1, u(8, 7), s(8, 5), u(8, 3), 1, 1, 3, 1, 1),
        # 4-bit codes (LUT products), power-of-two scale: round-half-to-even ties
        case("nt_h2_k3_l4_int4", "nt", 2, 3, 4, s(4, 1), u(4, 7), s(4, -2), 3, 2, 2, 3, 4, multiplier=2.0 ** -3),
        # a long row and a short b: the row's a beats arrive after b, so the latency is measured
        case("nt_h1_k8_l1_latency", "nt", 1, 8, 1, s(8, 0), s(8, 9), s(8, 5), 4, 1, 1, 8, 1),
        case("nn_h1_l1_n4_latency", "nn", 1, 1, 4, u(8, 3), s(8, -9), s(8, 5), 1, 4, 1, 4, 1),
        case("nt_h2_k8_l1_split_latency", "nt", 2, 8, 1, s(8, 0), u(8, 9), s(8, 5), 2, 1, 16, 16, 2),
        # one sequence of b (half the buffer): b of the next sequence loads after the last row
        case("nt_h2_k6_l4_single", "nt", 2, 6, 4, s(8, 3), s(8, -5), s(8, 2), 2, 2, 4, 3, 2, b_sequences=1),
        case("nn_h2_l6_n4_single", "nn", 2, 6, 4, u(8, 0), s(8, -3), s(8, -1), 3, 2, 2, 4, 8, b_sequences=1),
        case("nt_h3_k7_l7_single", "nt", 3, 7, 7, u(8, 100), u(8, 17), u(8, 128), 7, 1, 7, 3, 7, b_sequences=1),
        case("nt_h1_k1_l1_single", "nt", 1, 1, 1, s(8, 1), s(8, -1), s(8, 0), 1, 1, 1, 1, 1, b_sequences=1),
        # the b buffer in UltraRAM: the same unit, its banks' memories marked "ultra"
        case("nt_h2_k6_l4_uram", "nt", 2, 6, 4, s(8, 3), s(8, -5), s(8, 2), 2, 2, 4, 3, 2, b_uram=True),
        case("nn_h2_l6_n4_single_uram", "nn", 2, 6, 4, u(8, 0), s(8, -3), s(8, -1), 3, 2, 2, 4, 8,
             b_sequences=1, b_uram=True),
        case("nt_h3_k7_l7_single_uram", "nt", 3, 7, 7, u(8, 100), u(8, 17), u(8, 128), 7, 1, 7, 3, 7,
             b_sequences=1, b_uram=True),
    ]


CASES = {c.name: c for c in _cases()}


def sequences(op: ActMatMul, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """a [count*L, heads*inner] and b [count*L, b features] codes: the four combinations of all-min
    and all-max first, then random sequences."""
    rng = np.random.default_rng(seed)
    rows = count * op.tokens
    a = rng.integers(op.in_type.min, op.in_type.max + 1, size=(rows, op.in_size), dtype=np.int64)
    b = rng.integers(op.in_type_b.min, op.in_type_b.max + 1, size=(rows, op.in_size_b), dtype=np.int64)
    for k in range(min(4, count)):
        rows_k = slice(k * op.tokens, (k + 1) * op.tokens)
        a[rows_k] = op.in_type.max if k & 1 else op.in_type.min
        b[rows_k] = op.in_type_b.max if k & 2 else op.in_type_b.min
    return a, b


def reference(op: ActMatMul, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return op.reference(torch.as_tensor(a), torch.as_tensor(b)).numpy().astype(np.int64)


# --- parameters, cost and errors (no simulator) -------------------------------------------------

def params_of(c: Case) -> dict[str, int | str]:
    module, params, mems = rtl_unit(0, c.op, c.schedule, c.b_lanes, c.b_sequences, c.b_uram)
    assert module == "einhls_actmatmul" and mems == []
    return {p.name: p.value for p in params}


def test_rtl_unit_parameters() -> None:
    c = CASES["nn_h2_l6_n4"]
    p = params_of(c)
    rq = c.op.requant
    assert (p["HEADS"], p["INNER"], p["COLS"], p["TOKENS"], p["LAYOUT"]) == (2, 6, 4, 6, 1)
    assert (p["SIMD"], p["PE"], p["A_LANES"], p["B_LANES"], p["OUT_LANES"]) == (3, 2, 2, 4, 8)
    assert (p["A_BITS"], p["A_SIGNED"], p["A_ZP"], p["B_BITS"], p["B_SIGNED"], p["B_ZP"]) == (8, 0, 0, 8, 1, -3)
    assert (p["MULT"], p["MULT_BITS"], p["SHIFT"], p["OUT_ZP"], p["LO"], p["HI"]) == \
        (rq.multiplier[0], rq.multiplier_bits, rq.shift, -1, -128, 127)
    lo, hi = c.op.acc_range
    bits = p["ACC_BITS"]
    assert -(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))
    assert p["MUL_LUT"] == 0 and params_of(CASES["nt_h2_k3_l4_int4"])["MUL_LUT"] == 1
    assert p["FIFO_DEPTH"] == fifo_depth(c.op, folding(c.op, c.schedule, c.b_lanes)) >= 2
    assert "einhls_actmatmul" in KERNEL_DEPS
    assert p["B_SEQS"] == 2 and params_of(CASES["nn_h2_l6_n4_single"])["B_SEQS"] == 1
    assert p["B_URAM"] == 0 and params_of(CASES["nn_h2_l6_n4_single_uram"])["B_URAM"] == 1


def test_one_sequence_of_b_halves_the_buffer_and_adds_the_load() -> None:
    from codegen.schedule.attention_cost import SINGLE_GAP, b_banks, sequence_cycles
    double, single = CASES["nt_h2_k6_l4"], CASES["nt_h2_k6_l4_single"]
    f = folding(single.op, single.schedule, single.b_lanes)
    assert b_banks(single.op, f, 1)[1] * 2 == b_banks(double.op, f, 2)[1]
    # tokens x (b words: 12 features in words of SIMD 2 codes, a beat of 3 codes a cycle -> 6;
    # plus the row's 2 heads x 3 kf x 2 nf steps) + the measured gap
    assert sequence_cycles(single.op, f, 1) == 4 * (6 + 12) + SINGLE_GAP
    with pytest.raises(EinhlsError, match="holds 1 or 2 sequences, not 3"):
        rtl_unit(0, single.op, single.schedule, b_sequences=3)


@pytest.mark.parametrize("simd, pe, lanes, out_lanes, message", [
    (4, 2, 4, 2, "SIMD 4 does not divide the summed axis"),
    (2, 3, 4, 2, "PE 3 does not divide the output columns per head"),
    (2, 2, 5, 2, "5 lanes do not divide the 12 features per token of a"),
    (2, 2, 4, 3, "3 lanes do not divide the 8 features per token of the output"),
    (0, 2, 4, 2, "SIMD 0 must be a positive integer"),
])
def test_rtl_unit_refuses_what_does_not_fit(simd: int, pe: int, lanes: int, out_lanes: int, message: str) -> None:
    op = CASES["nt_h2_k6_l4"].op
    with pytest.raises(EinhlsError, match=message) as info:
        rtl_unit(0, op, OpSchedule(op.name, simd, pe, lanes, out_lanes))
    assert f"node {op.name!r}" in str(info.value)


def test_cost_and_options() -> None:
    c = CASES["nt_h3_k7_l7"]
    cost = actmatmul_cost(c.op, OpSchedule(c.op.name, 7, 1, 7, 7), "DSP48E2")
    assert cost.cycles == cost.ii == 3 * 1 * 7
    assert cost.multipliers == 7 and cost.dsp >= 7 and cost.macs == 3 * 7 * 7
    assert cost.buffer_bits >= 2 * 7 * 21 * 9
    narrow = actmatmul_cost(CASES["nt_h2_k3_l4_int4"].op, OpSchedule("x", 3, 2, 2, 4), "DSP48E2")
    assert narrow.dsp <= 1          # LUT products; at most the requant multiplier
    options = actmatmul_options(c.op)
    assert {(simd, pe) for _, simd, pe in options} == {(si, p) for si in (1, 7) for p in (1, 7)}
    assert options[0] == (3 * 7 * 7, 1, 1) and all(cyc == 3 * (7 // si) * (7 // p) for cyc, si, p in options)


# --- RTL simulation ------------------------------------------------------------------------------

def _verilator() -> str:
    from codegen.verify.tools import verilator_bin

    folder = verilator_bin()
    if folder is None or not (folder / "verilator").exists():
        pytest.skip("verilator not installed")
    return str(folder / "verilator")


def stream_spec(t: QType, size: int, lanes: int, rows: np.ndarray | None, count: int) -> dict:
    spec = {"bits": t.bits, "signed": t.signed, "lanes": lanes, "size": size, "width": lanes * t.bits,
            "beats": count * size // lanes}
    if rows is not None:
        spec["tokens"] = rows.tolist()
    return spec


def rtl_case_spec(index: int, c: Case, count: int, seed: int) -> tuple[dict, np.ndarray]:
    op = c.op
    module, params, _ = rtl_unit(index, op, c.schedule, c.b_lanes, c.b_sequences, c.b_uram)
    a, b = sequences(op, count, seed)
    rows = count * op.tokens
    spec = {"index": index, "name": c.name, "module": module, "params": params,
            "inputs": [stream_spec(op.in_type, op.in_size, c.a_lanes, a, rows),
                       stream_spec(op.in_type_b, op.in_size_b, c.b_lanes, b, rows)],
            "outputs": [stream_spec(op.out_type, op.out_size, c.out_lanes, None, rows)]}
    return spec, reference(op, a, b)


def write_wrapper(specs: list[dict], folder: Path) -> list[Path]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("testbench") / "cocotb")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["verilog_value"] = verilog_value
    folder.mkdir(parents=True, exist_ok=True)
    top = folder / f"{WRAPPER_TOP}.v"
    top.write_text(env.get_template("actmatmul_units_top.v.j2").render(top=WRAPPER_TOP, cases=specs))
    modules = set(RTL_MODULES) | {dep for m in RTL_MODULES for dep in KERNEL_DEPS[m]}
    kernels = []
    for name in sorted(modules):
        kernels.append(folder / f"{name}.v")
        shutil.copyfile(resource_dir("rtl_kernels") / f"{name}.v", kernels[-1])
    return [*kernels, top]


@pytest.mark.rtl
def test_wrapper_lint_clean(tmp_path: Path) -> None:
    """Every case's instance: verilator --lint-only -Wall with the library's waivers only."""
    specs = [rtl_case_spec(i, c, 1, 0)[0] for i, c in enumerate(CASES.values())]
    sources = write_wrapper(specs, tmp_path)
    proc = subprocess.run([_verilator(), "--lint-only", "-Wall", str(resource_dir("rtl_kernels") / LINT_WAIVERS),
                           *map(str, sources), "--top-module", WRAPPER_TOP], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def run_rtl(cases: list[Case], folder: Path, count: int, seed: int) -> list[tuple[Case, dict, np.ndarray]]:
    """Build the wrapper of ``cases`` with Verilator and simulate; returns (case, result, expected)."""
    _verilator()
    specs, expected = zip(*(rtl_case_spec(i, c, count, seed + i) for i, c in enumerate(cases)))
    sources = write_wrapper(list(specs), folder / "rtl")
    got = build_and_simulate(sources, WRAPPER_TOP, folder, case_config(list(specs), seed))
    return [(c, g, e) for c, g, e in zip(cases, got, expected)]


def check_outputs(name: str, flat: list[int], expected: np.ndarray) -> None:
    arr = np.asarray(flat, dtype=np.int64)
    assert arr.size == expected.size, (name, arr.size, expected.size)
    np.testing.assert_array_equal(arr.reshape(expected.shape), expected, err_msg=name)


def row_starts(c: Case, out_cycles: list[int]) -> np.ndarray:
    """Cycle of the first output beat of every a row."""
    beats = c.op.out_size // c.out_lanes
    return np.asarray(out_cycles[::beats], dtype=np.int64)


def measured_timing(c: Case, record: dict) -> dict:
    """From the no-pause phase: cycles between consecutive rows, cycles per row over whole
    sequences after the first, and the first row's latency from its first a beat."""
    starts = row_starts(c, record["out_cycles"][0])
    L, count = c.op.tokens, len(starts) // c.op.tokens
    per_row = (starts[(count - 1) * L] - starts[L]) / ((count - 2) * L)
    out_beats = c.op.out_size // c.out_lanes
    latency = record["out_cycles"][0][out_beats - 1] - record["in_cycles"][0][0]
    return {"row_gaps": np.diff(starts).tolist(), "per_row": per_row, "latency": int(latency)}


def check_rtl_case(c: Case, got: dict, expected: np.ndarray) -> dict:
    free, paused = got["phases"]
    for label, record in (("no pauses", free), ("random pauses", paused)):
        check_outputs(f"{c.name} ({label})", record["outputs"][0], expected)
        assert record["extra_beats"] == [0], (c.name, label, "beats after the last row")
    # the random phase really paused: some stream moved slower than one beat per cycle
    assert any(cyc[-1] - cyc[0] > len(cyc) - 1 for cyc in [*paused["in_cycles"], *paused["out_cycles"]]
               if len(cyc) > 1), c.name
    cost = actmatmul_cost(c.op, OpSchedule(c.op.name, c.simd, c.pe, c.a_lanes, c.out_lanes), "DSP48E2") \
        if c.a_lanes == c.b_lanes else None
    timing = measured_timing(c, free)
    f = folding(c.op, c.schedule, c.b_lanes)
    compute = c.op.heads * (c.op.inner // c.simd) * (c.op.cols // c.pe)
    ii = max(compute, c.op.in_size // f.a_lanes, c.op.in_size_b // f.b_lanes, c.op.out_size // f.out_lanes)
    if c.b_sequences == 1:
        # one sequence of b: whole sequences after the first take the load plus the rows, exactly
        from codegen.schedule.attention_cost import sequence_cycles
        assert timing["per_row"] * c.op.tokens == sequence_cycles(c.op, f, 1), (c.name, timing)
        return timing
    if cost is not None:
        assert cost.ii == ii
    # whole sequences after the first: exactly ii cycles per row, whichever stream bounds it
    assert timing["per_row"] == ii, (c.name, timing, ii)
    if ii == compute:       # the MAC array is the bound: no cycle lost between rows or sequences
        assert timing["row_gaps"] == [ii] * len(timing["row_gaps"]), (c.name, timing["row_gaps"], ii)
    return timing


@pytest.fixture(scope="module")
def rtl_results(tmp_path_factory) -> dict[str, tuple[Case, dict, np.ndarray]]:
    runs = run_rtl(list(CASES.values()), tmp_path_factory.mktemp("attention_rtl"), SEQUENCES, seed=11)
    return {c.name: (c, got, expected) for c, got, expected in runs}


@pytest.mark.rtl
@RTL_GROUP
@pytest.mark.parametrize("name", CASES)
def test_rtl_unit_matches_reference(name: str, rtl_results) -> None:
    c, got, expected = rtl_results[name]
    timing = check_rtl_case(c, got, expected)
    # the cases exercise the output range, not one corner of it
    assert len(np.unique(expected)) > 2 or c.op.out_size * c.op.tokens < 4
    if name.endswith("_latency"):
        cost = actmatmul_cost(c.op, c.schedule, "DSP48E2")
        assert timing["latency"] == cost.latency, (timing, cost.latency)


# --- C simulation --------------------------------------------------------------------------------

CSIM_SEQUENCES = 12


def needs_csim(test):
    """Marks a C-sim test (marker ``csim``), skipped without g++ or the ap_types headers."""
    test = pytest.mark.csim(test)
    test = pytest.mark.skipif(shutil.which(CXX) is None, reason="g++ not installed")(test)
    return pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")(test)


def test_hls_kernel_follows_the_rules() -> None:
    """One pipelined loop per process, unrolled inner loops, a DATAFLOW region of calls only, no
    run-time division (codegen/emit/hls_rules.py, the checks einhls compile runs)."""
    text = (resource_dir("hls_kernels") / "einhls_actmatmul.h").read_text()
    assert check_kernel_text("einhls_actmatmul.h", text) == []
    from codegen.emit.hls_rules import DIVISION_FREE_KERNELS
    assert "einhls_actmatmul.h" in DIVISION_FREE_KERNELS


def hls_interval(c: Case) -> int:
    """Iterations per token of the slowest process of einhls_actmatmul.h (its header)."""
    unit = hls_unit(c.op, c.schedule, "x", "x.h", c.b_lanes, c.b_sequences, c.b_uram)
    k = dict(unit.unsigned_constants)
    if c.b_sequences == 1:   # the load and the rows in one process, one after the other
        return max(k["D"] + k["FB"] // k["GB"], k["FA"] // k["GA"], k["FO"] // k["GO"])
    return max(k["D"], k["FA"] // k["GA"], k["FB"] // k["GB"], k["FO"] // k["GO"])


def run_csim(cases: list[Case], folder: Path, count: int, seed: int) -> list[tuple[Case, np.ndarray, np.ndarray]]:
    """One g++ build running every case through einhls_actmatmul.h; returns (case, outputs, expected)
    and leaves the per-process iteration counts in folder/cycles.tsv."""
    from unit_csim import build_and_run, write_unit_header

    folder.mkdir(parents=True, exist_ok=True)
    specs, expected = [], []
    for index, c in enumerate(cases):
        a, b = sequences(c.op, count, seed + index)
        expected.append(reference(c.op, a, b))
        write_vectors(folder / f"c{index}_a.txt", a)
        write_vectors(folder / f"c{index}_b.txt", b)
        unit = hls_unit(c.op, c.schedule, f"amm{index}", f"amm{index}.h", c.b_lanes, c.b_sequences, c.b_uram)
        write_unit_header(folder, unit)
        specs.append({"name": c.name, "ns": unit.ns, "header": unit.header, "widths": unit.widths})
    widest = max(w for spec in specs for w in spec["widths"])
    build_and_run(folder, ["einhls_actmatmul.h"], "actmatmul_units.cpp.j2", specs, "actmatmul_units", widest)
    return [(c, read_vectors(folder / f"c{i}_out.txt", c.op.out_size), e)
            for i, (c, e) in enumerate(zip(cases, expected))]


def process_counts(folder: Path) -> dict[str, tuple[int, int]]:
    """(calls, most iterations in one call) of every process, by its C++ signature."""
    counts = {}
    for line in (folder / "cycles.tsv").read_text().splitlines():
        calls, most, _, signature = line.split("\t", 3)
        counts[signature] = (int(calls), int(most))
    return counts


@pytest.fixture(scope="module")
def csim_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attention_csim")
    runs = run_csim(list(CASES.values()), folder, CSIM_SEQUENCES, seed=23)
    return {c.name: (c, got, expected) for c, got, expected in runs}, process_counts(folder)


@needs_csim
@CSIM_GROUP
@pytest.mark.parametrize("name", CASES)
def test_csim_unit_matches_reference(name: str, csim_results) -> None:
    runs, counts = csim_results
    c, got, expected = runs[name]
    np.testing.assert_array_equal(got, expected, err_msg=name)
    # every process of this case ran once per sequence; the slowest took the interval per token
    index = list(CASES).index(name)
    mine = {sig: v for sig, v in counts.items() if f"amm{index}::cfg" in sig}
    assert len(mine) == (4 if c.b_sequences == 2 else 3), sorted(counts)
    assert {calls for calls, _ in mine.values()} == {CSIM_SEQUENCES}
    assert max(most for _, most in mine.values()) == c.op.tokens * hls_interval(c)


# --- registration in the back ends and a whole design --------------------------------------------

def test_registered_in_cost_and_unit_tables() -> None:
    from types import SimpleNamespace

    from codegen.emit.hls import HLS_UNITS
    from codegen.emit.rtl import RTL_UNITS
    from codegen.schedule.cost import COST_FUNCTIONS, op_cost

    c = CASES["nt_h2_k6_l4"]
    s_ = OpSchedule(c.op.name, 2, 2, 3, 2)
    # the registered cost function is this unit's (op_cost then applies the calibrated LUT and FF)
    assert "actmatmul" in COST_FUNCTIONS and COST_FUNCTIONS["actmatmul"](c.op, s_, "DSP48E1") == actmatmul_cost(c.op, s_, "DSP48E1")
    assert op_cost(c.op, s_, "DSP48E1").dsp == actmatmul_cost(c.op, s_, "DSP48E1").dsp
    design = SimpleNamespace(schedule=lambda op: s_, buffer_sequences={}, uram_buffers=frozenset(), lutram_units=frozenset())
    stages, mems, elementwise = RTL_UNITS["actmatmul"](3, c.op, s_, design)
    assert [st.module for st in stages] == ["einhls_actmatmul"] and mems == [] and not elementwise
    assert stages[0].instance == "u3_nt_h2_k6_l4" and stages[0].out_width == 2 * 8
    unit, widths, out_lanes = HLS_UNITS["actmatmul"](3, c.op, design, "l03_amm", "params_03_amm.h")
    assert unit.function == "actmatmul" and unit.header == "params_03_amm.h" and out_lanes == 2
    assert max(widths) >= 3 * 8


def fork_and_scores_design(heads: int, inner: int, tokens: int):
    """x -> Fork -> ActMatMul(x, x) (nt): the scores of a sequence against itself, through the
    generated top (plan_rtl wires a to s0, b to s1; the FIFO in front of a holds a sequence of a,
    which the unit does not take before b of the sequence is in)."""
    from codegen.examples import manual_design
    from codegen.ir.graph import Graph
    from codegen.ir.joins import make_fork

    x = s(8, 3)
    fork = make_fork("fork", "Fork_0", x, heads * inner, 2)
    amm = make_actmatmul("amm", "MatMul_0", x, x, heads, inner, tokens, tokens, "nt", s(8, -2), 0.002,
                         inputs=(fork.outputs[0], fork.outputs[1]))
    graph = Graph("xxt", x, heads * inner, [fork, amm], tokens=tokens, input_shape=(1, tokens, heads * inner),
                  output_shape=(1, tokens, heads * tokens))
    design = manual_design(graph, {"fork": (2, 2, 2, 2), "amm": (3, 2, 2, 4)})
    design.fifo_depths[("amm", 0)] = tokens * heads * inner // 2 + 4
    return design


@pytest.mark.rtl
@pytest.mark.slow
def test_whole_design_rtl_is_bit_exact(tmp_path: Path) -> None:
    """The unit inside an emitted top (emit_rtl, the project's cocotb bench): bit-exact with random
    pauses, and one sequence every TOKENS x ii cycles."""
    from codegen.emit.cocotb_tb import emit_cocotb_tb
    from codegen.emit.rtl import emit_rtl, rtl_sources
    from codegen.ir.reference import random_inputs, run_reference
    from codegen.verify.rtlsim import run_rtlsim

    _verilator()
    design = fork_and_scores_design(2, 3, 4)
    emit_rtl(design, tmp_path)
    emit_cocotb_tb(design, tmp_path)
    sources = rtl_sources(tmp_path)
    lint = subprocess.run([_verilator(), "--lint-only", "-Wall", str(sources[0].parent / LINT_WAIVERS),
                           *map(str, sources), "--top-module", sources[-1].stem], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr
    inputs = random_inputs(design.graph, 6, seed=1)
    result = run_rtlsim(tmp_path, inputs, run_reference(design.graph, inputs), tmp_path / "work")
    assert result.passed, result.line()
    amm = design.graph.ops[1]
    assert result.measured["interval_cycles"] == amm.tokens * actmatmul_cost(amm, design.schedule(amm), "DSP48E1").ii


# --- the wide random sweep ------------------------------------------------------------------------

def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def random_cases(count: int, seed: int) -> list[Case]:
    """Any layout, 1-3 heads, inner / cols 1-8, 2- to 10-bit codes of either signedness with random
    zero points, every legal SIMD, PE and lane count."""
    rng = np.random.default_rng(seed)

    def qtype() -> QType:
        bits, signed = int(rng.integers(2, 11)), bool(rng.integers(2))
        t = QType(signed, bits, 0.05)
        return QType(signed, bits, 0.05, int(rng.integers(t.min, t.max + 1)))

    def pick(values: list[int]) -> int:
        return int(values[int(rng.integers(len(values)))])

    cases = []
    for n in range(count):
        layout = "nt" if n % 2 == 0 else "nn"
        heads, inner, cols = int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
        a, b, out = qtype(), qtype(), qtype()
        fb = heads * (inner if layout == "nt" else cols)
        m = spread_multiplier(a, b, inner, out) * float(np.exp(rng.uniform(-1, 1)))
        c = case(f"r{n}_{layout}", layout, heads, inner, cols, a, b, out, pick(_divisors(inner)),
                 pick(_divisors(cols)), pick(_divisors(heads * inner)), pick(_divisors(fb)),
                 pick(_divisors(heads * cols)), multiplier=m)
        cases.append(c)
    return cases


@pytest.mark.slow
@pytest.mark.rtl
def test_rtl_random_sweep(tmp_path: Path) -> None:
    for c, got, expected in run_rtl(random_cases(24, seed=2026), tmp_path, 4, seed=3):
        check_rtl_case(c, got, expected)


@needs_csim
@pytest.mark.slow
def test_csim_random_sweep(tmp_path: Path) -> None:
    for c, got, expected in run_csim(random_cases(24, seed=2027), tmp_path, 6, seed=5):
        np.testing.assert_array_equal(got, expected, err_msg=c.name)
