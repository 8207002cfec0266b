"""The executor's worker: a goforkpy child that runs tasks until told to stop.

It talks to its pool over one end of a socketpair (never stdin/stdout, which
stay the user's), in the frames of ``frames``.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from .. import _env
from .._process import platform
from .._shared import wire
from .._shared.protocol import Result
from .._shared.registry import register_func
from . import between
from .frames import (
    ERROR,
    INIT_FAILED,
    LEAVING,
    OUTPUT,
    QUIT,
    RESULT,
    STARTED,
    frame,
    frame_parts,
    read_frame,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


INTERRUPT = signal.SIGUSR2  # the pool's "stop this task": raise in it what the why pipe says
# Why the pool interrupts: past task_timeout, Ctrl+C, or the caller left a block or map early.
# Each interrupt writes one record to the why pipe: the reason, then the task's id (8 bytes).
TIMED_OUT, CTRL_C, CANCELLED = b"t", b"i", b"c"
WHY_SIZE = 9
_running: list[int] = []  # the id of the task running now, if one is
_why = [-1]  # the read end of the pipe the pool writes each interrupt's reason to
_leaving: list[bool] = []  # set: the caller is gone, take no further task


def serve(
    initializer: bytes | None, capture: bool = False, grace: float = 5.0, authkey: bytes = b""
) -> None:
    """The worker loop: run each task batch in turn, answer, until told to quit.

    Its socket and the read end of the pool's why pipe are the descriptors
    passed on to it (a warm worker's have numbers of the zygote's choosing,
    so they are not arguments). With
    ``capture``, what each task writes to fds 1 and 2 goes back with its answer.
    The processes a task started are ended before its answer goes (SIGTERM,
    SIGKILL after ``grace``); those the initializer started stay. ``authkey``
    is the caller's multiprocessing key, where it has one: with it, a task's
    arguments may be a multiprocessing manager's proxies, as in a
    ``ProcessPoolExecutor``'s workers.
    """
    sock = socket.socket(fileno=_settle(authkey))
    outputs = _Capture() if capture else None
    with sock, sock.makefile("rb", buffering=1 << 16) as stream:
        if initializer is not None and not _initialize(sock, initializer):
            return
        kept = set(platform.children_of(os.getpid()))  # the initializer's live with us
        # what each task starts from, once what start-up loads in the background is
        # loaded: the watcher of our parent loads ctypes, whose libffi keeps a descriptor
        platform.prepare_tie()
        baseline = between.note()
        sock.sendall(frame(STARTED, 0, b""))  # task timeouts count from here, not from exec
        while True:
            received = read_frame(stream)
            if received is None or received[0] == QUIT:
                return
            _, task_id, body = received
            if outputs is None:
                answer, own_grace = _run(task_id, body)
            else:
                with outputs:
                    answer, own_grace = _run(task_id, body)
                answer.insert(0, frame(OUTPUT, task_id, outputs.taken()))
            left = baseline.restore()  # at once: an alarm the task set must not go off
            _end_what_the_task_left(kept, grace if own_grace is None else own_grace)
            if left is None and _leaving:  # once read: an interrupt from here on is the
                left = "its pool ended a task it ran"  # next task's business
            if left is not None:  # said, so the pool starts no more here and blames none
                answer.insert(0, frame(LEAVING, task_id, left.encode()))
            for part in answer:
                sock.sendall(part)
            if left is not None:
                return  # the tasks sent ahead are the pool's to cancel or run elsewhere


def _settle(authkey: bytes) -> int:
    """Take the passed descriptors and the caller's key: our socket's descriptor."""
    if authkey:
        from multiprocessing import process

        process.current_process().authkey = authkey
    fd, why = _env.MARKED.passed
    for mine in (fd, why):
        os.set_inheritable(mine, False)  # what tasks start must not hold our ends open
    os.set_blocking(why, False)
    _why[0] = why
    signal.signal(INTERRUPT, _interrupt)
    return fd


def _end_what_the_task_left(kept: set[int], grace: float) -> None:
    """End the processes the task started (and what they started), but goforkpy's helpers.

    The worker is a subreaper, so even daemons the task double-forked are its
    children by now, or descendants of one.
    """
    if not kept and not platform.has_children():
        return  # what almost every task leaves, told by one system call
    children = platform.children_of(os.getpid())
    if not children or kept.issuperset(children):
        return
    from .._child.orphans import end_children, own_helpers

    end_children(kept | own_helpers(children, kept), grace)


def _interrupt(signum: int, frame: object) -> None:
    """The pool stops a task: raise in it (its ``finally`` blocks run) what the why pipe
    says: TimeoutExpired past ``task_timeout``, KeyboardInterrupt for Ctrl+C in the
    caller, CancelledError where the caller left its block or ``map`` early.

    Only in the task the pool meant: one that ended as the signal came is not
    followed into the next. Signals that came together are read together. But for
    a timeout, the worker leaves after its answer."""
    why = None
    for reason, task_id in _reasons():
        if reason != TIMED_OUT:
            _leaving.append(True)
        if task_id in _running:
            why = reason
    if why is None:
        return
    if why == CTRL_C:
        raise KeyboardInterrupt
    if why == CANCELLED:
        from concurrent.futures import CancelledError

        raise CancelledError("the caller left its Executor block or map() early")
    from .._errors import TimeoutExpired

    raise TimeoutExpired(
        "the task ran past the Executor's task_timeout", pid=os.getpid(), timeout=None
    )


def _reasons() -> list[tuple[bytes, int]]:
    """The records waiting in the why pipe: (reason, task id) each."""
    records = b""
    try:
        while chunk := os.read(_why[0], WHY_SIZE * 64):
            records += chunk
    except BlockingIOError:
        pass
    return [
        (records[at : at + 1], int.from_bytes(records[at + 1 : at + WHY_SIZE], "little"))
        for at in range(0, len(records) - WHY_SIZE + 1, WHY_SIZE)
    ]


class _Capture:
    """Fds 1 and 2 sent into two private files while a task runs, then put back."""

    def __init__(self) -> None:
        from .._process import platform

        self._sinks = (platform.anonymous_file(), platform.anonymous_file())  # private, anonymous
        self._saved: list[int] = []

    def __enter__(self) -> None:
        _flush_std()
        self._saved = [os.dup(1), os.dup(2)]
        os.dup2(self._sinks[0], 1)
        os.dup2(self._sinks[1], 2)

    def __exit__(self, *exc_info: object) -> None:
        _flush_std()
        for number, saved in zip((1, 2), self._saved, strict=True):
            os.dup2(saved, number)
            os.close(saved)

    def taken(self) -> bytes:
        """What the task wrote (marshalled), the files emptied for the next one."""
        import marshal

        written = []
        for sink in self._sinks:
            size = os.lseek(sink, 0, os.SEEK_END)
            written.append(os.pread(sink, size, 0) if size else b"")
            os.ftruncate(sink, 0)
            os.lseek(sink, 0, os.SEEK_SET)
        if _sandboxed():
            from .._sandbox import plain

            return plain.encode(tuple(written))
        return marshal.dumps(tuple(written))


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass  # a closed or broken stream: what it held is lost, as it would be


def _initialize(sock: socket.socket, blob: bytes) -> bool:
    try:
        initializer, initargs = wire.loads(blob)
        initializer(*initargs)
    except BaseException as exc:
        sock.sendall(frame(INIT_FAILED, 0, _error_record(exc)))
        return False
    return True


def _run(task_id: int, body: bytes) -> tuple[list[Any], float | None]:
    """Run one batch of calls: (the answer frame in parts, the task's own grace or None)."""
    try:
        fn, calls, grace = wire.loads(body)
    except SystemExit:
        raise  # loading the task asked this process to exit: it does, and the task fails
        # as its worker's crash (what ProcessPoolExecutor reports there too)
    except BaseException as exc:
        return [frame(ERROR, task_id, _error_record(exc))], None
    del body
    try:
        _running.append(task_id)
        try:
            results = [fn(*args, **kwargs) for args, kwargs in calls]
        finally:
            _running.clear()
    except BaseException as exc:
        return [frame(ERROR, task_id, _error_record(exc))], grace
    try:
        return frame_parts(RESULT, task_id, _encoded(results)), grace
    except BaseException as exc:  # a SystemExit from the result's own pickling goes back as is
        from .._errors import PayloadError

        if isinstance(exc, Exception):
            exc = PayloadError(f"a result could not be sent back: {exc}")
        return [frame(ERROR, task_id, _error_record(exc))], grace


def _error_record(exc: BaseException) -> bytes:
    if _sandboxed():  # its type's name, its message and its traceback, never the object
        from .._sandbox import plain

        return plain.encode((None, *Result.raised(exc).fields[1:]))
    return wire.dumps(Result.raised(exc).fields, main_is_shared=False)


def _encoded(results: list[Any]) -> list[Any]:
    """The results as the pool takes them: pickled, or plain data from a sandbox."""
    if _sandboxed():
        from .._sandbox import plain

        return [plain.encode(results)]
    return wire.dumps_parts(results, main_is_shared=False)


def _sandboxed() -> bool:
    inside = sys.modules.get("goforkpy._sandbox.inside")
    return inside is not None and bool(inside.sealed)


NAME = "goforkpy.executor-worker"
register_func(NAME, serve)
