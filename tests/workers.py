"""Functions the tests fork. Importable, so children start from goforkpy's entry point."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import goforkpy as fork


@fork.register
def echo(*args: Any, **kwargs: Any) -> Any:
    return args, kwargs


@fork.register
def add(a: int, b: int) -> int:
    return a + b


@fork.register("identity")
def identity_info() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "ppid": fork.ppid(),
        "is_child": fork.is_child(),
        "markers": sorted(k for k in os.environ if k.startswith("GOFORKPY_")),
        "modules": sorted(sys.modules),
        "cwd": os.getcwd(),
        "env_probe": os.environ.get("GOFORKPY_TEST_PROBE"),
    }


@fork.register
def raise_value(message: str) -> None:
    raise ValueError(message)


@fork.register
def system_exit(code: Any) -> None:
    raise SystemExit(code)


@fork.register
def os_exit(code: int) -> None:
    os._exit(code)


@fork.register
def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


@fork.register
def ready_then_sleep() -> None:
    print("ready", flush=True)
    threading.Event().wait()


@fork.register
def return_lock() -> Any:
    return threading.Lock()


class UnpicklableError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@fork.register
def raise_unpicklable() -> None:
    raise UnpicklableError("holds a lock")


class TwoArgError(Exception):
    """Pickles fine, but unpickling calls __init__ with one argument: TypeError."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


@fork.register
def raise_two_arg() -> None:
    raise TwoArgError("x", "y")


@fork.register
def recurse(levels: int) -> int:
    """Fork itself ``levels`` times; returns the depth reached."""
    if levels == 0:
        return 0
    result: int = fork.run("recurse", levels - 1)
    return result + 1


@fork.register
def grandchild_pids() -> tuple[int, int | None, int]:
    info = fork.run("identity")
    return os.getpid(), info["ppid"], info["pid"]


@fork.register
def signal_name_of_term() -> str:
    return signal.Signals.SIGTERM.name
