"""Tasks that change their worker's process, and one that reports it (test_reuse.py)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _on_signal(signum: int, frame: object) -> None:
    """A handler a task installs."""


def leave_state(what: str) -> int:
    """Change what a later task must not see; the worker's pid."""
    if what == "environment":
        os.environ["LEFT_BY_A_TASK"] = "1"
        os.environ.pop("HOME", None)
    elif what == "directory":
        os.chdir("/")
    elif what == "umask":
        os.umask(0o077)
    elif what == "signals":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, _on_signal)
    elif what == "alarm":
        signal.alarm(1)  # a second into the next task: SIGALRM, whose default kills
    elif what == "timer":
        signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
    elif what == "sys.path":
        sys.path.insert(0, "/left/by/a/task")
    return os.getpid()


def state() -> dict[str, Any]:
    """What a task finds: its worker's pid and the process state tasks may change."""
    umask = os.umask(0)
    os.umask(umask)
    return {
        "pid": os.getpid(),
        "environment": dict(os.environ),
        "directory": os.getcwd(),
        "umask": umask,
        "signals": (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR1)),
        "alarm": signal.alarm(0),  # the seconds left of one still set (0: none)
        "timer": signal.getitimer(signal.ITIMER_REAL),
        "sys.path": list(sys.path),
    }


def leave_a_thread() -> int:
    """A thread that outlives the task, and would end the process a moment later."""
    started = threading.Event()

    def lurk() -> None:
        started.set()
        threading.Event().wait()

    threading.Thread(target=lurk, daemon=True).start()
    started.wait()
    return os.getpid()


def leave_a_descriptor() -> int:
    os.open(os.devnull, os.O_RDONLY)  # never closed
    return os.getpid()


def pid() -> int:
    return os.getpid()


def leave_a_child(ended: bool) -> int:
    """Start a child and leave it unwaited for: running, or ended (a zombie); our pid."""
    import shutil

    program = shutil.which("true" if ended else "sleep")
    child = os.posix_spawn(program, [program, "300"], os.environ)  # no Popen to reap it
    if ended:  # until it has exited, reaping nothing
        os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)
    return os.getpid()


def children() -> tuple[int, list[int]]:
    """Our pid and our children's, whatever their state."""
    import psutil

    return os.getpid(), [child.pid for child in psutil.Process().children()]
