"""The executor's engine: worker processes, task dispatch, crashes, timeouts.

One manager thread owns the workers. It sends each worker a few tasks ahead
(more when tasks are tiny, so a worker never idles for a round trip), reads
results from all sockets with one selector, and completes futures outside any
lock, so a done-callback may submit or shut down. A task starts *running* when
its worker reaches it; ``cancel()`` on a running task, a ``task_timeout`` or a
crash ends that worker only: its head task fails, the tasks sent ahead are
requeued, and a new worker starts when work needs one.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import itertools
import logging
import os
import selectors
import signal
import threading
import time
import weakref

from .._errors import TimeoutExpired
from .._process import quiet
from .._shared import wire
from . import frames
from .between import task_body
from .futures import TaskFuture, broken_error, settle
from .tasks_and_workers import Settings, Task, Worker, stop_all
from .upkeep import Upkeep, past_max_result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


_running: weakref.WeakSet[Pool] = weakref.WeakSet()
_log = logging.getLogger("goforkpy")


def _finish_at_exit() -> None:
    """At interpreter exit, finish the work already submitted, as ProcessPoolExecutor does."""
    for pool in list(_running):
        pool.shutdown(wait=True, cancel_futures=False)


# The stdlib's own hook for this (concurrent.futures uses it): it runs before
# atexit handlers, so before goforkpy's own exit handling ends the workers.
threading._register_atexit(_finish_at_exit)  # type: ignore[attr-defined]


class Pool(Upkeep):
    """Workers and the manager thread behind one ``fork.Executor``."""

    def __init__(
        self,
        max_workers: int,
        max_tasks_per_child: int | None,
        task_timeout: float | None,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        self._max_workers, self._max_tasks = max_workers, max_tasks_per_child
        self.settings = Settings()  # how workers start and are kept
        self._task_timeout = task_timeout
        self._init = (
            None
            if initializer is None
            else wire.dumps((initializer, tuple(initargs)), main_is_shared=False)
        )
        self._lock = threading.Lock()
        self._left = threading.Condition(self._lock)  # a task left its worker (wait_left)
        self._pending: collections.deque[Task] = collections.deque()
        self._ids = itertools.count(1)
        self._shutdown = self._cancel_pending = False
        # (grace, why, signal): end the running tasks too (see Upkeep._end_all_workers)
        self._abort: tuple[float, bytes | None, int] | None = None
        self.idle_timeout: float | None = None  # set: workers idle this long leave
        self._broken: BaseException | None = None
        self._kills: list[TaskFuture] = []
        self._stops: list[tuple[TaskFuture, bytes]] = []  # running tasks to end in steps
        self._exited: list[Worker] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._woken = False  # a byte waits in the wake pipe: no need for another
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._workers: list[Worker] = []  # the manager thread's alone

    # --- called from any thread ---------------------------------------------------

    def submit(
        self,
        fn: Callable[..., Any],
        calls: list[Any],
        single: bool,
        limits: tuple[float | None, float | None] = (None, None),
        name: str | None = None,
    ) -> TaskFuture:
        """Queue ``fn`` over ``calls`` ((args, kwargs) pairs): one result if ``single``.

        ``limits`` (timeout, grace), where given, replace the pool's for this task;
        ``name`` is the task's in errors (default: ``fn``'s qualified name).
        """
        name = name or str(getattr(fn, "__qualname__", None) or repr(fn))
        body = task_body(name, fn, calls, limits[1])
        future = TaskFuture(len(calls), single)
        with self._lock:
            if self._broken is not None:
                raise broken_error(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.append(Task(next(self._ids), future, body, name, limits))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="goforkpy-executor", daemon=True
                )
                quiet.start(self._thread.start)
                _running.add(self)
        self._wake()
        return future

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self._lock:
            self._shutdown = True
            self._cancel_pending = self._cancel_pending or cancel_futures
            thread = self._thread
        self._wake()
        if thread is None:
            self._close_wake()  # no manager thread ever started to do it
        elif wait and thread is not threading.current_thread():
            thread.join()

    def abort(self, grace: float, why: bytes | None, sig: int = signal.SIGTERM) -> None:
        """Cancel what is pending, end the running tasks in steps (the exception ``why``
        names raised in each, SIGTERM to its worker's tree after ``grace``, SIGKILL after
        another; without ``why``, ``sig`` at once), end the idle workers, and wait for
        the end."""
        with self._lock:
            self._abort = (grace, why, sig)
        self.shutdown(wait=True, cancel_futures=True)

    def end_running(self, futures: list[TaskFuture], why: bytes) -> None:
        """Cancel ``futures``: the pending ones at once, the running ones in steps (see
        ``abort``); the pool goes on."""
        # Future.cancel cancels only what has not started (TaskFuture's would kill the rest)
        running = [f for f in futures if not cf.Future.cancel(f) and not f.done()]
        if running:
            with self._lock:
                self._stops += [(future, why) for future in running]
            self._wake()

    def usable(self) -> bool:
        """True while it takes work: neither shut down nor broken."""
        with self._lock:
            return not self._shutdown and self._broken is None

    def describe(self) -> str:
        with self._lock:
            state = "shut down" if self._shutdown else "broken" if self._broken else "running"
            return f"{state}, {len(self._pending)} queued"

    def _wake(self) -> None:
        """Wake the manager thread, once until it has woken: 10,000 submits at once
        write one byte, not 10,000."""
        with self._lock:  # never write to a closed, perhaps reused, descriptor
            if self._wake_w < 0 or self._woken:
                return
            self._woken = True
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # full of wake-ups already

    def _close_wake(self) -> None:
        with self._lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _request_kill(self, future: TaskFuture) -> None:
        with self._lock:
            self._kills.append(future)
        self._wake()

    def _note_exit(self, worker: Worker) -> None:
        with self._lock:
            self._exited.append(worker)
        self._wake()

    # --- the manager thread -----------------------------------------------------------

    def _run(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave futures hanging forever
            self._break(exc)
        finally:
            self._stop_workers()
            self._selector.close()
            self._close_wake()

    def _step(self) -> bool:
        """One turn of the manager thread: what was asked meanwhile, then new work, then
        a wait for the workers; False once the pool is done."""
        self._take_requests()
        if self._abort is not None:
            self._end_all_workers(*self._abort)
            return False
        self._expire()
        self._retire_idle()
        if self._broken is not None or self._finished():
            return False
        self._start_workers()
        self._dispatch()
        if self._finished():  # the dispatch dropped the last (cancelled) tasks
            return False
        for key, events in self._selector.select(self._next_deadline()):
            if key.data is None:
                frames.drain(self._wake_r)
                with self._lock:  # what is asked from here on wakes us again (what was
                    self._woken = False  # asked before, the next turn takes)
                continue
            worker = key.data
            if events & selectors.EVENT_WRITE:
                self._flush(worker)
            if events & selectors.EVENT_READ:
                self._receive(worker)
        return True

    def _take_requests(self) -> None:
        """Act on what other threads asked since the last turn: cancelled tasks, workers
        that exited, tasks to kill or stop."""
        with self._lock:
            exited, self._exited = self._exited, []
            kills, self._kills = self._kills, []
            stops, self._stops = self._stops, []
            if self._cancel_pending:
                cancelled, self._pending = list(self._pending), collections.deque()
            else:
                cancelled = []
        for future in (task.future for task in cancelled):
            if future.cancel():
                future.set_running_or_notify_cancel()
        self._gone_from_workers(cancelled)
        if kills or stops or self._abort is not None:
            for worker in list(self._workers):  # first what they said meanwhile: a task
                self._receive(worker)  # that started is stopped in steps, not killed as idle
        for worker in exited:
            self._bury(worker, None)
        for future in kills:
            self._kill_running(future)
        for future, why in stops:
            self._stop_running(future, why)

    def _finished(self) -> bool:
        """Shut down, with nothing pending or running: the manager thread may end."""
        with self._lock:
            idle = self._shutdown and not self._pending and self._broken is None
        return idle and not any(worker.inflight for worker in self._workers)

    def _start_workers(self) -> None:
        with self._lock:
            wanted = len(self._pending)
        live = [w for w in self._workers if not w.retiring]
        idle = sum(1 for w in live if not w.inflight)
        for _ in range(min(self._max_workers - len(live), wanted - idle)):
            self._workers.append(self._spawn())

    def _spawn(self) -> Worker:
        worker = Worker.start(self._init, self.settings)
        self._selector.register(worker.sock, selectors.EVENT_READ, worker)
        worker.child._when_exited(lambda _: self._note_exit(worker))
        return worker

    def _dispatch(self) -> None:
        """Send queued tasks to workers with room, the least busy first."""
        for worker in sorted(self._workers, key=lambda w: len(w.inflight)):
            while not worker.retiring and len(worker.inflight) < worker.ahead():
                with self._lock:
                    if not self._pending:
                        return
                    task = self._pending.popleft()
                if task.future.cancelled():
                    task.future.set_running_or_notify_cancel()
                    self._gone_from_workers([task])
                    continue
                self._send(worker, task)

    def _send(self, worker: Worker, task: Task) -> None:
        worker.inflight.append(task)
        worker.idle_since = 0.0
        worker.assigned += 1
        parts = frames.frame_parts(frames.TASK, task.id, task.body)
        if self._max_tasks is not None and worker.assigned >= self._max_tasks:
            worker.retiring = True  # it finishes what it has, then leaves
            parts.append(frames.frame(frames.QUIT, 0, b""))
        if len(worker.inflight) == 1:
            self._begin(worker, task)
        worker.outgoing.extend(memoryview(part).cast("B") for part in parts)
        self._flush(worker)

    def _begin(self, worker: Worker, task: Task) -> None:
        """``task`` is the worker's next: it runs as soon as the worker is up."""
        if worker.up:
            task.started = time.monotonic()  # its time limit counts from here
        task.future.pid = worker.child.pid
        if task.future.set_running_or_notify_cancel():
            task.future.kill = self._request_kill
        else:  # cancelled once sent ahead: the worker runs it all the same, so it is killed
            self._request_kill(task.future)

    def _flush(self, worker: Worker) -> None:
        try:
            while worker.outgoing:
                head = worker.outgoing[0]
                sent = worker.sock.send(head)
                if sent < len(head):
                    worker.outgoing[0] = head[sent:]
                    break
                worker.outgoing.popleft()
        except BlockingIOError:
            pass
        except OSError:
            worker.outgoing.clear()  # it is dying; _receive or the reaper will tell
        if not worker.dead:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if worker.outgoing else 0)
            self._selector.modify(worker.sock, events, worker)

    def _receive(self, worker: Worker) -> None:
        received, ended = worker.reader.read(worker.sock)
        for kind, task_id, body in received:
            self._answer(worker, kind, task_id, body)
        if worker.reader.refused:
            self._bury(worker, past_max_result(worker.reader.refused, self.settings))
        elif ended:
            self._bury(worker, None)

    # --- endings ------------------------------------------------------------------------

    def _bury(self, worker: Worker, reason: BaseException | None) -> None:
        """Remove a dead (or doomed) worker: fail its running task, requeue the rest."""
        if worker.dead:
            return
        if reason is None:
            self._read_what_is_left(worker)
        worker.dead = True
        self._selector.unregister(worker.sock)
        worker.close()
        self._workers.remove(worker)
        if reason is None and worker.child.is_alive():  # its socket closed: it is leaving
            with contextlib.suppress(TimeoutExpired):  # (how it ends tells why)
                worker.child.wait(1.0)
        if worker.child.is_alive():
            worker.child.kill()
        code = worker.child.wait()
        if worker.inflight and not worker.leaving:  # its head was running: it fails
            head = worker.inflight.popleft()
            self._gone_from_workers([head])
            if not head.future.cancelled():
                settle(head.future, error=reason or head.crash_error(worker.child, code))
        if worker.inflight:  # sent ahead, never begun: another worker runs them
            with self._lock:
                self._pending.extendleft(reversed(worker.inflight))
            worker.inflight.clear()

    def _read_what_is_left(self, worker: Worker) -> None:
        """Results a worker sent just before dying still count."""
        # It is gone, so EOF comes at once, unless something it started holds
        # its end of the socket: then give up after a moment.
        worker.sock.settimeout(1.0)
        received, _ = worker.reader.read(worker.sock)
        for kind, task_id, body in received:
            self._answer(worker, kind, task_id, body)

    def _break(self, error: BaseException) -> None:
        """An initializer failed (or the manager did): fail everything, take no more."""
        with self._lock:
            self._broken = error
            stranded = list(self._pending)
            self._pending.clear()
        for worker in list(self._workers):
            stranded.extend(worker.inflight)
            worker.inflight.clear()
        self._gone_from_workers(stranded)
        for task in stranded:
            future = task.future
            if future.running() or future.set_running_or_notify_cancel():
                settle(future, error=broken_error(error))

    def _stop_workers(self) -> None:
        stop_all(self._workers)
        self._workers.clear()
