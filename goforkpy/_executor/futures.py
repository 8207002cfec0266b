"""The executor's futures: cancellable while running, settled once."""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures import _base

from .. import _checks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class TaskFuture(cf.Future["Any"]):
    """A Future whose ``cancel()`` also stops the task while it runs.

    ``pid`` is the worker's once the task started; ``stdout`` and ``stderr``
    what the task printed, once it is done, where the Executor captures output.
    """

    def __init__(self, size: int, single: bool) -> None:
        super().__init__()
        self.size, self.single = size, single
        self.kill: Callable[[TaskFuture], None] | None = None  # set while running
        self.pid: int | None = None
        self.left = False  # no worker runs or holds the task any more (see Upkeep.wait_left)
        self.stdout: str | None = None
        self.stderr: str | None = None

    def result(self, timeout: float | None = None) -> Any:
        """As ``Future.result``; ``timeout`` by goforkpy's one rule (inf: no limit)."""
        return super().result(_checks.seconds("timeout", timeout))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As ``Future.exception``; ``timeout`` by goforkpy's one rule (inf: no limit)."""
        return super().exception(_checks.seconds("timeout", timeout))

    def cancel(self) -> bool:
        """Cancel the task; a running one is killed at once (its worker's tree)."""
        return self._cancel(kill=True)

    def _cancel(self, kill: bool) -> bool:
        """Cancel, running or not; without ``kill`` the pool ends a running task itself."""
        if super().cancel():
            return True
        with self._condition:
            if self._state != _base.RUNNING or self.kill is None:
                return False
            self._state = _base.CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        if kill:
            self.kill(self)
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True


def cancel_and_notify(future: TaskFuture, kill: bool = True) -> None:
    """Cancel ``future``, running or not, and tell its waiters (``wait``, ``as_completed``)."""
    future._cancel(kill)
    with future._condition:
        unnotified = future._state == _base.CANCELLED
    if unnotified:
        future.set_running_or_notify_cancel()


def settle(future: TaskFuture, value: Any = None, error: BaseException | None = None) -> None:
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except cf.InvalidStateError:
        pass  # cancelled meanwhile


def broken_error(cause: BaseException) -> cf.BrokenExecutor:
    error = cf.BrokenExecutor(
        f"the executor is broken and takes no more work: {cause}; "
        "fix the initializer (its error is the __cause__) and make a new Executor"
    )
    error.__cause__ = cause
    return error
