"""`einhls compress`: the quantization the search models (calibrated per-tensor input scales, 8- or
16-bit inputs chosen per layer, per-channel weights) is what `einhls compile` builds, and the
whole-encoder costing of a BERT-like model (attention, softmax, LayerNorm, GELU, buffers)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from codegen.compress.costing import export_onnx
from codegen.compress.modules import Spec, act_scale, build, channel_scales


class _Chain(nn.Module):
    """Two compressed layers with a ReLU between and an output quantizer (as compress exports)."""

    def __init__(self, first: nn.Module, second: nn.Module, out_scale: float, out_bits: int) -> None:
        super().__init__()
        from codegen.compress import _ChainExport
        self.inner = _ChainExport([first, nn.ReLU(), second], out_scale, out_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _calibrated_chain(seed: int, out_bits: int):
    """A 24 -> 32 -> 16 chain: layer 1 dense 8-bit weights with 16-bit inputs carrying an outlier
    channel, layer 2 2:4 with 4-bit weights and 8-bit inputs; every scale calibrated (peak / the
    largest code) on the samples."""
    torch.manual_seed(seed)
    x = torch.randn(64, 24)
    x[:, 5] *= 40.0                     # an outlier channel, as MiniLM's residual stream has
    a, b = nn.Linear(24, 32), nn.Linear(32, 16)
    first = build(Spec("dense", 8), a, act_scale(float(x.abs().max()), 16), in_bits=16)
    with torch.no_grad():
        mid = torch.relu(first(x))
        second = build(Spec("nm", 4, n=2, m=4), b, act_scale(float(mid.abs().max()), 8), in_bits=8)
        out = second(mid)
    out_scale = act_scale(float(out.abs().max()), out_bits)
    return _Chain(first, second, out_scale, out_bits).eval(), x, out_scale


#: how close (in output steps) to a rounding tie the float model may put a value that the integer
#: requantizer, whose multiplier keeps 16 significant bits (codegen/ir/requant.py), rounds the
#: other way: |M - real| / real < 2^-16, times values of at most a few hundred steps
TIE_WINDOW = 2e-2


def _near_tie(value: np.ndarray) -> np.ndarray:
    return np.abs(np.abs(value - np.floor(value)) - 0.5) < TIE_WINDOW


@pytest.mark.parametrize("out_bits", [8, 16])
def test_search_model_is_what_compile_builds(tmp_path, out_bits):
    """The torch model the search scores and the IR reference of its export (`einhls compile`'s
    bit-exact definition, which C-sim and RTL sim reproduce) give the same output codes, element
    by element, except where a value sits on a rounding tie that the requantizer's 16-bit
    multiplier resolves the other way (then by one step, and each such case is checked to be one)."""
    from codegen.frontend import load_graph
    from codegen.ir.reference import quantize, run_reference
    model, x, out_scale = _calibrated_chain(0, out_bits)
    path = tmp_path / "chain.onnx"
    export_onnx(model, 24, path)
    graph = load_graph(path)
    linears = [op for op in graph.ops if op.kind == "linear"]
    assert [op.in_type.bits for op in linears] == [16, 8]
    # the calibrated scales reach the IR as they are (not rounded to a power of two)
    first, second = model.inner.parts[0], model.inner.parts[2]
    assert graph.input_type.scale == pytest.approx(first.in_scale, rel=1e-6)
    assert linears[1].in_type.scale == pytest.approx(second.in_scale, rel=1e-6)
    assert graph.output_type.bits == out_bits
    with torch.no_grad():   # in float64: float32 sums of 16-bit codes would round off by themselves
        model = model.double()
        mid = torch.relu(first(x.double())).numpy() / second.in_scale
        want = model(x.double()).numpy()
        raw = second(torch.relu(first(x.double()))).numpy() / out_scale
    want_codes = np.rint(want / out_scale).astype(np.int64)
    got_codes = np.stack([run_reference(graph, quantize(row[None].numpy(), graph.input_type))[0] for row in x])
    got_codes = got_codes.astype(np.int64) - graph.output_type.zero_point
    assert got_codes.shape == want_codes.shape
    differ = np.argwhere(got_codes != want_codes)
    # a tie in the hidden layer moves one hidden code by one step, and with it its row's outputs
    rows = {int(row) for row, _ in differ}
    assert len(rows) <= len(x) // 32, f"{len(differ)} of {want_codes.size} codes differ, in rows {sorted(rows)}"
    for row, col in differ:
        if not _near_tie(mid[row]).any():   # else: explained by the hidden layer's tie
            assert _near_tie(raw[row, col]), (row, col, raw[row, col])
            assert abs(got_codes[row, col] - want_codes[row, col]) == 1
    assert np.abs(want_codes).max() > (100 if out_bits == 8 else 20000)   # the range is used


@pytest.mark.parametrize("in_bits", [8, 16])
def test_butterfly_candidate_is_what_compile_builds(tmp_path, in_bits):
    """A butterfly candidate of a 48-wide layer (zero padded to 64: six stages) lowers as one
    butterfly unit whose stage boundaries carry the candidate's calibrated quantizers, at 8- and
    16-bit activations (the 16-bit input is a com.microsoft quantizer before the Pad, whose pads
    onnx can only compute once the quantizer's output has a shape), and the IR reference gives the
    torch model's output codes except near rounding ties of a stage (the requantizer's multiplier
    keeps 16 significant bits; a flipped stage code moves the outputs it feeds by a step or a few
    of 32,767).  Without the quantizers between stages the exact accumulator of a 128-wide 8-bit
    layer would need more than the unit's 48 bits: refused, naming it."""
    from codegen.compress.costing import _WithOutputQuant
    from codegen.errors import EinhlsError
    from codegen.frontend import load_graph
    from codegen.ir.reference import quantize, run_reference
    torch.manual_seed(0)
    layer, x = nn.Linear(48, 48), torch.randn(64, 48)
    module = build(Spec("butterfly", 8), layer, act_scale(float(x.abs().max()), in_bits), x, in_bits=in_bits)
    with torch.no_grad():
        out_scale = act_scale(float(module(x).abs().max()), in_bits)
    model = _WithOutputQuant(module, out_scale, in_bits).eval()
    path = tmp_path / "butterfly.onnx"
    export_onnx(model, 48, path)
    graph = load_graph(path)
    (unit,) = [op for op in graph.ops if op.kind == "butterfly"]
    assert [t.bits for t in unit.stage_types[:-1]] == [in_bits] * 5
    assert [t.scale for t in unit.stage_types[:-1]] == pytest.approx(module.stage_scales, rel=1e-6)
    with torch.no_grad():
        want = np.rint(model.double()(x.double()).numpy() / out_scale).astype(np.int64)
    got = np.stack([run_reference(graph, quantize(row[None].numpy(), graph.input_type))[0] for row in x])
    steps = np.abs(got.astype(np.int64) - graph.output_type.zero_point - want)
    assert (steps == 0).mean() >= 0.98 and steps.max() <= (1 if in_bits == 8 else 4), (steps == 0).mean()
    assert np.abs(want).max() > (100 if in_bits == 8 else 20000)
    if in_bits == 8:   # a 128-wide layer (seven stages) without its stage quantizers
        wide = build(Spec("butterfly", 8), nn.Linear(128, 128), 0.02, torch.randn(64, 128))
        wide.stage_scales = None
        export_onnx(_WithOutputQuant(wide, 0.01, 8), 128, path)
        with pytest.raises(EinhlsError, match="exact accumulator needs 5[0-9] bits"):
            load_graph(path)


def test_int16_inputs_export_as_onnxruntime_writes_them(tmp_path):
    """A 16-bit layer input is a com.microsoft QuantizeLinear with an int16 zero point (what
    onnxruntime's quantize_static writes for QInt16 at opset 17); weights are per channel."""
    model, _, _ = _calibrated_chain(1, 8)
    path = tmp_path / "chain.onnx"
    export_onnx(model, 24, path)
    m = onnx.load(str(path))
    q16 = [n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.domain == "com.microsoft"]
    assert len(q16) == 1
    consts = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}
    inits = {t.name: t for t in m.graph.initializer}
    zp_name = q16[0].input[2]
    zp = inits[zp_name] if zp_name in inits else consts[zp_name].attribute[0].t
    assert zp.data_type == onnx.TensorProto.INT16
    # per-channel weight scales: one per output row, each the row's peak / 127 (or / 7 at 4 bits)
    w = model.inner.parts[0].weight.detach()
    scales = channel_scales(w, 8)
    assert torch.allclose(scales, w.abs().amax(1) / 127)
    assert len(set(scales.tolist())) == w.shape[0]


def test_outlier_inputs_get_16_bits():
    """record_layers keeps a layer's input at 16 bits exactly where int8 inputs alone cost it more
    than the limit: a layer fed rare outliers (a few tokens 60 sigma out in one channel, as
    MiniLM's residual stream has), not one fed well-spread values."""
    from codegen.compress.search import INT8_INPUT_ERROR_LIMIT, record_layers
    from codegen.compress.targets import Target
    torch.manual_seed(0)
    tame = torch.rand(200, 32)                   # uniform in [0, 1): int8 steps of 1/127 are plenty
    wild = torch.randn(200, 32)
    wild[:4, 3] = 60.0                           # the int8 step becomes ~0.5 sigma for every value
    found = {}
    for label, x in (("tame", tame), ("wild", wild)):
        model = nn.Sequential(nn.Linear(32, 8))
        (layer,) = record_layers(Target(model, x, 1, "tensor"), x, seed=0)
        found[label] = layer
        # the scale is calibrated at the chosen width: the recorded peak / the largest code
        qmax = 32767 if layer.in_bits == 16 else 127
        assert layer.in_scale == pytest.approx(float(x.abs().max()) / qmax, rel=1e-6)
    assert found["tame"].in_bits == 8 and found["tame"].int8_input_error < INT8_INPUT_ERROR_LIMIT / 10
    assert found["wild"].in_bits == 16 and found["wild"].int8_input_error > 2 * INT8_INPUT_ERROR_LIMIT


@pytest.fixture(scope="module")
def tiny_bert():
    """A 2-layer BERT encoder, hidden 32, 2 heads, FFN 64 (random weights, seeded)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32,
                                     attn_implementation="eager")
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    return model


def test_whole_encoder_costing(tiny_bert):
    """Every encoder layer's attention products, softmax, LayerNorms, GELU and buffers are in the
    costed graph, its linear units are the candidates', and the cost differs from the linear chain's
    by what those units need."""
    from codegen.compress.costing import chain_graph, fold_cost, lower_layer
    from codegen.compress.encoder import build_template, is_encoder
    from codegen.schedule.boards import get_board
    model = tiny_bert
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert is_encoder(model, names) and len(names) == 12
    rng = np.random.default_rng(0)
    with torch.no_grad():
        states = [model.embeddings(input_ids=torch.as_tensor(rng.integers(0, 64, (1, 8)))).numpy() for _ in range(8)]
    tokens = 8
    template = build_template(model, names, states, "zcu104", tokens, calibration_length=8)
    kinds = [op.kind for op in template.graph.ops]
    assert kinds.count("linear") == 6 and kinds.count("softmax") == 1 and kinds.count("layernorm") == 2
    assert kinds.count("actmatmul") == 2 and kinds.count("gelu") == 1
    modules = dict(model.named_modules())
    board = get_board("zcu104")
    other_bits = set()
    for spec in (Spec("dense", 8), Spec("nm", 4, n=1, m=4)):
        graphs = {n: lower_layer(build(spec, modules[n], 0.01, in_bits=16), 0.01, "zcu104", out_bits=16)
                  for n in names}
        encoder = template.encoder_graph(graphs)
        ekinds = [op.kind for op in encoder.ops]
        assert ekinds.count("softmax") == 2 and ekinds.count("layernorm") == 4 and ekinds.count("gelu") == 2
        assert ekinds.count("actmatmul") == 4 and encoder.tokens == tokens
        # the linear units are the candidates': the stored bits are theirs plus a few thousand of
        # the other units' parameters (LayerNorm, requantizer constants)
        unit_bits = sum(fold_cost(g, board, None).weight_bits for g in graphs.values())
        whole = fold_cost(encoder, board, None)
        other_bits.add(whole.weight_bits - unit_bits)
        fastest_chain = fold_cost(chain_graph([graphs[n] for n in names], tokens), board, None)
        # the encoder cannot run faster than the chain of its own linear units; at the encoder's
        # interval it needs more than that chain does (the units besides the linear ones)
        assert whole.cycles >= fastest_chain.cycles
        chain = fold_cost(chain_graph([graphs[n] for n in names], tokens), board, whole.cycles)
        assert chain.cycles <= whole.cycles
        assert whole.lut > chain.lut and whole.bram36 + 8 * whole.uram > chain.bram36 + 8 * chain.uram
        if spec.kind == "dense":
            dense = whole
    assert whole.weight_bits < dense.weight_bits      # 1:4 at 4 bits stores fewer weight bits
    assert all(0 < bits < dense.weight_bits // 10 for bits in other_bits), other_bits


def _tiny_encoder_costing(model, board, seed: int):
    """The tiny encoder's linear names, its layers lowered per candidate spec (16-bit inputs), its
    dense layers so lowered, and the whole-encoder costing table measured with them on ``board``."""
    from codegen.compress.costing import lower_layer
    from codegen.compress.encoder import build_template, prepare_costing
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        states = [model.embeddings(input_ids=torch.as_tensor(rng.integers(0, 64, (1, 8)))).numpy() for _ in range(8)]
    template = build_template(model, names, states, board.name, 8, calibration_length=8)
    modules = dict(model.named_modules())

    def graphs_of(spec: Spec) -> dict:
        return {n: lower_layer(build(spec, modules[n], 0.01, in_bits=16), 0.01, board.name, out_bits=16)
                for n in names}

    dense = graphs_of(Spec("dense", 8))
    return names, graphs_of, dense, prepare_costing(template, dense, board)


def test_whole_encoder_cost_table_matches_the_full_fold(tiny_bert):
    """The search's whole-encoder cost (linear chain folded on what the board has left + the other
    units measured once on the dense encoder) against the scheduler's fold of the real
    whole-encoder graph: the same interval, and DSP, LUT, memory, stored bits and multiplies within
    10% for the dense configuration the table was measured on, 25% for 1:4 with 4-bit weights (the
    tiny encoder fits the board, so the full fold is its fastest fit while the table folds the
    linear units at the floor interval, and the other units' numbers move with their neighbours)."""
    from codegen.compress.costing import chain_graph
    from codegen.schedule.boards import get_board
    board = get_board("zcu104")
    names, graphs_of, dense, table = _tiny_encoder_costing(tiny_bert, board, seed=1)
    assert table.floor_ii >= 1 and table.other["effective_macs"] > 0   # the attention products
    for spec in (Spec("dense", 8), Spec("nm", 4, n=1, m=4)):
        graphs = dense if spec.kind == "dense" else graphs_of(spec)
        estimate = table.cost(chain_graph([graphs[n] for n in names], 8), board, None)
        full = table.full(graphs, board)
        assert estimate.cycles == full.cycles == table.floor_ii
        share = 0.1 if spec.kind == "dense" else 0.25
        close = lambda a, b: abs(a - b) <= share * b  # noqa: E731
        assert close(estimate.weight_bits, full.weight_bits) and close(estimate.effective_macs, full.effective_macs)
        # memory in 36 Kb block equivalents (an UltraRAM = 8): which ROMs and buffers go to UltraRAM
        # is decided for the whole design at once, so the split differs a little: on this tiny
        # encoder (about 70 equivalents) two UltraRAMs placed otherwise are a fifth of it.  (At
        # its floor of 92 cycles, reached since the softmax gets the lanes its target needs, the
        # table's fold of the other units alone holds their memories in 1.5 BRAM36 and two
        # UltraRAMs, which the full fold places otherwise: 83.5 against 69.)
        memory = lambda c: c.bram36 + 8 * c.uram  # noqa: E731
        assert abs(memory(estimate) - memory(full)) <= max(share * memory(full), 16), (estimate, full)
        assert close(estimate.lut, full.lut) and close(estimate.dsp, full.dsp)


def test_whole_encoder_cost_is_the_full_fold_when_nothing_fits(tiny_bert):
    """On a board that the units besides the linear ones overflow by themselves (as MiniLM's at 128
    tokens overflow the KV260), the search's whole-encoder cost of a configuration is the
    scheduler's fold of its real whole-encoder graph: every number equal to :meth:`full`'s,
    memories included (adding the dense encoder's table rows to a chain folded alone got block RAM
    and UltraRAM wrong: the scheduler places ROMs and long FIFOs for the whole design at once)."""
    from dataclasses import replace

    from codegen.compress.costing import chain_graph
    from codegen.schedule.boards import get_board
    zcu104 = get_board("zcu104")
    names, graphs_of, _, table = _tiny_encoder_costing(tiny_bert, zcu104, seed=2)
    small = replace(zcu104, bram36=max(1.0, table.other["bram36"] / 2), uram=max(1, table.other["uram"] // 2),
                    dsp=max(1, table.other["dsp"] // 2))
    for spec in (Spec("dense", 8), Spec("nm", 4, n=1, m=4), Spec("dense", 4)):
        graphs = graphs_of(spec)
        estimate = table.cost(chain_graph([graphs[n] for n in names], 8), small, None, graphs)
        full = table.full(graphs, small)
        assert not estimate.fits and not full.fits
        assert estimate == full, (spec.label, estimate, full)
