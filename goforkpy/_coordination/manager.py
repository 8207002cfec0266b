"""``fork.Manager``: many processes at once, forked or adopted by pid.

GoFrame's gproc Manager, made safe where it is not: every operation reaches
whole process trees, termination runs over all trees at once (one walk, one
grace period, so 100 children with a 2 s grace take about 2 s), and adopted
processes are tracked through psutil, which never signals a reused pid.
"""

from __future__ import annotations

import os
import signal
import threading

from .. import _checks
from .._errors import TimeoutExpired
from .._parent.child import Child
from .._process import reaper, tree
from .._process.handle import ExitWatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, TypeVar, Union

    import psutil

    Handle = Union[Child, "Adopted"]
    H = TypeVar("H", "Child", "Adopted")

_DEFAULT_GRACE = 5.0


class Adopted(ExitWatch):
    """A process the Manager did not start, tracked by pid.

    ``returncode`` stays ``None`` after it exits unless it was a child of this
    process: the OS tells an exit status only to the parent.
    """

    def __init__(self, process: psutil.Process) -> None:
        self.pid = process.pid
        self.name = process.name()
        self._process = process
        self._watch_exit()
        reaper.start_thread(self._watch, f"adopted-{self.pid}")

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for it to exit; its returncode, or ``None`` where the OS will not tell."""
        if not self._done.wait(_checks.seconds("timeout", timeout)):
            raise TimeoutExpired(
                f"adopted pid {self.pid} ({self.name}) still running after {timeout} s",
                timeout=timeout,
                pid=self.pid,
            )
        return self._returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process (psutil makes sure its pid was not reused)."""
        import psutil

        try:
            self._process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass

    def terminate(self, grace: float | None = None) -> None:
        """SIGTERM its whole tree, SIGKILL what is left after ``grace`` (default 5 s); wait."""
        tree.end_handles(
            [self], signal.SIGTERM, _checks.grace(_DEFAULT_GRACE if grace is None else grace)
        )

    def kill(self) -> None:
        """SIGKILL its whole tree at once; wait for it."""
        tree.end_handles([self], signal.SIGKILL, 0.0)

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else f"exited ({self._returncode})"
        return f"<Adopted {self.name!r} pid={self.pid} {state}>"

    def _tree_root(self) -> psutil.Process | None:
        return self._process if self.is_alive() else None

    def _watch(self) -> None:
        self._record_exit(_wait_without_reaping(self._process))


class Manager:
    """A set of processes handled together.

    Used as a context manager, it terminates whatever still runs on exit.
    Every method is thread-safe. Finished processes stay listed until removed.

    Args:
        max_running: at most this many of the Manager's own children (from
            ``fork``/``spawn``; adopted processes do not count) run at once: a
            further ``fork``/``spawn`` blocks until one has ended. ``None``:
            no bound.
    """

    def __init__(self, max_running: int | None = None) -> None:
        if max_running is not None and (
            isinstance(max_running, bool) or not isinstance(max_running, int) or max_running < 1
        ):
            raise ValueError(
                f"max_running={max_running!r}: give the most children to run at once "
                "(an int >= 1), or None for no bound"
            )
        self._max_running = max_running
        self._lock = threading.RLock()
        self._handles: dict[int, Handle] = {}
        self._finished = threading.Condition(self._lock)
        self._finish_order: list[Handle] = []
        self._slots_taken = 0  # children running or starting, counted against max_running

    # --- adding and removing ---------------------------------------------------

    def fork(self, name: str, /, *args: Any, **kwargs: Any) -> Child:
        """``fork.fork`` and manage the child.

        With ``max_running``, blocks until fewer than that many of this
        Manager's children are running.
        """
        from .._launch.api import fork

        return self._start(lambda: fork(name, *args, **kwargs))

    def spawn(self, name: str, *args: Any, **options: Any) -> Child:
        """``fork.spawn`` (same arguments) and manage the child.

        With ``max_running``, blocks until fewer than that many of this
        Manager's children are running.
        """
        from .._launch.api import spawn

        return self._start(lambda: spawn(name, *args, **options))

    def _start(self, start: Callable[[], Child]) -> Child:
        self._take_slot()
        try:
            child = start()
        except BaseException:
            self._free_slot(None)
            raise
        child._when_exited(self._free_slot)
        return self._manage(child)

    def _take_slot(self) -> None:
        with self._finished:
            while self._max_running is not None and self._slots_taken >= self._max_running:
                self._finished.wait()
            self._slots_taken += 1

    def _free_slot(self, _: object) -> None:
        with self._finished:
            self._slots_taken -= 1
            self._finished.notify_all()

    def add(self, pid: int) -> Handle:
        """Adopt a running process by pid (a goforkpy child of ours keeps its Child handle).

        Raises:
            ProcessLookupError: there is no process ``pid``.
            ValueError: ``pid`` is 0, 1, negative, this process or one of its ancestors.
        """
        import psutil

        from .._process import lifeline

        if pid in self._handles:
            return self._handles[pid]
        _checks.target_pid(pid, "Manager.add")
        child = lifeline.live_child(pid)
        if isinstance(child, Child):
            return self._manage(child)
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ProcessLookupError(f"cannot adopt pid {pid}: no such process") from None
        return self._manage(Adopted(process))

    def remove(self, pid: int) -> Handle:
        """Stop managing ``pid`` (it is not signalled); return its handle.

        Raises:
            KeyError: ``pid`` is not managed here.
        """
        with self._lock:
            try:
                handle = self._handles.pop(pid)
            except KeyError:
                raise KeyError(f"pid {pid} is not managed by this Manager") from None
            if handle in self._finish_order:
                self._finish_order.remove(handle)
            return handle

    def get(self, pid: int) -> Handle | None:
        """The handle for ``pid``, or ``None``."""
        with self._lock:
            return self._handles.get(pid)

    def pids(self) -> list[int]:
        """The managed pids, in the order they were added."""
        with self._lock:
            return list(self._handles)

    def __len__(self) -> int:
        with self._lock:
            return len(self._handles)

    def __iter__(self) -> Iterator[Handle]:
        return iter(self._snapshot())

    # --- acting on all -------------------------------------------------------------

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to every managed process (a child's whole process group)."""
        for handle in self._snapshot():
            handle.send_signal(sig)

    def terminate_all(self, grace: float | None = None) -> None:
        """SIGTERM every tree at once, SIGKILL what is left after ``grace``; reap.

        ``grace`` defaults to the longest grace the children were spawned with.
        """
        handles = self._snapshot()
        if grace is None:
            grace = max((h._grace for h in handles), default=0.0)
        tree.end_handles(handles, signal.SIGTERM, _checks.grace(grace))

    def kill_all(self) -> None:
        """SIGKILL every tree at once; reap."""
        tree.end_handles(self._snapshot(), signal.SIGKILL, 0.0)

    def wait_all(self, timeout: float | None = None) -> dict[int, int | None]:
        """Wait for every managed process; ``{pid: returncode}``.

        Raises:
            TimeoutExpired: ``timeout`` passed with processes still running
                (they keep running).
        """
        results: dict[int, int | None] = {}
        for handle in self.as_completed(timeout):
            results[handle.pid] = handle.returncode
        return {pid: results[pid] for pid in self.pids() if pid in results}

    def as_completed(self, timeout: float | None = None) -> Iterator[Handle]:
        """Yield the managed handles as they finish (finished ones first, in order).

        Raises:
            TimeoutExpired: ``timeout`` passed before all had finished.
        """
        import time

        limit = _checks.seconds("timeout", timeout)
        deadline = None if limit is None else time.monotonic() + limit
        pending = set(self._snapshot())
        yielded = 0
        while pending:
            with self._finished:
                while yielded == len(self._finish_order) or not any(
                    h in pending for h in self._finish_order[yielded:]
                ):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutExpired(
                            f"{len(pending)} managed processes still running after {timeout} s",
                            timeout=timeout,
                        )
                    self._finished.wait(left)
                batch = self._finish_order[yielded:]
                yielded = len(self._finish_order)
            for handle in batch:
                if handle in pending:
                    pending.discard(handle)
                    yield handle

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.terminate_all()

    def __repr__(self) -> str:
        handles = self._snapshot()
        running = sum(h.is_alive() for h in handles)
        return f"<Manager {len(handles)} processes, {running} running>"

    # --- inside -----------------------------------------------------------------------

    def _manage(self, handle: H) -> H:
        with self._lock:
            self._handles[handle.pid] = handle
        handle._when_exited(self._on_exit)
        return handle

    def _on_exit(self, handle: Handle) -> None:
        with self._finished:
            if self._handles.get(handle.pid) is handle:
                self._finish_order.append(handle)
                self._finished.notify_all()

    def _snapshot(self) -> list[Handle]:
        with self._lock:
            return list(self._handles.values())


def _wait_without_reaping(process: psutil.Process) -> int | None:
    """Wait for ``process`` to exit, leaving its exit status for whoever started it.

    A child of ours (say, a ``subprocess.Popen``) is waited for without
    reaping, so its ``Popen.wait()`` still gets the status; anything else is
    polled by psutil, which cannot reap what is not ours.
    """
    import psutil

    try:
        ours = process.ppid() == os.getpid()
        if not ours:
            process.wait()
            return None
    except psutil.NoSuchProcess:
        return None
    from .._process import platform

    return platform.wait_unreaped(process.pid)
