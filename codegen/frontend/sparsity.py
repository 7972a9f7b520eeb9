"""The N:M pattern of a lowered layer: detected from the weight values, or declared and verified.

A model may declare a layer's pattern in its metadata, ``einhls.sparsity.<node name>`` = ``"2:4"``
(or ``"dense"``); the declaration is checked against the weights, so a wrong one is an error rather
than a wrong accelerator.  Without one the tightest pattern is detected (:func:`detect_nm`).
"""
from __future__ import annotations

import math
import re

import numpy as np
import onnx

from ..errors import EinhlsError
from ..ir.sparsity import detect_nm, max_nonzeros_per_group

METADATA_PREFIX = "einhls.sparsity."


def declared_patterns(model: onnx.ModelProto) -> dict[str, str]:
    """Node name -> declared pattern text, from the model's metadata_props."""
    return {prop.key[len(METADATA_PREFIX):]: prop.value for prop in model.metadata_props
            if prop.key.startswith(METADATA_PREFIX)}


def parse_pattern(text: str, node: str, op_type: str) -> tuple[int, int] | None:
    """``"n:m"`` -> (n, m); ``"dense"`` -> None; anything else is an error."""
    if text.strip().lower() in ("dense", "none"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) < int(match.group(2)) <= 64:
        raise EinhlsError(f"declared sparsity {text!r} is not N:M with 1 <= N < M <= 64 (or 'dense')",
                          node, op_type)
    return int(match.group(1)), int(match.group(2))


def saves_multipliers(pattern: tuple[int, int] | None, k: int) -> tuple[int, int] | None:
    """``pattern`` if it needs fewer multipliers than dense for reduction length ``k``, else None.

    With ``k`` < M the zero padding of the single group makes any layer look N:M sparse (e.g. 12:16
    for k = 12) without saving anything.
    """
    if pattern is None:
        return None
    n, m = pattern
    return pattern if n * math.ceil(k / m) < k else None


def choose_sparsity(weight: np.ndarray, node: str, op_type: str,
                    declared: str | None = None) -> tuple[int, int] | None:
    """The N:M pattern of a weight [out, in]: the declared one after checking it holds, else detected."""
    if declared is None:
        return saves_multipliers(detect_nm(weight), weight.shape[1])
    pattern = parse_pattern(declared, node, op_type)
    if pattern is not None:
        n, m = pattern
        worst = max_nonzeros_per_group(weight, m)
        if worst > n:
            raise EinhlsError(f"declared sparsity {n}:{m} does not hold: a group of {m} weights along "
                              f"the reduction axis has {worst} non-zeros", node, op_type)
    return pattern
