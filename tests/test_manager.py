"""fork.Manager: many children and adopted processes handled together."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from helpers import DEADLOCK_NET, ready

import goforkpy as fork


def test_mixed_endings_collected_by_wait_all() -> None:
    with fork.Manager() as manager:
        ok = manager.fork("add", 1, 2)
        raised = manager.fork("raise_value", "x")
        exited = manager.fork("os_exit", 9)
        crashed = manager.fork("segfault")
        codes = manager.wait_all(timeout=DEADLOCK_NET)
    assert codes == {ok.pid: 0, raised.pid: 1, exited.pid: 9, crashed.pid: -signal.SIGSEGV}
    assert list(codes) == manager.pids() and len(manager) == 4
    assert ok.result() == 3


def test_as_completed_yields_in_finishing_order() -> None:
    with fork.Manager() as manager:
        slow = manager.fork("sleep_for", 1.0)
        fast = manager.spawn("add", (1, 1))
        fast.wait(DEADLOCK_NET)  # so the order is known, not raced
        order = list(manager.as_completed(timeout=DEADLOCK_NET))
    assert order == [fast, slow]


def test_as_completed_and_wait_all_time_out() -> None:
    with fork.Manager() as manager:
        manager.fork("sleep_for", 300.0)
        with pytest.raises(fork.TimeoutExpired, match="still running"):
            list(manager.as_completed(timeout=0.05))
        with pytest.raises(fork.TimeoutExpired):
            manager.wait_all(timeout=0.05)
    assert all(not manager.get(pid).is_alive() for pid in manager.pids())  # type: ignore[union-attr]


def test_adopted_process_killed_by_kill_all() -> None:
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        with fork.Manager() as manager:
            adopted = manager.add(sleeper.pid)
            assert adopted.pid == sleeper.pid and adopted.is_alive()
            assert "sleep" in repr(adopted)
            manager.kill_all()
            assert not adopted.is_alive()
    finally:
        assert sleeper.wait(DEADLOCK_NET) == -signal.SIGKILL


def test_adopting_a_goforkpy_child_keeps_its_handle() -> None:
    with fork.Manager() as manager:
        child = fork.fork("sleep_for", 300.0)
        assert manager.add(child.pid) is child
        assert manager.get(child.pid) is child and manager.get(12345678) is None
        assert manager.remove(child.pid) is child and len(manager) == 0
        child.kill()


@pytest.mark.parametrize(
    ("pid", "error"),
    [(os.getpid(), ValueError), (os.getppid(), ValueError), (2**22 + 7, ProcessLookupError)],
    ids=["self", "parent", "missing"],
)
def test_bad_adoptions_are_refused(pid: int, error: type) -> None:
    with pytest.raises(error, match=str(pid)):
        fork.Manager().add(pid)


def test_remove_unknown_pid() -> None:
    with pytest.raises(KeyError, match="not managed"):
        fork.Manager().remove(1)


def test_terminate_all_ends_every_tree_in_parallel(tmp_path: Path) -> None:
    """Every child hears SIGTERM within one grace period, then all are SIGKILLed."""
    notes = tmp_path / "terms"
    grace = 1.0
    with fork.Manager() as manager:
        children = [
            manager.spawn("note_term_time", (str(notes),), stdout=fork.PIPE) for _ in range(8)
        ]
        for child in children:
            ready(child, close=True)
        grandchildren = [manager.spawn("sleep_with_grandchild", stdout=fork.PIPE) for _ in range(2)]
        for child in grandchildren:
            ready(child, close=True)
        family = [p.pid for c in grandchildren for p in psutil.Process(c.pid).children(True)]
        manager.terminate_all(grace=grace)
    heard = [float(t) for t in notes.read_text().split()]
    assert len(heard) == 8
    assert max(heard) - min(heard) < grace, "SIGTERMs went out one grace period apart"
    assert all(c.returncode == -signal.SIGKILL for c in children)
    assert all(c.returncode == -signal.SIGTERM for c in grandchildren)
    assert not [
        p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
    ]


def test_signal_all_reaches_every_child() -> None:
    with fork.Manager() as manager:
        for _ in range(3):
            ready(manager.spawn("ready_then_sleep", stdout=fork.PIPE), close=True)
        manager.signal_all(signal.SIGINT)
        assert set(manager.wait_all(timeout=DEADLOCK_NET).values()) == {1}


def test_a_thousand_live_children() -> None:
    """Started, killed and reaped: the autouse fixture checks fds and zombies after."""
    started = time.monotonic()
    with fork.Manager() as manager:
        for _ in range(1000):
            manager.fork("sleep_for", 300.0)
        assert len(manager) == 1000
        assert all(manager.get(pid).is_alive() for pid in manager.pids())  # type: ignore[union-attr]
        manager.kill_all()
        codes = manager.wait_all(timeout=DEADLOCK_NET)
    assert set(codes.values()) == {-signal.SIGKILL}
    assert time.monotonic() - started < 600  # a deadlock net, not a speed claim


def test_manager_repr_and_iteration() -> None:
    with fork.Manager() as manager:
        child = manager.fork("add", 1, 1)
        child.wait(DEADLOCK_NET)
        assert list(manager) == [child]
        assert repr(manager) == "<Manager 1 processes, 0 running>"


def test_manager_is_thread_safe() -> None:
    import threading

    with fork.Manager() as manager:
        threads = [
            threading.Thread(target=lambda: [manager.fork("add", 1, 1) for _ in range(5)])
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(manager) == 30
        assert set(manager.wait_all(timeout=DEADLOCK_NET).values()) == {0}
