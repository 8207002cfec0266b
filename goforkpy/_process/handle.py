"""What every process handle shares (an exit status, set once, and exit callbacks), and
the process record of a child made by ``fork(2)``."""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable

    import psutil


class ExitWatch:
    """Mixin for ``Child`` and ``Adopted``: state that changes once, when the process ends.

    It is also what ``tree.end_handles`` needs of a handle to end its tree:
    ``_tree_root()``, ``_leads_group`` and ``_wait_ended()``.
    """

    pid: int
    _returncode: int | None
    _grace: float = 5.0  # seconds between SIGTERM and SIGKILL when ended
    _leads_group = False  # True where the process leads a group we may signal whole

    def _tree_root(self) -> psutil.Process | None:
        """A psutil handle on the process while it can be signalled safely, else None."""
        raise NotImplementedError

    def _wait_ended(self) -> None:
        """Wait until the process is gone (and reaped, where it is our child)."""
        self._done.wait()

    def terminate(self, grace: float | None = None) -> None:
        """SIGTERM the process's whole tree, SIGKILL what is left after ``grace``."""
        raise NotImplementedError

    def _watch_exit(self) -> None:
        self._returncode = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._on_exit: list[Callable[[Any], None]] = []

    @property
    def returncode(self) -> int | None:
        """``None`` while running, then the exit status (``-N``: killed by signal N)."""
        return self._returncode

    def poll(self) -> int | None:
        """The returncode, or ``None`` while the process runs."""
        return self._returncode

    def is_alive(self) -> bool:
        """True until the process has exited (and, for our children, been reaped)."""
        return not self._done.is_set()

    def _when_exited(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(self)`` once the process has exited (at once if it has)."""
        with self._lock:
            if not self._done.is_set():
                self._on_exit.append(callback)
                return
        callback(self)

    def _record_exit(self, returncode: int | None) -> None:
        with self._lock:
            self._returncode = returncode
            self._done.set()
            callbacks, self._on_exit = self._on_exit, []
        for callback in callbacks:
            callback(self)


class ForkedProcess:
    """A child made by ``fork(2)`` (warm, or a snapshot): what its handle needs, as
    ``Popen`` gives it for a cold one."""

    __slots__ = ("pid", "returncode", "stderr", "stdin", "stdout")

    def __init__(self, pid: int, streams: list[IO[bytes] | None]) -> None:
        self.pid, self.returncode = pid, None
        self.stdin, self.stdout, self.stderr = streams


class RelayedFork:
    """A child forked by an intermediate of ours (a snapshot's): the intermediate tells
    its pid over a pipe, read at the first need of it, so the caller need not wait.

    Where the intermediate could not fork the child, it reported why in the child's
    result, and is the process this record stands for.
    """

    __slots__ = ("_between", "_lock", "_pid", "_told", "returncode", "stderr", "stdin", "stdout")

    def __init__(self, between: int, told: int, streams: list[IO[bytes] | None]) -> None:
        self._between, self._told, self._pid = between, told, 0
        self._lock = threading.Lock()
        self.returncode = None
        self.stdin, self.stdout, self.stderr = streams

    @property
    def pid(self) -> int:
        if not self._pid:
            with self._lock:
                if not self._pid:
                    self._pid = self._read_pid()
        return self._pid

    def _read_pid(self) -> int:
        import os

        # Up to its end of line, not EOF: a copy of ours forked by another thread in the
        # instant the pipe was open holds its write end too, for as long as that copy lives.
        # (EOF with no line: the intermediate died before it could tell; it stands for it.)
        told = b""
        while not told.endswith(b"\n") and (chunk := os.read(self._told, 64)):
            told += chunk
        return int(told) if told.endswith(b"\n") else self._between
