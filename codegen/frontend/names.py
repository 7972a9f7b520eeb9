"""Safe IR names derived from ONNX names.

ONNX names are arbitrary strings: they may hold quotes, newlines, ``../``, C++ keywords or template
syntax such as ``{{ }}``.  IR op names end up in generated C++, Verilog, file names and Jinja
templates, so they are built from a position and a sanitized hint only; the original names go to
``Op.source`` (messages and reports) and nowhere else.
"""
from __future__ import annotations

import re

import onnx

HINT_CHARS = 24


def safe_hint(text: str, limit: int = HINT_CHARS) -> str:
    """Lower-case ``text`` reduced to ``[a-z0-9_]``, runs of other characters become one ``_``.

    >>> safe_hint('/fc1/Gemm')
    'fc1_gemm'
    >>> safe_hint('{{ evil }}"\\n../x')
    'evil_x'
    """
    hint = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return hint[:limit].rstrip("_")


def op_name(index: int, hint: str) -> str:
    """The IR name of the op at position ``index``: ``n{index}_{hint}`` (always an identifier)."""
    hint = safe_hint(hint)
    return f"n{index}_{hint}" if hint else f"n{index}"


def node_label(node: onnx.NodeProto) -> str:
    """A name for messages: the node's name, or its op type and first output when it has none."""
    if node.name:
        return node.name
    return f"{node.op_type}->{node.output[0]}" if node.output else node.op_type


def graph_name(model: onnx.ModelProto) -> str:
    """An identifier-safe name for the IR graph, from the ONNX graph name (``model`` if none)."""
    hint = safe_hint(model.graph.name)
    if not hint:
        return "model"
    return hint if hint[0].isalpha() else f"g_{hint}"
