"""Coverage-guided fuzzing of the ONNX front end (read_model + lower_model) with atheris.

    pip install -r bench/requirements-fuzz.txt
    python -m bench.fuzz_loader -max_total_time=120      # libFuzzer flags pass through
    python -m bench.fuzz_loader -runs=2000 -seed=1        # a fixed number of inputs

Each input is written as a .onnx file and loaded and lowered exactly as `einhls compile` does.
An EinhlsError (a refusal with a reason) is the expected outcome for almost every input; any other
exception escaping the front end is a bug, and atheris stops with the input that caused it (saved
as bench/results/fuzz_loader_crashes/crash-<sha1>).  The seeds are the demo model and its hostile variants
(tests/hostile), so mutations start from files that reach deep into the lowering.  Only codegen is
instrumented (onnx and numpy are not: they are not under test and instrumenting them is slow).
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["codegen"]):
    from codegen.errors import EinhlsError
    from codegen.frontend import load_graph

WORK = Path(tempfile.mkdtemp(prefix="einhls_fuzz_loader_"))
MODEL = WORK / "model.onnx"
MAX_INPUT_BYTES = 1 << 20


def one_input(data: bytes) -> None:
    MODEL.write_bytes(data)
    try:
        load_graph(MODEL)
    except EinhlsError:
        pass


def seed_corpus(folder: Path) -> None:
    """The demo model and the hostile corpus that fits in one file, as libFuzzer seeds."""
    from codegen.demo_model import demo_model
    from tests.hostile import CASES, build

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.onnx").write_bytes(demo_model().SerializeToString())
    for name in CASES:
        if name in ("two_gigabytes", "folder_not_file"):
            continue
        path = build(name, WORK / "seeds" / name)
        if path.is_file() and path.stat().st_size <= MAX_INPUT_BYTES:
            (folder / f"{name}.onnx").write_bytes(path.read_bytes())


def main() -> None:
    warnings.simplefilter("ignore")
    corpus = WORK / "corpus"
    seed_corpus(corpus)
    crashes = Path("bench/results/fuzz_loader_crashes").resolve()
    crashes.mkdir(parents=True, exist_ok=True)
    args = [sys.argv[0], *sys.argv[1:], f"-max_len={MAX_INPUT_BYTES}", "-rss_limit_mb=4096",
            f"-artifact_prefix={crashes}/", str(corpus)]
    atheris.Setup(args, one_input)
    print(f"fuzz_loader: corpus {corpus} ({len(os.listdir(corpus))} seeds)", flush=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
