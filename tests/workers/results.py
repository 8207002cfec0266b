"""Functions whose children return, raise, crash or exceed limits: what results look like."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import goforkpy as fork
from goforkpy import _env


@fork.register
def echo(*args: Any, **kwargs: Any) -> Any:
    return args, kwargs


@fork.register
def add(a: int, b: int) -> int:
    return a + b


@fork.register("identity")
def identity_info(*ballast: object) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "ppid": fork.ppid(),
        "is_child": fork.is_child(),
        "markers": sorted(k for k in os.environ if k in _env.MARKERS),
        "modules": sorted(sys.modules),
        "cwd": os.getcwd(),
        "env_probe": os.environ.get("GOFORKPY_TEST_PROBE"),
        "pipes": _open_pipes(),
    }


def _open_pipes() -> list[str]:
    pipes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                pipes.append(fd)
        except OSError:  # the fd listdir itself used, closed since
            pass
    return sorted(pipes)


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
def allocate(size: int) -> int:
    return len(bytearray(size))


@fork.register
def spin() -> None:
    while True:
        pass


@fork.register
def open_many(count: int) -> int:
    files = [open(os.devnull) for _ in range(count)]  # noqa: SIM115 - held open on purpose
    return len(files)


@fork.register
def write_file(path: str, size: int) -> int:
    with open(path, "wb") as f:
        f.write(b"\0" * size)
    return size


@fork.register
def complain_then_crash() -> None:
    for i in range(30):
        print(f"complaint {i}", file=sys.stderr)
    sys.stderr.flush()
    os.abort()


@fork.register
def sleep_for(seconds: float) -> float:
    threading.Event().wait(seconds)
    return seconds


@fork.register
def rlimits() -> dict[str, tuple[int, int]]:
    import resource

    names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_FSIZE")
    return {name: resource.getrlimit(getattr(resource, name)) for name in names}


def _explode_in_child() -> None:
    if fork.is_child():
        raise ValueError("this object refuses to unpickle in a child")


class UnpicklableInChild:
    """Pickles in the parent; unpickling it in the child raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode_in_child, ())


@fork.register
def argv() -> list[str]:
    return sys.argv


class SlowToUnpickle:
    """Unpickling it in the parent takes ``seconds``: what result(timeout) must bound."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (_sleep_then, (self.seconds, "patience"))


def _sleep_then(seconds: float, value: str) -> str:
    if not fork.is_child():
        threading.Event().wait(seconds)
    return value


@fork.register
def slow_to_unpickle(seconds: float) -> SlowToUnpickle:
    return SlowToUnpickle(seconds)


@fork.register
def crash(how: str) -> None:
    """Die the way ``how`` says, from a nested frame, with a second thread running."""
    import signal
    import threading
    import time

    threading.Thread(target=time.sleep, args=(60,), name="bystander", daemon=True).start()

    def deep_in_the_stack() -> None:
        if how == "segfault":
            import ctypes

            ctypes.string_at(0)
        elif how == "abort":
            os.abort()
        elif how in ("SIGFPE", "SIGBUS"):
            signal.raise_signal(getattr(signal, how))
        elif how == "os-exit":
            os._exit(3)
        elif how == "memory":
            bytearray(1 << 30)
        elif how == "cpu":
            while True:
                pass
        elif how == "wait":
            print("ready", flush=True)
            threading.Event().wait()

    deep_in_the_stack()
