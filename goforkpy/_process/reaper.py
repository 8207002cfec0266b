"""Reaping: every child is waited for the moment it exits, by one owner.

goforkpy is the only caller of ``waitpid`` for its children, so an exit status
is never stolen and no child stays a zombie, whether or not anybody waits on
its handle. Where the kernel has pidfds (Linux), one daemon thread watches
them all with a selector and learns of an exit before reaping, so a handle
stops signalling while the pid still cannot be reused; after a second
without events it also asks the kernel about each child directly, a net
under the pidfds so that no exit can go unnoticed. Elsewhere a small
daemon thread per child blocks in ``waitpid`` (all that macOS and the BSDs
offer without signals), and the handle stops signalling the moment it
returns. Either way each callback runs once.

A watcher thread that cannot be started (``RLIMIT_NPROC``, memory) raises
``ForkError`` from ``prepare``, which launching calls before it starts a
child, and leaves the reaper as it was, so the next child is watched as usual.
"""

from __future__ import annotations

import os
import queue
import selectors
import threading

from .._errors import ForkError
from .._state import Local, close_quietly, close_selector_in_copy
from . import platform, quiet
from .usage import from_rusage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from .usage import Usage

    OnExit = Callable[[int, "Usage | None"], None]
    OnZombie = Callable[[], None]

UNKNOWN_STATUS = 0  # someone else reaped it (SIGCHLD ignored): subprocess says 0 too
# Seconds of quiet after which the pidfd reaper asks the kernel about each child
# directly: a net under the pidfds, so no exit can go unnoticed for longer.
_RECHECK = 1.0


def reap(pid: int) -> tuple[int, Usage | None]:
    """Reap ``pid`` (blocking until it exits): its subprocess-style returncode and its
    resource use (``None`` where someone else reaped it)."""
    try:
        _, status, used = os.wait4(pid, 0)
    except ChildProcessError:
        return UNKNOWN_STATUS, None
    return os.waitstatus_to_exitcode(status), from_rusage(used)


def start_thread(target: Callable[..., None], name: str, *args: object) -> None:
    """Start a goforkpy daemon thread; ``ForkError`` (not a bare RuntimeError) if none can be."""
    thread = threading.Thread(target=target, args=args, name=f"goforkpy-{name}", daemon=True)
    try:
        quiet.start(thread.start)
    except RuntimeError as exc:  # "can't start new thread": out of processes or memory
        raise ForkError(
            f"cannot start goforkpy's {name} thread ({exc}); the process is out of "
            "threads (RLIMIT_NPROC, memory): end some processes or raise the limit"
        ) from None


class _ThreadPerChild:
    """The portable reaper: one blocking ``waitpid`` thread per child.

    Each thread is started ahead of its child (``prepare``) and waits for
    its pid, so a thread that cannot start stops a fork before the start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spares: list[queue.SimpleQueue[tuple[int, OnExit, OnZombie]]] = []

    def prepare(self) -> None:
        with self._lock:
            if self._spares:
                return
        jobs: queue.SimpleQueue[tuple[int, OnExit, OnZombie]] = queue.SimpleQueue()
        start_thread(self._wait, "reaper", jobs)
        with self._lock:
            self._spares.append(jobs)

    def watch(self, pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
        while True:
            with self._lock:
                if self._spares:
                    self._spares.pop().put((pid, on_exit, on_zombie))
                    return
            self.prepare()

    def when_readable(self, fd: int, callback: Callable[[int], None]) -> None:
        start_thread(_call_when_readable, "reader", fd, callback)

    def disown(self, handing: bool) -> None:
        """In a forked copy the spare threads are gone; nothing else is held."""

    @staticmethod
    def _wait(jobs: queue.SimpleQueue[tuple[int, OnExit, OnZombie]]) -> None:
        pid, on_exit, on_zombie = jobs.get()
        ended = reap(pid)
        _safely(on_zombie)
        _safely(on_exit, *ended)


class _PidfdSelector:
    """One thread, one selector, a pidfd per child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, OnExit, OnZombie]] = []
        self._reads: list[tuple[int, Callable[[int], None]]] = []
        self._running = False
        self._wake: tuple[int, int] = (-1, -1)
        self._selector: selectors.BaseSelector | None = None
        self._watched: dict[int, tuple[int, OnExit, OnZombie]] = {}  # pid -> (pidfd, ...)

    def prepare(self) -> None:
        with self._lock:
            if not self._running:
                self._start()

    def watch(self, pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
        pidfd = os.pidfd_open(pid)  # a zombie still has one: no exit is missed
        try:
            self.prepare()
            with self._lock:
                self._pending.append((pidfd, pid, on_exit, on_zombie))
        except BaseException:
            os.close(pidfd)
            raise
        self._wake_up()

    def when_readable(self, fd: int, callback: Callable[[int], None]) -> None:
        self.prepare()
        with self._lock:
            self._reads.append((fd, callback))
        self._wake_up()

    def _wake_up(self) -> None:
        try:
            os.write(self._wake[1], b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def _start(self) -> None:
        """Start the selector thread; on failure nothing is left half made."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        selector = selectors.DefaultSelector()
        selector.register(wake_r, selectors.EVENT_READ, None)
        try:
            start_thread(self._run, "reaper", selector, wake_r)
        except BaseException:
            selector.close()
            os.close(wake_r)
            os.close(wake_w)
            raise
        self._wake, self._selector, self._running = (wake_r, wake_w), selector, True

    def _run(self, selector: selectors.BaseSelector, wake_r: int) -> None:
        watched = self._watched  # only this thread changes it
        while True:
            ready = selector.select(_RECHECK if watched else None)
            for key, _ in ready:
                if key.data is None:
                    self._take_pending(selector, wake_r, watched)
                elif callable(key.data):  # a descriptor of when_readable's
                    selector.unregister(key.fd)
                    _safely(key.data, key.fd)
                else:
                    self._finish(selector, watched, key.data)
            if not ready:
                self._recheck(selector, watched)

    def _finish(
        self,
        selector: selectors.BaseSelector,
        watched: dict[int, tuple[int, OnExit, OnZombie]],
        pid: int,
    ) -> None:
        pidfd, on_exit, on_zombie = watched.pop(pid)
        try:
            selector.unregister(pidfd)
        except (KeyError, ValueError):
            pass  # it was never registered (see _take_pending)
        os.close(pidfd)
        _safely(on_zombie)
        _safely(on_exit, *reap(pid))

    def _recheck(
        self, selector: selectors.BaseSelector, watched: dict[int, tuple[int, OnExit, OnZombie]]
    ) -> None:
        """A quiet moment: make sure no exit went unnoticed, whatever happened to a pidfd."""
        for pid in [pid for pid in watched if platform.has_exited(pid)]:
            self._finish(selector, watched, pid)

    def _take_pending(
        self,
        selector: selectors.BaseSelector,
        wake_r: int,
        watched: dict[int, tuple[int, OnExit, OnZombie]],
    ) -> None:
        try:
            while os.read(wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            pending, self._pending = self._pending, []
            reads, self._reads = self._reads, []
        for fd, callback in reads:
            selector.register(fd, selectors.EVENT_READ, callback)
        for pidfd, pid, on_exit, on_zombie in pending:
            watched[pid] = (pidfd, on_exit, on_zombie)
            try:
                selector.register(pidfd, selectors.EVENT_READ, pid)
            except (KeyError, ValueError, OSError):  # pragma: no cover - a misused descriptor
                pass  # the recheck still finds its exit

    def disown(self, handing: bool) -> None:
        """In a forked copy the thread is gone: close what it held (no child is handed any)."""
        close_quietly(*self._wake, *(pidfd for pidfd, _, _ in self._watched.values()))
        close_quietly(*(pidfd for pidfd, _, _, _ in self._pending))
        close_quietly(*(fd for fd, _ in self._reads))
        if self._selector is not None:
            close_selector_in_copy(self._selector)


def _call_when_readable(fd: int, callback: Callable[[int], None]) -> None:
    import select

    poller = select.poll()  # not select(): no limit on the descriptor's number
    poller.register(fd, select.POLLIN)
    poller.poll()
    _safely(callback, fd)


def _safely(callback: Callable[..., None], *args: object) -> None:
    try:
        callback(*args)
    except Exception:  # pragma: no cover - a bug in a callback must not stop reaping
        import traceback

        traceback.print_exc()


def _new_reaper() -> _PidfdSelector | _ThreadPerChild:
    return _PidfdSelector() if platform.watch_exit_supported() else _ThreadPerChild()


_reaper: Local[_PidfdSelector | _ThreadPerChild] = Local(
    _new_reaper, lambda reaper, handing: reaper.disown(handing)
)


def prepare() -> None:
    """Make sure the next ``watch`` has a thread to run on; call it before starting a child.

    Raises:
        ForkError: no watcher thread could be started (nothing was changed).
    """
    _reaper.get().prepare()


def when_readable(fd: int, callback: Callable[[int], None]) -> None:
    """``callback(fd)`` on a reaper thread once ``fd`` is readable (or at its end of file);
    ``fd`` is the callback's from then on, to close."""
    _reaper.get().when_readable(fd, callback)


def watch(pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
    """Reap ``pid`` (a child of this process) once it exits.

    ``on_zombie()`` runs when it has exited, before it is reaped where the
    platform can tell (while its pid cannot be reused); ``on_exit(returncode,
    usage)`` runs after, with what ``wait4`` said it used.

    Raises:
        ForkError: no watcher thread could be started; nothing is watching ``pid``.
        OSError: no pidfd could be had (out of file descriptors).
    """
    _reaper.get().watch(pid, on_exit, on_zombie)
