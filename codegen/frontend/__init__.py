"""ONNX front end: quantized (QDQ / QONNX) models -> the einhls IR.

    graph = load_graph(Path("model.onnx"))                  # a quantized model
    graph = load_graph(path, default_type=parse_fixed("fixed<16,6>"))  # a float model

:func:`load_graph` = :func:`read_model` + :func:`lower_model`; :func:`lower_model` =
:func:`prepare_model` (checks, batch fixed to 1, shapes) + :func:`fuse_butterflies` (butterfly
chains -> one node, codegen/frontend/butterfly.py) + lowering + :func:`fuse_relu`.
Every problem with the model raises :class:`codegen.errors.EinhlsError` naming the node.
"""
from __future__ import annotations

from pathlib import Path

import onnx

from ..ir.graph import Graph
from ..ir.types import QType
from .butterfly import fuse_butterflies
from .load import prepare_model, read_model
from ..errors import EinhlsError
from .lower import lower_prepared
from .passes import fuse_relu
from .patterns import explain_refusal


def lower_model(model: onnx.ModelProto, default_type: QType | None = None) -> Graph:
    """Lower an in-memory ONNX model to an IR graph (see the module docstring)."""
    try:
        prepared, _ = fuse_butterflies(prepare_model(model))   # before any Einsum is lowered
        graph = fuse_relu(lower_prepared(prepared, default_type))
    except EinhlsError as exc:   # a refused node may be part of a function written as several nodes
        raise explain_refusal(model, exc) from None
    graph.check()
    return graph


def load_graph(path: Path, default_type: QType | None = None) -> Graph:
    """Read an ONNX file (external data beside it is loaded too) and lower it to an IR graph."""
    return lower_model(read_model(Path(path)), default_type)


__all__ = ["fuse_butterflies", "load_graph", "lower_model", "prepare_model", "read_model", "fuse_relu",
           "lower_prepared"]
