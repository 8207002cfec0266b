"""The executor's worker: a goforkpy child that runs tasks until told to stop.

It talks to its executor over one end of a socketpair (never stdin/stdout,
which stay the user's). Every frame is ``length (8) | kind (1) | task id (8) |
body``: the executor sends tasks (``T``: a function and a batch of calls) and
``Q`` to quit; the worker answers ``R`` (the batch's results), ``E`` (a task
raised: an error record) or, once, ``I`` (its initializer raised).
"""

from __future__ import annotations

import socket

from . import _wire
from ._registry import register_func

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TASK, QUIT, RESULT, ERROR, INIT_FAILED = b"T", b"Q", b"R", b"E", b"I"
HEADER = 17
_SMALL = 1 << 16
NAME = "goforkpy.executor-worker"


def frame(kind: bytes, task_id: int, body: bytes) -> bytes:
    return b"".join(frame_parts(kind, task_id, [body]))


def frame_parts(kind: bytes, task_id: int, parts: list[Any]) -> list[Any]:
    """A frame as buffers to send in turn: small frames joined, big bodies uncopied."""
    size = sum(memoryview(part).nbytes for part in parts)
    head = size.to_bytes(8, "little") + kind + task_id.to_bytes(8, "little")
    if size < _SMALL:
        return [head + b"".join(parts)]
    return [head, *parts]


def read_frame(stream: Any) -> tuple[bytes, int, bytes] | None:
    """(kind, task id, body), or ``None`` once the other end is gone."""
    head = stream.read(HEADER)
    if len(head) < HEADER:
        return None
    size = int.from_bytes(head[:8], "little")
    body = stream.read(size)
    if len(body) < size:
        return None
    return head[8:9], int.from_bytes(head[9:], "little"), body


def serve(fd: int, initializer: bytes | None) -> None:
    """The worker loop: run each task batch in turn, answer, until told to quit."""
    sock = socket.socket(fileno=fd)
    with sock, sock.makefile("rb", buffering=1 << 16) as stream:
        if initializer is not None and not _initialize(sock, initializer):
            return
        while True:
            received = read_frame(stream)
            if received is None or received[0] == QUIT:
                return
            _, task_id, body = received
            for part in _run(task_id, body):
                sock.sendall(part)


def _initialize(sock: socket.socket, blob: bytes) -> bool:
    try:
        initializer, initargs = _wire.loads(blob)
        initializer(*initargs)
    except BaseException as exc:
        sock.sendall(frame(INIT_FAILED, 0, _error_record(exc)))
        return False
    return True


def _run(task_id: int, body: bytes) -> list[Any]:
    """Run one batch of calls; the answer frame, in parts."""
    try:
        fn, calls = _wire.loads(body)
        del body
        results = [fn(*args, **kwargs) for args, kwargs in calls]
    except BaseException as exc:
        return [frame(ERROR, task_id, _error_record(exc))]
    try:
        return frame_parts(RESULT, task_id, _wire.dumps_parts(results, main_is_shared=False))
    except Exception as exc:
        from ._errors import PayloadError

        error = PayloadError(f"a result could not be sent back: {exc}")
        return [frame(ERROR, task_id, _error_record(error))]


def _error_record(exc: BaseException) -> bytes:
    from ._boot import failure_record

    return _wire.dumps(failure_record(exc)[1:], main_is_shared=False)


register_func(NAME, serve)
