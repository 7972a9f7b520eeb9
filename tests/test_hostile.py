"""Hostile input (issue 13): every file of the generated corpus is refused with exit code 2 and one
line naming the reason, no traceback, no output folder, and no large allocation on the way."""
from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import codegen.frontend  # noqa: F401  (imported here, so that the allocation measured below
import codegen.project   # noqa: F401   is the refusal's and never torch's or onnx's first import)
from codegen.cli import main
from tests.hostile import CASES, HOSTILE_NAMES, build, hostile_names_model

#: peak Python allocation allowed while refusing a file (the demo model itself is ~50 KB)
REFUSAL_MEMORY_BYTES = 64 * 2**20


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_is_refused(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = build(name, tmp_path / "in")
    out = tmp_path / "out"
    capsys.readouterr()
    tracemalloc.start()
    try:
        code = main(["compile", str(model), "-o", str(out)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("einhls: error: "), err
    assert re.search(CASES[name].reason, lines[0], re.IGNORECASE), lines[0]
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"], "a staging folder was left behind"
    assert peak < REFUSAL_MEMORY_BYTES, f"refusing {name} allocated {peak} bytes"


@pytest.mark.parametrize("name", ["two_gigabytes", "garbage", "external_data_huge_length"])
def test_hostile_file_refused_by_the_command(name: str, tmp_path: Path) -> None:
    """The real command, in its own process: exit 2, one line on stderr, nothing on stdout."""
    model = build(name, tmp_path / "in")
    proc = subprocess.run([sys.executable, "-m", "codegen.cli", "compile", str(model), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("einhls: error: "), proc.stderr
    assert not (tmp_path / "out").exists()


def test_hostile_names_never_reach_code_or_paths(tmp_path: Path) -> None:
    """Names built to break out of C++ strings, Verilog, Jinja and file paths: the model compiles,
    every generated file name is a plain identifier, the names appear in no Verilog and only in
    defused // comments of the C++, nothing is written outside OUT, and C-sim is bit-exact."""
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify

    (tmp_path / "in").mkdir()
    model = tmp_path / "in" / "model.onnx"
    model.write_bytes(hostile_names_model().SerializeToString())
    project = compile_model(model, tmp_path / "out", CompileOptions(), progress=lambda *_: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert not Path("/tmp/evil").exists()
    for path in (tmp_path / "out").rglob("*"):
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", path.name), path
        if path.suffix in (".v", ".vlt", ".mem", ".f", ".tcl", ".py"):
            text = path.read_text()
            for hostile in HOSTILE_NAMES:
                assert hostile not in text, (path, hostile)
        if path.suffix in (".cpp", ".h"):
            for line in path.read_text().splitlines():
                code = line.split("//", 1)[0]
                assert not any(frag in code for frag in ("system(", "<evil>", "module evil", "/etc/passwd", "{{", "`define")), (path, line)
                assert not line.rstrip().endswith(("\\", "??/")), (path, line)
    results = verify(project, ("csim",), vectors=8, seed=3, progress=lambda *_: None)
    assert results[0].passed, results[0].line()
