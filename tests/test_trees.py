"""Process trees: terminate, kill, kill_tree, signals to the group, timeouts, spawn options.

Children signal readiness ("ready" on stdout) before anything is done to them;
timeouts here are deadlock nets, never what a test measures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest
from helpers import DEADLOCK_NET, ready, wait_gone

import goforkpy as fork


def test_sigterm_ignored_means_sigkill_after_grace() -> None:
    child = fork.spawn("ignore_term_then_sleep", stdout=fork.PIPE)
    ready(child)
    child.terminate(grace=0.2)
    assert child.returncode == -signal.SIGKILL
    assert repr(child).endswith("exited with SIGKILL>")
    child.stdout.close()  # type: ignore[union-attr]


def test_terminate_reaches_a_grandchild_in_its_own_session() -> None:
    child = fork.spawn("grandchild_in_own_session", stdout=fork.PIPE)
    (grandchild,) = map(int, ready(child))
    assert os.getsid(grandchild) != os.getsid(child.pid)
    child.terminate()
    assert child.returncode == -signal.SIGTERM
    assert wait_gone([grandchild], DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_kill_reaches_the_whole_tree() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE)
    ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    assert family
    child.kill()
    assert child.returncode == -signal.SIGKILL
    assert wait_gone(family, DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_leftovers_in_the_group_die_with_the_child() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE)
    ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    os.kill(child.pid, signal.SIGKILL)  # only the child: its sleep is left behind
    child.wait(DEADLOCK_NET)
    assert wait_gone(family, DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_send_signal_goes_to_the_group() -> None:
    child = fork.spawn("ready_then_sleep", stdout=fork.PIPE)
    ready(child)
    child.send_signal(signal.SIGINT)
    assert child.wait(DEADLOCK_NET) == 1  # KeyboardInterrupt raised in the function
    with pytest.raises(KeyboardInterrupt):
        child.result()
    child.stdout.close()  # type: ignore[union-attr]


def test_kill_tree_on_any_pid() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    try:
        deadline = time.monotonic() + DEADLOCK_NET
        while len(psutil.Process(shell.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        family = [shell.pid, *(p.pid for p in psutil.Process(shell.pid).children())]
        signalled = fork.kill_tree(shell.pid, grace=DEADLOCK_NET)
        assert sorted(family) == signalled
    finally:
        shell.wait(DEADLOCK_NET)
    assert wait_gone(family, DEADLOCK_NET) == []
    assert fork.kill_tree(shell.pid) == [], "a vanished pid is not an error"


def test_timeout_ends_a_sleeping_tree() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE, timeout=0.5, grace=0.5)
    ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    with pytest.raises(fork.TimeoutExpired) as caught:
        child.result(timeout=DEADLOCK_NET)
    assert caught.value.timeout == 0.5 and caught.value.name == "sleep_with_grandchild"
    assert "ran past its timeout" in str(caught.value)
    with pytest.raises(fork.TimeoutExpired):
        child.wait()
    assert wait_gone(family, DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_timeout_not_reached_changes_nothing() -> None:
    assert fork.spawn("add", (1, 2), timeout=DEADLOCK_NET).result() == 3


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"timeout": -1.5}, ValueError, r"timeout=-1\.5: give a number of seconds >= 0"),
        ({"timeout": "5"}, ValueError, "timeout='5': expected a number of seconds"),
        ({"grace": -1}, ValueError, "grace=-1"),
        ({"limits": {"memory": 1}}, TypeError, r"fork\.Limits"),
    ],
)
def test_bad_spawn_options_are_refused(options: dict, error: type, text: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=text):
        fork.spawn("add", (1, 2), **options)
