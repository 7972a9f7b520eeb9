"""Where the non-Python parts of einhls live (templates, kernel libraries, boards)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """templates/, hls_kernels/, rtl_kernels/, testbench/ or boards/ of the einhls checkout."""
    path = ROOT / name
    if not path.is_dir():
        raise FileNotFoundError(f"einhls resource folder {path} is missing (install einhls editable: pip install -e .)")
    return path
