"""The executor's wire protocol: frames between a pool and its workers.

Every frame is ``length (8) | kind (1) | task id (8) | body``. The pool sends
``T`` (a task: a function and a batch of calls, pickled) and ``Q`` (quit); a
worker says ``S`` once it is up (its initializer done), then answers ``R``
(the batch's results) or ``E`` (a task raised: an error record), each after
an ``O`` (what the task printed) where output is captured, and after an
``L`` where it leaves once it has answered (the task left what a worker
cannot undo: ``between``); or it says ``I`` once, instead of ``S``: its
initializer raised. Small frames go out as one
buffer; big bodies are written and received without intermediate copies.
"""

from __future__ import annotations

import os
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TASK, QUIT, RESULT, ERROR, INIT_FAILED, STARTED = b"T", b"Q", b"R", b"E", b"I", b"S"
OUTPUT = b"O"  # marshal of (stdout bytes, stderr bytes) of the task that follows
LEAVING = b"L"  # the worker leaves after the answer that follows; the body says why
HEADER = 17
_SMALL = 1 << 16


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


class FrameReader:
    """Frames from a worker's socket; a big body is received straight into its own buffer."""

    _BIG = 1 << 20

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit  # the largest body taken (a sandboxed worker's max_result)
        self.refused = 0  # the size of a body past the limit: nothing more is read
        self.buffer = bytearray()
        self.big: bytearray | None = None
        self.big_head = (b"", 0)
        self.filled = 0

    def read(self, sock: socket.socket) -> tuple[list[tuple[bytes, int, bytearray]], bool]:
        """(complete frames, whether the other end is gone); reads what is there."""
        frames: list[tuple[bytes, int, bytearray]] = []
        try:
            while not self.refused:
                if self.big is not None:
                    got = sock.recv_into(memoryview(self.big)[self.filled :])
                    if not got:
                        return frames, True
                    self.filled += got
                    if self.filled == len(self.big):
                        frames.append((*self.big_head, self.big))
                        self.big = None
                    continue
                data = sock.recv(self._BIG)
                if not data:
                    return frames, True
                self.buffer += data
                frames.extend(self._cut())
            return frames, True
        except BlockingIOError:
            return frames, False
        except OSError:
            return frames, True

    def _cut(self) -> list[tuple[bytes, int, bytearray]]:
        frames, offset, buffer = [], 0, self.buffer
        while len(buffer) - offset >= HEADER:
            size = int.from_bytes(buffer[offset : offset + 8], "little")
            kind = bytes(buffer[offset + 8 : offset + 9])
            task_id = int.from_bytes(buffer[offset + 9 : offset + 17], "little")
            start, end = offset + HEADER, offset + HEADER + size
            if self.limit is not None and size > self.limit:
                self.refused = size
                break
            if end <= len(buffer):
                frames.append((kind, task_id, buffer[start:end]))
                offset = end
                continue
            if size >= self._BIG:  # the rest goes straight into a buffer of its own
                self.big, self.big_head = bytearray(size), (kind, task_id)
                self.filled = len(buffer) - start
                self.big[: self.filled] = buffer[start:]
                offset = len(buffer)
            break
        del buffer[:offset]
        return frames


def drain(fd: int) -> None:
    """Read a non-blocking descriptor empty (the wake-up pipe's bytes mean nothing)."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
