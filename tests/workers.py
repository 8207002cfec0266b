"""Functions the tests fork. Importable, so children start from goforkpy's entry point."""

from __future__ import annotations

import os
import signal
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


def _ready(*extra: object) -> None:
    print("ready", *extra, flush=True)


@fork.register
def ignore_term_then_sleep() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _ready()
    threading.Event().wait()


@fork.register
def grandchild_in_own_session() -> None:
    import subprocess

    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    _ready(sleeper.pid)
    threading.Event().wait()


@fork.register
def note_sigterm(path: str) -> None:
    def handler(signum: int, frame: object) -> None:
        with open(path, "w") as f:
            f.write("terminated gracefully")
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)
    _ready()
    threading.Event().wait()


@fork.register
def sleep_with_grandchild() -> None:
    import subprocess

    subprocess.Popen(["sleep", "300"])
    _ready()
    threading.Event().wait()


@fork.register
def chatter(size: int) -> int:
    chunk = b"x" * 65536
    for _ in range(size // len(chunk)):
        sys.stdout.buffer.write(chunk)
        sys.stderr.buffer.write(chunk)
    return size


@fork.register
def shout_back() -> int:
    data = sys.stdin.buffer.read()
    sys.stdout.buffer.write(data.upper())
    return len(data)


@fork.register
def read_line() -> str:
    return sys.stdin.readline()


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
def shell_in_child(cmd: str) -> str:
    return fork.shell_exec(cmd)


@fork.register
def send_many(count: int, group: str = "default") -> int:
    parent = fork.ppid()
    assert parent is not None
    for i in range(count):
        fork.send(parent, f"{i}", group=group)
    return count


@fork.register
def send_groups() -> None:
    parent = fork.ppid()
    assert parent is not None
    fork.send(parent, b"a1", group="a")
    fork.send(parent, b"b1", group="b")
    fork.send(parent, b"a2", group="a")


@fork.register
def send_big(size: int) -> None:
    parent = fork.ppid()
    assert parent is not None
    fork.send(parent, bytes(range(256)) * (size // 256))


@fork.register
def receive_then_reply(group: str) -> str:
    message = fork.receive(group, timeout=60)
    fork.send(message.pid, message.data.upper(), group="reply")
    return message.data.decode()


@fork.register
def receive_forever() -> None:
    fork.receive("never-sent")


@fork.register
def exit_after(seconds: float, code: int) -> None:
    threading.Event().wait(seconds)
    os._exit(code)


@fork.register
def note_term_time(path: str) -> None:
    import time

    def on_term(signum: int, frame: object) -> None:
        with open(path, "a") as f:
            f.write(f"{time.monotonic()}\n")
        # keep running: the Manager must SIGKILL us after the grace period

    signal.signal(signal.SIGTERM, on_term)
    _ready()
    while True:
        threading.Event().wait(1)


@fork.register
def flood(count: int, size: int, timeout: float) -> tuple[int, str]:
    """Send until the parent's queue pushes back; (messages sent, the error)."""
    parent = fork.ppid()
    assert parent is not None
    payload = b"f" * size
    for sent in range(count):
        try:
            fork.send(parent, payload, group="flood", timeout=timeout)
        except fork.IPCError as exc:
            return sent, str(exc)
    return count, ""


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


@fork.register
def rlimits() -> dict[str, tuple[int, int]]:
    import resource

    names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_FSIZE")
    return {name: resource.getrlimit(getattr(resource, name)) for name in names}


def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


class Dummy:
    def method(self) -> None:
        pass


def make_dummy(_: object) -> Dummy:
    return Dummy()


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


@fork.register
def flood_then(count: int, flooded: str, other: str) -> int:
    """``count`` messages to a group nobody reads yet (from a thread, which blocks
    once the receiver's queue and socket are full), then one to another group."""
    parent = fork.ppid()
    assert parent is not None

    def flood() -> None:
        for i in range(count):
            fork.send(parent, f"{i}", group=flooded, timeout=60)

    flooding = threading.Thread(target=flood)
    flooding.start()
    fork.send(parent, "after the flood", group=other, timeout=60)
    flooding.join()
    return count


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
