"""`einhls deploy OUT`: pack the bitstream, its .hwh and the driver into a tarball for the board.

The tarball ``OUT/<name>_deploy.tar.gz`` unpacks into one folder ``<name>/``::

    <name>/<top>.bit, <name>/<top>.hwh   from OUT/deploy/ (written by `make bitstream`)
    <name>/build_info.json               variant, Vivado version, worst slack (when present)
    <name>/README.md                     how to run it on the board (OUT/driver/README.md)
    <name>/driver/                       the PYNQ driver package (OUT/driver/)
    <name>/vectors/                      the stored test vectors, for `python -m driver`

For an ECP5 board (the open flow) the bitstream comes with its .svf, ``timing.txt`` and
``build_info.json`` (Fmax, resources, tool times) instead of the .hwh, and ``driver/`` is the UART
host driver; the README names the openFPGALoader command that programs the board.

The tarball's bytes depend only on those files (sorted members, zero times and owners, gzip
without a timestamp), so packing the same build twice gives the same file.
"""
from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

from .emit.driver import DRIVER_DIR, INTERFACE_FILE, README
from .emit.vivado import DEPLOY_DIR, bitstream_name
from .errors import EinhlsError

VECTORS = ("tb/csim/inputs.txt", "tb/csim/expected.txt")
BUILD_INFO = "build_info.json"


def deploy_members(out: Path) -> list[tuple[str, Path]]:
    """(name in the tarball, file) pairs for OUT; EinhlsError when the bitstream is not built."""
    out = Path(out).resolve()
    meta_path = out / "einhls.json"
    if not meta_path.is_file():
        raise EinhlsError(f"{out} is not an einhls output folder (no einhls.json)")
    try:
        top = json.loads(meta_path.read_text())["top"]
    except (ValueError, KeyError) as exc:
        raise EinhlsError(f"{meta_path} is unreadable: {exc}") from None
    deploy_dir = out / DEPLOY_DIR
    bit = deploy_dir / bitstream_name(top)
    if json.loads(meta_path.read_text()).get("board", {}).get("vendor") == "lattice":
        return _open_flow_members(out, bit)
    hwh = bit.with_suffix(".hwh")
    if not bit.is_file():
        raise EinhlsError(f"no bitstream: {bit} does not exist. Build it first with `make -C {out} bitstream` "
                          "on a machine with Vivado and Vitis HLS (docs/board_flow.md)")
    if not hwh.is_file():
        raise EinhlsError(f"bitstream without its hardware handoff file: {hwh} is missing "
                          "(PYNQ needs both; rerun `make bitstream`)")
    driver = out / DRIVER_DIR
    if not (driver / INTERFACE_FILE).is_file():
        raise EinhlsError(f"{driver} has no {INTERFACE_FILE}: the folder was compiled without the board flow; "
                          "recompile it")
    name = out.name
    members = [(f"{name}/{bit.name}", bit), (f"{name}/{hwh.name}", hwh)]
    if (deploy_dir / BUILD_INFO).is_file():
        members.append((f"{name}/{BUILD_INFO}", deploy_dir / BUILD_INFO))
    return members + _driver_and_vectors(out, driver, name)


def _driver_and_vectors(out: Path, driver: Path, name: str) -> list[tuple[str, Path]]:
    """The driver folder (its README at the top of the archive, no bytecode) and the stored vectors."""
    members = []
    if (driver / README).is_file():
        members.append((f"{name}/{README}", driver / README))
    for path in sorted(driver.rglob("*")):
        rel = path.relative_to(driver)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc" and rel.as_posix() != README:
            members.append((f"{name}/{DRIVER_DIR}/{rel.as_posix()}", path))
    for vector in VECTORS:
        if (out / vector).is_file():
            members.append((f"{name}/vectors/{Path(vector).name}", out / vector))
    return members


def _open_flow_members(out: Path, bit: Path) -> list[tuple[str, Path]]:
    """An ECP5 build: .bit, .svf, timing and build info from deploy/, the UART driver, the vectors."""
    if not bit.is_file():
        raise EinhlsError(f"no bitstream: {bit} does not exist. Build it first with `make -C {out} bitstream` "
                          "(Yosys, nextpnr-ecp5 and ecppack from the Python environment)")
    driver = out / DRIVER_DIR
    if not (driver / INTERFACE_FILE).is_file():
        raise EinhlsError(f"{driver} has no {INTERFACE_FILE}: recompile the folder")
    name = out.name
    members = [(f"{name}/{bit.name}", bit)]
    for extra in (bit.with_suffix(".svf"), bit.parent / "timing.txt", bit.parent / BUILD_INFO):
        if extra.is_file():
            members.append((f"{name}/{extra.name}", extra))
    return members + _driver_and_vectors(out, driver, name)


def _tar_bytes(members: list[tuple[str, Path]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for arcname, path in sorted(members):
            parts = arcname.split("/")
            for i in range(1, len(parts)):          # parent folders first, each once
                folder = "/".join(parts[:i])
                if folder not in dirs:
                    dirs.add(folder)
                    tar.addfile(_info(folder, tarfile.DIRTYPE, 0o755))
            data = path.read_bytes()
            tar.addfile(_info(arcname, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return buffer.getvalue()


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def deploy(out: Path) -> str:
    """Write OUT/<name>_deploy.tar.gz; returns a one-line summary.  EinhlsError (exit 2) without a bitstream."""
    out = Path(out).resolve()
    members = deploy_members(out)
    tarball = out / f"{out.name}_deploy.tar.gz"
    with open(tarball, "wb") as raw:
        # mtime=0 and no file name in the gzip header: the same members give the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(_tar_bytes(members))
    meta = json.loads((out / "einhls.json").read_text())
    if meta.get("board", {}).get("vendor") == "lattice":
        programmer = meta["board"].get("programmer") or "openFPGALoader"
        return (f"wrote {tarball} ({len(members)} files: bitstream, timing, UART driver; on the host: "
                f"tar xzf {tarball.name} && cd {out.name} && {programmer} {bitstream_name(meta['top'])} "
                f"&& python3 -m driver --port /dev/ttyUSB0)")
    return (f"wrote {tarball} ({len(members)} files: bitstream, .hwh, driver; on the board: "
            f"tar xzf {tarball.name} && cd {out.name} && sudo -E python3 -m driver)")
