"""Whole-encoder costing of a compressed Transformer encoder (BERT-like: ``model.encoder.layer``).

The search's linear-layer chain leaves out everything an encoder layer is besides its linear
layers: the attention score and context products, softmax, LayerNorm, GELU, the residual adds and
the FIFOs beside them, the key / value buffers.  Here one encoder layer is built the way einhls'
MiniLM compile path builds it (``torch.onnx.export`` of the float layer, onnxruntime
``quantize_static`` with int16 activations and int8 per-channel weights, calibrated on the layer's
real inputs, lowered by ``codegen.project.lower`` at the sequence length the search costs), once
per run: the :class:`EncoderTemplate`.  A configuration is then costed as the whole encoder: for
every encoder layer, the template with each linear unit (its MatMul and bias Add, i.e. the linear
op and the requantizers after it) replaced by the lowered ops of that layer's chosen candidate,
the layers in a pipeline, folded by ``codegen.schedule.folding.fold`` like any compiled model.

What is approximate (said in the report too): the non-linear units are layer 0's, repeated (their
cost does not depend on the weights); the template's activations are 16 bits wide, and a
candidate whose input the search keeps at 8 bits reads that 16-bit stream without the narrowing
requantizer `einhls compile` would insert (a requantizer is a few LUTs).
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import EinhlsError
from ..ir.graph import GRAPH_INPUT, Graph, Op


class _Stack(nn.Module):
    """One encoder layer on hidden states [1, L, H] (no attention mask), exported under the
    scope ``/layers.0/`` so its ONNX node names carry the layer's module paths."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList([layer])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers[0](x)
        return out[0] if isinstance(out, tuple) else out


@dataclass
class EncoderTemplate:
    """One lowered encoder layer and where its linear units sit (by module path in the layer)."""
    graph: Graph
    roles: dict[str, str]          # linear op name in ``graph`` -> module path in the layer ("attention.self.query")
    layer_names: list[list[str]]   # per encoder layer, the full module names of its linear layers, in role order
    tokens: int

    def encoder_graph(self, layer_graph: "dict[str, Graph]") -> Graph:
        """The whole encoder's graph for one configuration: ``layer_graph`` maps every linear
        layer's full module name to its candidate's lowered graph (one token per frame)."""
        ops: list[Op] = []
        previous = GRAPH_INPUT
        for index, names in enumerate(self.layer_names):
            by_path = {name.split(".", 3)[-1]: layer_graph[name] for name in names}
            layer_ops, output = self._splice(by_path, f"e{index}_", previous)
            ops += layer_ops
            previous = output
        g = self.graph
        return Graph(name="compressed_encoder", input_type=g.input_type, input_size=g.input_size, ops=ops,
                     tokens=self.tokens, output=previous)

    def _splice(self, by_path: "dict[str, Graph]", prefix: str, source: str) -> tuple[list[Op], str]:
        """One encoder layer's ops (renamed with ``prefix``, reading ``source``) with every
        linear unit replaced; returns the ops and the layer's output tensor."""
        template = self.graph
        alias: dict[str, str] = {}      # template tensor -> tensor in the spliced graph
        dropped: set[str] = set()
        ops: list[Op] = []

        def renamed(tensor: str) -> str:
            if tensor in alias:
                return alias[tensor]
            return source if tensor == GRAPH_INPUT else prefix + tensor

        consumers: dict[str, list[Op]] = {}
        for op in template.ops:
            for t in op.inputs:
                consumers.setdefault(t, []).append(op)
        for op in template.ops:
            if op.name in dropped:
                continue
            if op.name not in self.roles:
                ops.append(replace(op, name=prefix + op.name, inputs=tuple(renamed(t) for t in op.inputs)))
                continue
            # the linear unit: the MatMul's op and the requantizers of its bias Add after it
            end = op.outputs[0]
            while len(consumers.get(end, [])) == 1 and consumers[end][0].kind == "requant":
                nxt = consumers[end][0]
                dropped.add(nxt.name)
                end = nxt.outputs[0]
            unit = by_path[self.roles[op.name]]
            unit_prefix = f"{prefix}{op.name}_"
            unit_input = renamed(op.inputs[0])

            def unit_renamed(tensor: str) -> str:
                return unit_input if tensor == GRAPH_INPUT else unit_prefix + tensor

            for u in unit.ops:
                ops.append(replace(u, name=unit_prefix + u.name, inputs=tuple(unit_renamed(t) for t in u.inputs)))
            alias[end] = unit_renamed(unit.output)
        return ops, renamed(template.output)


def is_encoder(model: nn.Module, linear_names: list[str]) -> bool:
    """Whether every searched linear layer sits in ``model.encoder.layer[i]`` (a BERT-like encoder
    the template can cost as a whole)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return False
    return all(name.startswith("encoder.layer.") for name in linear_names)


def quantize_on_hidden_states(float_path: Path, path: Path, hidden_states: list[np.ndarray],
                              nodes_to_exclude: list[str] | None = None) -> None:
    """onnxruntime's quantize_static of an encoder export (input "x") calibrated on ``hidden_states``:
    QDQ, 16-bit activations, per-channel int8 weights, ``nodes_to_exclude`` left as they are."""
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"x": np.ascontiguousarray(s, dtype=np.float32)} for s in hidden_states)

        def get_next(self):
            return next(self.items, None)

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)   # onnxruntime's opset / pre-processing advice
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt16, weight_type=QuantType.QInt8,
                            nodes_to_exclude=nodes_to_exclude or [])
    finally:
        logging.getLogger().setLevel(quiet)


def build_template(model: nn.Module, linear_names: list[str], hidden_states: list[np.ndarray], board: str,
                   tokens: int, calibration_length: int = 16) -> EncoderTemplate:
    """Export, quantize (int16 activations, int8 per-channel weights; onnxruntime quantize_static
    calibrated on ``hidden_states``, the first layer's inputs [1, calibration_length, H]) and lower
    encoder layer 0 at ``tokens`` tokens for ``board``."""
    from ..project import CompileOptions, lower
    layer = model.encoder.layer[0]
    hidden = hidden_states[0].shape[-1]
    paths = [name.split(".", 3)[-1] for name in linear_names if name.startswith("encoder.layer.0.")]
    with tempfile.TemporaryDirectory() as tmp:
        float_path, path = Path(tmp) / "layer_float.onnx", Path(tmp) / "layer.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Stack(layer).eval(), (torch.zeros(1, calibration_length, hidden),), str(float_path),
                              input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)

        quantize_on_hidden_states(float_path, path, hidden_states)
        graph = lower(path, CompileOptions(board=board, sequence_length=tokens))
    roles = {}
    for op in graph.ops:
        if op.kind != "linear":
            continue
        found = [p for p in paths if f"/layers.0/{p.replace('.', '/')}/MatMul" in op.source]
        if len(found) != 1:
            raise EinhlsError(f"encoder costing: cannot tell which linear layer op {op.name!r} is "
                              f"(from {op.source[:120]!r})")
        roles[op.name] = found[0]
    if sorted(roles.values()) != sorted(paths):
        raise EinhlsError(f"encoder costing: the lowered layer has linear units for {sorted(roles.values())}, "
                          f"the model's layer has {sorted(paths)}")
    count = len(model.encoder.layer)
    layer_names = [[f"encoder.layer.{i}.{p}" for p in paths] for i in range(count)]
    missing = sorted(set(n for names in layer_names for n in names) - set(linear_names))
    if missing:
        raise EinhlsError(f"encoder costing: linear layers not searched: {missing[:3]}")
    return EncoderTemplate(graph, roles, layer_names, tokens)


def text_hidden_states(target, sentences: list[str], length: int = 16) -> list[np.ndarray]:
    """The first encoder layer's inputs (token + position embeddings) for ``sentences``, each
    padded / truncated to ``length`` tokens: [1, length, H] float32."""
    states = []
    with torch.no_grad():
        for text in sentences:
            ids = target.tokenizer(text, return_tensors="pt", padding="max_length", truncation=True,
                                   max_length=length)["input_ids"]
            states.append(target.model.embeddings(input_ids=ids).numpy().astype(np.float32))
    return states


def unbounded(board):
    """``board`` with (practically) unlimited resources, same family and clock."""
    return replace(board, dsp=10**9, lut=10**12, ff=10**12, bram36=10**9, uram=10**9 if board.uram else 0)


@dataclass
class EncoderCosting:
    """The whole-encoder cost of a configuration from a table built once per run.

    Folding the whole encoder (six layers of about thirty units) takes a minute or more on this
    machine, too slow for every configuration of the search.  What the units besides the linear
    ones cost does not depend on the linear layers' forms, so it is measured once: the whole
    encoder with the dense int8 candidates is folded at its fastest (on an unbounded board: the
    softmax / LayerNorm floor, ``floor_ii``), its linear chain alone at that interval, and the
    difference is ``other`` (DSP, BRAM36, URAM, LUT, stored bits, latency, multiplies; both folded
    with ``floor_ii`` as the target).  A
    configuration is then its linear chain folded on the board less ``other`` (at ``floor_ii`` or
    the fastest that fits), plus ``other``; its interval is never below ``floor_ii``.
    :meth:`full` folds the real whole-encoder graph (for the chosen point)."""
    template: EncoderTemplate
    floor_ii: int
    other: dict

    def cost(self, chain: Graph, board, unfit_ii: int | None, layer_graph: "dict[str, Graph] | None" = None):
        """``layer_graph`` (the configuration's per-layer graphs, as :meth:`full` takes them): when
        the units besides the linear ones alone overflow the board, no configuration fits, and the
        configuration's real whole-encoder graph is folded at ``floor_ii`` on an unbounded board
        (one fold, what :meth:`full` reports) instead of adding table rows.  Adding rows gets DSP,
        LUT and stored bits right but not the memories: the scheduler places weight ROMs and long
        FIFOs in block RAM or UltraRAM for the whole design at once (schedule/folding.py: ROMs,
        then FIFOs, where block RAM is the fuller), so the split of one configuration is not the
        dense encoder's split plus that of a chain folded alone."""
        from .costing import MAX_UTIL, HwCost, _fold_or_none, fold_cost, hw_cost
        o = self.other
        rest = {"dsp": board.dsp - o["dsp"] / MAX_UTIL, "lut": board.lut - o["lut"] / MAX_UTIL,
                "bram36": board.bram36 - o["bram36"] / MAX_UTIL,
                "uram": (board.uram - o["uram"] / MAX_UTIL) if board.uram else 0}
        room = all(v > 0 for k, v in rest.items() if k != "uram" or board.uram)
        if not room and layer_graph is not None:
            # exactly full()'s fold when the board is too small (costing.fold_cost)
            graph = self.template.encoder_graph(layer_graph)
            whole = _fold_or_none(graph, unbounded(board), self.floor_ii, 1.0)
            if whole is not None:
                return hw_cost(whole, fits=False)
        # nothing left for the linear units: a board they cannot fit, so fold_cost costs them on an
        # unbounded one and says fits=False
        smaller = replace(board, **{k: max(int(v), 1) if k != "bram36" else max(v, 0.5) for k, v in rest.items()
                                    if k != "uram" or board.uram}) if room else \
            replace(board, dsp=1, lut=1, bram36=0.5, uram=1 if board.uram else 0)
        linear = fold_cost(chain, smaller, self.floor_ii, unfit_ii if unfit_ii is None else max(unfit_ii, self.floor_ii))
        return HwCost(cycles=max(linear.cycles, self.floor_ii), dsp=linear.dsp + o["dsp"],
                      bram36=linear.bram36 + o["bram36"], uram=linear.uram + o["uram"], lut=linear.lut + o["lut"],
                      weight_bits=linear.weight_bits + o["weight_bits"], latency=linear.latency + o["latency"],
                      effective_macs=linear.effective_macs + o["effective_macs"], fits=linear.fits and room)

    def full(self, layer_graph: "dict[str, Graph]", board):
        """The scheduler's fold of the configuration's real whole-encoder graph: the fastest that
        fits the board, else (fits=False) its fold at ``floor_ii`` on an unbounded board, the
        interval the table's numbers are at."""
        from .costing import fold_cost
        return fold_cost(self.template.encoder_graph(layer_graph), board, None, self.floor_ii)


def prepare_costing(template: EncoderTemplate, dense_graphs: "dict[str, Graph]", board) -> EncoderCosting:
    """Measure the table of :class:`EncoderCosting` with ``dense_graphs`` (every linear layer's
    dense int8 candidate)."""
    from ..schedule.folding import fold
    from .costing import chain_graph
    huge = unbounded(board)
    graph = template.encoder_graph(dense_graphs)
    floor = int(fold(graph, huge, max_util=1.0).totals["ii"])
    # folded again at that interval as a target: the fastest fold gives every unit its most
    # parallel shape, a target the cheapest shape that meets it (what fold_cost and full() ask)
    whole = fold(graph, huge, max_util=1.0, target_ii=floor)
    floor = int(whole.totals["ii"])
    names = [name for names in template.layer_names for name in names]
    chain = fold(chain_graph([dense_graphs[n] for n in names], template.tokens), huge, max_util=1.0, target_ii=floor)
    w, c = whole.totals, chain.totals
    macs = lambda result: sum(cost.effective_macs for cost in result.costs.values())  # noqa: E731
    # (clamped at 0: the chain folded alone may pick other shapes than inside the encoder)
    other = {"dsp": int(w["dsp"] - c["dsp"]), "lut": int(w["lut"] - c["lut"]),
             "bram36": float(w["bram36"] - c["bram36"]), "uram": int(w.get("uram", 0) - c.get("uram", 0)),
             "weight_bits": int(w["weight_bits"] - c["weight_bits"]), "latency": int(w["latency"] - c["latency"]),
             "effective_macs": int(macs(whole) - macs(chain))}
    return EncoderCosting(template, floor, {k: max(v, 0) for k, v in other.items()})
