"""Standard streams: pipes drained without deadlock, stdin fed, stderr tails.

Children signal readiness ("ready" on stdout) before anything is done to them;
timeouts here are deadlock nets, never what a test measures.
"""

from __future__ import annotations

import threading

import pytest
from helpers import DEADLOCK_NET

import goforkpy as fork


def test_megabytes_on_both_pipes_without_deadlock() -> None:
    size = 10 << 20
    child = fork.spawn("chatter", (size,), stdout=fork.PIPE, stderr=fork.PIPE)
    out, err = child.communicate(timeout=DEADLOCK_NET)
    assert out is not None and err is not None and len(out) == len(err) == size
    assert child.result() == size


def test_stdin_fed_and_read() -> None:
    child = fork.spawn("shout_back", stdin=fork.PIPE, stdout=fork.PIPE)
    out, err = child.communicate(b"hello child", timeout=DEADLOCK_NET)
    assert (out, err) == (b"HELLO CHILD", None)
    assert child.result() == len(b"hello child")


def test_communicate_input_needs_a_stdin_pipe() -> None:
    child = fork.spawn("add", (1, 2))
    with pytest.raises(ValueError, match=r"stdin=fork\.PIPE"):
        child.communicate(b"lost")
    assert child.result() == 3


def test_stderr_tail_of_a_crash() -> None:
    child = fork.spawn("complain_then_crash", stderr=fork.PIPE)
    with pytest.raises(fork.ChildCrashed) as caught:
        child.result(timeout=DEADLOCK_NET)
    assert caught.value.signal == "SIGABRT"
    tail = caught.value.stderr_tail
    assert tail is not None and "complaint 0" not in tail
    own, fatal = tail.split("\nFatal Python error: Aborted\n")
    assert own.splitlines()[-1] == "complaint 29" and "complain_then_crash" in fatal
    child.stderr.close()  # type: ignore[union-attr]


def test_child_forked_from_a_thread_that_exits_lives_on() -> None:
    started: list[fork.Child] = []
    thread = threading.Thread(
        target=lambda: started.append(fork.spawn("read_line", stdin=fork.PIPE))
    )
    thread.start()
    thread.join()
    (child,) = started
    assert child.is_alive()  # PR_SET_PDEATHSIG did not fire when its thread ended
    child.communicate(b"still here\n", timeout=DEADLOCK_NET)
    assert child.result() == "still here\n"
