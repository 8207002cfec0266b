from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis
import psutil
import pytest
from helpers import DEADLOCK_NET, RunScript, resource_tracker

import goforkpy as fork
from goforkpy._coordination import messaging
from goforkpy._launch import kept_zygotes as zygote
from goforkpy._shared import tmpdir

sys.path.insert(0, str(Path(__file__).parent))

# Hypothesis's deadline is a time asserted inside a test: on a loaded machine it fails
# correct code. Speed is measured in benchmarks/.
hypothesis.settings.register_profile("goforkpy", deadline=None)
hypothesis.settings.load_profile("goforkpy")


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _our_files() -> list[str]:
    directory = tmpdir.payload_dir()
    prefix = f"{os.getpid()}-"
    return sorted(name for name in os.listdir(directory) if name.startswith(prefix))


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def _status(process: psutil.Process) -> str | None:
    """Its status, or ``None`` if it has gone (and been reaped) since it was listed."""
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return None


# Every process the suite starts inherits this variable, wherever it goes after: a
# daemon that left the tree (re-parented to init) still carries it in its environment.
_SESSION_MARK = "GOFORKPY_TEST_SESSION"
os.environ[_SESSION_MARK] = f"{os.getpid()}-{time.time_ns()}"


def _escaped() -> list[tuple[int, str]]:
    """Processes of this session's making that left our tree, but guardians (each ends
    itself moments after its parent)."""
    mark = f"{_SESSION_MARK}={os.environ[_SESSION_MARK]}".encode()
    ours = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in ours:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat", "rb") as f:
                zombie = f.read().rpartition(b")")[2].split()[0] == b"Z"
        except OSError:
            continue  # gone, or not ours to read
        if not zombie and "# goforkpy guardian" not in cmdline:
            found.append((int(entry), cmdline[:80]))
    return found


def _leftovers(fds_before: set[int]) -> list[str]:
    problems = []
    if sys.platform.startswith("linux") and _escaped():
        problems.append(f"processes that left the tree: {_escaped()}")
    tracker_pid, tracker_fd = resource_tracker()
    kept = {*zygote.pids(), tracker_pid}  # they serve the whole session; their children must go
    children = [c for c in psutil.Process().children(recursive=True) if c.pid not in kept]
    left = [(c.pid, _status(c)) for c in children]
    left = [(pid, status) for pid, status in left if status is not None]
    if left:
        problems.append(f"processes left: {left}")
    if _our_files():
        problems.append(f"payload/result files left: {_our_files()}")
    new_fds = _open_fds() - fds_before - {tracker_fd}
    if new_fds:
        problems.append(f"fds left open: {[(fd, _describe_fd(fd)) for fd in sorted(new_fds)]}")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    """A hang pytest-timeout cannot break (one outside a test, or in a test's clean-up
    after its timeout) is read by sending the suite's process SIGUSR2 (.ci/deadline does):
    every thread's stack is printed on the real stderr, which capturing does not hide. A
    signal handler, not faulthandler's timer: that is a thread, which a fork would see."""
    capturing = config.pluginmanager.getplugin("capturemanager")  # None with -p no:capture
    with capturing.global_and_fixture_disabled() if capturing else contextlib.nullcontext():
        stderr = os.dup(sys.stderr.fileno())
    faulthandler.register(signal.SIGUSR2, file=stderr, all_threads=True)


@pytest.fixture(scope="session", autouse=True)
def _default_sigint() -> None:
    """Ctrl+C's default disposition, for the tests that send SIGINT: a suite started with
    SIGINT ignored (``nohup``, ``&`` in a script) would pass SIG_IGN to every process
    it starts, and Python raises no KeyboardInterrupt where SIGINT is ignored."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _warm_up(_default_sigint: None) -> None:
    """Start the reaper, the spawner and the zygote once, so their own fds are not
    counted as a test's leak."""
    import ctypes

    import workers  # noqa: F401 - registers the functions the tests fork

    # loading ctypes opens libffi's own library file and keeps it (libffi's static
    # trampolines, as Debian's Python 3.14 has them): once, not as a test's leaked fd
    assert ctypes.CFUNCTYPE
    fork.spawn("add", (1, 1), start="cold").wait()  # the cold children's spawner too
    fork.warm_up()
    if fork.sandbox_support()["available"]:  # the zygote of sandboxed warm children
        fork.spawn("add", (1, 1), start="warm", sandbox=fork.Sandbox()).wait()


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail any test that leaves a child, a zombie, a payload file or an fd behind."""
    fds_before = _open_fds()
    yield
    messaging.close_inbox()  # a test's receive() opens this process's inbox; tests leave none
    deadline = time.monotonic() + 10.0  # exiting children take a moment to be reaped
    problems = _leftovers(fds_before)
    while problems and time.monotonic() < deadline:
        time.sleep(0.02)
        problems = _leftovers(fds_before)
    if problems:
        _clear_leftovers()  # this test fails alone: the next one starts clean
    assert not problems, "; ".join(problems)


def _clear_leftovers() -> None:
    """Kill what a failed test left running and remove its files (its fds are counted
    against what was open before each test, so they fail no other)."""
    kept = {*zygote.pids(), resource_tracker()[0]}
    left = [c for c in psutil.Process().children(recursive=True) if c.pid not in kept]
    for pid in [pid for pid, _ in _escaped()] + [c.pid for c in left]:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    psutil.wait_procs(left, timeout=DEADLOCK_NET)
    for name in _our_files():
        try:
            os.unlink(os.path.join(tmpdir.payload_dir(), name))
        except OSError:
            pass


@pytest.fixture(params=["cold", "warm"])
def start_method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with each start method as the default."""
    from goforkpy._launch import methods

    monkeypatch.setattr(methods, "_default", request.param)
    return str(request.param)


@pytest.fixture
def use_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Point GOFORKPY_TMPDIR at a base of the test's; the default comes back after it."""

    def use(base: Path) -> None:
        monkeypatch.setenv("GOFORKPY_TMPDIR", str(base))
        tmpdir.forget()

    yield use
    monkeypatch.delenv("GOFORKPY_TMPDIR", raising=False)
    tmpdir.forget()
    tmpdir.payload_dir()  # reopened now, not counted as the next test's leak


@pytest.fixture
def run_script(tmp_path: Path) -> RunScript:
    """Write a script and run it with this interpreter: (CompletedProcess, script path)."""

    def run(
        source: str,
        *,
        name: str = "script.py",
        args: list[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        command: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        script = tmp_path / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(textwrap.dedent(source))
        full_env = {**os.environ, "PYTHONPATH": _pythonpath(), **(env or {})}
        argv = command if command is not None else [sys.executable, str(script), *(args or [])]
        return subprocess.run(
            argv,
            cwd=cwd or tmp_path,
            env=full_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=DEADLOCK_NET,
            pass_fds=pass_fds,
        )

    return run


def _pythonpath() -> str:
    root = str(Path(fork.__file__).resolve().parent.parent)
    old = os.environ.get("PYTHONPATH")
    return root if not old else root + os.pathsep + old
