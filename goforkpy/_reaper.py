"""Reaping: every child is waited for the moment it exits, by one owner.

goforkpy is the only caller of ``waitpid`` for its children, so an exit status
is never stolen and no child stays a zombie, whether or not anybody waits on
its handle. Where the kernel has pidfds, one daemon thread watches them all
with a selector; elsewhere a small daemon thread per child blocks in
``waitpid``. Either way the callback gets the exit status once.
"""

from __future__ import annotations

import os
import selectors
import threading

from . import _platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    OnExit = Callable[[int], None]
    OnZombie = Callable[[], None]

UNKNOWN_STATUS = 0  # someone else reaped it (SIGCHLD ignored): subprocess says 0 too


def _reap(pid: int) -> int:
    """Reap ``pid`` (blocking until it exits) and return its subprocess-style returncode."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return UNKNOWN_STATUS
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        return os.waitstatus_to_exitcode(status)


class _ThreadPerChild:
    """The portable reaper: one blocking ``waitpid`` thread per child."""

    def watch(self, pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
        def wait_then_reap() -> None:
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                pass
            on_zombie()
            on_exit(_reap(pid))

        threading.Thread(target=wait_then_reap, name=f"goforkpy-reap-{pid}", daemon=True).start()


class _PidfdSelector:
    """One thread, one selector, a pidfd per child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, OnExit, OnZombie]] = []
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_w = -1

    def watch(self, pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
        pidfd = os.pidfd_open(pid)  # a zombie still has one: no exit is missed
        with self._lock:
            self._pending.append((pidfd, pid, on_exit, on_zombie))
            if self._thread is None:
                self._start()
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def _start(self) -> None:
        wake_r, self._wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(
            target=self._run, args=(self._selector, wake_r), name="goforkpy-reaper", daemon=True
        )
        self._thread.start()

    def _run(self, selector: selectors.BaseSelector, wake_r: int) -> None:
        while True:
            for key, _ in selector.select():
                if key.data is None:
                    self._take_pending(selector, wake_r)
                    continue
                pid, on_exit, on_zombie = key.data
                selector.unregister(key.fd)
                os.close(key.fd)
                on_zombie()
                _safely(on_exit, _reap(pid))

    def _take_pending(self, selector: selectors.BaseSelector, wake_r: int) -> None:
        try:
            while os.read(wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            pending, self._pending = self._pending, []
        for pidfd, pid, on_exit, on_zombie in pending:
            selector.register(pidfd, selectors.EVENT_READ, (pid, on_exit, on_zombie))

    def forget_after_fork(self) -> None:
        """In a forked copy of this process the thread is gone: start afresh."""
        self.__init__()  # type: ignore[misc]


def _safely(on_exit: OnExit, returncode: int) -> None:
    try:
        on_exit(returncode)
    except Exception:  # pragma: no cover - a bug in a callback must not stop reaping
        import traceback

        traceback.print_exc()


_reaper: _PidfdSelector | _ThreadPerChild | None = None
_reaper_lock = threading.Lock()


def watch(pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
    """Reap ``pid`` (a child of this process) once it exits.

    ``on_zombie()`` runs when it has exited but before it is reaped (while its
    pid cannot be reused); ``on_exit(returncode)`` runs after.
    """
    global _reaper
    with _reaper_lock:
        if _reaper is None:
            _reaper = _PidfdSelector() if _platform.watch_exit_supported() else _ThreadPerChild()
            if isinstance(_reaper, _PidfdSelector):
                os.register_at_fork(after_in_child=_reaper.forget_after_fork)
        reaper = _reaper
    reaper.watch(pid, on_exit, on_zombie)
