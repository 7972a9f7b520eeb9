"""The lowered IR of a model as plain data, to tell whether two lowerings produced the same graph.

:func:`fingerprint` turns a lowered :class:`~codegen.ir.graph.Graph` into JSON-able data: the
graph's own fields and, op by op, every field of the op (its ``to_json``) and a digest of every
array it carries (dtype, shape and bytes, so weights are compared element by element).
:func:`differences` names where two fingerprints differ.  tests/test_lowering_identity.py keeps the
fingerprints of small models (tests/data/lowered_ir.json) and checks that lowering still produces
them; bench/lowering_time.py checks the BERT-base-sized encoders the same way.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from codegen.ir.graph import Graph


def array_digest(array: np.ndarray) -> str:
    """dtype, shape and SHA-256 of the bytes (C order): equal digests mean equal arrays."""
    array = np.ascontiguousarray(array)
    return f"{array.dtype.str}{list(array.shape)}:{hashlib.sha256(array.tobytes()).hexdigest()[:32]}"


def fingerprint(graph: Graph) -> dict:
    """Graph fields and, per op in order, its JSON fields and the digests of its arrays."""
    whole = graph.to_json()
    ops = whole.pop("ops")
    arrays = graph.arrays()
    per_op = []
    for op, fields in zip(graph.ops, ops):
        prefix = op.name + "."
        per_op.append({"json": fields,
                       "arrays": {key[len(prefix):]: array_digest(value) for key, value in sorted(arrays.items())
                                  if key.startswith(prefix)}})
    # round trip through JSON so stored and fresh fingerprints compare alike (tuples -> lists)
    return json.loads(json.dumps({"graph": whole, "ops": per_op, "array_count": len(arrays)}, sort_keys=True))


def differences(expected: dict, actual: dict, limit: int = 5) -> list[str]:
    """Up to ``limit`` lines naming what differs (empty: the same IR)."""
    found: list[str] = []

    def walk(a, b, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    found.append(f"{where}.{key}: only in {'actual' if key not in a else 'expected'}")
                else:
                    walk(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{index}]")
        elif a != b:
            found.append(f"{where}: expected {str(a)[:120]}, got {str(b)[:120]}")

    if len(expected["ops"]) != len(actual["ops"]):
        found.append(f"{len(expected['ops'])} ops expected, {len(actual['ops'])} lowered")
    walk(expected, actual, "ir")
    return found


def digests(print_: dict) -> dict:
    """A fingerprint in brief: a digest of the graph fields and one per op (name, digest), for
    the large models whose full fingerprints run to megabytes (bench/results/lowered_ir_large.json)."""
    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]
    return {"graph": digest(print_["graph"]), "array_count": print_["array_count"],
            "ops": [[op["json"]["name"], digest(op)] for op in print_["ops"]]}


def load_fingerprints(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


STORED = Path(__file__).resolve().parent / "data" / "lowered_ir.json"


def lower_case(name: str, folder: Path) -> Graph:
    """Build the small model ``name`` of tests/models/lowering_cases.py in ``folder`` and lower it
    as `einhls compile` does (front end and IR passes, for the case's board)."""
    from codegen.project import CompileOptions, lower
    from models.lowering_cases import CASES

    build, board = CASES[name]
    return lower(build(Path(folder) / f"{name}.onnx"), CompileOptions(board=board))


def main(argv: list[str] | None = None) -> int:
    """Rewrite tests/data/lowered_ir.json from the current lowering: only when a change of the
    lowered IR is intended (the file is what later changes are compared against)."""
    import argparse
    import sys
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__.split(":")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the stored fingerprints")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from models.lowering_cases import CASES

    stored = load_fingerprints(STORED)
    fresh = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            fresh[name] = fingerprint(lower_case(name, Path(tmp)))
            lines = differences(stored[name], fresh[name]) if name in stored else ["not stored"]
            print(f"{name}: {'same IR' if not lines else '; '.join(lines)}")
    if args.write:
        STORED.write_text(json.dumps(fresh, sort_keys=True, indent=0) + "\n")
        print(f"wrote {STORED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
