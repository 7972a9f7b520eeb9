"""`einhls deploy`: gather the bitstream, .hwh and driver into a tarball for the board."""
from __future__ import annotations

import tarfile
from pathlib import Path

from .errors import EinhlsError


def deploy(out: Path) -> str:
    out = Path(out)
    deploy_dir = out / "deploy"
    bitstreams = sorted(deploy_dir.glob("*.bit")) if deploy_dir.is_dir() else []
    if not bitstreams:
        raise EinhlsError(f"no bitstream in {deploy_dir}: build it first with `make -C {out} bitstream` "
                          "on a machine with Vivado (see README, 'Board flow')")
    hwh = [b.with_suffix(".hwh") for b in bitstreams if not b.with_suffix(".hwh").is_file()]
    if hwh:
        raise EinhlsError(f"bitstream without its hardware handoff file: {hwh[0]} is missing")
    tarball = out / f"{out.name}_deploy.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(deploy_dir, arcname=out.name)
    return f"wrote {tarball}"
