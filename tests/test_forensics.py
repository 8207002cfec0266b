"""When a child dies, say why: one table of ways to die, for cold, warm and Executor children.

Each row asserts the reason, the signal, what the Python stacks at a fatal
signal say (captured whether or not stderr was), and, through the autouse
fixture, that nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Any

import pytest
from helpers import DEADLOCK_NET, ready
from workers.results import crash

import goforkpy as fork

FATAL = "in deep_in_the_stack"  # the frame the stacks must show

# id, how the child dies, limits, reason, signal, what its stacks say (None: no stacks)
WAYS: list[tuple[str, str, Any, str, str | None, str | None]] = [
    ("segfault", "segfault", None, "signal", "SIGSEGV", "Segmentation fault"),
    ("abort", "abort", None, "signal", "SIGABRT", "Aborted"),
    ("fpe", "SIGFPE", None, "signal", "SIGFPE", "Floating"),  # "-point" on 3.13, " point" before
    ("bus-error", "SIGBUS", None, "signal", "SIGBUS", "Bus error"),
    ("os-exit", "os-exit", None, "exit", None, None),
    ("memory-limit", "memory", fork.Limits(memory="256M"), "memory-limit", None, None),
    ("cpu-limit", "cpu", fork.Limits(cpu_seconds=1), "cpu-limit", "SIGXCPU", None),
    ("sigkill-from-outside", "wait", None, "signal", "SIGKILL", None),
]


def _dies(start: str, how: str, limits: Any, stderr: Any) -> fork.Child:
    if how != "wait":
        return fork.spawn("crash", (how,), limits=limits, start=start, stderr=stderr)
    child = fork.spawn("crash", (how,), start=start, stderr=stderr, stdout=fork.PIPE)
    ready(child, close=True)
    os.kill(child.pid, signal.SIGKILL)
    return child


@pytest.mark.parametrize("stderr", [None, fork.PIPE], ids=["stderr-inherited", "stderr-piped"])
@pytest.mark.parametrize("start", ["cold", "warm"])
@pytest.mark.parametrize(
    ("how", "limits", "reason", "sig", "stacks"), [pytest.param(*w[1:], id=w[0]) for w in WAYS]
)
def test_why_a_child_died(
    start: str, stderr: Any, how: str, limits: Any, reason: str, sig: str | None, stacks: str | None
) -> None:
    child = _dies(start, how, limits, stderr)
    with pytest.raises(fork.ChildCrashed) as caught:
        child.result(DEADLOCK_NET)
    if child.stderr is not None:
        child.stderr.close()
    error = caught.value
    assert (error.reason, error.pid, error.returncode) == (reason, child.pid, child.returncode)
    assert sig is None or error.signal == sig or (reason == "cpu-limit" and error.signal)
    assert error.rusage is not None and error.rusage == child.rusage
    assert error.rusage.max_rss > 1 << 20
    if stacks is None:
        assert error.traceback is None
    else:
        assert stacks in error.traceback and FATAL in error.traceback
        assert "Thread" in error.traceback, "every thread's stack"
        if sys.version_info >= (3, 11):  # shown with an uncaught error (Jupyter, a script)
            shown = "".join(traceback.format_exception(error))
            assert FATAL in shown and shown.count(FATAL) == error.traceback.count(FATAL)
    if stderr is fork.PIPE and stacks is not None:
        assert stacks in error.stderr_tail, "a captured stderr ends with the fatal error"
    elif stderr is None:
        assert error.stderr_tail is None
    if reason == "memory-limit":
        assert "Limits(memory='256M')" in str(error)


@pytest.mark.parametrize(
    ("how", "limits", "reason", "sig", "stacks"), [pytest.param(*w[1:], id=w[0]) for w in WAYS]
)
def test_why_an_executor_task_failed(
    how: str, limits: Any, reason: str, sig: str | None, stacks: str | None
) -> None:
    with fork.Executor(max_workers=1, limits=limits) as pool:
        future = pool.submit(crash, how)
        if how == "wait":
            while future.pid is None or not future.running():  # the worker has reached it
                threading.Event().wait(0.01)
            os.kill(future.pid, signal.SIGKILL)
        with pytest.raises(fork.ChildCrashed) as caught:
            future.result(DEADLOCK_NET)
        assert pool.submit(abs, -1).result(DEADLOCK_NET) == 1, "the pool goes on"
    error = caught.value
    assert error.reason == reason and error.pid == future.pid
    assert sig is None or error.signal == sig or (reason == "cpu-limit" and error.signal)
    if stacks is None:
        assert error.traceback is None
    else:
        assert stacks in error.traceback and FATAL in error.traceback
    if reason != "memory-limit":  # that one is a task's error: its worker lives on
        assert error.rusage is not None and error.rusage.max_rss > 1 << 20


@pytest.mark.parametrize("start", ["cold", "warm", "executor"])
def test_a_timeout_is_no_crash(start: str) -> None:
    if start == "executor":
        with fork.Executor(max_workers=1, task_timeout=0.3, grace=0.3) as pool:
            future = pool.submit(crash, "wait")
            with pytest.raises(fork.TimeoutExpired, match="task_timeout"):
                future.result(DEADLOCK_NET)
        return
    child = fork.spawn("crash", ("wait",), timeout=0.3, start=start, stdout=fork.DEVNULL)
    with pytest.raises(fork.TimeoutExpired, match="timeout"):
        child.result(DEADLOCK_NET)
    assert child.returncode is not None and child.rusage is not None


@pytest.mark.filterwarnings("ignore:fork.snapshot.*threads of its own:RuntimeWarning")
def test_a_snapshot_crash_leaves_its_stacks() -> None:
    """(Other tests leave tqdm's monitor thread behind: the warning about it is expected.)"""
    child = fork.snapshot(crash, "segfault")
    with pytest.raises(fork.ChildCrashed) as caught:
        child.result(DEADLOCK_NET)
    assert "Segmentation fault" in caught.value.traceback and FATAL in caught.value.traceback


def test_forensic_fields_survive_pickling() -> None:
    import pickle

    child = fork.spawn("crash", ("abort",))
    with pytest.raises(fork.ChildCrashed) as caught:
        child.result(DEADLOCK_NET)
    copy = pickle.loads(pickle.dumps(caught.value))
    for field in ("reason", "signal", "traceback", "rusage", "returncode", "pid"):
        assert getattr(copy, field) == getattr(caught.value, field)
    assert getattr(copy, "__notes__", None) == getattr(caught.value, "__notes__", None)
    assert child.rusage is not None and child.rusage.user_time >= 0


def test_a_sigkill_from_the_oom_killer_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's count of OOM kills (the cgroup's) rose while the child died of SIGKILL.

    The count is faked: making the kernel's OOM killer strike would endanger the machine.
    """
    from goforkpy._process import platform

    rises = iter([True])
    monkeypatch.setattr(platform, "oom_kills_since_last_look", lambda: next(rises, False))
    child = _dies("cold", "wait", None, None)
    with pytest.raises(fork.ChildCrashed, match="OOM killer") as caught:
        child.result(DEADLOCK_NET)
    assert (caught.value.reason, caught.value.signal) == ("oom-killer", "SIGKILL")
