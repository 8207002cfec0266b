"""Every option of ``spawn``, honoured by every start method (API.md sections 2 and 12).

The options are defined once (``record.OPTION_NAMES``). The table below has
one check per option; a new option without a check fails the first test, so
no start method can silently ignore it. ``fork``/``run`` pass every keyword
to the function, and a stray option gets a hint naming ``spawn``.
"""

from __future__ import annotations

import inspect
import os
import resource
import signal
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET

import goforkpy as fork
from goforkpy import _env
from goforkpy._launch.record import OPTION_NAMES

STARTS = ["cold", "warm", "snapshot"]


@fork.register
def report(what: str) -> object:
    """What the child sees of one option."""
    if what == "stdin":  # to its end: the child holds no copy of the end that writes
        return sys.stdin.read().strip()
    if what in ("stdout", "stderr"):
        print(f"to {what}", file=getattr(sys, what), flush=True)
        return None
    if what == "env":
        return os.environ.get("GOFORKPY_TEST_OPTION")
    if what == "cwd":
        return os.getcwd()
    if what == "limits":
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if what.startswith("/"):  # a file to read
        with open(what) as f:
            return f.read()
    if what == "sleep":
        signal.signal(signal.SIGTERM, _leave_late)
        print("ready", flush=True)
        signal.pause()
    return what


def _leave_late(signum: int, frame: object) -> None:
    import time

    time.sleep(0.5)  # long enough that a SIGKILL sent at once comes first
    os._exit(7)


def _pipe_check(stream: str) -> Callable[[str, Path], None]:
    def check(start: str, tmp_path: Path) -> None:
        child = fork.spawn("report", (stream,), start=start, **{stream: fork.PIPE})
        out, err = child.communicate(timeout=DEADLOCK_NET)
        assert (out if stream == "stdout" else err) == f"to {stream}\n".encode()
        assert child.result() is None

    return check


def _check_stdin(start: str, tmp_path: Path) -> None:
    child = fork.spawn("report", ("stdin",), start=start, stdin=fork.PIPE)
    child.communicate(b"hello\n", timeout=DEADLOCK_NET)
    assert child.result() == "hello"


def _check_env(start: str, tmp_path: Path) -> None:
    env = {"GOFORKPY_TEST_OPTION": start}
    assert fork.spawn("report", ("env",), start=start, env=env).result(DEADLOCK_NET) == start


def _check_cwd(start: str, tmp_path: Path) -> None:
    child = fork.spawn("report", ("cwd",), start=start, cwd=tmp_path)
    assert child.result(DEADLOCK_NET) == str(tmp_path)
    # a directory that is none fails the start, as Popen fails it, whatever the method
    (tmp_path / "file").touch()
    for where, error in (("missing", FileNotFoundError), ("file", NotADirectoryError)):
        with pytest.raises(error, match=where):
            fork.spawn("report", ("cwd",), start=start, cwd=tmp_path / where)


def _check_limits(start: str, tmp_path: Path) -> None:
    limits = fork.Limits(open_files=123)
    assert fork.spawn("report", ("limits",), start=start, limits=limits).result() == 123


def _check_start(start: str, tmp_path: Path) -> None:
    child = fork.spawn("report", ("start",), start=start)
    assert (child.result(DEADLOCK_NET), child.start) == ("start", start)


def _check_timeout(start: str, tmp_path: Path) -> None:
    child = fork.spawn("report", ("sleep",), start=start, timeout=0.3, stdout=fork.PIPE)
    with pytest.raises(fork.TimeoutExpired, match=r"ran past its timeout of 0\.3 s"):
        child.result(DEADLOCK_NET)
    assert child.stdout is not None
    child.stdout.close()


def _check_grace(start: str, tmp_path: Path) -> None:
    """A child whose SIGTERM handler takes a while: ended by SIGKILL under grace=0,
    by its own hand under a long grace."""
    codes = []
    for grace in (0.0, DEADLOCK_NET):
        child = fork.spawn("report", ("sleep",), start=start, grace=grace, stdout=fork.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        child.stdout.close()
        child.terminate()
        codes.append(child.returncode)
    assert codes == [-signal.SIGKILL, 7]


class _SlowInAChild(Mapping[str, str]):
    """An ``env`` that takes its time when a snapshot child applies it: its start-up."""

    def __init__(self) -> None:
        self._maker = os.getpid()

    def __getitem__(self, key: str) -> str:
        if key != "GOFORKPY_TEST_OPTION":
            raise KeyError(key)
        return "slow"

    def __iter__(self) -> Iterator[str]:
        if os.getpid() != self._maker:
            import time

            time.sleep(1.5)  # the start-up under test, not a synchronisation
        return iter(["GOFORKPY_TEST_OPTION"])

    def __len__(self) -> int:
        return 1


def _check_start_timeout(start: str, tmp_path: Path) -> None:
    """A start-up that takes 1.5 s against start_timeout=0.2: the error names it."""
    if start == "snapshot":  # nothing is imported: the start-up is the options' set-up
        child = fork.spawn(
            "report", ("start",), start=start, start_timeout=0.2, env=_SlowInAChild()
        )
    else:  # a module no zygote has imported yet, slow to import in a child
        name = f"slow_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(
            "import time\nimport goforkpy as fork\n\n"
            "if fork.is_child():\n    time.sleep(1.5)\n\n"
            f"@fork.register('{name}')\ndef quick():\n    return 1\n"
        )
        sys.path.insert(0, str(tmp_path))
        try:
            __import__(name)
            child = fork.spawn(name, start=start, start_timeout=0.2)
        finally:
            sys.path.remove(str(tmp_path))
    with pytest.raises(fork.TimeoutExpired, match=r"start_timeout=0\.2") as caught:
        child.result(DEADLOCK_NET)
    # what it was doing then: the stack of each of its threads, the slow line on one
    stacks = caught.value.traceback
    assert stacks is not None and "in .traceback" in str(caught.value), str(caught.value)
    slow = "in __iter__" if start == "snapshot" else "in <module>"
    assert "(most recent call first)" in stacks and slow in stacks, stacks
    if sys.version_info >= (3, 11):
        assert stacks.rstrip() in caught.value.__notes__[0]


def _check_sandbox(start: str, tmp_path: Path) -> None:
    """A file outside the sandbox is out of reach; a snapshot refuses a sandbox."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    if start == "snapshot":
        with pytest.raises(ValueError, match="a snapshot child is a copy of this process"):
            fork.spawn("report", (str(secret),), start=start, sandbox=fork.Sandbox())
        return
    if not fork.sandbox_support()["available"]:
        with pytest.raises(fork.SandboxUnavailable, match="nothing was started"):
            fork.spawn("report", (str(secret),), start=start, sandbox=fork.Sandbox())
        return
    child = fork.spawn("report", (str(secret),), start=start, sandbox=fork.Sandbox())
    with pytest.raises(fork.SandboxedError, match="PermissionError"):
        child.result(DEADLOCK_NET)
    allowed = fork.Sandbox(read=[secret])
    assert fork.spawn("report", (str(secret),), start=start, sandbox=allowed).result() == "s3cret"


CHECKS: dict[str, Callable[[str, Path], None]] = {
    "timeout": _check_timeout,
    "grace": _check_grace,
    "stdin": _check_stdin,
    "stdout": _pipe_check("stdout"),
    "stderr": _pipe_check("stderr"),
    "env": _check_env,
    "cwd": _check_cwd,
    "limits": _check_limits,
    "start": _check_start,
    "start_timeout": _check_start_timeout,
    "sandbox": _check_sandbox,
}


def test_every_option_is_defined_once_and_checked_here() -> None:
    parameters = list(inspect.signature(fork.spawn).parameters)
    assert parameters[:3] == ["name", "args", "kwargs"]
    assert tuple(parameters[3:]) == OPTION_NAMES
    assert set(CHECKS) == set(OPTION_NAMES)


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("option", OPTION_NAMES)
def test_every_start_method_honours_every_option(option: str, start: str, tmp_path: Path) -> None:
    CHECKS[option](start, tmp_path)


@pytest.mark.parametrize("via", ["fork", "run", "snapshot"])
@pytest.mark.parametrize("option", OPTION_NAMES)
def test_a_stray_option_names_the_spawn_call_meant(via: str, option: str) -> None:
    call, target = getattr(fork, via), "add" if via != "snapshot" else _add
    with pytest.raises(TypeError, match=rf"fork\.{via}\(\) passes every keyword") as caught:
        call(target, 1, 2, **{option: None})
    meant = (
        f"fork.spawn('add', (1, 2), {{}}, {option}=None)"
        if via != "snapshot"
        else f"fork.spawn(_add, (1, 2), {{}}, start='snapshot', {option}=None)"
    )
    assert meant in str(caught.value)


def _add(a: int, b: int) -> int:
    return a + b


def test_markers_read_back_as_written() -> None:
    written = _env.write_markers(
        payload="/p/1-ab.in",
        key=bytes(range(32)),
        parent=4321,
        depth=2,
        lifeline=7,
        report=8,
        private_dir="/p",
        guarded=True,
        faults="/p/1-ab.faults",
        zygote=(9, 10),
    )
    _env.hand_fds(written, [(_env.STARTED, 11), (_env.PASSED, 12), (_env.PASSED, 13)])
    read = _env.Markers(written)  # type: ignore[arg-type] # a mapping like os.environ
    assert (read.payload, read.key, read.parent, read.depth) == (
        "/p/1-ab.in",
        bytes(range(32)).hex(),
        4321,
        2,
    )
    assert (read.lifeline, read.report, read.private_dir, read.guarded) == (7, 8, "/p", True)
    assert (read.faults, read.zygote, read.started, read.passed) == (
        "/p/1-ab.faults",
        (9, 10),
        11,
        (12, 13),
    )
    assert read.stale == () and read.is_child
