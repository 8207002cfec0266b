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

from joblib.parallel import AutoBatchingMixin, ParallelBackendBase, register_parallel_backend

from . import _checks
from ._executor import kept
from ._process.platform import usable_cpus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from ._executor.executor import Executor
    from ._executor.futures import TaskFuture
    from ._process.limits import Limits
    from ._sandbox.policy import Sandbox

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
            ``isolate``, ``sandbox``, as ``GoforkpyBackend`` takes them.

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
        sandbox: a ``fork.Sandbox`` every worker runs in (see
            ``fork.Executor``); the tasks' results come back as plain data.
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
        sandbox: Sandbox | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise _unknown(set(unknown))
        given = {
            "start": start,
            "timeout": timeout,
            "limits": limits,
            "isolate": isolate,
            "sandbox": sandbox,
        }
        # the same errors here as in configure()
        self._options = _checked({**given, "max_worker_memory": max_worker_memory})
        self._settings = tuple(self._options[name] for name in _OPTIONS)
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        self._executor: Executor | None = None
        self._key: Any = None  # the kept executor this call uses, until terminate()
        self._running: set[TaskFuture] = set()  # this call's, until done: abort_everything's
        self._lock = threading.Lock()

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """The workers a call gets: ``n_jobs``, counted back from the CPUs if negative.
        One job is still a worker (see ``_OneJob``)."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            n_jobs = 1
        elif n_jobs < 0:
            n_jobs = max(usable_cpus() + 1 + n_jobs, 1)
        return _OneJob(1) if n_jobs == 1 else n_jobs

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Take an executor of ``n_jobs`` workers for this call; return ``n_jobs``.

        Even one job runs in a worker: isolation is why this backend was
        chosen (loky runs one job in the caller). ``kwargs`` are joblib's own
        (loky's arrays in shared memory, which goforkpy passes by pipe instead)
        and the backend's options given to ``Parallel(backend="goforkpy",
        ...)``, checked as ``parallel_config``'s are.
        """
        unknown = set(kwargs) - set(_JOBLIBS) - set(_OPTIONS)
        if unknown:
            raise _unknown(unknown)
        given = {name: value for name, value in kwargs.items() if name in _OPTIONS}
        settings = _checked({**self._options, **given}) if given else self._options
        n_jobs = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        # as loky does: each worker's native thread pools (OpenMP, BLAS) share the CPUs
        # with the other workers' instead of each taking them all
        env = self._prepare_worker_env(int(n_jobs))
        self._settings = tuple(settings[name] for name in _OPTIONS)
        self._release()  # a backend configured again (joblib's managed Parallel) lets go first
        # the timeout is each task's: calls that differ only in it share the workers
        of_workers = tuple(None if name == "timeout" else settings[name] for name in _OPTIONS)
        self._key = (int(n_jobs), (*of_workers, tuple(sorted(env.items()))))
        self._executor = _acquire(self._key)
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
        future = kept.submit(self._executor, func, (), {}, limits, _named(func))
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
        kept.end(self._executor, futures, handling or Exception)

    def terminate(self) -> None:
        """The call is over; the workers stay for the next one (as loky's do)."""
        self._executor = None
        self._release()
        self.reset_batch_stats()

    def _release(self) -> None:
        if self._key is not None:
            _release(self._key)
            self._key = None


class _OneJob(int):
    """One job, run in a worker. joblib runs a call in its own caller, unisolated, when
    its backend says the call has one job (``n_jobs == 1``): this 1 is unequal to 1,
    and 1 in everything else."""

    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self

    __hash__ = int.__hash__


_OPTIONS = ("start", "timeout", "limits", "max_worker_memory", "isolate", "sandbox")
_DEFAULTS = {
    "start": "warm",
    "timeout": None,
    "limits": None,
    "max_worker_memory": None,
    "sandbox": None,
}
# what joblib's Parallel passes every backend's configure()
_JOBLIBS = ("max_nbytes", "temp_folder", "mmap_mode", "verbose", "context")


def _unknown(names: set[str]) -> TypeError:
    return TypeError(
        f"the goforkpy joblib backend has no option {', '.join(map(repr, sorted(names)))}; "
        "it takes start, timeout, limits, max_worker_memory, isolate and sandbox"
    )


def _checked(options: dict[str, Any]) -> dict[str, Any]:
    """The backend's options, each checked, with the defaults for those not given."""
    from ._launch import methods
    from ._process.limits import Limits, parse_size

    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise _unknown(unknown)
    options = {**_DEFAULTS, "isolate": "worker", **options}
    if options["isolate"] not in ISOLATES:
        raise ValueError(
            f"isolate={options['isolate']!r}: use 'worker' (workers reused from task to "
            "task) or 'task' (a fresh worker for each batch of tasks)"
        )
    limits = options["limits"]
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"limits={limits!r}: pass a fork.Limits(...)")
    if options["max_worker_memory"] is not None:
        options["max_worker_memory"] = parse_size("max_worker_memory", options["max_worker_memory"])
    options["start"] = methods.check(options["start"])
    options["timeout"] = _checks.seconds("timeout", options["timeout"])
    if options["sandbox"] is not None:
        from ._sandbox.policy import check

        options["sandbox"] = check(options["sandbox"])
    return options


def _named(batch: Any) -> str:
    """A batch as errors name it: ``square via joblib``, ``square via joblib, in a batch
    of 3``."""
    calls = getattr(batch, "items", None)
    if not isinstance(calls, list) or not calls:
        return f"{getattr(batch, '__qualname__', repr(batch))} via joblib"
    names = ", ".join(dict.fromkeys(getattr(fn, "__qualname__", repr(fn)) for fn, _, _ in calls))
    return f"{names} via joblib" + (f", in a batch of {len(calls)}" if len(calls) > 1 else "")


_executors = kept.kept()  # by (n_jobs, settings): those in use, and the last used


def _acquire(key: tuple[int, tuple[Any, ...]]) -> Executor:
    """The executor for ``key``'s ``n_jobs`` workers and settings, for one call: the one
    made before, if it was made alike and still works, else a new one. Those no call
    uses any more, but this one, are shut down; calls from several threads with other
    settings keep theirs until they end."""
    executors = _executors.get()
    with executors.lock:
        made = executors.executors.get(key)
        if made is None or not kept.usable(made):
            made = executors.executors[key] = _new_executor(*key)
        executors.users[key] = executors.users.get(key, 0) + 1
        users = executors.users
        idle = [other for other in executors.executors if other != key and not users.get(other)]
        unused = [executors.executors.pop(other) for other in idle]
    for executor in unused:
        executor.shutdown(wait=False)
    return made


def _release(key: tuple[int, tuple[Any, ...]]) -> None:
    executors = _executors.get()
    with executors.lock:
        users = executors.users.pop(key, 0) - 1
        if users > 0:
            executors.users[key] = users


def _new_executor(n_jobs: int, settings: tuple[Any, ...]) -> Executor:
    start, _, limits, memory, isolate, sandbox, env = settings  # (the timeout is each task's)
    workers_env = dict(env)
    if sandbox is not None:  # joblib's semaphore check needs /dev/shm: say it has none
        workers_env["JOBLIB_MULTIPROCESSING"] = "0"
    return kept.make(
        n_jobs,
        IDLE_SECONDS,
        workers_env,
        max_tasks_per_child=1 if isolate == "task" else None,
        start=start,
        limits=limits,
        max_worker_memory=memory,
        sandbox=sandbox,
    )


register()
