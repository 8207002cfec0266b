"""Reused isolated workers: ``fork.isolated(fn, isolate="worker")``.

A fresh child per call costs a process start and exit, which for short calls
is most of the bill. Here calls run in isolated worker processes reused from
call to call: one pool per process and per (start method, limits), with as
many workers as calls run at once, at most the CPUs this process may use
(further calls wait), and a worker idle for ``kept.IDLE_SECONDS`` leaves.

Each call keeps what a child per call gives: a crash fails only its call (its
worker is replaced), a timeout ends the call in the Executor's steps, a
cancel ends the call's worker tree, and what a call started does not outlive
it (the worker ends it before the call returns).
"""

from __future__ import annotations

from . import kept
from .executor import Executor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Protocol

    from .._launch.record import Options
    from .futures import TaskFuture

    class Watcher(Protocol):
        """Who is told of each call as it starts and ends (the Dask plugin)."""

        def started(self, call: Any) -> None: ...
        def ended(self, call: Any) -> None: ...


_pools = kept.kept()  # by (start method, limits, sandbox)


def call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Options,
    watchers: Iterable[Watcher],
) -> Any:
    """Run ``fn(*args, **kwargs)`` in a reused worker; return or raise as ``fork.run``."""
    from .._launch import methods

    executor = _pool(methods.chosen(options.start), options.limits, options.sandbox)
    future = kept.submit(executor, fn, args, kwargs, (options.timeout, options.grace))
    handle = Call(future, executor)
    watching = list(watchers)
    for watcher in watching:
        watcher.started(handle)  # a Call ends as a Child does
    try:
        return future.result()
    except BaseException:
        future.cancel()  # an interrupted wait: a running call's worker tree ends
        raise
    finally:
        for watcher in watching:
            watcher.ended(handle)


def _pool(start: str, limits: Any, sandbox: Any) -> Executor:
    pools = _pools.get()
    with pools.lock:
        executor = pools.executors.get((start, limits, sandbox))
        if executor is None or not kept.usable(executor):
            from .._process.platform import usable_cpus

            executor = kept.make(usable_cpus(), start=start, limits=limits, sandbox=sandbox)
            pools.executors[(start, limits, sandbox)] = executor
        return executor


class Call:
    """A call running in a reused worker, as watchers of isolated calls see it: ending it
    ends its worker's tree (``kill`` at once, ``terminate`` in the Executor's steps)."""

    def __init__(self, future: TaskFuture, executor: Executor) -> None:
        self._future, self._executor = future, executor

    @property
    def pid(self) -> int | None:
        """The worker's pid once the call runs."""
        return self._future.pid

    def kill(self) -> None:
        self._future.cancel()

    def terminate(self, grace: float | None = None) -> None:
        """CancelledError raised in the call, SIGTERM to its worker's tree after its grace."""
        import concurrent.futures as cf

        kept.end(self._executor, [self._future], cf.CancelledError, wait=False)
