"""Plain functions for the Executor (not registered: they travel by reference)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from .results import segfault


def square(x: int) -> int:
    return x * x


def pid_of(_: object = None) -> int:
    return os.getpid()


def crash_on(x: int, bad: int, how: str) -> int:
    if x == bad:
        if how == "segfault":
            segfault()
        elif how == "exit":
            os._exit(7)
        elif how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
    return x


_initialized: list[str] = []


def remember(value: str) -> None:
    _initialized.append(value)


def initialized() -> list[str]:
    return list(_initialized)


def fail_init() -> None:
    raise RuntimeError("no database")


def ready_file_then_sleep(path: str) -> None:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    threading.Event().wait()


def ready_file_then_wait_for(path: str, fifo: str) -> str:
    """Note the pid in ``path``, then wait for a line on the named pipe ``fifo``."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    with open(fifo) as f:
        return f.read()


def identity_value(value: object) -> object:
    return value


def note_then_sleep(path: str, seconds: float) -> float:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    threading.Event().wait(seconds)
    return seconds


def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


class Dummy:
    def method(self) -> None:
        pass


def make_dummy(_: object) -> Dummy:
    return Dummy()


_hoard: list[bytearray] = []


def hoard(megabytes: int) -> int:
    """Keep ``megabytes`` of memory in the worker, after the task; return its pid."""
    _hoard.append(bytearray(megabytes << 20))
    return os.getpid()


def allocate_in_task(size: int) -> int:
    return len(bytearray(size))


def chatty(tag: str) -> str:
    """Write to stdout and stderr from Python and at the fd level, as C code does."""
    print(f"{tag} out")
    print(f"{tag} err", file=sys.stderr)
    os.write(1, f"{tag} fd1\n".encode())
    return tag


def slow_with_cleanup(path: str) -> None:
    try:
        time.sleep(300)
    finally:
        with open(path, "w") as f:
            f.write("cleaned up")


def deaf_and_stuck() -> None:
    """Stands in for C code that never returns to Python: it hears neither the
    interrupt that raises TimeoutExpired nor SIGTERM; only SIGKILL ends it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(300)


def _refuse_to_load(how: str) -> None:
    if how == "exit":
        sys.exit(3)
    raise ValueError("this result will not load")


class Unloadable:
    """Pickles in the worker; loading it in the parent raises (``how``: "error", "exit")."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> tuple[Any, ...]:
        return _refuse_to_load, (self.how,)


def unloadable(how: str) -> Unloadable:
    return Unloadable(how)


class ExitsWhenLoaded:
    """An argument whose loading in the worker calls ``sys.exit(3)``."""

    def __reduce__(self) -> tuple[Any, ...]:
        return sys.exit, (3,)


class Falsey(Exception):
    """An exception that is false (gh-132063): it must still be raised, not returned."""

    def __bool__(self) -> bool:
        return False


def raise_falsey(message: str) -> None:
    raise Falsey(message)
