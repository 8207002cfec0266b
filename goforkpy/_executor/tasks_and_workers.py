"""The pool's view of tasks and of the worker processes that run them."""

from __future__ import annotations

import collections
import os
import socket
import sys
import time

from .._errors import TimeoutExpired
from .._shared import protocol, wire
from . import frames
from .worker import INTERRUPT
from .worker import NAME as WORKER_NAME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .._errors import ChildCrashed
    from .._parent.child import Child
    from .._process.limits import Limits
    from .._sandbox.policy import Sandbox
    from .futures import TaskFuture

# How many tasks a worker holds (running + queued), by how long its tasks take:
# tiny ones need a deep queue so the worker never waits for a round trip;
# long ones are sent one at a time, so no task waits behind another while a
# different worker is idle (the round trip is then a negligible share).
_AHEAD = ((0.001, 32), (0.003, 2))
_AHEAD_LONG = 1
_STOP_WAIT = 5.0  # seconds a worker has to leave when told, before it is killed


class Settings:
    """How a pool's workers start and are kept: the Executor's options for them."""

    __slots__ = ("capture", "env", "grace", "limits", "max_memory", "sandbox", "start")

    def __init__(
        self,
        start: str | None = None,
        limits: Limits | None = None,
        max_memory: int | None = None,
        capture: bool = False,
        grace: float = 5.0,
    ) -> None:
        self.start, self.limits, self.max_memory = start, limits, max_memory
        self.capture, self.grace = capture, grace
        self.env: dict[str, str] | None = None  # set in each worker's environment
        self.sandbox: Sandbox | None = None  # every worker's, for its whole life

    def decode(self, body: bytes | bytearray) -> Any:
        """A worker's answer: unpickled, or for sandboxed workers decoded as plain data."""
        if self.sandbox is None:
            return wire.loads(body)
        from .._sandbox import plain

        return plain.decode(bytes(body), self.sandbox.results, self.sandbox.max_result)


class Task:
    """A batch of calls, from submission until its future is settled."""

    __slots__ = (
        "body",
        "fn_name",
        "future",
        "grace",
        "id",
        "interrupted",
        "started",
        "terminated",
        "timeout",
    )

    def __init__(
        self,
        task_id: int,
        future: TaskFuture,
        body: list[Any],
        fn_name: str,
        limits: tuple[float | None, float | None] = (None, None),
    ) -> None:
        self.id, self.future, self.body, self.fn_name = task_id, future, body, fn_name
        self.timeout, self.grace = limits  # this task's own, where not the pool's
        self.started = 0.0  # when its worker reached it; 0 until then
        # Past task_timeout: when TimeoutExpired was raised in it, then SIGTERM sent.
        self.interrupted = self.terminated = 0.0

    def crash_error(self, child: Child, code: int) -> ChildCrashed:
        """What this task's future fails with when its worker dies (``code``)."""
        from .ppe_errors import WorkerCrashed

        ending = child._ending  # what the worker left: its stacks at a fatal signal
        fields = {} if ending is None else {"reason": ending.reason()}
        return protocol.crashed(
            f"the worker running {self.fn_name} (pid {child.pid}) {protocol.how_it_ended(code)}",
            name=self.fn_name,
            pid=child.pid,
            returncode=code,
            traceback=None if ending is None else ending.traceback,
            rusage=child.rusage,
            kind=WorkerCrashed,
            **fields,
        )


class Worker:
    """The pool's side of one worker process: its socket, tasks in flight, its pace."""

    def __init__(self, child: Child, sock: socket.socket, why: int, limit: int | None) -> None:
        self.child, self.sock, self.why = child, sock, why
        self.inflight: collections.deque[Task] = collections.deque()
        self.outgoing: collections.deque[memoryview] = collections.deque()
        self.reader = frames.FrameReader(limit)
        self.assigned = 0
        self.retiring = self.dead = False
        self.leaving = False  # it said it leaves once it has answered: it starts no more
        self.up = False  # it said it is ready: its head task runs from then on
        self.idle_since = 0.0  # when it last ran out of work (0: it has some, or is not up)
        self.last_result = 0.0
        self.pace = 1.0  # moving average of seconds per task

    @classmethod
    def start(cls, initializer: bytes | None, settings: Settings) -> Worker:
        """Start a worker process, connected over a socketpair."""
        from .._launch.api import launch
        from .._launch.record import Options

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        why_read, why_write = os.pipe()  # why the pool interrupts a task (worker.INTERRUPT)
        try:
            args = (initializer, settings.capture, settings.grace, _authkey())
            passed = (theirs.fileno(), why_read)
            options = Options(
                grace=1.0,
                pass_fds=passed,
                start=settings.start,
                limits=settings.limits,
                env=settings.env,
                sandbox=settings.sandbox,
            )
            child = launch(WORKER_NAME, args, None, options)
        except BaseException:
            ours.close()
            os.close(why_write)
            raise
        finally:
            theirs.close()
            os.close(why_read)
        ours.setblocking(False)
        os.set_blocking(why_write, False)
        sandbox = settings.sandbox
        return cls(child, ours, why_write, None if sandbox is None else sandbox.max_result + 4096)

    def close(self) -> None:
        """Close our ends of its socket and why pipe."""
        self.sock.close()
        if self.why >= 0:
            os.close(self.why)
            self.why = -1

    def interrupt(self, why: bytes, task_id: int) -> None:
        """Raise in task ``task_id``, if it runs, the exception ``why`` names (see
        ``worker.INTERRUPT``)."""
        try:
            os.write(self.why, why + task_id.to_bytes(8, "little"))
            os.kill(self.child.pid, INTERRUPT)
        except OSError:
            pass  # it ended meanwhile; the reaper says how

    def ahead(self) -> int:
        for quicker_than, depth in _AHEAD:
            if self.pace < quicker_than:
                return depth
        return _AHEAD_LONG


def _authkey() -> bytes:
    """This process's multiprocessing key, for its manager proxies to work in the workers
    (none where multiprocessing was never imported: then there are no proxies)."""
    process = sys.modules.get("multiprocessing.process")
    return b"" if process is None else bytes(process.current_process().authkey)


def stop_all(workers: list[Worker]) -> None:
    """Ask every worker to leave; kill those still there after ``_STOP_WAIT`` seconds."""
    for worker in workers:
        worker.outgoing.append(memoryview(frames.frame(frames.QUIT, 0, b"")))
        worker.sock.settimeout(_STOP_WAIT)  # a stuck worker may not read
        try:
            for data in worker.outgoing:
                worker.sock.sendall(data)
        except OSError:
            pass  # already gone
    deadline = time.monotonic() + _STOP_WAIT
    for worker in workers:
        try:
            worker.child.wait(max(0.0, deadline - time.monotonic()))
        except TimeoutExpired:
            worker.child.kill()  # shutdown never hangs on a stuck worker
        worker.close()
