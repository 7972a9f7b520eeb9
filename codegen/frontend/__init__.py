"""ONNX front end: quantized (QDQ / QONNX) models -> the einhls IR.

    graph = load_graph(Path("model.onnx"))                  # a quantized model
    graph = load_graph(path, default_type=parse_fixed("fixed<16,6>"))  # a float model

:func:`load_graph` = :func:`read_model` + :func:`lower_model`; :func:`lower_model` =
:func:`prepare_model` (checks, batch fixed to 1, shapes) + :func:`fuse_butterflies` (butterfly
chains -> one node, codegen/frontend/butterfly.py) + lowering + :func:`fuse_relu`.
Every problem with the model raises :class:`codegen.errors.EinhlsError` naming the node.

Only the reader (:mod:`codegen.frontend.load`: onnx, no torch) is imported with this package:
`einhls compile` reads the model and refuses one whose weights cannot fit before it imports torch
(about a second of CPU); the lowering's modules are imported when first used.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from ..errors import EinhlsError
from .load import prepare_model, read_model

if TYPE_CHECKING:
    from ..ir.graph import Graph
    from ..ir.types import QType

#: names this package exports from its submodules, imported on first use
_LAZY = {"fuse_butterflies": "butterfly", "lower_prepared": "lower", "fuse_relu": "passes"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lower_model(model: onnx.ModelProto, default_type: QType | None = None) -> Graph:
    """Lower an in-memory ONNX model to an IR graph (see the module docstring)."""
    from .butterfly import fuse_butterflies
    from .lower import lower_prepared
    from .passes import fuse_relu
    from .patterns import explain_refusal

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
