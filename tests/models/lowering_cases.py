"""Small models of every kind the front end lowers, for the lowering-identity check
(tests/test_lowering_identity.py): each builder writes a deterministic ONNX file (seeded weights,
fixed calibration samples) and names the board it is lowered for."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import onnx


def _save(model: onnx.ModelProto, path: Path) -> Path:
    Path(path).write_bytes(model.SerializeToString(deterministic=True))
    return Path(path)


def demo(path: Path) -> Path:
    from codegen.demo_model import build_demo_model
    build_demo_model(path)
    return path


def tensor_train(path: Path) -> Path:
    from .einsum_models import tt_model
    return _save(tt_model((4, 4, 6), (6, 8, 8), (3, 4), seed=3), path)


def einsum_chain(path: Path) -> Path:
    from .einsum_models import chain_model
    return _save(chain_model(seed=1, quantize_between=False), path)


def tt_ffn_chain(path: Path) -> Path:
    """One block of the BERT-base tensor-train chain (768 -> 3072 -> 768, rank 4)."""
    from .bert_base import export_tt_chain
    return export_tt_chain(path, blocks=1)


def conv(path: Path) -> Path:
    from .conv_models import build
    return build("separable_block", path)


def butterfly(path: Path) -> Path:
    from codegen.nn.butterfly import ButterflyLinear, ButterflyQuant, export_butterfly
    export_butterfly(ButterflyLinear(12, 20, quantize=ButterflyQuant(), seed=12), path, dynamo=False)
    return path


def residual(path: Path) -> Path:
    from .graph_models import export_quantized
    export_quantized("residual_mlp", path)
    return path


def attention_layer(path: Path) -> Path:
    """A BERT layer with the attention mask (the MiniLM layer's graph, 32 features, 8 tokens)."""
    from .minilm_mask import export_small_masked_layer
    return export_small_masked_layer(path)


#: name -> (builder, board)
CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "demo": (demo, "pynq-z2"), "tensor_train": (tensor_train, "pynq-z2"), "einsum_chain": (einsum_chain, "pynq-z2"),
    "tt_ffn_chain": (tt_ffn_chain, "zcu102"), "conv": (conv, "pynq-z2"), "butterfly": (butterfly, "pynq-z2"),
    "residual": (residual, "pynq-z2"), "attention_layer": (attention_layer, "zcu104"),
}
