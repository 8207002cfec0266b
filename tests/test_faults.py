"""Every way a child can fail, as one table: error type, fields, nothing left behind.

The autouse ``no_leftovers`` fixture checks each row leaves no process,
zombie, payload file or fd.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from typing import Any, Callable

import pytest
import workers
from helpers import children

import goforkpy as fork
from goforkpy._errors import RemoteTraceback
from goforkpy._shared import wire


def _sigkill_from_outside() -> fork.Child:
    child = fork.spawn("ready_then_sleep", stdout=fork.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"  # handshake: it is running its function
    child.stdout.close()
    os.kill(child.pid, signal.SIGKILL)
    return child


FAULTS: list[tuple[str, Callable[[], fork.Child], type[BaseException], dict[str, Any], str]] = [
    # id, start, error type, expected fields, text in the message
    ("raises", lambda: fork.fork("raise_value", "bad"), ValueError, {}, "bad"),
    (
        "system-exit",
        lambda: fork.fork("system_exit", 3),
        fork.ChildCrashed,
        {"returncode": 3, "signal": None, "reason": "exit"},
        "SystemExit(3)",
    ),
    (
        "os-exit",
        lambda: fork.fork("os_exit", 7),
        fork.ChildCrashed,
        {"returncode": 7, "signal": None, "reason": "exit"},
        "code 7",
    ),
    (
        "os-exit-zero",
        lambda: fork.fork("os_exit", 0),
        fork.ChildCrashed,
        {"returncode": 0, "signal": None},
        "without a result",
    ),
    (
        "segfault",
        lambda: fork.fork("segfault"),
        fork.ChildCrashed,
        {"returncode": -signal.SIGSEGV, "signal": "SIGSEGV", "reason": "signal"},
        "SIGSEGV",
    ),
    (
        "sigkill-from-outside",
        _sigkill_from_outside,
        fork.ChildCrashed,
        {"returncode": -signal.SIGKILL, "signal": "SIGKILL", "reason": "signal"},
        "SIGKILL",
    ),
    (
        "unpicklable-result",
        lambda: fork.fork("return_lock"),
        fork.PayloadError,
        {},
        "could not be sent back",
    ),
    (
        "exception-unpicklable-in-child",
        lambda: fork.fork("raise_unpicklable"),
        fork.PayloadError,
        {},
        "UnpicklableError: holds a lock",
    ),
    (
        "exception-unpicklable-in-parent",
        lambda: fork.fork("raise_two_arg"),
        fork.PayloadError,
        {},
        "TwoArgError: x/y",
    ),
    (
        "argument-unpicklable-in-child",
        lambda: fork.fork("echo", workers.UnpicklableInChild()),
        fork.PayloadError,
        {},
        "refuses to unpickle in a child",
    ),
    (
        "result-past-the-file-size-limit",
        lambda: fork.spawn("echo", ("x" * 100,), limits=fork.Limits(file_size=1)),
        fork.ChildCrashed,
        {"returncode": 1},
        "could not write its result: [Errno 27] File too large (it ran under "
        "fork.Limits(file_size=1))",
    ),
    (
        "no-descriptor-left-for-the-result",
        lambda: fork.spawn("add", (1, 2), limits=fork.Limits(open_files=3)),
        fork.ChildCrashed,
        {"returncode": 1},
        "Too many open files",
    ),
    (
        "memory-limit-below-an-import",
        # cold: the import of ctypes fails (a warm child has it from its zygote). Where
        # Python raises MemoryError the child exits 1; where an allocation fails deeper,
        # Python 3.13 aborts (SIGABRT): either way the reason is the limit.
        lambda: fork.spawn("segfault", limits=fork.Limits(memory="16M"), start="cold"),
        fork.ChildCrashed,
        {"reason": "memory-limit"},
        "out of memory",  # in the import of ctypes (or, with no room left, sending that back)
    ),
    (
        "segfault-under-a-memory-limit-it-never-came-near",
        lambda: fork.spawn("segfault", limits=fork.Limits(memory="8G")),
        fork.ChildCrashed,
        {"reason": "signal"},
        "was killed by SIGSEGV (it ran under fork.Limits(",
    ),
    (
        "memory-limit-with-no-room-to-report",
        lambda: fork.spawn("allocate", (1 << 30,), limits=fork.Limits(memory="64M")),
        fork.ChildCrashed,
        {"reason": "memory-limit"},
        "out of memory",
    ),
    (
        "too-deep",
        lambda: fork.fork("recurse", 5),
        fork.InitError,
        {},
        "GOFORKPY_MAX_DEPTH",
    ),
]


@pytest.mark.parametrize(
    ("start", "error", "fields", "text"),
    [pytest.param(*row[1:], id=row[0]) for row in FAULTS],
)
def test_fault_table(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    start_method: str,
    start: Callable[[], fork.Child],
    error: type[BaseException],
    fields: dict[str, Any],
    text: str,
) -> None:
    monkeypatch.setenv("GOFORKPY_MAX_DEPTH", "2")
    child = start()
    cold_only = "below-an-import" in request.node.name
    assert child.start == ("cold" if cold_only else start_method)
    with pytest.raises(error) as caught:
        child.result(timeout=60)
    assert text in str(caught.value)
    for field, value in fields.items():
        assert getattr(caught.value, field) == value
    if isinstance(caught.value, fork.ChildCrashed):
        assert caught.value.pid == child.pid
        assert child.returncode == caught.value.returncode
        assert caught.value.rusage == child.rusage and child.rusage is not None
        assert caught.value.rusage.max_rss > 1 << 20 and caught.value.rusage.user_time >= 0
    if error is not fork.ChildCrashed:
        assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert not child.is_alive()


def test_remote_traceback_names_the_child_frame() -> None:
    with pytest.raises(ValueError, match="boom") as caught:
        fork.run("raise_value", "boom")
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value" in cause.tb and "ValueError: boom" in cause.tb


def test_exception_type_and_fields_survive() -> None:
    child = fork.fork("raise_value", "typed")
    with pytest.raises(ValueError):
        child.result()
    assert child.returncode == 1


@pytest.mark.parametrize(
    ("start", "error", "text"),
    [
        pytest.param(
            lambda: fork.fork("echo", threading.Lock()),
            fork.PayloadError,
            "cannot pickle",
            id="unpicklable-argument",
        ),
        pytest.param(
            lambda: fork.fork("echo", x=(i for i in range(3))),
            fork.PayloadError,
            "cannot pickle",
            id="generator-argument",
        ),
        pytest.param(
            lambda: fork.fork("no-such-name"), fork.RegistryError, "no-such-name", id="unknown"
        ),
        pytest.param(
            lambda: fork.register_func("add", lambda a, b: a - b),
            fork.RegistryError,
            "already registered",
            id="duplicate",
        ),
    ],
)
def test_refused_in_the_parent_before_anything_starts(
    start: Callable[[], object], error: type[BaseException], text: str
) -> None:

    with pytest.raises(error, match=text):
        start()
    assert children() == []


# A small payload is written before the child starts, a big one while it starts.
PAYLOAD_SIZES = pytest.mark.parametrize("size", [10, 2 << 20], ids=["small", "big"])


@PAYLOAD_SIZES
def test_payload_failing_its_integrity_check(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    real_write, real_seal = wire.write_assembled, wire.write_sealed

    def write_then_tamper(path: str, *args: Any) -> None:
        real_write(path, *args)
        with open(path, "r+b") as f:
            f.seek(-40, os.SEEK_END)
            byte = f.read(1)
            f.seek(-40, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))

    def seal_with_another_key(name: str, key: bytes, *args: Any, **kwargs: Any) -> int:
        return real_seal(name, wire.new_key(), *args, **kwargs)  # a sealed one is never changed

    monkeypatch.setattr(wire, "write_assembled", write_then_tamper)
    monkeypatch.setattr(wire, "write_sealed", seal_with_another_key)
    child = fork.fork("echo", b"x" * size)
    monkeypatch.undo()
    with pytest.raises(fork.PayloadError, match="integrity"):
        child.result(timeout=60)
    assert child.returncode == 1


@PAYLOAD_SIZES
def test_payload_that_cannot_be_written(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    started = []

    def disk_full(path: str, *args: Any, **kwargs: Any) -> None:
        started.extend(children())
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(wire, "write_assembled", disk_full)
    monkeypatch.setattr(wire, "write_sealed", disk_full)
    with pytest.raises(fork.PayloadError, match="No space left"):
        fork.fork("echo", b"x" * size)
    assert len(started) == (size > 1000)  # the big payload's child was already starting
    assert children() == []  # and was told, and waited for


def test_system_exit_zero_and_none_return_none() -> None:
    assert fork.run("system_exit", 0) is None
    assert fork.run("system_exit", None) is None


def test_system_exit_with_a_message_exits_one(capfd: pytest.CaptureFixture[str]) -> None:
    child = fork.fork("system_exit", "goodbye")
    with pytest.raises(fork.ChildCrashed):
        child.result()
    assert child.returncode == 1
    assert "goodbye" in capfd.readouterr().err
