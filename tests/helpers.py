"""What many test modules share: the deadlock net and the readiness handshake.

Children print ``ready`` (and maybe some pids) once they are running their
function; a test reads that line before it does anything to them, so nothing
races. Timeouts in tests are deadlock nets, only ever reached when something
hangs, never what a test measures.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Protocol

import psutil
import pytest

import goforkpy as fork

DEADLOCK_NET = 60.0  # seconds

# For a test whose own os.fork() is its point, in a pytest process that has threads (3.12+
# warns of any fork there): the copy touches no lock of theirs, or execs at once.
FORKS_WITH_THREADS = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


def ready(child: fork.Child, *, close: bool = False) -> list[str]:
    """Wait for the child's ``ready`` line; return the words after it."""
    assert child.stdout is not None
    words = child.stdout.readline().decode().split()
    assert words[:1] == ["ready"], words
    if close:
        child.stdout.close()
    return words[1:]


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts: it runs no more)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], within: float) -> list[int]:
    """The pids still alive after ``within`` seconds (polling the process table)."""
    deadline = time.monotonic() + within
    alive = [p for p in pids if not gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [p for p in alive if not gone(p)]
    return alive


class RunScript(Protocol):
    """The ``run_script`` fixture: write a script, run it, return what it did."""

    def __call__(
        self,
        source: str,
        *,
        name: str = ...,
        args: list[str] | None = ...,
        cwd: Path | None = ...,
        env: dict[str, str] | None = ...,
        stdin: str | None = ...,
        command: list[str] | None = ...,
    ) -> subprocess.CompletedProcess[str]: ...


def children() -> list[psutil.Process]:
    """The processes started for this one: its children and its zygotes' children.

    The zygotes themselves (and the spare child each holds) serve the whole
    session, and do not count.
    """
    from goforkpy._launch import kept_zygotes as zygote
    from goforkpy._process import lifeline

    zygotes = set(zygote.pids())
    tracker, _ = resource_tracker()
    found = []
    for child in psutil.Process().children():
        if child.pid == tracker:
            continue
        if child.pid not in zygotes:
            found.append(child)
        else:  # a zygote's: ours once it is handed to us (until then a spare)
            found += [young for young in child.children() if lifeline.live_child(young.pid)]
    return found


def resource_tracker() -> tuple[int | None, int | None]:
    """(pid, fd) of multiprocessing's resource tracker: the stdlib starts it for
    spawned processes (Dask's workers) and keeps it for the session."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker  # type: ignore[attr-defined]
    return getattr(tracker, "_pid", None), getattr(tracker, "_fd", None)


def unexpected_stderr(stderr: str) -> str:
    """A script's stderr but for the one warning of a warm start falling back to cold
    (a script that fails before ``init()`` fails in its zygote too)."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if "fall back to cold" not in line
    )


def zygotes() -> set[int]:
    """The pids of this process's live zygotes (not the spare children they hold, which
    each forks again when its last child is gone)."""
    from goforkpy._launch import kept_zygotes

    serving = kept_zygotes._zygotes.get().serving.values()
    return {zygote.pid for zygote in serving if not zygote.dead}
