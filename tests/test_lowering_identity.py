"""Lowering produces the same IR as before the front end was made faster: the lowered graph of
small models of every kind (tests/models/lowering_cases.py: the demo, a tensor train, an einsum
chain, one BERT-base tensor-train FFN block, a conv block, a butterfly, a residual graph, an
attention layer with its mask) is compared op by op, weights element by element (digests of their
bytes), with tests/data/lowered_ir.json, written by the lowering before those changes
(`python tests/lowered_ir.py --write` rewrites it, for an intended change of the IR only).
bench/lowering_time.py does the same for the BERT-base-sized encoders."""
from __future__ import annotations

import pytest

from lowered_ir import STORED, differences, fingerprint, load_fingerprints, lower_case
from models.lowering_cases import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_lowered_ir_is_unchanged(name: str, tmp_path) -> None:
    stored = load_fingerprints(STORED)
    assert name in stored, f"no stored IR for {name}: run python tests/lowered_ir.py --write"
    fresh = fingerprint(lower_case(name, tmp_path))
    assert fresh["array_count"] > 0
    assert differences(stored[name], fresh) == []


def test_a_changed_weight_is_a_difference(tmp_path) -> None:
    """The comparison sees one weight code changed (it compares arrays, not only shapes)."""
    graph = lower_case("demo", tmp_path)
    before = fingerprint(graph)
    index = next(i for i, op in enumerate(graph.ops) if op.kind == "linear")
    graph.ops[index].weight[0, 0] += 1
    lines = differences(before, fingerprint(graph))
    assert len(lines) == 1 and lines[0].startswith(f"ir.ops[{index}].arrays.weight: expected "), lines
