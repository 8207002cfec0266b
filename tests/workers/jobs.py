"""Tasks for the joblib backend's tests: each tells, through files, what it did where."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from helpers import DEADLOCK_NET


def square(x: int) -> int:
    return x * x


def pid_after(seconds: float) -> int:
    """This worker's pid, after ``seconds`` (so that every worker gets some tasks)."""
    time.sleep(seconds)
    return os.getpid()


def _wait_for(path: Path) -> str:
    deadline = time.monotonic() + DEADLOCK_NET
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never came"
        time.sleep(0.005)
    return path.read_text()


def leave_a_sleeper_and_wait(note: str) -> None:
    """Start ``sleep 300`` in a session of its own, tell its pid and this worker's, hang."""
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path(note).write_text(f"{os.getpid()} {sleeper.pid}")
    time.sleep(300)


def fail_once_noted(*notes: str) -> None:
    """Raise once every note is written (the other tasks run by then)."""
    for note in notes:
        _wait_for(Path(note))
    raise ValueError("task 3 failed")


def note_pid(note: str) -> int:
    Path(note).write_text(str(os.getpid()))
    return os.getpid()


def segfault_once_noted(note: str) -> None:
    import ctypes

    _wait_for(Path(note))
    ctypes.string_at(0)


def hang_once_noted(note: str) -> None:
    """Once ``note`` is written, start ``sleep 300``, tell its pid and hang."""
    _wait_for(Path(note))
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path(note + ".hung").write_text(str(sleeper.pid))
    time.sleep(300)


def nested(n: int) -> tuple[list[int], str, int]:
    """A Parallel call inside a task: its results, the backend joblib picked for it and
    the processes this worker has under it meanwhile (a pool of pools would show)."""
    import joblib
    import psutil
    from joblib.parallel import get_active_backend

    def workers() -> int:
        """Our processes but multiprocessing's resource tracker (joblib starts one on
        Python 3.14), which is no pool."""
        from multiprocessing import resource_tracker

        tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
        return len([p for p in psutil.Process().children(recursive=True) if p.pid != tracker])

    def inner(x: int) -> int:
        return workers() * 1000 + x * x

    backend, _ = get_active_backend()
    results = joblib.Parallel(n_jobs=2)(joblib.delayed(inner)(x) for x in range(n))
    return results, type(backend).__name__, workers()
