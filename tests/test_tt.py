"""PyTorch side: TTLinear / LowRankLinear export, TT-SVD, tensorly and tensorly-torch (tltorch) import.

Exports go through torch.onnx.export with both the dynamo and the legacy exporter; the lowered
graph must be one contraction whose integer reference agrees with onnxruntime within one output
quantization step (float32 accumulation in onnxruntime may round where the reference is exact).
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from codegen.frontend import load_graph
from codegen.ir.contraction import Contraction
from codegen.ir.reference import dequantize_output, quantize_input, run_reference
from codegen.nn.tt import LowRankLinear, TTLinear, factorize_linear, factorize_low_rank, tt_svd
from codegen.passes.contraction import plan_contractions

from models.foreign_tt import export as export_foreign
from onnx_oracle import onnx_session

EXPORTERS = [pytest.param(True, id="dynamo"), pytest.param(False, id="legacy")]


def _export(module: nn.Module, x: torch.Tensor, path, dynamo: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), dynamo=dynamo, opset_version=18 if dynamo else 17)


def _agree_with_onnxruntime(path, vectors: int = 16):
    graph = load_graph(path)
    expanded, _ = plan_contractions(graph)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(vectors, graph.input_size)).astype(np.float32)
    codes = quantize_input(graph, x)
    ours = run_reference(graph, codes)
    np.testing.assert_array_equal(run_reference(expanded, codes), ours)
    sess = onnx_session(str(path))
    name = sess.get_inputs()[0].name
    theirs = np.concatenate([sess.run(None, {name: row[None]})[0] for row in x]).reshape(vectors, -1)
    assert np.abs(dequantize_output(graph, ours) - theirs).max() <= graph.output_type.scale * 1.0001
    return graph


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_ttlinear_exports_as_one_einsum_and_compiles(tmp_path, dynamo):
    torch.manual_seed(0)
    tt = TTLinear([4, 4, 4], [4, 8, 2], [3, 5], quantize=(2.0 ** -5, 2.0 ** -6, 2.0 ** -4)).eval()
    path = tmp_path / "tt.onnx"
    _export(tt, torch.randn(1, 64), path, dynamo)
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("Einsum") == 1
    graph = _agree_with_onnxruntime(path)
    assert [op.kind for op in graph.ops] == ["contraction"]


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_foreign_tt_letters_and_core_order(tmp_path, dynamo):
    path = tmp_path / "foreign.onnx"
    export_foreign(str(path), dynamo=dynamo)
    graph = _agree_with_onnxruntime(path)
    assert isinstance(graph.ops[0], Contraction)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_low_rank_linear_is_one_contraction(tmp_path, dynamo):
    torch.manual_seed(1)
    lr = LowRankLinear(48, 40, 4, quantize=(2.0 ** -5, 2.0 ** -6, 2.0 ** -3)).eval()
    path = tmp_path / "lr.onnx"
    _export(lr, torch.randn(1, 48), path, dynamo)
    graph = _agree_with_onnxruntime(path)
    assert [op.kind for op in graph.ops] == ["contraction"]
    assert len(graph.ops[0].segments[0].constants) == 2


def test_ttlinear_full_weight_matches_forward():
    torch.manual_seed(2)
    tt = TTLinear([2, 3, 4], [4, 2, 3], [2, 3]).eval()
    x = torch.randn(5, 24)
    with torch.no_grad():
        np.testing.assert_allclose((x @ tt.full_weight().T + tt.bias).numpy(), tt(x).numpy(), atol=1e-5)
    assert tt.parameter_count() == sum(r0 * m * n * r1 for r0, m, n, r1 in
                                       [c.shape for c in tt.cores])


def test_tt_svd_exact_at_full_rank_and_within_error_bound():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 5, 6, 3))
    cores = tt_svd(t)
    full = cores[0]
    for c in cores[1:]:
        full = np.tensordot(full, c, axes=(-1, 0))
    np.testing.assert_allclose(full.reshape(t.shape), t, atol=1e-10)
    for bound in (0.05, 0.2, 0.5):
        cores = tt_svd(t, rel_error=bound)
        full = cores[0]
        for c in cores[1:]:
            full = np.tensordot(full, c, axes=(-1, 0))
        assert np.linalg.norm(full.reshape(t.shape) - t) <= bound * np.linalg.norm(t) + 1e-12


def _tt_matrix_error(cores_w, w):
    return np.linalg.norm(cores_w - w) / np.linalg.norm(w)


def test_factorize_linear_against_tensorly_tensor_train_matrix():
    import tensorly as tl
    from tensorly.decomposition import tensor_train_matrix
    from tensorly.tt_matrix import tt_matrix_to_tensor

    torch.manual_seed(3)
    lin = nn.Linear(48, 60)          # in 4*3*4, out 5*4*3
    w = lin.weight.detach().double().numpy()
    in_f, out_f = [4, 3, 4], [5, 4, 3]
    for rank in (2, 5, 9):
        tt = factorize_linear(lin, in_f, out_f, max_rank=rank)
        ours = _tt_matrix_error(tt.full_weight().double().numpy(), w)
        with tl.backend_context("numpy"):   # not set_backend: tltorch tests later need it pytorch
            theirs_tt = tensor_train_matrix(w.reshape(*out_f, *in_f), rank=[1] + [rank] * 2 + [1])
            theirs = _tt_matrix_error(tt_matrix_to_tensor(theirs_tt).reshape(60, 48), w)
        assert max(tt.ranks) <= rank
        assert ours <= theirs * (1 + 1e-6) + 1e-9, (rank, ours, theirs)   # TT-SVD: the same truncations
        x = torch.randn(3, 48)
        with torch.no_grad():
            np.testing.assert_allclose(tt(x).numpy(), (x @ tt.full_weight().T + lin.bias).numpy(), atol=1e-4)
    exact = factorize_linear(lin, in_f, out_f)
    assert _tt_matrix_error(exact.full_weight().double().numpy(), w) < 1e-6
    bounded = factorize_linear(lin, in_f, out_f, rel_error=0.3)
    assert _tt_matrix_error(bounded.full_weight().double().numpy(), w) <= 0.3 + 1e-6
    assert bounded.parameter_count() < exact.parameter_count()


def test_factorize_low_rank_is_eckart_young():
    torch.manual_seed(4)
    lin = nn.Linear(30, 20)
    s = np.linalg.svd(lin.weight.detach().double().numpy(), compute_uv=False)
    for rank in (1, 4, 10):
        lr = factorize_low_rank(lin, rank)
        err = np.linalg.norm(lr.full_weight().double().numpy() - lin.weight.detach().double().numpy())
        assert abs(err - np.sqrt((s[rank:] ** 2).sum())) < 1e-4


# --------------------------------------------------------------------------- tensorly-torch

def _on_grid(module: nn.Module, step: float = 2.0 ** -6) -> None:
    """Round every parameter to a fixed-point grid (so the float model is exactly representable)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.clamp(torch.round(p / step), -127, 127) * step)


class Quantized(nn.Module):
    """Fake-quantized input and output around a tltorch layer (exported as Q/DQ pairs)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        x = torch.fake_quantize_per_tensor_affine(x, 2.0 ** -4, 0, -128, 127)
        return torch.fake_quantize_per_tensor_affine(self.layer(x), 2.0 ** -3, 0, -128, 127)


TLTORCH_EXPORT_CLEANLY = ["blocktt", "tucker", "cp"]   # with implementation="factorized": one Einsum


@pytest.mark.parametrize("factorization", TLTORCH_EXPORT_CLEANLY)
@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_tltorch_factorized_linear_imports(tmp_path, factorization, dynamo):
    tltorch = pytest.importorskip("tltorch")
    torch.manual_seed(5)
    layer = tltorch.FactorizedLinear(in_tensorized_features=(4, 4), out_tensorized_features=(2, 8),
                                     factorization=factorization, rank=0.5, implementation="factorized")
    _on_grid(layer)
    model = Quantized(layer).eval()
    path = tmp_path / "tl.onnx"
    _export(model, torch.randn(1, 16), path, dynamo)
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("Einsum") == 1
    graph = _agree_with_onnxruntime(path)
    assert [op.kind for op in graph.ops] == ["contraction"]


def test_tltorch_reconstructed_is_a_dense_layer(tmp_path):
    """implementation="reconstructed" exports the rebuilt dense weight: einhls sees a plain Linear."""
    tltorch = pytest.importorskip("tltorch")
    torch.manual_seed(6)
    layer = tltorch.FactorizedLinear(in_tensorized_features=(4, 4), out_tensorized_features=(2, 8),
                                     factorization="tucker", rank=0.5, implementation="reconstructed")
    _on_grid(layer, 2.0 ** -12)
    path = tmp_path / "tl.onnx"
    _export(Quantized(layer).eval(), torch.randn(1, 16), path, True)
    assert "Einsum" not in [n.op_type for n in onnx.load(str(path)).graph.node]
