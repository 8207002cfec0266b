"""joblib's ``"goforkpy"`` backend: joblib's ``Parallel`` and scikit-learn's ``n_jobs`` in
goforkpy workers.

    import joblib
    import goforkpy.joblib  # registers the backend

    with joblib.parallel_config(backend="goforkpy", n_jobs=4, timeout=60):
        scores = cross_val_score(model, X, y, n_jobs=4)

The workers are a ``fork.Executor``'s, kept from call to call as loky keeps
its own: a task that crashes its worker (a segfault, ``os._exit``, the OOM
killer) fails with ``ChildCrashed`` and only that worker is replaced; a task
past ``timeout`` fails with ``TimeoutExpired`` and only its worker's tree is
ended. When joblib aborts a call (a task raised, or Ctrl+C), the tasks still
running are ended as an ``Executor`` ends them, their trees included, before
the error reaches the caller; the workers serve the next call.

Needs ``goforkpy[joblib]`` (joblib 1.5 or newer).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import sys
import threading

from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase
from joblib.parallel import register_parallel_backend

from . import _checks
from ._executor.executor import Executor, _why
from ._executor.reused import kept
from ._process.platform import usable_cpus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from ._executor.futures import TaskFuture
    from ._process.limits import Limits

__all__ = ["NAME", "GoforkpyBackend", "register", "shutdown"]

NAME = "goforkpy"
ISOLATES = ("worker", "task")
IDLE_SECONDS = 300.0  # workers idle this long leave (loky's default too)


def register(**defaults: Any) -> None:
    """Register the backend ``"goforkpy"`` with joblib, with defaults for its options.

    ``import goforkpy.joblib`` registers it with none. Options given to
    joblib's ``parallel_config(backend="goforkpy", ...)`` win over these.

    Args:
        defaults: ``start``, ``timeout``, ``limits``, ``max_worker_memory``,
            ``isolate``, as ``GoforkpyBackend`` takes them.

    Raises:
        TypeError, ValueError: an unknown option, or a bad value.
    """
    GoforkpyBackend(**defaults)  # the same errors now as at the first Parallel call
    register_parallel_backend(NAME, functools.partial(GoforkpyBackend, **defaults))


def shutdown(wait: bool = True) -> None:
    """End the backend's workers now (else they leave after five idle minutes, or at exit).

    A later ``Parallel`` call starts new ones.
    """
    executors = _executors.get()
    with executors.lock:
        current = list(executors.executors.values())
        executors.executors.clear()
    for executor in current:
        executor.shutdown(wait=wait)


class GoforkpyBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """joblib's backend ``"goforkpy"``: each batch of tasks runs in a goforkpy worker.

    Args:
        start: how workers start: ``"warm"`` (the default: forked from a
            zygote, so a crashed worker is replaced in milliseconds) or
            ``"cold"`` (a fresh interpreter each).
        timeout: seconds each task may run; then it fails with
            ``TimeoutExpired`` and is ended in the Executor's steps
            (``TimeoutExpired`` raised in it, SIGTERM to its worker's tree,
            SIGKILL). Tasks are then sent one at a time, so that the limit
            is each task's.
        limits: a ``fork.Limits`` for every worker.
        max_worker_memory: bytes (or ``"1G"``): a worker whose resident memory
            passed it after a task is replaced.
        isolate: ``"worker"`` (the default), workers reused from task to
            task; ``"task"``, a fresh worker for each batch of tasks.
    """

    supports_retrieve_callback = True  # results, generators and Parallel's timeout
    supports_inner_max_num_threads = True  # parallel_config(inner_max_num_threads=...)

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        *,
        start: str | None = "warm",
        timeout: float | None = None,
        limits: Limits | None = None,
        max_worker_memory: int | str | None = None,
        isolate: str = "worker",
        **unknown: Any,
    ) -> None:
        from ._launch import methods
        from ._process.limits import Limits, parse_size

        if unknown:
            raise TypeError(
                f"the goforkpy joblib backend has no option {', '.join(map(repr, unknown))}; "
                "it takes start, timeout, limits, max_worker_memory and isolate"
            )
        if isolate not in ISOLATES:
            raise ValueError(
                f"isolate={isolate!r}: use 'worker' (workers reused from task to task) or "
                "'task' (a fresh worker for each batch of tasks)"
            )
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits={limits!r}: pass a fork.Limits(...)")
        if max_worker_memory is not None:
            max_worker_memory = parse_size("max_worker_memory", max_worker_memory)
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        self._settings = (
            methods.check(start),
            _checks.seconds("timeout", timeout),
            limits,
            max_worker_memory,
            isolate,
        )
        self._executor: Executor | None = None
        self._running: set[TaskFuture] = set()  # this call's, until done: abort_everything's
        self._lock = threading.Lock()

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """The workers a call gets: ``n_jobs``, counted back from the CPUs if negative."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            return max(usable_cpus() + 1 + n_jobs, 1)
        return n_jobs

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **memmapping: Any,  # loky's arrays in shared memory: goforkpy passes them by pipe
    ) -> int:
        """Take this process's executor of ``n_jobs`` workers; return ``n_jobs``.

        Even one job runs in a worker: isolation is why this backend was
        chosen (loky runs one job in the caller).
        """
        n_jobs = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        # as loky does: each worker's native thread pools (OpenMP, BLAS) share the CPUs
        # with the other workers' instead of each taking them all
        env = self._prepare_worker_env(n_jobs)
        self._executor = _shared_executor(n_jobs, (*self._settings, tuple(sorted(env.items()))))
        return n_jobs

    def compute_batch_size(self) -> int:
        """joblib's auto-batching, or one task per batch where each task has a timeout."""
        if self._settings[1] is not None:
            return 1
        return int(super().compute_batch_size())

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> Any:
        """Run a batch of tasks (``func()``) in a worker; its future."""
        if self._executor is None:
            raise RuntimeError(
                "the goforkpy joblib backend has no workers: it was terminated; use it "
                "through joblib.Parallel, which configures it first"
            )
        limits = (self._settings[1], None)  # (timeout, the Executor's grace)
        future = self._executor._pool.submit(func, [((), {})], True, limits, _named(func))
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._forget)  # a result is not kept past its retrieval
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: cf.Future[Any]) -> Any:
        return future.result()

    def _forget(self, future: Any) -> None:
        with self._lock:
            self._running.discard(future)

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """End this call's tasks: the pending are dropped, the running ended in the
        Executor's steps (``KeyboardInterrupt`` raised in them for Ctrl+C,
        ``CancelledError`` otherwise; SIGTERM to the worker's tree after the grace,
        then SIGKILL), and waited for, so that nothing of them is left when joblib
        raises. The workers stay for the next call."""
        with self._lock:
            futures, self._running = list(self._running), set()
        if self._executor is None or not futures:
            return
        handling = sys.exc_info()[0]  # joblib aborts from inside its except clause
        self._executor._pool.end_running(futures, _why(handling or Exception))
        self._executor._pool.wait_left(futures)

    def terminate(self) -> None:
        """The call is over; the workers stay for the next one (as loky's do)."""
        self._executor = None
        self.reset_batch_stats()


def _named(batch: Any) -> str:
    """A batch as errors name it: ``square via joblib``, ``square via joblib, in a batch
    of 3``."""
    calls = getattr(batch, "items", None)
    if not isinstance(calls, list) or not calls:
        return f"{getattr(batch, '__qualname__', repr(batch))} via joblib"
    names = ", ".join(dict.fromkeys(getattr(fn, "__qualname__", repr(fn)) for fn, _, _ in calls))
    return f"{names} via joblib" + (f", in a batch of {len(calls)}" if len(calls) > 1 else "")


_executors = kept()  # one at a time, by (n_jobs, settings)


def _shared_executor(n_jobs: int, settings: tuple[Any, ...]) -> Executor:
    """The executor for ``n_jobs`` workers with ``settings``: the one made before, if it
    was made alike and still works; otherwise a new one, and the old one shut down."""
    executors = _executors.get()
    key = (n_jobs, settings)
    with executors.lock:
        made = executors.executors.get(key)
        if made is not None and made._pool.usable():
            return made
        for other in executors.executors.values():
            other.shutdown(wait=False)
        executors.executors.clear()
        start, _, limits, memory, isolate, env = settings  # the timeout goes with each task
        executor = Executor(
            n_jobs,
            max_tasks_per_child=1 if isolate == "task" else None,
            start=start,
            limits=limits,
            max_worker_memory=memory,
        )
        executor._pool.idle_timeout = IDLE_SECONDS
        executor._pool.settings.env = dict(env)
        executors.executors[key] = executor
        return executor


register()
