"""Functions the ``fork.isolated`` and Dask tests run: importable, so they go by reference."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import goforkpy as fork


def where(x: int) -> tuple[int, int, int]:
    """(x doubled, the pid it ran in, that process's parent)."""
    return x * 2, os.getpid(), os.getppid()


@fork.isolated
def double(x: int) -> tuple[int, int, int]:
    """Double ``x`` in a child."""
    return where(x)


@fork.isolated(timeout=30)
def parse(text: str) -> int:
    """A parser that crashes on some inputs: ``"crash"`` segfaults."""
    if text == "crash":
        import ctypes

        ctypes.string_at(0)
    return int(text)


def fail(message: str) -> None:
    raise ValueError(message)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def hold(ready_path: str) -> None:
    """Start a grandchild, write both pids to ``ready_path``, then wait for ever."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(ready_path + ".tmp", "w") as file:
        file.write(f"{os.getpid()} {grandchild.pid}")
    os.rename(ready_path + ".tmp", ready_path)  # appears whole
    threading.Event().wait()


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes << 20))


def burn(seconds: float) -> int:
    """Spin the CPU for ``seconds`` of CPU time; return loops made."""
    import time

    end, loops = time.process_time() + seconds, 0
    while time.process_time() < end:
        loops += 1
    return loops


def echo(*args: Any) -> tuple[Any, ...]:
    return args
