"""Functions whose children live a while: handshakes, grandchildren, signals, streams."""

from __future__ import annotations

import signal
import sys
import threading

import goforkpy as fork


def _ready(*extra: object) -> None:
    print("ready", *extra, flush=True)


@fork.register
def ready_then_sleep() -> None:
    print("ready", flush=True)
    threading.Event().wait()


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
def shell_in_child(cmd: str) -> str:
    return fork.shell_exec(cmd)


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
