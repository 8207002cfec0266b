"""Task errors as code written for ``ProcessPoolExecutor`` catches and reads them.

Imported at the first failed task only: ``concurrent.futures.process`` imports
multiprocessing.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool, _RemoteTraceback

from .._errors import ChildCrashed, RemoteTraceback


class WorkerCrashed(ChildCrashed, BrokenProcessPool):
    """The worker running a task died: ``ChildCrashed``, with the reason and the stack at
    the fault, and a ``BrokenProcessPool`` too, which is what ``ProcessPoolExecutor``
    raises there. Unlike its pool, goforkpy's is not broken: only this task failed, and
    the worker is replaced."""


def with_remote_traceback(error: BaseException) -> BaseException:
    """``error``, raised in a task, with the task's traceback as its cause in the class
    ``ProcessPoolExecutor`` uses (its text, ``.tb``, is the same)."""
    cause = error.__cause__
    if isinstance(cause, RemoteTraceback):
        error.__cause__ = _RemoteTraceback(cause.tb)  # type: ignore[arg-type] # it takes text
    return error
