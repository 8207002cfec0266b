"""``fork.Executor``: a ``concurrent.futures.Executor`` whose workers are goforkpy children.

The public class is thin; the work happens in ``pool.Pool``, run by one manager
thread. The pool owns no reference to the Executor, so an
executor dropped without ``shutdown()`` is shut down by its finalizer.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import itertools
import signal
import threading
import time
import weakref

from .. import _checks
from .._errors import TimeoutExpired
from .._shared import registry
from . import worker
from .futures import TaskFuture
from .pool import Pool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, Union

    from .._process.limits import Limits
    from .._sandbox.policy import Sandbox

    Progress = Union[bool, Callable[[int, Any], None]]  # (done, total: None if unknown)


class Executor(cf.Executor):
    """Run calls in a pool of goforkpy worker processes.

    A ``concurrent.futures.Executor``: ``submit``, ``map``, ``shutdown`` and the
    context manager behave as with ``ProcessPoolExecutor``, and more robustly:
    a worker that crashes (segfault, ``os._exit``, SIGKILL) fails only the
    future of the task it was running, with ``ChildCrashed``, and is replaced;
    ``task_timeout`` kills a task's worker and fails it with ``TimeoutExpired``;
    ``future.cancel()`` on a running task kills it and returns True.

    Args:
        max_workers: worker processes at most (default: the CPUs this process
            may use). Workers start lazily, as work arrives.
        max_tasks_per_child: replace a worker after this many tasks.
        task_timeout: seconds a task may run before its worker is killed.
        initializer: called in each worker before its first task.
        initargs: arguments for ``initializer``.
        grace: seconds between SIGTERM and SIGKILL when running workers are
            ended (leaving a ``with`` block by an exception).
        start: how workers start, ``"cold"`` or ``"warm"`` (default: the
            start method, see ``fork.set_start_method``). Warm workers fork
            from a zygote, so a crashed worker is replaced in milliseconds.
        limits: a ``fork.Limits`` for every worker (``cpu_seconds`` counts
            over a worker's life, not per task). A task that runs out of
            memory under it fails with ``ChildCrashed(reason="memory-limit")``.
        max_worker_memory: bytes (or a size such as ``"1G"``): a worker whose
            resident memory passed it after a task leaves, and a fresh one
            takes its place.
        capture_output: give each finished future ``.stdout`` and ``.stderr``
            (str): what its own task printed, C extensions' output included.
        mp_context: as for ``ProcessPoolExecutor``, a multiprocessing context or
            its name: ``"spawn"`` starts workers cold, ``"forkserver"`` warm,
            ``"fork"`` as snapshots of this process (made from the pool's
            thread; a task in such a worker cannot start goforkpy children,
            and, as with ``ProcessPoolExecutor``'s fork context, must keep
            away from locks the program's other threads may hold).
        sandbox: a ``fork.Sandbox`` every worker enters before its first task
            and keeps for its whole life; results come back as plain data,
            an exception as ``fork.SandboxedError``. ``SandboxUnavailable``
            where this machine cannot enforce it.

    Leaving a ``with`` block normally waits for the submitted work, as
    ``ProcessPoolExecutor`` does. Leaving it by an exception (Ctrl+C's
    ``KeyboardInterrupt`` included) cancels what is pending and terminates
    the running workers' process trees (SIGTERM, ``grace``, SIGKILL) at once.

    ``fn`` may be a registered name, a registered function or any callable
    cloudpickle can carry (lambdas and closures included). Workers start from
    goforkpy's own entry point; functions from the main script travel by value.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        grace: float = 5.0,
        start: str | None = None,
        limits: Limits | None = None,
        max_worker_memory: int | str | None = None,
        capture_output: bool = False,
        mp_context: Any = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        from .._launch import methods
        from .._process.limits import Limits, parse_size
        from .._process.platform import usable_cpus
        from .tasks_and_workers import Settings

        if max_workers is None:
            max_workers = usable_cpus()
        _check_positive("max_workers", max_workers, int)
        if max_tasks_per_child is not None:
            _check_positive("max_tasks_per_child", max_tasks_per_child, int)
        task_timeout = _checks.seconds("task_timeout", task_timeout)
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, not {initializer!r}")
        self._grace = _checks.grace(grace)
        self._max_workers = max_workers
        start = _start_of_context(mp_context, methods.check(start))
        settings = Settings(start, limits, None, bool(capture_output), self._grace)
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits={limits!r}: pass a fork.Limits(...)")
        if max_worker_memory is not None:
            settings.max_memory = parse_size("max_worker_memory", max_worker_memory)
        if sandbox is not None:
            from .._launch.record import Options
            from .._sandbox.policy import require

            settings.sandbox = Options(start=start, sandbox=sandbox).sandbox
            require(sandbox, bool(sandbox.connect))  # at once, not at the first task
        self._pool = Pool(max_workers, max_tasks_per_child, task_timeout, initializer, initargs)
        self._pool.settings = settings
        self._finalizer = weakref.finalize(self, self._pool.shutdown, False, False)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; return its Future.

        Raises:
            RuntimeError: the executor was shut down.
            concurrent.futures.BrokenExecutor: a worker's initializer failed.
            RegistryError: ``fn`` is a name nobody registered.
        """
        return self._pool.submit(_resolve(fn), [(args, kwargs)], single=True)

    def map(
        self,
        fn: Any,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        progress: Progress = False,
        buffersize: int | None = None,
    ) -> Iterator[Any]:
        """``map(fn, *iterables)`` in the workers; results lazily, in order.

        Args:
            fn: as for ``submit``.
            iterables: argument sources, consumed at once (as the stdlib does),
                or lazily with ``buffersize``.
            timeout: seconds, from this call, that the iteration may take.
            chunksize: calls sent to a worker together.
            progress: ``True`` for a progress bar (needs ``goforkpy[progress]``),
                or a callable ``progress(done, total)`` called as items finish
                (``total`` is ``None`` with ``buffersize``: not known ahead).
            buffersize: as in Python 3.14: at most this many chunks submitted
                and not yet yielded; the iterables are read as results are
                taken, so they may be endless.

        Raises:
            TimeoutExpired: (while iterating) ``timeout`` passed.
        """
        _check_positive("chunksize", chunksize, int)
        if buffersize is not None:
            _check_buffersize(buffersize)
        target = _resolve(fn)
        chunks = _chunks(zip(*iterables, strict=False), chunksize)
        total = None
        if buffersize is None:
            listed = list(chunks)  # consumed now, as the stdlib does
            total, chunks = sum(len(chunk) for chunk in listed), iter(listed)
        report = _progress_reporter(progress, total)
        limit = _checks.seconds("timeout", timeout)
        deadline = None if limit is None else time.monotonic() + limit

        def submit(chunk: list[Any]) -> TaskFuture:
            future = self._pool.submit(target, chunk, single=False)
            if report is not None:
                future.add_done_callback(report)
            return future

        ahead = itertools.islice(chunks, buffersize)  # every chunk, without a buffer
        futures = collections.deque(submit(chunk) for chunk in ahead)
        more = None if buffersize is None else (submit(chunk) for chunk in chunks)
        return _results_in_order(futures, more, deadline, timeout, self._pool.end_running)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; with ``wait``, return once every worker is gone.

        Pending calls still run unless ``cancel_futures``. Workers that do not
        stop when asked are killed: shutdown never hangs on a stuck worker
        once its task is done (or its ``task_timeout`` has passed).
        """
        self._pool.shutdown(wait, cancel_futures)

    def terminate_workers(self) -> None:
        """End every worker's process tree now (SIGTERM, SIGKILL after ``grace``), as
        Python 3.14's ``ProcessPoolExecutor`` does: the pending and running futures are
        cancelled, and the executor is shut down."""
        self._pool.abort(self._grace, None)

    def kill_workers(self) -> None:
        """As ``terminate_workers``, with SIGKILL at once."""
        self._pool.abort(0.0, None, signal.SIGKILL)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Leaving the block: on an exception, the running tasks end as ``map`` says."""
        if exc_type is None:
            self.shutdown(wait=True)
        else:
            self._pool.abort(self._grace, _why(exc_type))

    def __repr__(self) -> str:
        return f"<goforkpy.Executor max_workers={self._max_workers} {self._pool.describe()}>"


_CONTEXTS = {"spawn": "cold", "forkserver": "warm", "fork": "snapshot"}


def _start_of_context(context: Any, start: str | None) -> str | None:
    """The start method ``mp_context`` stands for (``start`` where it is ``None``)."""
    if context is None:
        return start
    name = context if isinstance(context, str) else getattr(context, "get_start_method", str)()
    method = _CONTEXTS.get(name)
    if method is None:
        raise ValueError(
            f"mp_context={context!r}: pass 'spawn', 'forkserver' or 'fork' (or "
            "multiprocessing.get_context(...) of one), or start='cold'/'warm'"
        )
    if start is not None and start != method:
        raise ValueError(
            f"mp_context={name!r} starts workers {method}, but start={start!r}: pass one of the two"
        )
    return method


def _resolve(fn: Any) -> Callable[..., Any]:
    if isinstance(fn, str):
        return registry.lookup(fn)
    if not callable(fn):
        raise TypeError(f"Executor needs a callable or a registered name, not {fn!r}")
    return fn  # type: ignore[no-any-return]


def _check_positive(name: str, value: Any, kind: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"{name} must be greater than 0, not {value!r}")


def _check_buffersize(buffersize: Any) -> None:
    """As Python 3.14's ``map`` checks it, with the value named."""
    if isinstance(buffersize, bool) or not isinstance(buffersize, int):
        raise TypeError(f"buffersize must be an integer or None, not {buffersize!r}")
    if buffersize < 1:
        raise ValueError(f"buffersize must be None or > 0, not {buffersize}")


class _MapTimeout(TimeoutExpired, cf.TimeoutError):  # type: ignore[misc,unused-ignore]
    """What ``map`` raises on timeout: also ``concurrent.futures.TimeoutError``,
    which before Python 3.11 is not the built-in ``TimeoutError``."""


def _chunks(calls: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[Any]]:
    """``calls`` (argument tuples) in lists of ``size`` ``(args, kwargs)`` pairs."""
    while True:
        chunk: list[Any] = [(args, {}) for args in itertools.islice(calls, size)]
        if not chunk:
            return
        yield chunk


def _results_in_order(
    futures: collections.deque[TaskFuture],
    more: Iterator[TaskFuture] | None,
    deadline: float | None,
    timeout: float | None,
    end: Callable[[list[TaskFuture], bytes], None],
) -> Iterator[Any]:
    """Yield each chunk's results in order; each one taken, submit the next of ``more``.

    Left early (an error, ``break``, ``close()``, Ctrl+C, the timeout), ``end``
    cancels what is pending and ends what runs: KeyboardInterrupt raised in
    the tasks for Ctrl+C, CancelledError otherwise; then SIGTERM, SIGKILL.
    """
    why = worker.CANCELLED
    try:
        while futures:
            future = futures[0]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                chunk = future.result(left)
            except cf.TimeoutError:
                raise _MapTimeout(
                    f"map() results not ready within {timeout} s", timeout=timeout
                ) from None
            futures.popleft()
            del future  # it holds the chunk: hand results over without keeping them alive
            for next_one in itertools.islice(more or (), 1):
                futures.append(next_one)
            chunk.reverse()
            while chunk:
                yield chunk.pop()
    except KeyboardInterrupt:
        why = worker.CTRL_C
        raise
    finally:
        if futures:
            end(list(futures), why)


def _why(exc_type: type[BaseException]) -> bytes:
    """What a running task is told when the caller leaves early by ``exc_type``."""
    return worker.CTRL_C if issubclass(exc_type, KeyboardInterrupt) else worker.CANCELLED


def _progress_reporter(
    progress: Progress, total: int | None
) -> Callable[[cf.Future[Any]], None] | None:
    if progress is False:
        return None
    if callable(progress):
        report: Callable[[int, Any], None] = progress
    else:
        report = _progress_bar(total)
    lock = threading.Lock()
    finished = [0]

    def on_done(future: cf.Future[Any]) -> None:
        with lock:
            finished[0] += getattr(future, "size", 1)
            report(finished[0], total)

    return on_done


def _progress_bar(total: int | None) -> Callable[[int, Any], None]:
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ImportError(
            "map(..., progress=True) shows a tqdm progress bar; install it with "
            "pip install 'goforkpy[progress]' (or pass progress=callable(done, total))"
        ) from None
    bar = tqdm(total=total)

    def report(done: int, total: int | None) -> None:
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return report
