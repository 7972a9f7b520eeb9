"""Butterfly layers without simulators: the bank mapping (conflict counts for every n, P and
stage), the unit's address formulas, the schedule model, the IR op and its integer reference
(identity and Walsh-Hadamard as dense-equivalent checks), ButterflyLinear and its ONNX export
(both exporters and the Mul + ReduceSum form) against onnxruntime, and the scheduler.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from codegen.examples import butterfly_graph
from codegen.frontend import load_graph
from codegen.ir.butterfly import (Butterfly, dense_stage, hadamard_twiddles, make_butterfly, pair_elements,
                                  standard_strides, sylvester_hadamard)
from codegen.ir.graph import Graph
from codegen.ir.reference import dequantize_output, quantize_input, random_inputs, run_reference
from codegen.ir.types import QType
from codegen.nn.butterfly import ButterflyLinear, ButterflyQuant, export_butterfly, fake_quant
from codegen.schedule.butterfly import (RTL_READ_AFTER_WRITE, address_of, bank_of, count_conflicts,
                                        cycle_elements, layout_is_bijective, log2i, naive_bank_of, parity,
                                        simulate_issue, stage_cycle_of, stage_gaps, timing, word_conflicts)
from onnx_oracle import onnx_session

SIZES = [1 << k for k in range(1, 11)]          # n = 2 .. 1024


def units_of(n: int) -> list[int]:
    return [1 << k for k in range(log2i(n))]   # P = 1 .. n/2


# --- the bank mapping: no conflicts at any stride, for every n and P --------------------------

def test_skewed_mapping_has_no_conflicts() -> None:
    """Every cycle of every stage reads and writes its 2P elements in 2P different banks: counted
    for n = 2..1024, every P = 1..n/2 and every stride, with 1 and 3 stacks; the loader's and the
    drain's words of 2P consecutive elements too; and (bank, address) is one to one."""
    checked = 0
    for n in SIZES:
        for units in units_of(n):
            for stacks in (1, 3):
                assert layout_is_bijective(n, stacks, units), (n, units, stacks)
                assert word_conflicts(n, stacks, units) == 0, (n, units, stacks)
                for a in range(log2i(n)):
                    assert count_conflicts(n, stacks, units, 1 << a) == 0, (n, units, stacks, a)
                    checked += 1
    assert checked == 2 * sum(len(units_of(n)) * log2i(n) for n in SIZES)


def test_naive_mapping_conflicts() -> None:
    """The unskewed bank = e mod 2P puts both elements of a pair in one bank at stride >= 2P:
    every cycle of such a stage conflicts (this is what the skew removes)."""
    total = 0
    for n in SIZES:
        for units in units_of(n):
            for a in range(log2i(n)):
                conflicts = count_conflicts(n, 1, units, 1 << a, bank=naive_bank_of)
                if 1 << a >= 2 * units:
                    assert conflicts == n // (2 * units), (n, units, a)
                total += conflicts
    assert total > 0


def test_unit_address_formulas_match_the_mapping() -> None:
    """The formulas the Verilog and HLS units evaluate per cycle - A0/A1 from unit 0's pair,
    logical position v in bank v ^ (parity << p) at A0 (v < P) or A1, unit u's positions (u, u+P)
    when a >= p else (ins0(u, a), ins0(u, a) + 2^a) - give bank_of / address_of of every element."""
    def ins0(u: int, a: int) -> int:
        return ((u >> a) << (a + 1)) | (u & ((1 << a) - 1))

    for n in (2, 8, 32, 128):
        for units in units_of(n):
            p = log2i(units)
            for stacks in (1, 2):
                for a in range(log2i(n)):
                    e0, e1 = cycle_elements(n * stacks, units, 1 << a)
                    for c in range(e0.shape[0]):
                        stack, c_local = divmod(c, n // (2 * units))
                        q0 = c_local * units
                        u0 = ins0(q0, a)
                        par = int(parity(np.array([u0 >> p]))[0])
                        a0 = stack * (n >> (p + 1)) + (u0 >> (p + 1))
                        a1 = stack * (n >> (p + 1)) + ((u0 | (1 << a)) >> (p + 1))
                        for u in range(units):
                            pos0 = u if a >= p else ins0(u, a)
                            pos1 = u + units if a >= p else ins0(u, a) + (1 << a)
                            for pos, e in ((pos0, e0[c, u]), (pos1, e1[c, u])):
                                assert bank_of(e, n, units) == pos ^ (par << p), (n, units, a, c, u)
                                assert address_of(e, n, units) == (a0 if pos < units else a1)


# --- schedule ---------------------------------------------------------------------------------

def test_gaps_keep_reads_after_writes() -> None:
    """With the gaps, every element of stage s+1 is read at least RTL_READ_AFTER_WRITE cycles after
    stage s issued its write (one frame alone, the strictest case)."""
    for n in (16, 64, 256):
        for strides in (standard_strides(n), standard_strides(n, increasing=False), (1, 4, 2, 1)):
            for units in units_of(n):
                ct = n // (2 * units)
                gaps = stage_gaps(n, 1, strides, units)
                start = 0
                for s in range(len(strides) - 1):
                    write = start + stage_cycle_of(n, units, strides[s])
                    start += ct + gaps[s]
                    read = start + stage_cycle_of(n, units, strides[s + 1])
                    assert np.all(read - write >= RTL_READ_AFTER_WRITE), (n, strides, units, s)
                    assert gaps[s] == 0 or np.min(read - write) == RTL_READ_AFTER_WRITE   # tight


def test_timing_reaches_the_roofline() -> None:
    """With frames interleaved (contexts), cycles per frame stay within 6% of L * n / (2P) for every
    P at n >= 64, and without gaps a frame alone takes L * CT + 1."""
    for n in (64, 256, 1024):
        op = butterfly_graph(n, QType(True, 8), 8, QType(True, 8), QType(True, 8)).ops[0]
        for units in units_of(n):
            t = timing(op, units)
            assert t.roofline == log2i(n) * n // (2 * units)
            assert t.roofline <= t.compute <= math.ceil(1.06 * t.roofline) + 1, (n, units, t)
            if not any(t.gaps):
                assert t.contexts == 1 and t.compute == t.roofline + 1


def test_issue_model_keeps_frame_order() -> None:
    done = simulate_issue(4, [5, 6, 0], 20, contexts=4)
    assert done == sorted(done) and len(set(done)) == len(done)


# --- the IR op and its reference -------------------------------------------------------------

def _dense(op: Butterfly) -> np.ndarray:
    """The exact op's matrix: stacks copies of the padded input, then the stages' dense matrices."""
    total = op.total
    embed = np.zeros((total, op.in_size), dtype=np.int64)
    for stack in range(op.stacks):
        embed[stack * op.n + np.arange(op.in_size), np.arange(op.in_size)] = 1
    w = embed
    for s, st in enumerate(op.strides):
        w = dense_stage(op.twiddle[s], total, st) @ w
    return w[:op.out_size]


def test_identity_twiddles_are_the_identity() -> None:
    for n, bits in ((8, 4), (64, 8), (256, 16)):
        t = QType(True, bits, 2.0 ** -3)
        graph = butterfly_graph(n, t, 8, t, t, twiddles="identity")
        x = random_inputs(graph, 50, seed=1)
        np.testing.assert_array_equal(run_reference(graph, x), x)


def test_hadamard_twiddles_are_the_hadamard_transform() -> None:
    """Exact stages (no quantizer) with [[1, 1], [1, -1]] twiddles and strides 1, 2, .., n/2: the
    output is H_n x with Sylvester's Hadamard matrix, in exact integers of growing width."""
    for n in (8, 64, 1024):
        graph = butterfly_graph(n, QType(True, 8), 2, None, None, twiddles="hadamard")
        op = graph.ops[0]
        x = random_inputs(graph, 20, seed=2)
        np.testing.assert_array_equal(run_reference(graph, x), x @ sylvester_hadamard(n).T)
        assert op.out_type.bits == 8 + log2i(n)            # |H x| <= n * 128: exact width
        assert op.acc_types[0].bits == 9


def test_exact_stages_equal_the_dense_product() -> None:
    """Random twiddles, exact stages, rectangular (padding and stacks): the reference equals the
    dense-equivalent integer matrix, also at the extremes of the input range."""
    for n, stacks, k, m, strides in ((16, 1, 16, 16, None), (16, 3, 11, 40, None), (32, 2, 32, 64, (16, 4, 1)),
                                     (8, 1, 5, 3, (1, 2, 4, 1, 2, 4))):
        graph = butterfly_graph(n, QType(True, 6), 5, None, None, stacks=stacks, in_size=k, out_size=m,
                                strides=strides, seed=3)
        op = graph.ops[0]
        x = random_inputs(graph, 30, seed=4)
        np.testing.assert_array_equal(run_reference(graph, x), x @ _dense(op).T)
        lo, hi = op.out_type.min, op.out_type.max
        dense = _dense(op)
        reach_hi = np.maximum(dense * 31, dense * -32).sum(axis=1)
        reach_lo = np.minimum(dense * 31, dense * -32).sum(axis=1)
        assert lo <= reach_lo.min() and reach_hi.max() <= hi   # the exact type holds every output


def test_padding_twiddles_are_zero_and_bias_folds_zero_points() -> None:
    """Stage-0 twiddles of padded elements are zeroed; an unsigned input with a zero point is
    centred through the bias, so the result does not depend on what the padding holds."""
    t_in = QType(False, 8, 2.0 ** -4, zero_point=100)
    graph = butterfly_graph(16, t_in, 8, QType(True, 8, 2.0 ** -3), QType(True, 8, 0.173), in_size=10,
                            out_size=7, bias=True, seed=5)
    op = graph.ops[0]
    e0, e1 = pair_elements(16, op.strides[0])
    assert np.all(op.twiddle[0][e0 >= 10, 0] == 0) and np.all(op.twiddle[0][e1 >= 10, 1] == 0)
    x = random_inputs(graph, 40, seed=6)
    y = run_reference(graph, x)
    assert y.shape == (40, 7) and y.min() >= -128 and y.max() <= 127
    assert op.requants[-1].multiplier[0] != 1          # a non power-of-two scale: M and shift


def test_json_round_trip() -> None:
    graph = butterfly_graph(32, QType(True, 8, 0.03), 8, QType(True, 8, 0.05), QType(True, 8, 0.07),
                            stacks=2, in_size=20, out_size=50, bias=True, seed=7)
    again = Graph.from_json(graph.to_json(), graph.arrays())
    x = random_inputs(graph, 10, seed=8)
    np.testing.assert_array_equal(run_reference(again, x), run_reference(graph, x))
    assert isinstance(again.ops[0], Butterfly) and again.ops[0].strides == graph.ops[0].strides


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=12), "power of two"), (dict(strides=(1, 16)), "stride 16"), (dict(in_size=17), "input size"),
    (dict(out_size=40), "output size"), (dict(twiddle=np.zeros((4, 4, 2, 2))), "twiddles have shape"),
])
def test_make_butterfly_refuses(kwargs, message) -> None:
    args = dict(name="b", source="b", n=16, stacks=1, strides=(1, 2, 4, 8),
                twiddle=hadamard_twiddles(16, 4), twiddle_scales=1.0, in_type=QType(True, 8), in_size=16,
                out_size=16, stage_types=[None] * 3, out_type=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_butterfly(**args)


# --- the PyTorch module ------------------------------------------------------------------------

def test_module_matrix_matches_forward() -> None:
    for k, m, nblocks, inc in ((16, 16, 1, True), (12, 20, 1, True), (64, 40, 2, False)):
        layer = ButterflyLinear(k, m, bias=True, nblocks=nblocks, increasing_stride=inc, seed=1).double()
        with torch.no_grad():
            layer.bias.normal_()
        x = torch.randn(5, k, dtype=torch.float64)
        want = x.numpy() @ layer.full_weight().T + layer.bias.detach().numpy()
        np.testing.assert_allclose(layer(x).detach().numpy(), want, atol=1e-10)
    h = ButterflyLinear(32, 32, bias=False, init="hadamard")
    np.testing.assert_array_equal(h.full_weight(), sylvester_hadamard(32))


# --- ONNX front end ----------------------------------------------------------------------------

def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = onnx_session(path, basic=True)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: row[None]})[0].reshape(1, -1) for row in x])


def assert_matches_ort(path: Path, in_features: int, count: int = 100, exact: bool = True) -> Graph:
    graph = load_graph(path)
    x = np.random.default_rng(0).normal(0, 1.5, size=(count, in_features)).astype(np.float32)
    want = ort_run(path, x)
    got = dequantize_output(graph, run_reference(graph, quantize_input(graph, x))).reshape(want.shape)
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        assert np.abs(got - want).max() <= graph.output_type.scale * 1.0001
    return graph


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_export_lowers_to_one_butterfly(tmp_path: Path, dynamo: bool) -> None:
    """Square and rectangular (padding + stacks) layers, both exporters: one Butterfly op whose
    integer reference equals onnxruntime exactly (power-of-two scales)."""
    for k, m, quant in ((16, 16, ButterflyQuant()), (12, 20, ButterflyQuant(stage_scale=[2.0 ** -3, 2.0 ** -4, 2.0 ** -3]))):
        path = tmp_path / f"b{k}_{m}.onnx"
        export_butterfly(ButterflyLinear(k, m, quantize=quant, seed=k), path, dynamo=dynamo)
        graph = assert_matches_ort(path, k)
        (op,) = graph.ops
        assert isinstance(op, Butterfly) and (op.in_size, op.out_size) == (k, m)
        assert op.n == 16 and op.stacks == math.ceil(m / 16) and op.strides == (1, 2, 4, 8)


def test_exact_stages_and_decreasing_strides(tmp_path: Path) -> None:
    """No quantizer between stages: exact widths in the IR, still equal to onnxruntime."""
    path = tmp_path / "exact.onnx"
    export_butterfly(ButterflyLinear(64, 40, nblocks=1, increasing_stride=False,
                                     quantize=ButterflyQuant(stage_scale=None), seed=2), path)
    graph = assert_matches_ort(path, 64)
    op = graph.ops[0]
    assert op.strides == (32, 16, 8, 4, 2, 1)
    assert [t.bits for t in op.stage_types[:-1]] == sorted(t.bits for t in op.stage_types[:-1])
    assert op.stage_types[-2].bits > 16 and op.out_type.bits == 8


def test_other_scales_within_one_step(tmp_path: Path) -> None:
    path = tmp_path / "scales.onnx"
    quant = ButterflyQuant(input_scale=0.0371, twiddle_scale=[0.0081, 0.0077, 0.0079], stage_scale=0.043,
                           output_scale=0.061, output_zero_point=3)
    export_butterfly(ButterflyLinear(8, 8, quantize=quant, seed=4), path)
    graph = assert_matches_ort(path, 8, exact=False)
    assert graph.ops[0].requants[0].multiplier[0] != 1


class TorchButterflyStyle(torch.nn.Module):
    """The pure-PyTorch butterfly of torch_butterfly (butterfly_multiply_torch): per stage the
    twiddles (nstacks, n/(2 st), j, i, st) times x viewed (b, nstacks, n/(2 st), 1, 2, st),
    summed over i: ONNX Reshape + Mul + ReduceSum."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.n, self.log_n = n, log2i(n)
        self.twiddle = torch.nn.Parameter(torch.randn(self.log_n, n // 2, 2, 2, generator=g) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], self.n
        out = fake_quant(x, 2.0 ** -4).view(b, 1, n)
        for idx in range(self.log_n):
            st = 1 << idx
            t = fake_quant(self.twiddle[idx], 2.0 ** -6).view(1, n // (2 * st), st, 2, 2).permute(0, 1, 3, 4, 2)
            out = (t * out.reshape(b, 1, n // (2 * st), 1, 2, st)).sum(dim=4)
            out = fake_quant(out, 2.0 ** -4)
        return out.reshape(b, n)


def test_mul_reducesum_form(tmp_path: Path) -> None:
    path = tmp_path / "tb_style.onnx"
    model = TorchButterflyStyle(16, seed=3).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 16),), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Mul" in ops and "ReduceSum" in ops and "Einsum" not in ops
    graph = assert_matches_ort(path, 16)
    assert [op.kind for op in graph.ops] == ["butterfly"] and graph.ops[0].stages == 4


def test_float_model_with_default_type(tmp_path: Path) -> None:
    from codegen.ir.types import parse_fixed

    path = tmp_path / "float.onnx"
    export_butterfly(ButterflyLinear(16, 16, seed=5), path)
    with pytest.raises(Exception, match="quantize|float"):
        load_graph(path)
    graph = load_graph(path, default_type=parse_fixed("fixed<16,6>"))
    (op,) = graph.ops
    assert op.kind == "butterfly" and all(t.bits == 16 for t in op.stage_types)


# --- scheduler ---------------------------------------------------------------------------------

def test_fold_chooses_units() -> None:
    from codegen.schedule.boards import get_board
    from codegen.schedule.cost import op_cost
    from codegen.schedule.folding import fold

    graph = butterfly_graph(256, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -4), QType(True, 8, 2.0 ** -4))
    result = fold(graph, get_board("pynq-z2"))
    s = result.design.schedule(graph.ops[0])
    assert s.simd == 2 and s.pe & (s.pe - 1) == 0
    for lanes in (s.in_lanes, s.out_lanes):   # words of 2P elements: power-of-two lanes, no lcm converter
        assert lanes & (lanes - 1) == 0
    cost = result.costs[graph.ops[0].name]
    assert cost.multipliers == 4 * s.pe and cost.macs == 2 * 256 * 8
    assert cost.cycles == timing(graph.ops[0], s.pe).compute
    assert cost.cycles <= 1.1 * timing(graph.ops[0], s.pe).roofline
    slow = op_cost(graph.ops[0], type(s)(s.op, 2, 1, 1, 1), "DSP48E1")
    assert slow.cycles == 8 * 128 + 1 and slow.dsp == 4


def test_relu_after_exact_butterfly_is_fused(tmp_path: Path) -> None:
    """A ReLU after a butterfly without an output quantizer becomes the last stage's clamp."""
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b = ButterflyLinear(8, 8, bias=False, seed=6,
                                     quantize=ButterflyQuant(output_scale=2.0 ** -4))

        def forward(self, x):
            return torch.relu(self.b(x))

    path = tmp_path / "relu.onnx"
    export_butterfly(Net(), path)
    graph = assert_matches_ort(path, 8)
    assert [op.kind for op in graph.ops] == ["butterfly"]
    assert graph.ops[0].requants[-1].lo == 0


def test_too_wide_exact_chain_asks_for_quantizers() -> None:
    with pytest.raises(ValueError, match="quantize the activations between stages"):
        butterfly_graph(1024, QType(True, 16), 16, None, None, strides=standard_strides(1024, nblocks=2))
