"""The executor's worker: a goforkpy child that runs tasks until told to stop.

It talks to its pool over one end of a socketpair (never stdin/stdout, which
stay the user's), in the frames of ``_protocol``.
"""

from __future__ import annotations

import os
import socket

from .. import _env
from .._forking import wire
from .._forking.protocol import Result
from .._forking.registry import register_func
from .frames import ERROR, INIT_FAILED, QUIT, RESULT, STARTED, frame, frame_parts, read_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def serve(initializer: bytes | None) -> None:
    """The worker loop: run each task batch in turn, answer, until told to quit.

    Its socket is the one descriptor passed on to it (a warm worker's has a
    number of the zygote's choosing, so it is not an argument).
    """
    (fd,) = _env.MARKED.passed
    os.set_inheritable(fd, False)  # what tasks start must not hold our end open
    sock = socket.socket(fileno=fd)
    with sock, sock.makefile("rb", buffering=1 << 16) as stream:
        if initializer is not None and not _initialize(sock, initializer):
            return
        sock.sendall(frame(STARTED, 0, b""))  # task timeouts count from here, not from exec
        while True:
            received = read_frame(stream)
            if received is None or received[0] == QUIT:
                return
            _, task_id, body = received
            for part in _run(task_id, body):
                sock.sendall(part)


def _initialize(sock: socket.socket, blob: bytes) -> bool:
    try:
        initializer, initargs = wire.loads(blob)
        initializer(*initargs)
    except BaseException as exc:
        sock.sendall(frame(INIT_FAILED, 0, _error_record(exc)))
        return False
    return True


def _run(task_id: int, body: bytes) -> list[Any]:
    """Run one batch of calls; the answer frame, in parts."""
    try:
        fn, calls = wire.loads(body)
        del body
        results = [fn(*args, **kwargs) for args, kwargs in calls]
    except BaseException as exc:
        return [frame(ERROR, task_id, _error_record(exc))]
    try:
        return frame_parts(RESULT, task_id, wire.dumps_parts(results, main_is_shared=False))
    except Exception as exc:
        from .._errors import PayloadError

        error = PayloadError(f"a result could not be sent back: {exc}")
        return [frame(ERROR, task_id, _error_record(error))]


def _error_record(exc: BaseException) -> bytes:
    return wire.dumps(Result.raised(exc).fields, main_is_shared=False)


NAME = "goforkpy.executor-worker"
register_func(NAME, serve)
