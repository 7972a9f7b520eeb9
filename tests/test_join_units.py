"""Golden tests of the graph units (fork, add, mul, concat, slice) in Verilog and in HLS C++.

Ops come from the IR constructors (codegen/ir/joins.py) and unit parameters from
codegen/emit/joins.py, exactly as the emitters get them; expected codes come from
``op.reference``, compared element by element, with the padding lanes of every last beat checked
to be zero.  Cases: scales and zero points that are not powers of two (and ones that are, for
round-half-to-even ties), signed and unsigned, 2 to 16 bits, sizes 1 and primes, fused ReLU,
2 to 8 fork copies, 2 to 4 concat inputs, slices at either end and in the middle.  Every input
stream gets tokens of all-minimum and all-maximum codes (each against both extremes of the other
input), then random ones.

* RTL: all cases are instances of one generated wrapper, built once with Verilator and driven by
  ``testbench/cocotb/join_units_tb.py`` (cocotbext-axi sources and sinks), first with no pauses,
  where one beat per cycle is asserted from the handshake cycles, then with random input gaps and
  output back-pressure.
* C-sim: one g++ build of ``testbench/csim/join_units.cpp.j2`` runs every case through
  ``hls_kernels/einhls_graph.h``, Add and Mul configured by ``templates/hls/params_join.h.j2``.

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

from codegen.emit.joins import hls_function, hls_unit, rtl_latency, rtl_unit
from codegen.emit.rtl import KERNEL_DEPS, LINT_WAIVERS, verilog_value
from codegen.errors import EinhlsError
from codegen.ir.graph import Op
from codegen.ir.joins import Add, Concat, Mul, Slice, make_add, make_concat, make_fork, make_mul, make_slice
from codegen.ir.types import QType
from codegen.resources import resource_dir
from codegen.verify.csim import CXX, CXXFLAGS, ap_types_dir, read_vectors, write_vectors
from unit_rtlsim import build_and_simulate, case_config

# the RTL cases share one build and the C-sim cases one binary (module fixtures): keep each set on
# one xdist worker under `--dist loadgroup`
RTL_GROUP, CSIM_GROUP = pytest.mark.xdist_group("join_units_rtl"), pytest.mark.xdist_group("join_units_csim")

TOKENS = 8              # per case in the RTL run (extremes first, then random)
CSIM_TOKENS = 200
WRAPPER_TOP = "join_units_top"


def s(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float = 2.0 ** -4, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


@dataclass
class Case:
    name: str
    op: Op
    lanes: int


def _cases() -> list[Case]:
    return [
        # residual adds: unrelated scales and zero points, mixed signedness and widths
        Case("add_int8_zp", make_add("add0", "Add_0", s(8, 0.05, 3), s(8, 0.11, -7), s(8, 0.13, 2), 13), 4),
        Case("add_uint4_int16_relu", make_add("add1", "Add_1", u(4, 0.25, 5), s(16, 2.0 ** -10), u(8, 0.07, 100), 7,
                                              relu=True), 3),
        Case("add_int2_size1", make_add("add2", "Add_2", s(2, 0.5), u(2, 0.3, 1), s(2, 0.6, -1), 1), 1),
        # one scale for both inputs: one multiplier (MA == MB), one product per lane
        Case("add_same_scale_relu", make_add("add4", "Add_4", s(8, 0.07, -5), s(8, 0.07, 9), u(8, 0.09, 20), 23,
                                             relu=True), 8),
        # powers of two: M = 1, a pure shift, many exact ties
        Case("add_pow2_ties", make_add("add3", "Add_3", s(8, 2.0 ** -4), s(8, 2.0 ** -3), s(6, 2.0 ** -1), 10), 5),
        # gates
        Case("mul_int8_uint8_zp", make_mul("mul0", "Mul_0", s(8, 0.02, -3), u(8, 1 / 255, 128), s(8, 0.01, 4), 11), 2),
        Case("mul_int16_int4_relu", make_mul("mul1", "Mul_1", s(16, 2.0 ** -9), s(4, 0.3, 1), u(16, 0.004, 300), 5,
                                             relu=True), 5),
        Case("mul_pow2_ties", make_mul("mul2", "Mul_2", s(6, 2.0 ** -2), u(3, 2.0 ** -1), s(5, 2.0), 17), 4),
        # copies, joins and splits
        Case("fork3_uint5", make_fork("fork0", "Fork_0", u(5, 0.1, 7), 9, 3), 2),
        Case("fork8_int16_size1", make_fork("fork1", "Fork_1", s(16), 1, 8), 1),
        Case("concat2_int8", make_concat("cat0", "Concat_0", s(8), [8, 5]), 4),
        Case("concat3_uint3", make_concat("cat1", "Concat_1", u(3, 0.5, 2), [3, 6, 2]), 3),
        Case("concat4_int16", make_concat("cat2", "Concat_2", s(16, 0.01, -9), [2, 4, 2, 7]), 2),
        Case("slice_middle", make_slice("sl0", "Slice_0", s(8), 12, 4, 8), 4),
        Case("slice_tail_odd", make_slice("sl1", "Slice_1", u(7, 0.2, 3), 7, 3, 7), 3),
        Case("slice_head", make_slice("sl2", "Slice_2", s(4), 9, 0, 3), 3),
        Case("slice_all_size1", make_slice("sl3", "Slice_3", s(2), 1, 0, 1), 1),
    ]


CASES = {c.name: c for c in _cases()}


def random_type(rng: np.random.Generator, bits: int | None = None) -> QType:
    bits = int(rng.integers(2, 17)) if bits is None else bits
    signed = bool(rng.integers(2))
    t = QType(signed, bits, float(np.exp(rng.uniform(-6, 1))))
    return QType(signed, bits, t.scale, int(rng.integers(t.min, t.max + 1)) if rng.random() < 0.6 else 0)


def random_cases(count: int, seed: int) -> list[Case]:
    """``count`` random cases of every kind (for the slow sweep): any widths 2..16, scales, zero
    points, sizes 1..40, lanes 1..8 where the op allows them."""
    rng = np.random.default_rng(seed)
    kinds = ["add", "mul", "fork", "concat", "slice"]
    cases = []
    for n in range(count):
        kind, lanes = kinds[n % len(kinds)], int(rng.integers(1, 9))
        size = int(rng.integers(1, 41))
        name = f"{kind}{n}"
        relu = bool(rng.integers(2))
        if kind == "add":
            a, b = random_type(rng), random_type(rng)
            if rng.random() < 0.4:                       # one scale: the shared-multiplier path
                b = QType(b.signed, b.bits, a.scale, b.zero_point)
            op = make_add(name, name, a, b, random_type(rng), size, relu=relu)
        elif kind == "mul":
            op = make_mul(name, name, random_type(rng), random_type(rng), random_type(rng), size, relu=relu)
        elif kind == "fork":
            op = make_fork(name, name, random_type(rng), size, int(rng.integers(2, 9)))
        elif kind == "concat":
            parts = int(rng.integers(2, 5))
            sizes = [lanes * int(rng.integers(1, 5)) for _ in range(parts - 1)] + [int(rng.integers(1, 13))]
            op = make_concat(name, name, random_type(rng), sizes)
        else:
            in_beats = int(rng.integers(1, 8))
            in_size = lanes * (in_beats - 1) + int(rng.integers(1, lanes + 1))
            first = int(rng.integers(0, in_beats))
            last = int(rng.integers(first, in_beats))           # last beat kept
            op = make_slice(name, name, random_type(rng), in_size, first * lanes, min(in_size, (last + 1) * lanes))
        cases.append(Case(f"{name}_{lanes}lanes", op, lanes))
    return cases


def beats(size: int, lanes: int) -> int:
    return -(-size // lanes)


def input_tokens(op: Op, tokens: int, seed: int) -> list[np.ndarray]:
    """[tokens, size] codes per input: every combination of all-min / all-max across inputs
    (2 ** inputs tokens, at most 4 of them), then random codes."""
    rng = np.random.default_rng(seed)
    streams = []
    extremes = min(1 << op.arity, 4, tokens)
    for i, (t, size) in enumerate(zip(op.input_types, op.input_sizes)):
        x = rng.integers(t.min, t.max + 1, size=(tokens, size), dtype=np.int64)
        for k in range(extremes):
            x[k, :] = t.max if (k >> i) & 1 else t.min
        streams.append(x)
    return streams


def reference(op: Op, inputs: list[np.ndarray]) -> list[np.ndarray]:
    out = op.reference(*(torch.as_tensor(x) for x in inputs))
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy().astype(np.int64) for o in outs]


def stream_spec(t: QType, size: int, lanes: int, tokens: int) -> dict:
    return {"bits": t.bits, "signed": t.signed, "lanes": lanes, "size": size, "width": lanes * t.bits,
            "token_beats": beats(size, lanes), "beats": tokens * beats(size, lanes)}


def check_outputs(name: str, op: Op, lanes: int, got: list[list[int]], expected: list[np.ndarray]) -> None:
    """got: per output, every lane of every beat of every token; element by element, padding zero."""
    assert len(got) == len(expected), name
    for o, (flat, want) in enumerate(zip(got, expected)):
        tokens, size = want.shape
        per_token = beats(size, lanes) * lanes
        arr = np.asarray(flat, dtype=np.int64)
        assert arr.size == tokens * per_token, (name, o, arr.size, tokens * per_token)
        arr = arr.reshape(tokens, per_token)
        np.testing.assert_array_equal(arr[:, :size], want, err_msg=f"{name} output {o}")
        assert not np.any(arr[:, size:]), f"{name} output {o}: padding lanes are not zero"


# --- parameters and errors (no simulator) --------------------------------------------------------

def params_of(op: Op, lanes: int) -> tuple[str, dict[str, int | str]]:
    module, params = rtl_unit(op, lanes)
    return module, {p.name: p.value for p in params}


def test_rtl_unit_parameters() -> None:
    module, p = params_of(CASES["add_uint4_int16_relu"].op, 3)
    op = CASES["add_uint4_int16_relu"].op
    assert module == "einhls_add"
    assert (p["LANES"], p["SIZE"], p["A_BITS"], p["A_SIGNED"], p["B_BITS"], p["B_SIGNED"], p["OUT_BITS"]) == \
        (3, 7, 4, 0, 16, 1, 8)
    assert (p["A_ZP"], p["B_ZP"], p["MA"], p["MB"], p["SHIFT"]) == (5, 0, *op.rq.multipliers, op.rq.shift)
    assert (p["ZP"], p["LO"], p["HI"]) == (100, 100, 255)          # ReLU raises LO to the zero point
    module, p = params_of(CASES["mul_int8_uint8_zp"].op, 2)
    assert module == "einhls_mul" and "MA" not in p and p["M"] == CASES["mul_int8_uint8_zp"].op.rq.multipliers[0]
    _, p = params_of(CASES["add_same_scale_relu"].op, 8)
    assert p["MA"] == p["MB"]
    assert params_of(CASES["fork3_uint5"].op, 2) == ("einhls_fork", {"WIDTH": 10, "N": 3})
    assert params_of(CASES["concat3_uint3"].op, 3) == (
        "einhls_concat", {"N": 3, "WIDTH": 9, "BEATS0": 1, "BEATS1": 2, "BEATS2": 1, "BEATS3": 0})
    assert params_of(CASES["slice_middle"].op, 4) == (
        "einhls_slice", {"WIDTH": 32, "IN_BEATS": 3, "FIRST": 1, "COUNT": 1})
    assert params_of(CASES["slice_tail_odd"].op, 3) == (
        "einhls_slice", {"WIDTH": 21, "IN_BEATS": 3, "FIRST": 1, "COUNT": 2})
    for name in KERNEL_DEPS:
        assert (resource_dir("rtl_kernels") / f"{name}.v").is_file()


@pytest.mark.parametrize("op, lanes, message", [
    (make_concat("c", "Concat_7", s(8), [6, 4]), 4, "concat input 0 has 6 features, not a multiple of the 4 lanes"),
    (make_concat("c", "Concat_7", s(8), [4, 4, 4, 4, 4]), 4, "concat of 5 inputs"),
    (make_slice("sl", "Slice_7", s(8), 12, 2, 8), 4, r"slice \[2, 8\) of 12 features does not fall on whole beats"),
    (make_slice("sl", "Slice_7", s(8), 12, 4, 10), 4, r"slice \[4, 10\)"),
    (make_fork("f", "Fork_7", s(8), 4, 9), 1, "fork to 9 consumers"),
    (make_fork("f", "Fork_7", s(8), 4, 2), 0, "lane count 0"),
])
def test_rtl_unit_refuses_what_does_not_fit(op: Op, lanes: int, message: str) -> None:
    with pytest.raises(EinhlsError, match=message) as info:
        rtl_unit(op, lanes)
    assert f"node {op.name!r}" in str(info.value)


def test_bounds_that_do_not_fit_the_output_are_refused() -> None:
    import dataclasses

    op = CASES["add_int8_zp"].op
    wide = dataclasses.replace(op, rq=dataclasses.replace(op.rq, lo=-1000))
    with pytest.raises(EinhlsError, match="bounds -1000..127 .* do not fit the 8-bit output"):
        rtl_unit(wide, 4)
    with pytest.raises(EinhlsError, match="do not fit"):
        hls_unit(wide, 4, "p0")
    module, params = rtl_unit(op, np.int64(4))                  # numpy lane counts are fine
    assert module == "einhls_add" and type(params[0].value) is int


def test_hls_function_arguments() -> None:
    assert hls_function(CASES["fork3_uint5"].op, 2) == ("fork_stream", [10, 5, 3])
    assert hls_function(CASES["concat4_int16"].op, 2) == ("concat4", [32, 1, 2, 1, 4])
    assert hls_function(CASES["slice_tail_odd"].op, 3) == ("slice_stream", [21, 3, 1, 2])
    assert hls_function(CASES["mul_pow2_ties"].op, 4) == ("mul_stream", [])
    with pytest.raises(EinhlsError, match="not a multiple of the 4 lanes"):
        hls_function(make_concat("c", "Concat_7", s(8), [6, 4]), 4)


def test_hls_unit_fields() -> None:
    op = CASES["mul_int16_int4_relu"].op
    unit = hls_unit(op, 5, "p03_mul1")
    assert unit["header"] == "p03_mul1.h" and unit["ns"] == "p03_mul1" and unit["kind"] == "mul"
    assert (unit["size"], unit["lanes"], unit["beats"]) == (5, 5, 1)
    assert unit["multipliers"] == [("M", op.rq.multipliers[0])]
    lo, hi = op.value_range
    bits = unit["v_t"].bits
    assert unit["v_t"].signed and -(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))
    assert not (-(1 << (bits - 2)) <= lo and hi < (1 << (bits - 2))), "v_t is not the narrowest"
    with pytest.raises(EinhlsError, match="only add and mul"):
        hls_unit(CASES["fork3_uint5"].op, 2, "p0")
    with pytest.raises(EinhlsError, match="not a C\\+\\+ identifier"):
        hls_unit(op, 5, "0bad")


# --- lint ----------------------------------------------------------------------------------------

def _verilator() -> str:
    from codegen.verify.tools import verilator_bin

    folder = verilator_bin()
    if folder is None or not (folder / "verilator").exists():
        pytest.skip("verilator not installed")
    return str(folder / "verilator")


@pytest.mark.rtl
def test_wrapper_lint_clean(tmp_path: Path) -> None:
    """Every unit at the parameters the cases give it: verilator --lint-only -Wall, einhls.vlt only."""
    sources = write_wrapper(list(CASES.values()), tmp_path)
    proc = subprocess.run([_verilator(), "--lint-only", "-Wall", str(resource_dir("rtl_kernels") / LINT_WAIVERS),
                           *map(str, sources), "--top-module", WRAPPER_TOP], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- RTL simulation ------------------------------------------------------------------------------

def rtl_case_spec(index: int, case: Case, tokens: int, seed: int) -> tuple[dict, list[np.ndarray]]:
    op, lanes = case.op, case.lanes
    module, params = rtl_unit(op, lanes)
    inputs = input_tokens(op, tokens, seed)
    expected = reference(op, inputs)
    ins = [{**stream_spec(t, size, lanes, tokens), "tokens": x.tolist()}
           for t, size, x in zip(op.input_types, op.input_sizes, inputs)]
    outs = [stream_spec(op.out_type, op.out_size, lanes, tokens) for _ in expected]
    return {"index": index, "name": case.name, "kind": op.kind, "module": module, "params": params,
            "inputs": ins, "outputs": outs}, expected


def write_wrapper(cases: list[Case], folder: Path) -> list[Path]:
    """The wrapper top and the kernels it needs in ``folder``; returns the sources, top last."""
    specs = [rtl_case_spec(i, c, 1, 0)[0] for i, c in enumerate(cases)]
    return _write_wrapper(specs, folder)


def _write_wrapper(specs: list[dict], folder: Path) -> list[Path]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("testbench") / "cocotb")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["verilog_value"] = verilog_value
    folder.mkdir(parents=True, exist_ok=True)
    top = folder / f"{WRAPPER_TOP}.v"
    top.write_text(env.get_template("join_units_top.v.j2").render(top=WRAPPER_TOP, cases=specs))
    modules = {spec["module"] for spec in specs}
    modules |= {dep for m in modules for dep in KERNEL_DEPS[m]}
    kernels = []
    for name in sorted(modules):
        kernels.append(folder / f"{name}.v")
        shutil.copyfile(resource_dir("rtl_kernels") / f"{name}.v", kernels[-1])
    return [*kernels, top]


def run_rtl(cases: list[Case], folder: Path, tokens: int, seed: int) -> list[tuple[Case, dict, list[np.ndarray]]]:
    """Build the wrapper of ``cases`` with Verilator and simulate; returns (case, result, expected)."""
    _verilator()
    specs, expected = zip(*(rtl_case_spec(i, c, tokens, seed + i) for i, c in enumerate(cases)))
    sources = _write_wrapper(list(specs), folder / "rtl")
    got = build_and_simulate(sources, WRAPPER_TOP, folder, case_config(list(specs), seed))
    return [(c, g, e) for c, g, e in zip(cases, got, expected)]


def full_rate_streams(op: Op, record: dict) -> list[list[int]]:
    """Handshake cycles of the streams that must move one beat per cycle when nothing pauses: the
    output of a concat (inputs take turns), the input of a slice (beats are dropped), else all."""
    if isinstance(op, Concat):
        return record["out_cycles"]
    if isinstance(op, Slice):
        return record["in_cycles"]
    return [*record["in_cycles"], *record["out_cycles"]]


def check_rtl_case(case: Case, got: dict, expected: list[np.ndarray]) -> None:
    free, paused = got["phases"]
    for label, record in (("no pauses", free), ("random pauses", paused)):
        check_outputs(f"{case.name} ({label})", case.op, case.lanes, record["outputs"], expected)
        assert record["extra_beats"] == [0] * len(expected), (case.name, label, "beats after the last token")
    for cycles in full_rate_streams(case.op, free):
        assert cycles and cycles[-1] - cycles[0] == len(cycles) - 1, \
            (case.name, "not one beat per cycle", np.diff(cycles).tolist())
    # latency: the beat that leaves first is beat 0 of input 0, or the first kept beat of a slice
    first_in = free["in_cycles"][0][case.op.start // case.lanes if isinstance(case.op, Slice) else 0]
    for cycles in free["out_cycles"]:
        assert cycles[0] - first_in == rtl_latency(case.op), (case.name, "latency", cycles[0] - first_in)
    # the random phase really paused: some stream moved slower than one beat per cycle
    assert any(c[-1] - c[0] > len(c) - 1 for c in [*paused["in_cycles"], *paused["out_cycles"]] if c), case.name


@pytest.fixture(scope="module")
def rtl_results(tmp_path_factory) -> dict[str, tuple[Case, dict, list[np.ndarray]]]:
    runs = run_rtl(list(CASES.values()), tmp_path_factory.mktemp("join_rtl"), TOKENS, seed=7)
    return {case.name: (case, got, expected) for case, got, expected in runs}


@pytest.mark.rtl
@RTL_GROUP
@pytest.mark.parametrize("name", CASES)
def test_rtl_unit_matches_reference(name: str, rtl_results) -> None:
    check_rtl_case(*rtl_results[name])


# --- C simulation --------------------------------------------------------------------------------

def needs_csim(test):
    """Marks a C-sim test (marker ``csim``), skipped without g++ or the ap_types headers."""
    test = pytest.mark.csim(test)
    test = pytest.mark.skipif(shutil.which(CXX) is None, reason="g++ not installed")(test)
    return pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")(test)


def run_csim(cases: list[Case], folder: Path, tokens: int, seed: int) -> list[tuple[Case, list, list[np.ndarray]]]:
    """One g++ build running every case through einhls_graph.h; returns (case, outputs, expected)."""
    from codegen.emit.hls import CType, _environment

    env = _environment()
    folder.mkdir(parents=True, exist_ok=True)
    for header in ("einhls_stream.h", "einhls_requant.h", "einhls_graph.h", "einhls_csim.h"):
        shutil.copyfile(resource_dir("hls_kernels") / header, folder / header)
    specs, expected_all = [], []
    for index, case in enumerate(cases):
        op, lanes = case.op, case.lanes
        inputs = input_tokens(op, tokens, seed + index)
        expected_all.append(reference(op, inputs))
        for i, x in enumerate(inputs):
            write_vectors(folder / f"c{index}_in{i}.txt", x)
        function, targs = hls_function(op, lanes)
        spec = {"index": index, "name": case.name, "kind": op.kind, "header": None, "ns": None,
                "function": function, "targs": targs,
                "inputs": [{**stream_spec(t, size, lanes, tokens), "t": CType.of(t)}
                           for t, size in zip(op.input_types, op.input_sizes)],
                "outputs": [{**stream_spec(op.out_type, op.out_size, lanes, tokens), "t": CType.of(op.out_type)}
                            for _ in range(op.n_outputs)]}
        for stream in (*spec["inputs"], *spec["outputs"]):
            stream["beats"] = stream["token_beats"]
        if isinstance(op, (Add, Mul)):
            unit = hls_unit(op, lanes, f"join{index}_{op.name}")
            (folder / unit["header"]).write_text(env.get_template("params_join.h.j2").render(u=unit))
            spec.update(header=unit["header"], ns=unit["ns"])
        specs.append(spec)
    widest = max(s["width"] for spec in specs for s in (*spec["inputs"], *spec["outputs"]))
    source = folder / "join_units.cpp"
    source.write_text(env.get_template("join_units.cpp.j2").render(cases=specs, widest=widest))
    binary = folder / "join_units"
    proc = subprocess.run([CXX, *CXXFLAGS, "-Wall", "-isystem", str(ap_types_dir()), "-I", str(folder), str(source),
                           "-o", str(binary)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run([str(binary), str(folder)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    runs = []
    for index, (case, spec, expected) in enumerate(zip(cases, specs, expected_all)):
        got = [read_vectors(folder / f"c{index}_out{o}.txt", out["token_beats"] * out["lanes"]).reshape(-1).tolist()
               for o, out in enumerate(spec["outputs"])]
        runs.append((case, got, expected))
    return runs


@pytest.fixture(scope="module")
def csim_results(tmp_path_factory) -> dict[str, tuple[Case, list, list[np.ndarray]]]:
    runs = run_csim(list(CASES.values()), tmp_path_factory.mktemp("join_csim"), CSIM_TOKENS, seed=11)
    return {case.name: (case, got, expected) for case, got, expected in runs}


@needs_csim
@CSIM_GROUP
@pytest.mark.parametrize("name", CASES)
def test_csim_unit_matches_reference(name: str, csim_results) -> None:
    case, got, expected = csim_results[name]
    check_outputs(case.name, case.op, case.lanes, got, expected)


# --- the wide random sweep ------------------------------------------------------------------------

SWEEP = random_cases(80, seed=2026)


@pytest.mark.slow
@pytest.mark.rtl
def test_rtl_random_sweep(tmp_path: Path) -> None:
    for case, got, expected in run_rtl(SWEEP, tmp_path, TOKENS, seed=3):
        check_rtl_case(case, got, expected)


@needs_csim
@pytest.mark.slow
def test_csim_random_sweep(tmp_path: Path) -> None:
    runs = run_csim(random_cases(100, seed=2027), tmp_path, CSIM_TOKENS, seed=5)
    for case, got, expected in runs:
        check_outputs(case.name, case.op, case.lanes, got, expected)
