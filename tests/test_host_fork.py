"""A process forked by its host program uses goforkpy at once (API.md section 4).

multiprocessing's fork context, gunicorn ``--preload``, Celery's prefork pool
and a plain ``os.fork()`` copy a process that may have had other threads
inside goforkpy at that instant. The copy must get its own helpers, locks,
sockets and zygotes, never hang on a lock a vanished thread held, and never
touch the original's children.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import warnings

import pytest
from helpers import FORKS_WITH_THREADS, RunScript

import goforkpy as fork
from goforkpy import _state
from goforkpy._process.stdio import child_ends

# Threads call an isolated function in a loop while the main thread forks
# copies that each call it once: a copy that inherited a held lock hangs.
_THREADS_AND_FORKS = """
import os, sys, threading, time
import goforkpy as fork

def square(x):
    return x * x

if __name__ == "__main__":
    fork.init()
    start = sys.argv[1]
    iso = fork.isolated(square, start=start)
    assert iso(3) == 9
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            assert iso(2) == 4

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    hung = failed = 0
    for _ in range(25):
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if iso(4) == 16 else 3)
            except BaseException as exc:
                print("copy failed:", repr(exc), file=sys.stderr, flush=True)
                os._exit(4)
        deadline = time.monotonic() + 30  # a deadlock net: a copy takes milliseconds
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                failed += os.waitstatus_to_exitcode(status) != 0
                break
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
    stop.set()
    for thread in threads:
        thread.join()
    print("hung", hung, "failed", failed)
"""


@pytest.mark.parametrize("start", ["cold", "warm", "snapshot"])
def test_copies_forked_while_threads_call_isolated_neither_hang_nor_fail(
    run_script: RunScript, start: str
) -> None:
    done = run_script(_THREADS_AND_FORKS, args=[start])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hung", "0", "failed", "0"], done.stderr
    assert "copy failed" not in done.stderr


_FORK_CONTEXT_POOLS = """
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
import goforkpy as fork
from tasks import isolated_square

if __name__ == "__main__":
    fork.init()
    fork.set_start_method(sys.argv[1])
    with ThreadPoolExecutor(4) as threads:
        assert list(threads.map(isolated_square, range(40))) == [x * x for x in range(40)]
    context = multiprocessing.get_context("fork")
    for round in range(5):
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            got = list(pool.map(isolated_square, range(8)))
        assert got == [x * x for x in range(8)], got
    print("pools", round + 1)
    # Pool.terminate ends its workers with SIGTERM while they contend for a semaphore:
    # a worker that used goforkpy (and so has its exit handler) must die of it at once
    for round in range(10):
        with context.Pool(2) as pool:
            got = pool.map(isolated_square, range(5))
        assert got == [x * x for x in range(5)], got
    print("terminated", round + 1)
"""

_TASKS = """
import goforkpy as fork

@fork.isolated
def isolated_square(x):
    return x * x
"""


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_process_pools_with_the_fork_context_after_a_thread_pool(
    run_script: RunScript, start: str
) -> None:
    run_script(_TASKS, name="tasks.py")  # writes it (running it does nothing)
    done = run_script(_FORK_CONTEXT_POOLS, args=[start])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pools", "5", "terminated", "10"], done.stderr


_COPY_SIGNALS = """
import os, signal
import goforkpy as fork

@fork.register
def nothing():
    pass

if __name__ == "__main__":
    fork.init()
    fork.run("nothing")  # the first fork installs the exit handlers
    ours = signal.getsignal(signal.SIGTERM)
    pid = os.fork()
    if pid == 0:  # a copy: the default disposition, and Python's wake-up fd unset
        default = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        os._exit(0 if default and signal.set_wakeup_fd(-1) == -1 else 5)
    _, status = os.waitpid(pid, 0)
    print(ours is not signal.SIG_DFL, os.waitstatus_to_exitcode(status))
"""


def test_a_copy_gets_the_default_sigterm_back(run_script: RunScript) -> None:
    """The original's exit handler and wake-up pipe are the original's; a copy that
    forks children of its own installs its own."""
    done = run_script(_COPY_SIGNALS)
    assert done.stdout.split() == ["True", "0"], done.stderr


@FORKS_WITH_THREADS  # a fork while a thread holds locks is what this test makes
def test_a_copy_starts_with_every_local_empty_and_every_lock_free() -> None:
    """Whatever a thread of the original holds at the fork, the copy is clean."""
    held = _state.Lock()
    made: _state.Local[list[int]] = _state.Local(lambda: [os.getpid()])
    made.get()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with held, made.lock:
            entered.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait()
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the copy: report, and leave without running the test's teardown
            os.close(read)
            empty = all(local.peek() is None for local in _state.all_locals())
            free = all(lock.acquire(timeout=5) for lock in (held, made.lock))
            made.lock.release()
            mine = made.get() == [os.getpid()]
            os.write(write, b"%d%d%d" % (empty, free, mine))
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            report = pipe.read()
        os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert report == b"111", "(every Local empty, the held locks free, a value of its own)"
    assert made.peek() == [os.getpid()]  # the original keeps its own


def test_a_lock_held_at_a_fork_in_a_copy_is_free_in_the_copy_of_that_copy() -> None:
    """A lock is renewed at its first use after a fork: in a copy that took it and
    forked while holding it, and never touched it again, the next copy finds it free."""
    lock = _state.Lock()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy: take the lock, and fork holding it
        os.close(read)
        lock.acquire()
        inner = os.fork()
        if inner == 0:
            free = lock.acquire(timeout=5)
            os.write(write, b"%d" % free)
            os._exit(0)
        os.waitpid(inner, 0)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == b"1"
    assert lock.acquire(timeout=5)  # the original's own is untouched: free here too
    lock.release()


def _what_a_copy_finds(fds: list[int], handing: bool) -> bytes:
    """Fork a copy (one that is handed descriptors, or a program's own), and have it say
    for each of ``fds`` whether it is still a pipe (``p``) or leads elsewhere (``-``)."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the test process has threads
        with _state.handing_over() if handing else contextlib.nullcontext():
            pid = os.fork()
    if pid == 0:
        os.close(read)
        found = [b"p" if stat.S_ISFIFO(os.fstat(fd).st_mode) else b"-" for fd in fds]
        os.write(write, b"".join(found))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    return report


def test_a_copy_holds_no_pipe_end_of_a_child_that_is_starting() -> None:
    """While a thread starts a child, both ends of the child's pipes are open in this
    process: a copy forked from another thread then (a snapshot, a program's own fork)
    gets neither, or the child's stdout would never end for its parent; a copy forked
    by the starting thread itself, as the child it starts, keeps the child's ends."""
    with child_ends(fork.PIPE, fork.PIPE, None) as (ends, ours):
        theirs = [ends[0], ends[1]]
        mine = [stream.fileno() for stream in ours if stream is not None]
        from_another: list[bytes] = []
        thread = threading.Thread(
            target=lambda: from_another.append(_what_a_copy_finds(theirs + mine, False))
        )
        thread.start()
        thread.join()
        as_the_child = _what_a_copy_finds(theirs + mine, True)
    for stream in ours:
        if stream is not None:
            stream.close()
    assert from_another == [b"----"], "a copy from another thread holds none of them"
    assert as_the_child == b"pp--", "the child keeps its own ends, not the parent's"
