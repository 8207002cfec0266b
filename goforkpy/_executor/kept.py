"""Executors goforkpy's integrations keep from call to call (``fork.isolated``'s reused
workers, the joblib backend): made, used and ended through this module, the one place
outside the Executor that reaches into its pool.

Such an executor lets a worker idle for a while leave (``IDLE_SECONDS`` unless
told), may give its workers an environment of their own, and takes calls one by
one, each with its own time limits and name. ``Kept`` holds them by what they
were made with.
"""

from __future__ import annotations

import threading

from .._state import Local
from .executor import Executor, _why

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .futures import TaskFuture


IDLE_SECONDS = 30.0


class Kept:
    """Executors this process keeps, by what they were made with, and the calls using
    each now (by the same key)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.executors: dict[Any, Executor] = {}
        self.users: dict[Any, int] = {}

    def disown(self, handing: bool) -> None:
        """In a forked copy: the executors are the original's (their threads are not here)."""
        for executor in self.executors.values():
            executor._finalizer.detach()


def kept() -> Local[Kept]:
    """A new per-process set of kept executors, fresh in each forked copy."""
    return Local(Kept, Kept.disown)


def make(
    max_workers: int,
    idle_timeout: float | None = None,
    env: dict[str, str] | None = None,
    **options: Any,
) -> Executor:
    """An ``Executor(max_workers, **options)`` whose workers leave after ``idle_timeout``
    seconds without work (default ``IDLE_SECONDS``); ``env``: its workers' environment,
    added to the usual one."""
    executor = Executor(max_workers, **options)
    pool = executor._pool
    pool.idle_timeout = IDLE_SECONDS if idle_timeout is None else idle_timeout
    if env is not None:
        pool.settings.env = dict(env)
    return executor


def usable(executor: Executor) -> bool:
    """True while it takes work: neither shut down nor broken."""
    return executor._pool.usable()


def submit(
    executor: Executor,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limits: tuple[float | None, float | None],
    name: str | None = None,
) -> TaskFuture:
    """One call of ``fn``, with its own (timeout, grace) and, where given, its name in
    errors; its future gives the call's result."""
    return executor._pool.submit(fn, [(args, kwargs)], True, limits, name)


def end(
    executor: Executor,
    futures: list[TaskFuture],
    leaving: type[BaseException],
    wait: bool = True,
) -> None:
    """End ``futures`` as the caller leaves by ``leaving`` (``KeyboardInterrupt`` raised
    in the running ones for Ctrl+C, ``CancelledError`` otherwise, then their workers'
    trees ended in the Executor's steps); with ``wait``, until they have ended."""
    executor._pool.end_running(futures, _why(leaving))
    if wait:
        executor._pool.wait_left(futures)
