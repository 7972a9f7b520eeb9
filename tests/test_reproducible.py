"""Reproducibility (issue 13): the same model and options give byte-identical output folders,
whatever the hash seed, the working folder and where OUT is."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compile_is_byte_identical_across_hash_seeds_and_folders(demo_model: Path, tmp_path: Path) -> None:
    outs = []
    for run, (hash_seed, depth) in enumerate((("0", 1), ("4242", 3))):
        cwd = tmp_path.joinpath(f"run{run}", *(["deeper"] * depth))
        cwd.mkdir(parents=True)
        model = cwd / "model.onnx"
        model.write_bytes(demo_model.read_bytes())
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        # one run names OUT relative to its working folder, the other absolutely
        out_arg = "out" if run == 0 else str(cwd / "out")
        proc = subprocess.run([sys.executable, "-m", "codegen.cli", "compile", "model.onnx", "-o", out_arg],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append(_files(cwd / "out"))
    first, second = outs
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == [], differing
    assert len(first) > 20
