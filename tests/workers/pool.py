"""Plain functions for the Executor (not registered: they travel by reference)."""

from __future__ import annotations

import os
import signal
import threading
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
