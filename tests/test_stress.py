"""Sixteen threads at once: Executor tasks, warm and cold children, messages, snapshots.

A free-threaded Python runs a parent's threads truly at once, where the GIL
took turns: every lock of goforkpy's is then contended for real. Each thread
keeps at one kind of work until the time is up; nothing may be lost (each
result and message comes back, right), hang (each wait has a deadlock net) or
be left (the suite's leftovers check: processes, descriptors, files).

It runs for ``GOFORKPY_STRESS_SECONDS`` (3 by default; CI's free-threaded pass
gives it a minute).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import Counter

import workers  # noqa: F401 - registers "add" and "send_many"
from helpers import DEADLOCK_NET

import goforkpy as fork

SECONDS = float(os.environ.get("GOFORKPY_STRESS_SECONDS", "3"))
THREADS = 16
KINDS = ("executor", "warm", "cold", "message", "snapshot")


def test_sixteen_threads_at_once_lose_nothing_and_leave_nothing() -> None:
    deadline = time.monotonic() + SECONDS
    done: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    with fork.Executor(max_workers=2) as pool, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def work(index: int) -> None:
            kind = KINDS[index % len(KINDS)]
            count = 0
            try:
                while time.monotonic() < deadline:
                    count += 1
                    _one(kind, index, count, pool)
            except BaseException as exc:  # reported below, with the rest
                with lock:
                    failures.append(exc)
            with lock:
                done[kind] += count

        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SECONDS + DEADLOCK_NET)
        assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert failures == []
    # the snapshots warn of this process's threads, on purpose; Python 3.12+'s own warning
    # of a fork with threads is goforkpy's to silence, from every thread at once
    python_warned = [w for w in caught if "is multi-threaded, use of fork()" in str(w.message)]
    assert python_warned == []
    assert set(done) == set(KINDS) and all(done[kind] > 0 for kind in KINDS), done


def _one(kind: str, index: int, count: int, pool: fork.Executor) -> None:
    """One piece of ``kind``'s work, its result checked."""
    if kind == "executor":
        assert pool.submit(pow, count, 2).result(DEADLOCK_NET) == count * count
    elif kind in ("warm", "cold"):
        child = fork.spawn("add", (index, count), start=kind)
        assert child.result(DEADLOCK_NET) == index + count
    elif kind == "message":
        group = f"stress-{index}"  # each thread its own: none takes another's message
        child = fork.spawn("send_many", (2, group), start="warm")
        received = [fork.receive(group, timeout=DEADLOCK_NET).data for _ in range(2)]
        assert received == [b"0", b"1"] and child.result(DEADLOCK_NET) == 2
    else:
        assert fork.snapshot(divmod, count, 7).result(DEADLOCK_NET) == divmod(count, 7)
