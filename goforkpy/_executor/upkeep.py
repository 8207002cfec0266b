"""Keeping a pool's workers in bounds: running tasks ended in escalating steps (past a
timeout, or when the caller leaves early), idle workers let go, memory caps; and each
answer a worker sends acted on (a result settled into its future).

A mixin of ``pool.Pool``, run on its manager thread like the rest of it.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import marshal
import math
import signal
import threading
import time

from .._errors import PayloadError, TimeoutExpired
from .._shared import protocol
from . import frames
from .futures import TaskFuture, cancel_and_notify, settle
from .worker import TIMED_OUT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .tasks_and_workers import Settings, Task, Worker

_log = logging.getLogger("goforkpy")


class Upkeep:
    """Ending running tasks in steps, idle workers and memory caps (see ``pool.Pool``)."""

    settings: Settings
    idle_timeout: float | None
    _task_timeout: float | None
    _workers: list[Worker]
    _lock: threading.Lock
    _left: threading.Condition

    if TYPE_CHECKING:

        def _flush(self, worker: Worker) -> None: ...
        def _bury(self, worker: Worker, reason: BaseException | None) -> None: ...
        def _begin(self, worker: Worker, task: Task) -> None: ...
        def _break(self, error: BaseException) -> None: ...

    def _expire(self) -> None:
        """Running tasks that must stop, in steps: an exception raised in the task
        (``interrupt``), SIGTERM to its worker's tree after ``grace``, SIGKILL after
        another ``grace`` (a task stuck in C code cannot take the first step). Tasks
        past ``task_timeout`` take the first step here."""
        now = time.monotonic()
        for worker in list(self._workers):
            head = worker.inflight[0] if worker.inflight else None
            if head is None or not head.started:
                continue
            timeout, grace = self._limits_of(head)
            if not head.interrupted:
                if timeout is not None and now - head.started >= timeout:
                    settle(head.future, error=self._timed_out(worker, head))
                    self._interrupt(worker, head, TIMED_OUT)
            elif not head.terminated and now - head.interrupted >= grace:
                head.terminated = now
                worker.child.send_signal(signal.SIGTERM)
            elif head.terminated and now - head.terminated >= grace:
                self._bury(worker, None)

    def _stop_running(self, future: TaskFuture, why: bytes) -> None:
        for worker in self._workers:
            head = worker.inflight[0] if worker.inflight else None
            if head is not None and head.future is future and head.started:
                cancel_and_notify(future, kill=False)
                self._interrupt(worker, head, why)

    def _end_all_workers(self, grace: float, why: bytes | None, sig: int) -> None:
        """End every worker: the running tasks in steps (``abort``), all at once; the
        idle workers' trees at once. Their tasks are cancelled. Without ``why``, no
        exception is raised in the tasks: ``sig`` to every tree, SIGKILL after ``grace``
        (``Executor.terminate_workers`` and ``kill_workers``)."""
        from .._process.tree import end_handles

        busy, idle = [], []
        held: list[Task] = []
        for worker in self._workers:
            head = worker.inflight[0] if worker.inflight and worker.up else None
            if why is not None and head is not None and head.started:
                self._interrupt(worker, head, why)
                busy.append(worker)
            else:
                idle.append(worker)
            for task in worker.inflight:
                cancel_and_notify(task.future, kill=False)
            held += worker.inflight
            worker.inflight.clear()
        end_handles([worker.child for worker in idle], sig, grace)
        deadline = time.monotonic() + grace  # the tasks' finally blocks run meanwhile
        for worker in busy:
            try:
                worker.child.wait(max(0.0, deadline - time.monotonic()))
            except TimeoutExpired:
                pass
        end_handles([worker.child for worker in busy], signal.SIGTERM, grace)
        for worker in list(self._workers):
            self._bury(worker, cf.CancelledError())
        self._gone_from_workers(held)

    def wait_left(self, futures: list[TaskFuture]) -> None:
        """Wait until no worker runs or holds the tasks of ``futures`` any more: each was
        answered (a stopped task's worker first ends what it started), its worker is
        dead, or it was dropped before it started (from any thread)."""
        with self._left:
            self._left.wait_for(lambda: all(future.left for future in futures))

    def _gone_from_workers(self, tasks: list[Task]) -> None:
        if tasks:
            with self._left:
                for task in tasks:
                    task.future.left = True
                self._left.notify_all()

    def _kill_running(self, future: TaskFuture) -> None:
        for worker in list(self._workers):
            if worker.inflight and worker.inflight[0].future is future:
                self._bury(worker, cf.CancelledError())

    def _retire_idle(self) -> None:
        """Workers out of work for ``idle_timeout`` seconds leave (a pool that is kept
        for the process's life holds no process while nothing runs)."""
        if self.idle_timeout is None:
            return
        now = time.monotonic()
        for worker in self._workers:
            idle = worker.idle_since and not worker.inflight and not worker.retiring
            if idle and now - worker.idle_since >= self.idle_timeout:
                worker.retiring = True
                worker.outgoing.append(memoryview(frames.frame(frames.QUIT, 0, b"")))
                self._flush(worker)

    def _interrupt(self, worker: Worker, task: Task, why: bytes) -> None:
        """The first step of ending a running task: raise in it what ``why`` names. Once
        only: a second exception would land in the task's own ``finally``.

        But for a timeout, the worker leaves after the task: it takes no more (it says
        so with its answer, the tasks sent ahead go elsewhere), and a QUIT follows, for a
        worker whose task ended as the interrupt came (idle, it would wait for work)."""
        if not task.interrupted:
            task.interrupted = time.monotonic()
            worker.interrupt(why, task.id)
            if why != TIMED_OUT:
                worker.retiring = True
                worker.outgoing.append(memoryview(frames.frame(frames.QUIT, 0, b"")))
                self._flush(worker)

    def _limits_of(self, task: Task) -> tuple[float | None, float]:
        """(timeout, grace) of ``task``: its own where it has them, else the pool's."""
        timeout = self._task_timeout if task.timeout is None else task.timeout
        return timeout, self.settings.grace if task.grace is None else task.grace

    def _timed_out(self, worker: Worker, task: Task) -> TimeoutExpired:
        _log.debug("task %s ran past its timeout in worker %d", task.fn_name, worker.child.pid)
        timeout, grace = self._limits_of(task)
        which = "task_timeout" if task.timeout is None else "timeout"
        return TimeoutExpired(
            f"task {task.fn_name} ran past {which}={timeout} s; TimeoutExpired "
            f"was raised in it, and its worker (pid {worker.child.pid}) is ended if it does "
            f"not stop within grace={grace} s",
            timeout=timeout,
            pid=worker.child.pid,
            name=task.fn_name,
        )

    def _next_deadline(self) -> float | None:
        moments = []
        for worker in self._workers:
            if self.idle_timeout is not None and worker.idle_since and not worker.inflight:
                moments.append(worker.idle_since + self.idle_timeout)
            head = worker.inflight[0] if worker.inflight and worker.up else None
            if head is None or not head.started:
                continue
            timeout, grace = self._limits_of(head)
            if head.terminated:
                moments.append(head.terminated + grace)
            elif head.interrupted:
                moments.append(head.interrupted + grace)
            elif timeout is not None:
                moments.append(head.started + timeout)
        moments = [moment for moment in moments if moment != math.inf]  # grace: no limit
        return max(0.0, min(moments) - time.monotonic()) if moments else None

    def _answer(self, worker: Worker, kind: bytes, task_id: int, body: bytearray) -> None:
        if kind == frames.INIT_FAILED:
            error = self._rebuilt("the initializer", body)
            self._break(error)
            return
        if kind == frames.STARTED:
            worker.up = True
            if worker.inflight:
                worker.inflight[0].started = time.monotonic()
            else:
                worker.idle_since = time.monotonic()
            return
        if kind == frames.LEAVING:  # what its task left retires it: the rest go elsewhere
            worker.retiring = worker.leaving = True
            _log.debug("worker %d retires: %s", worker.child.pid, bytes(body).decode())
            return
        if kind == frames.OUTPUT:
            out, err = self._output(body)
            head = worker.inflight[0].future
            head.stdout, head.stderr = (b.decode("utf-8", "replace") for b in (out, err))
            return
        task = worker.inflight.popleft()
        self._gone_from_workers([task])
        now = time.monotonic()
        worker.pace = 0.8 * worker.pace + 0.2 * (now - max(task.started, worker.last_result))
        worker.last_result = now
        if worker.inflight and not worker.leaving:
            self._begin(worker, worker.inflight[0])
        else:
            worker.idle_since = now
        if not task.future.cancelled():
            self._settle(worker, task, kind == frames.RESULT, body)
            self._recycle_if_big(worker)

    def _settle(self, worker: Worker, task: Task, returned: bool, body: bytearray) -> None:
        """Settle ``task``'s future from its worker's answer: what it returned, or raised."""
        try:
            loaded = self.settings.decode(body)
            raised = None if returned else self._rebuilt(task.fn_name, loaded)
            if returned and not isinstance(loaded, list):
                raise PayloadError("is not a list of results")
        except BaseException as exc:  # its own unpickling code raised: that task fails alone
            settle(task.future, error=protocol.unloadable(task.fn_name, exc))
            return
        if raised is None:  # not `not raised`: an exception may be falsey (its __bool__)
            settle(task.future, value=loaded[0] if task.future.single else loaded)
            return
        from .ppe_errors import with_remote_traceback

        error = self._memory_limit(worker, task, raised)
        settle(task.future, error=with_remote_traceback(error))

    def _rebuilt(self, name: str, record: Any) -> BaseException:
        """The exception a worker's error record describes (``SandboxedError`` from a
        sandboxed worker: its record is plain text, never an object)."""
        if isinstance(record, (bytes, bytearray)):
            record = self.settings.decode(record)
        if self.settings.sandbox is None:
            return protocol.rebuild_exception(name, *record)
        from .._errors import RemoteTraceback, SandboxedError

        if not (isinstance(record, tuple) and len(record) == 4):
            raise PayloadError("is not an error record")
        _, type_name, message, text = (str(field) for field in record)
        error = SandboxedError(message, type_name=type_name, remote_traceback=text)
        error.__cause__ = RemoteTraceback(text)
        return error

    def _output(self, body: bytearray) -> tuple[bytes, bytes]:
        """What a task wrote to fds 1 and 2 (plain data from a sandboxed worker)."""
        if self.settings.sandbox is None:
            return marshal.loads(body)  # type: ignore[no-any-return]
        out, err = self.settings.decode(body)
        if not (isinstance(out, bytes) and isinstance(err, bytes)):
            raise PayloadError("is not a task's output")
        return out, err

    def _memory_limit(self, worker: Worker, task: Task, error: BaseException) -> BaseException:
        """A MemoryError under the workers' ``Limits(memory=...)``: say it is the limit."""
        limit = getattr(self.settings.limits, "memory", None)
        if limit is None or not isinstance(error, MemoryError):
            return error
        from .._process.limits import describe_size

        crashed = protocol.crashed(
            f"task {task.fn_name} ran out of memory in its worker (pid {worker.child.pid}) "
            f"under fork.Limits(memory={describe_size(limit)!r}); raise the limit if it "
            "needs more",
            name=task.fn_name,
            pid=worker.child.pid,
            returncode=None,
            reason="memory-limit",
        )
        crashed.__cause__ = error
        _log.info("%s", crashed)  # the caller is told: an outcome, not a warning
        return crashed

    def _recycle_if_big(self, worker: Worker) -> None:
        """After a task: a worker past ``max_worker_memory`` leaves, a fresh one follows."""
        limit = self.settings.max_memory
        if limit is None or worker.retiring:
            return
        from .._process.platform import resident_bytes

        resident = resident_bytes(worker.child.pid)
        if resident is not None and resident > limit:
            worker.retiring = True
            worker.outgoing.append(memoryview(frames.frame(frames.QUIT, 0, b"")))
            self._flush(worker)
            _log.debug(
                "worker %d leaves: resident memory %d bytes passed max_worker_memory=%d",
                worker.child.pid,
                resident,
                limit,
            )


def past_max_result(size: int, settings: Settings) -> PayloadError:
    """A sandboxed worker sent ``size`` bytes, past what its Sandbox takes: it is ended."""
    limit = settings.sandbox.max_result if settings.sandbox is not None else 0
    return PayloadError(
        f"a sandboxed worker sent {size} bytes, past the sandbox's max_result={limit}: "
        "refused unread, and the worker ended"
    )
