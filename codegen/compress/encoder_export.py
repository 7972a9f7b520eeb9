"""The whole compressed encoder of a BERT-like text model as one QDQ ONNX that `einhls compile`
takes as is.

The compressed linear modules (codegen/compress/modules.py) already carry the quantization the
search chose and distillation trained with: each layer input per tensor at its calibrated scale,
8 or 16 bits wide, weights per output channel (or per core / stage for tensor trains and
butterflies).  Everything else of an encoder layer (the attention score and context products,
softmax, LayerNorm, GELU, the residual adds) is float in the torch model; here it is quantized the
way einhls' MiniLM compile path quantizes a whole layer (onnxruntime ``quantize_static``, QDQ,
16-bit activations), calibrated on the encoder's real inputs, with the compressed modules' own
nodes left out so that their quantizers are the only ones on their inputs and weights.

Token embeddings stay on the host (as in the MiniLM compile path): the graph takes the first
encoder layer's input, hidden states [1, L, H], and returns the last layer's output [1, L, H].
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import EinhlsError


class EncoderLayers(nn.Module):
    """Encoder layers [0, count) on hidden states [1, L, H] (no attention mask), exported under the
    scopes ``/layers.<i>/`` so the ONNX node names carry each layer's module paths."""

    def __init__(self, model: nn.Module, count: int | None = None) -> None:
        super().__init__()
        layers = model.encoder.layer
        self.layers = nn.ModuleList(layers if count is None else layers[:count])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
        return x


def compressed_scopes(student: nn.Module, count: int) -> list[str]:
    """ONNX node-name prefixes (the legacy exporter's module scopes) of the compressed linear
    modules of the first ``count`` encoder layers (a LowRank's two QuantLinears are inside its own
    scope)."""
    from .modules import LowRank, QuantButterfly, QuantLinear, QuantTT
    scopes: list[str] = []
    for index, layer in enumerate(student.encoder.layer[:count]):
        found: list[str] = []
        for path, module in layer.named_modules():
            if isinstance(module, (OutputQuant, QuantLinear, LowRank, QuantTT, QuantButterfly)) \
                    and not any(path.startswith(outer + ".") for outer in found):
                found.append(path)
        scopes += [f"/layers.{index}/{path.replace('.', '/')}/" for path in found]
    return scopes


class OutputQuant(nn.Module):
    """A compressed module and a 16-bit quantizer on its output.  The head split after a query /
    key / value projection is a reshape and a transpose, which onnxruntime's quantizer leaves
    unquantized when the module before it is excluded; the lowered graph needs one scale there."""

    def __init__(self, layer: nn.Module, scale: float) -> None:
        super().__init__()
        self.layer, self.scale = layer, scale
        self.in_features, self.out_features = layer.in_features, layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .modules import fake_quant
        return fake_quant(self.layer(x), self.scale, OUTPUT_BITS)


#: width of the compressed modules' output quantizers (the non-linear units' activations)
OUTPUT_BITS = 16


def with_output_quantizers(student: nn.Module, count: int, hidden_states: list[np.ndarray]) -> nn.Module:
    """A copy of ``student`` whose compressed modules in the first ``count`` encoder layers end in
    an :class:`OutputQuant` at their calibrated output peak (on ``hidden_states``)."""
    import copy

    from .modules import act_scale
    student = copy.deepcopy(student).eval()
    scopes = compressed_scopes(student, count)
    modules = dict(student.named_modules())
    paths = [f"encoder.layer.{s.split('/')[1].split('.')[1]}.{'.'.join(s.strip('/').split('/')[1:])}"
             for s in scopes]
    peaks = {path: 0.0 for path in paths}
    hooks = [modules[path].register_forward_hook(
        lambda _m, _i, out, path=path: peaks.__setitem__(path, max(peaks[path], float(out.detach().abs().max()))))
        for path in paths]
    try:
        with torch.no_grad():
            runner = EncoderLayers(student, count)
            for state in hidden_states:
                runner(torch.as_tensor(np.ascontiguousarray(state, dtype=np.float32)))
    finally:
        for hook in hooks:
            hook.remove()
    for path in paths:
        parent, _, child = path.rpartition(".")
        setattr(modules[parent], child, OutputQuant(modules[path], act_scale(peaks[path], OUTPUT_BITS)))
    return student


def export_encoder(student: nn.Module, hidden_states: list[np.ndarray], path: str | Path,
                   layers: int | None = None) -> Path:
    """Write the first ``layers`` (default: all) encoder layers of ``student`` as one QDQ ONNX at
    the sequence length of ``hidden_states`` (each [1, L, H], the first encoder layer's input;
    they calibrate the non-linear units' 16-bit quantizers)."""
    import onnx

    from .encoder import quantize_on_hidden_states

    path = Path(path)
    if not hidden_states:
        raise EinhlsError("encoder export: no calibration hidden states")
    count = len(student.encoder.layer) if layers is None else layers
    student = with_output_quantizers(student, count, hidden_states)
    module = EncoderLayers(student, count).eval()
    example = torch.as_tensor(np.ascontiguousarray(hidden_states[0], dtype=np.float32))
    scopes = compressed_scopes(student, count)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "encoder_float.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(float_path), input_names=["x"], output_names=["y"],
                              opset_version=17, dynamo=False)
        excluded = [node.name for node in onnx.load(str(float_path)).graph.node
                    if node.name.startswith(tuple(scopes))]
        if scopes and not excluded:
            raise EinhlsError("encoder export: the compressed modules' nodes were not found by scope "
                              f"(first scope {scopes[0]!r})")
        quantize_on_hidden_states(float_path, path, hidden_states, nodes_to_exclude=excluded)
    return path
