"""Isolated tasks on a Dask distributed cluster (install ``goforkpy[dask]``).

    from dask.distributed import Client
    import goforkpy as fork
    import goforkpy.dask

    client = Client(cluster)
    client.register_plugin(goforkpy.dask.Isolation())
    future = client.submit(fork.isolated(parse, timeout=10), path)

A task that segfaults, runs out of memory or past its timeout fails with
``ChildCrashed`` or ``TimeoutExpired`` at the client, while the worker that
ran it stays up with its other tasks. The plugin gives each worker a warm
zygote, ends the child of a task that the client cancels or that a closing
worker abandons, and goforkpy's lifelines end every child when a worker exits
or is killed.
"""

from __future__ import annotations

import logging
import threading

try:
    from distributed import WorkerPlugin
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "goforkpy.dask needs Dask distributed, which is not installed; pip install 'goforkpy[dask]'"
    ) from exc

from ._checks import grace as _check_grace
from ._checks import seconds as _check_timeout
from ._executor import isolated
from ._launch import methods
from ._process import reaper

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from distributed import Worker

    from ._parent.child import Child
    from ._sandbox.policy import Sandbox

__all__ = ["Isolation"]

_log = logging.getLogger("goforkpy")
# task states that mean its result is no longer wanted
_ABANDONED = frozenset({"released", "cancelled", "forgotten", "rescheduled"})
# task states of a task still wanted ("resumed": cancelled, then asked for again)
_RUNNING = frozenset({"executing", "long-running", "resumed"})


class Isolation(WorkerPlugin):
    """A worker plugin for ``fork.isolated`` tasks: ``client.register_plugin(Isolation())``.

    On each worker it sets the start method, starts the zygote ahead of the
    first task (where ``start="warm"``), ends the child of a task when the
    client cancels it (``client.cancel``) or when the worker closes, and
    forgets all of it at teardown.

    Args:
        start: the start method of the worker's isolated calls that name
            none: ``"warm"`` (a fork of a zygote; where no zygote can serve,
            a cold start, logged) or ``"cold"``.
        grace: seconds a cancelled task's child gets between SIGTERM and
            SIGKILL; ``0`` kills it at once.
        warm_up_timeout: seconds a worker's set-up waits for its zygote; past
            them the zygote goes on starting, and the first tasks start cold.
        isolate: what ``fork.isolated(..., isolate=None)`` means on the
            workers: ``"task"`` (a fresh child per call) or ``"worker"``
            (isolated workers reused from call to call: far cheaper for short
            tasks, with the same crash, timeout, cancel and containment rules).
        sandbox: a ``fork.Sandbox`` for the worker's isolated calls that name
            none: each call's child (or reused worker) runs inside it.
    """

    name = "goforkpy-isolation"
    idempotent = False  # registering again replaces the plugin, with its settings

    def __init__(
        self,
        start: str = methods.WARM,
        grace: float = 0.0,
        warm_up_timeout: float = 60.0,
        isolate: str = "task",
        sandbox: Sandbox | None = None,
    ) -> None:
        method = methods.lookup(start)
        if method is None or method.copies_memory:
            raise ValueError(
                f"Isolation(start={start!r}): a Dask worker's isolated calls start "
                "'warm' or 'cold' ('snapshot' would fork the worker, threads and all)"
            )
        self.start = start
        self.grace = _check_grace(grace)
        self.warm_up_timeout = _check_timeout("warm_up_timeout", warm_up_timeout)
        if isolate not in isolated.ISOLATES:
            raise ValueError(
                f"Isolation(isolate={isolate!r}): use 'task' (a fresh child per call) or "
                "'worker' (isolated workers reused from call to call)"
            )
        self.isolate = isolate
        from ._sandbox.policy import check

        self.sandbox = check(sandbox)
        self._worker: Worker | None = None
        self._running: dict[Any, set[Child]] = {}  # task key -> its isolated children
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Only the settings travel to the workers."""
        return {
            "start": self.start,
            "grace": self.grace,
            "warm_up_timeout": self.warm_up_timeout,
            "isolate": self.isolate,
            "sandbox": self.sandbox,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    async def setup(self, worker: Worker) -> None:
        import goforkpy as fork

        self._worker = worker
        fork.set_start_method(self.start)
        isolated.set_default_isolate(self.isolate)
        isolated.set_default_sandbox(self.sandbox)
        isolated.add_watcher(self)
        if methods.TABLE[self.start].from_zygote:
            await worker.loop.run_in_executor(None, self._warm_up)  # off the event loop

    def _warm_up(self) -> None:
        import goforkpy as fork

        try:
            fork.warm_up(self.warm_up_timeout)
        except fork.TimeoutExpired as exc:
            _log.warning("goforkpy.dask: %s; the first isolated tasks start cold", exc)

    def teardown(self, worker: Worker) -> None:
        """The worker closes: end the children of the tasks it abandons."""
        isolated.remove_watcher(self)
        isolated.set_default_isolate("task")
        isolated.set_default_sandbox(None)
        with self._lock:
            children = [child for group in self._running.values() for child in group]
            self._running.clear()
        self._end(children)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """A running task the scheduler no longer wants: end its children.

        Cancelling a running task shows here as executing -> released (the
        worker marks it cancelled and waits for its thread to return).
        """
        if finish in _ABANDONED:
            with self._lock:
                children = list(self._running.pop(key, ()))
            self._end(children)

    # --- the watcher: isolated calls made in this worker's task threads ------------

    def started(self, child: Child) -> None:
        key = self._task_key()
        if key is None:  # not a task's own thread
            return
        with self._lock:
            self._running.setdefault(key, set()).add(child)
        if self._cancelled(key):  # cancelled while the child was starting
            self.transition(key, "executing", "released")

    def ended(self, child: Child) -> None:
        key = self._task_key()
        with self._lock:
            group = self._running.get(key)
            if group is not None:
                group.discard(child)
                if not group:
                    del self._running[key]

    def _task_key(self) -> Any:
        """The key of the task this thread runs, or ``None``."""
        try:
            return None if self._worker is None else self._worker.get_current_task()
        except KeyError:
            return None

    def _cancelled(self, key: Any) -> bool:
        """True once the worker no longer runs ``key`` for anyone (cancelled, or gone)."""
        if self._worker is None:
            return False
        task = self._worker.state.tasks.get(key)
        return task is None or task.state not in _RUNNING

    def _end(self, children: list[Child]) -> None:
        """End ``children``'s trees, off the caller's thread (the worker's event loop)."""
        if not children:
            return
        _log.debug("goforkpy.dask: ending %d abandoned child(ren)", len(children))
        for child in children:
            end = child.kill if self.grace == 0 else lambda c=child: c.terminate(self.grace)
            reaper.start_thread(end, "cancel")
