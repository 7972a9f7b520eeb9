"""Tool faults and interrupts (issue 13): a crashing, hanging or missing g++ / Verilator, and a
failing, crashing, hanging or reportless Yosys / nextpnr-ecp5 in the open flow, gives its own error
text and a non-zero exit; SIGINT and SIGTERM leave no output folder and no process behind; compiling and
verifying write nothing outside OUT and the cache folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegen.ir.reference import random_inputs, run_reference

FAKE_TOOL = '''#!/bin/sh
# a stand-in for {name}: {what}
{body}
'''


def fake_tool(folder: Path, name: str, what: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(FAKE_TOOL.format(name=name, what=what, body=body))
    path.chmod(0o755)
    return folder


def _vectors(project, count: int = 4):
    inputs = random_inputs(project.graph, count, seed=5)
    return inputs, run_reference(project.graph, inputs)


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state or "\nState:\tX" in state


def test_gpp_crash_without_output_is_an_error(demo_project, tmp_path: Path, monkeypatch) -> None:
    from codegen.verify.csim import run_csim

    bin_dir = fake_tool(tmp_path / "bin", "g++", "dies of SIGSEGV without a word", "kill -SEGV $$")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = run_csim(demo_project.path, *_vectors(demo_project), tmp_path / "work")
    assert not result.passed
    assert "g++ failed (killed by signal SIGSEGV)" in result.error, result.error


def test_gpp_timeout_kills_the_compiler_and_its_children(demo_project, tmp_path: Path, monkeypatch) -> None:
    from codegen.verify import csim

    pids = tmp_path / "pids"
    body = f'sleep 300 &\necho $! >> {pids}\necho $$ >> {pids}\nwait'
    bin_dir = fake_tool(tmp_path / "bin", "g++", "hangs, with a child of its own", body)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(csim, "COMPILE_TIMEOUT_S", 2)
    result = csim.run_csim(demo_project.path, *_vectors(demo_project), tmp_path / "work")
    assert not result.passed and "did not finish within 2 s" in result.error, result.error
    started = [int(p) for p in pids.read_text().split()]
    assert started and all(_gone(pid) for pid in started), started


def test_gpp_missing(demo_project, tmp_path: Path, monkeypatch) -> None:
    from codegen.verify.csim import run_csim

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run_csim(demo_project.path, *_vectors(demo_project), tmp_path / "work")
    assert not result.passed and "g++ not found on PATH" in result.error


def test_csim_binary_crash_is_named(demo_project, tmp_path: Path, monkeypatch) -> None:
    """The testbench binary itself dies (here: g++ 'builds' a program that aborts)."""
    from codegen.verify.csim import run_csim

    body = 'out=""\nwhile [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n' \
           'printf "#!/bin/sh\\nkill -ABRT \\$\\$\\n" > "$out"; chmod +x "$out"'
    bin_dir = fake_tool(tmp_path / "bin", "g++", "writes a program that aborts", body)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = run_csim(demo_project.path, *_vectors(demo_project), tmp_path / "work")
    assert not result.passed
    assert "the C-sim binary failed (killed by signal SIGABRT)" in result.error, result.error


@pytest.mark.rtl
def test_verilator_crash_is_an_error(demo_project, tmp_path: Path, monkeypatch) -> None:
    from codegen.verify import rtlsim

    body = 'if [ "$1" = "--version" ]; then echo "Verilator 0.0 fake"; exit 0; fi\n' \
           'echo "%Error: internal fault (fake)" >&2\nkill -SEGV $$'
    bin_dir = fake_tool(tmp_path / "bin", "verilator", "crashes on every build", body)
    monkeypatch.setattr(rtlsim, "verilator_bin", lambda: bin_dir)
    result = rtlsim.run_rtlsim(demo_project.path, *_vectors(demo_project), tmp_path / "work")
    assert not result.passed
    assert result.error.startswith("Verilator build failed"), result.error


# --- interrupts -----------------------------------------------------------------------------

INTERRUPTED_COMPILE = '''
import os, signal, sys
import codegen.emit.vivado as vivado
emit = vivado.emit_vivado
def emit_then_signal(*args, **kwargs):
    emit(*args, **kwargs)   # OUT's staging folder is half written now
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
vivado.emit_vivado = emit_then_signal
from codegen.cli import main
sys.exit(main(["compile", sys.argv[2], "-o", sys.argv[3]]))
'''


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupted_compile_leaves_no_output_folder(demo_model: Path, tmp_path: Path, signame: str) -> None:
    """The signal arrives in the middle of emitting (deterministically: from inside the emitter)."""
    out_parent = tmp_path / "outs"
    out_parent.mkdir()
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_COMPILE, signame, str(demo_model), str(out_parent / "out")],
                          capture_output=True, text=True, timeout=300)
    signum = getattr(signal, signame)
    assert proc.returncode == 128 + signum, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"einhls: interrupted ({signame})", proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out_parent.iterdir()) == [], "an output or staging folder was left behind"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_interrupted_verify_leaves_no_process(demo_project, tmp_path: Path, signame: str) -> None:
    """`einhls verify --csim` is stopped while g++ (and a child of it) runs: both are gone after."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(demo_project.path, project, ignore=shutil.ignore_patterns("build"))
    pids = tmp_path / "pids"
    body = f'sleep 300 &\necho $! >> {pids}\necho $$ >> {pids}\nwait'
    bin_dir = fake_tool(tmp_path / "bin", "g++", "hangs, with a child of its own", body)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-m", "codegen.cli", "verify", str(project), "--csim", "--vectors", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(pids.read_text().split()) < 2 if pids.exists() else True:   # wait until g++ runs
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "g++ never started"
        time.sleep(0.1)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, signame), err
    assert f"einhls: interrupted ({signame})" in err and "Traceback" not in err, err
    started = [int(p) for p in pids.read_text().split()]
    assert all(_gone(pid) for pid in started), f"left running: {[p for p in started if not _gone(p)]}"


# --- where files go ----------------------------------------------------------------------------

def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("checks", [["--csim"], pytest.param(["--csim", "--rtlsim"], marks=pytest.mark.slow)])
def test_compile_and_verify_write_only_out_and_the_cache(demo_model: Path, tmp_path: Path, checks) -> None:
    """With a fresh HOME, cache and TMPDIR and an empty working folder: after `compile` and
    `verify`, the working folder holds OUT only, TMPDIR is empty, and HOME holds only the cache
    folder.  (With --rtlsim it builds Verilator's runtime from scratch: minutes, so slow.)"""
    cwd, home, tmp = tmp_path / "cwd", tmp_path / "home", tmp_path / "tmp"
    for folder in (cwd, home, tmp):
        folder.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "TMPDIR": str(tmp)}
    env.pop("YOWASP_CACHE_DIR", None)
    model = tmp_path / "model.onnx"
    model.write_bytes(demo_model.read_bytes())
    for args in (["compile", str(model), "-o", "out"], ["verify", "out", "--vectors", "4", *checks]):
        proc = subprocess.run([sys.executable, "-m", "codegen.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(cwd)) == ["out"]
    assert _tree(tmp) == []
    assert sorted(os.listdir(home)) in ([], [".cache"]), _tree(home)
    if (home / ".cache").exists():
        assert sorted(os.listdir(home / ".cache")) == ["einhls"], _tree(home / ".cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "home", "model.onnx", "tmp"]


# --- the open flow (Yosys, nextpnr-ecp5, ecppack) ---------------------------------------------------

@pytest.fixture(scope="module")
def ecp5_out(tmp_path_factory, demo_model: Path) -> Path:
    """The demo model compiled for an ECP5 board (compile only: the flow's tools are faked)."""
    from codegen.project import CompileOptions, compile_model

    out = tmp_path_factory.mktemp("ecp5_faults") / "out"
    compile_model(demo_model, out, CompileOptions(board="ulx3s-85f"), progress=lambda *_: None)
    return out


def _open_flow(monkeypatch, capsys, out: Path, tools: dict[str, Path]) -> tuple[int, str]:
    """`einhls bitstream OUT` in this process, with the named tools replaced by stand-ins; (exit
    code, last stderr line)."""
    from codegen.cli import main
    from codegen.verify import openflow

    real = openflow.tool
    monkeypatch.setattr(openflow, "tool", lambda name: str(tools[name]) if name in tools else real(name))
    code = main(["bitstream", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err.strip().splitlines()[-1]


def _fake_yosys(folder: Path) -> Path:
    return fake_tool(folder, "yosys", "synthesises nothing, quickly", "exit 0") / "yosys"


def test_nextpnr_error_is_named_with_its_own_text(ecp5_out, tmp_path, monkeypatch, capsys) -> None:
    body = 'echo "Info: placing..."\necho "ERROR: Failed to route design: congestion (fake)"\nexit 1'
    pnr = fake_tool(tmp_path / "bin", "nextpnr-ecp5", "fails to route", body) / "nextpnr-ecp5"
    code, line = _open_flow(monkeypatch, capsys, ecp5_out, {"yosys": _fake_yosys(tmp_path / "y"), "nextpnr": pnr})
    assert code == 2
    assert line.startswith("einhls: error: nextpnr-ecp5 failed (exit status 1"), line
    assert "ERROR: Failed to route design: congestion (fake)" in line, line
    assert "Failed to route" in (ecp5_out / "build" / "ecp5" / "nextpnr.out").read_text()


def test_nextpnr_crash_without_output_is_named(ecp5_out, tmp_path, monkeypatch, capsys) -> None:
    pnr = fake_tool(tmp_path / "bin", "nextpnr-ecp5", "dies of SIGSEGV without a word", "kill -SEGV $$") / "nextpnr-ecp5"
    code, line = _open_flow(monkeypatch, capsys, ecp5_out, {"yosys": _fake_yosys(tmp_path / "y"), "nextpnr": pnr})
    assert code == 2
    assert line.startswith("einhls: error: nextpnr-ecp5 failed (killed by signal SIGSEGV"), line
    assert line.endswith("no output"), line


def test_nextpnr_timeout_kills_it_and_its_children(ecp5_out, tmp_path, monkeypatch, capsys) -> None:
    from codegen.verify import openflow

    pids = tmp_path / "pids"
    body = f'sleep 300 &\necho $! >> {pids}\necho $$ >> {pids}\nwait'
    pnr = fake_tool(tmp_path / "bin", "nextpnr-ecp5", "hangs, with a child of its own", body) / "nextpnr-ecp5"
    monkeypatch.setitem(openflow.TOOL_TIMEOUT_S, "nextpnr-ecp5", 2)
    code, line = _open_flow(monkeypatch, capsys, ecp5_out, {"yosys": _fake_yosys(tmp_path / "y"), "nextpnr": pnr})
    assert code == 2
    assert line.startswith("einhls: error: nextpnr-ecp5 did not finish within 2 s and was stopped"), line
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2 and all(_gone(pid) for pid in started), started


def test_nextpnr_exit_zero_without_a_report_is_an_error(ecp5_out, tmp_path, monkeypatch, capsys) -> None:
    """A tool that claims success but wrote no report (a stale one of an earlier run is not read)."""
    (ecp5_out / "build" / "ecp5").mkdir(parents=True, exist_ok=True)
    (ecp5_out / "build" / "ecp5" / "report.json").write_text('{"fmax": {"clk": {"achieved": 99.0}}}')
    pnr = fake_tool(tmp_path / "bin", "nextpnr-ecp5", "exits 0 and writes nothing", "exit 0") / "nextpnr-ecp5"
    code, line = _open_flow(monkeypatch, capsys, ecp5_out, {"yosys": _fake_yosys(tmp_path / "y"), "nextpnr": pnr})
    assert code == 2
    assert line.startswith("einhls: error: nextpnr-ecp5 finished but its report"), line
    assert "missing or unreadable" in line, line


def test_nextpnr_half_written_report_is_an_error(ecp5_out, tmp_path, monkeypatch, capsys) -> None:
    report = ecp5_out / "build" / "ecp5" / "report.json"
    pnr = fake_tool(tmp_path / "bin", "nextpnr-ecp5", "writes half a report", f"printf '{{\"fmax\": {{' > {report}") \
        / "nextpnr-ecp5"
    code, line = _open_flow(monkeypatch, capsys, ecp5_out, {"yosys": _fake_yosys(tmp_path / "y"), "nextpnr": pnr})
    assert code == 2 and "missing or unreadable (JSONDecodeError)" in line, line


def test_open_flow_yosys_crash_is_named(ecp5_out, tmp_path, monkeypatch, capsys) -> None:
    yosys = fake_tool(tmp_path / "bin", "yosys", "dies of SIGBUS mid-pass", 'echo "8.3. Executing AIGMAP pass."\nkill -BUS $$') \
        / "yosys"
    code, line = _open_flow(monkeypatch, capsys, ecp5_out, {"yosys": yosys})
    assert code == 2
    assert line.startswith("einhls: error: Yosys synth_ecp5 failed (killed by signal SIGBUS"), line
    assert "AIGMAP" in line, line


def test_tools_stopped_kills_running_tools_and_starts_none(tmp_path: Path) -> None:
    """What an interrupted C-sim build relies on (its compilers run in worker threads): a tool
    already running is killed, and a worker that reaches run_tool afterwards starts nothing (on a
    loaded machine the second compiler could start after the kill and hold the run until it ended:
    `test_interrupted_verify_leaves_no_process` timed out once in CI that way)."""
    import threading

    from codegen.verify import tools

    outcome = {}

    def worker() -> None:
        outcome["done"] = tools.run_tool(["sleep", "60"], 120)

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 30
    while not tools._RUNNING:
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.01)
    with tools.tools_stopped():
        thread.join(timeout=30)
        assert not thread.is_alive() and outcome["done"].returncode == -signal.SIGKILL
        with pytest.raises(tools.ToolsStopped):
            tools.run_tool(["true"], 10)
    assert tools.run_tool(["true"], 10).returncode == 0   # after the block, tools start again
