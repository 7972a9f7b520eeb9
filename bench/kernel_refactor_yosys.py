"""Yosys counts of calibration points with a kernel file as it is now and as it was at a git revision.

    python -m bench.kernel_refactor_yosys --kernel einhls_linear --rev main \
        'linear:{"k": 64, "n": 64, "a": 8, "w": 8, "simd": 4, "pe": 4}' 'linear_tp:{"simd": 4, "pe": 2}'

For a refactor of a unit's Verilog that must not change its cost: every point (a kind and the
params of bench/calibrate.py's GRID, ``quad:CASE`` for a case of tests/test_quad_pack.py, or
``kvuram:SEQUENCES`` for the attention product with its keys in UltraRAM of tests/test_kv_uram.py) is
emitted once, synthesised (synth_xilinx -family xc7 and xcup) with the working tree's
rtl_kernels/KERNEL.v, then with the same file at REV swapped into the emitted folder.  Prints both
counts per family and exits 1 if any differ.  The counts stored in bench/results/calibration.json
are printed alongside where they exist (they may predate other changes to the units).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.calibrate import FAMILIES, MEASURES, build_point, point_key  # noqa: E402


def _design(point: str):
    kind, params = point.split(":", 1)
    if kind == "quad":
        from test_quad_pack import CASES
        return CASES[params](), f"quad:{params}"
    if kind == "kvuram":   # the attention product with its keys in UltraRAM (tests/test_kv_uram.py)
        from test_encoder_buffers import packed_design
        design = packed_design(8, int(params))
        design.uram_buffers = frozenset({"amm"})
        return design, f"kvuram:{params}"
    parsed = json.loads(params)
    return build_point(kind, parsed), point_key(kind, parsed)


EQUIV_SCRIPT = """\
read_verilog -defer -sv {others} {gold}
hierarchy -top {top}
proc; flatten; memory; opt_clean
rename {top} gold
design -stash gold
read_verilog -defer -sv {others} {gate}
hierarchy -top {top}
proc; flatten; memory; opt_clean
rename {top} gate
design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
equiv_make gold gate equiv
hierarchy -top equiv
equiv_simple -seq 5
equiv_induct -seq 5
equiv_status -assert
"""


def _equivalent(rtl: Path, top: str, kernel_file: str, before: str, renames: list[str], key: str) -> bool:
    """Prove the working-tree kernel (its blocks renamed back) equivalent to ``before`` in ``rtl``."""
    from codegen.emit.rtl import rtl_sources
    from codegen.verify.yosys import yosys_command

    now = (ROOT / "rtl_kernels" / kernel_file).read_text()
    for rename in renames:
        new, old = rename.split("=")
        now = now.replace(f"begin : {new}", f"begin : {old}")
    (rtl / "equiv_gold.v").write_text(before)
    (rtl / "equiv_gate.v").write_text(now)
    others = " ".join(p.name for p in rtl_sources(rtl.parent) if p.name != kernel_file)
    (rtl / "equiv.ys").write_text(EQUIV_SCRIPT.format(others=others, top=top, gold="equiv_gold.v",
                                                      gate="equiv_gate.v"))
    done = subprocess.run([*yosys_command(), "-q", "-l", "equiv.log", "equiv.ys"], cwd=rtl,
                          capture_output=True, text=True)
    proven = [line.strip() for line in (rtl / "equiv.log").read_text().splitlines() if "Of those cells" in line]
    ok = done.returncode == 0
    print(f"{key} equivalence: {'proven' if ok else 'NOT PROVEN'}  {proven[-1] if proven else done.stderr[-300:]}",
          flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    from codegen.emit.rtl import emit_rtl
    from codegen.verify.yosys import synth_counts

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernel", required=True, help="module name, e.g. einhls_linear")
    parser.add_argument("--rev", default="main", help="git revision of the 'before' file")
    parser.add_argument("--equiv", action="store_true", help="also prove the versions equivalent")
    parser.add_argument("--rename", action="append", default=[], metavar="NEW=OLD",
                        help="generate block names to map back before --equiv")
    parser.add_argument("--families", type=lambda text: text.split(","), default=list(FAMILIES),
                        help="comma-separated; xcup alone for UltraRAM designs (xc7 has none)")
    parser.add_argument("points", nargs="+")
    args = parser.parse_args(argv)
    kernel_file = f"{args.kernel}.v"
    before = subprocess.run(["git", "show", f"{args.rev}:rtl_kernels/{kernel_file}"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    stored = {p["key"]: p.get("yosys") for p in
              json.loads((ROOT / "bench/results/calibration.json").read_text())["points"]}
    differ = False
    for point in args.points:
        design, key = _design(point)
        with tempfile.TemporaryDirectory() as tmp:
            emit_rtl(design, Path(tmp))
            rtl = Path(tmp) / "rtl"
            if not (rtl / kernel_file).exists():
                raise SystemExit(f"{key}: the design does not use {args.kernel}")
            counts = {}
            for label, text in (("after", None), ("before", before)):
                if text is not None:
                    (rtl / kernel_file).write_text(text)
                for family in args.families:
                    found = synth_counts(rtl, design.top_name, family, Path(tmp) / f"yosys_{label}_{family}")
                    counts[label, family] = {k: found[k] for k in MEASURES}
            if args.equiv:
                differ |= not _equivalent(rtl, design.top_name, kernel_file, before, args.rename, key)
            for family in args.families:
                same = counts["after", family] == counts["before", family]
                differ |= not same
                print(f"{key} {family}: {'identical' if same else 'DIFFERENT'}  now {counts['after', family]}"
                      f"  {args.rev} {counts['before', family]}"
                      f"  stored {(stored.get(key) or {}).get(family, '-')}", flush=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
