"""The frames a parent and its zygote exchange: a length, a ``marshal`` body, descriptors.

Both ends are one socketpair made by the parent, so only it and the zygote
can write to them; ``marshal`` is enough (and loads nothing). Descriptors
travel with a frame's first bytes (SCM_RIGHTS) and arrive close-on-exec.
"""

from __future__ import annotations

import marshal
import os
import socket
import struct

from .._process import passing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence

_HEADER = struct.Struct("!II")  # body length, descriptor count
_MAX_FDS = 16
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)

# Requests, parent -> zygote, each answered on the same socket.
# (FORK, packed takeon.Setup, module to import after, its sys.path, grace) with the child's
# descriptors -> FORKED | REFUSED | FAILED; a spare is sent (FORK, packed Setup) alone
FORK = "fork"
FORKED = "forked"  # (FORKED, pid)
REFUSED = "refused"  # (REFUSED, why): the zygote can no longer fork safely
FAILED = "failed"  # (FAILED, errno, strerror): fork(2) failed
# Notices, zygote -> parent, on the second socket.
READY = "ready"  # (READY, zygote pid): it waits for requests
EXITED = "exited"  # (EXITED, pid, returncode): not yet reaped, until RELEASE
REAPED = "reaped"  # (REAPED, pid, (ru_maxrss, ru_utime, ru_stime) or None)
SPARE = "spare"  # (SPARE, pid): forked ahead of the next request (not the parent's yet)
# Parent -> zygote on the notices socket: the parent has recorded the exit.
RELEASE = "release"  # (RELEASE, pid): the zygote may reap it now, and says REAPED


def frame(message: tuple[Any, ...], fds: Sequence[int] = ()) -> bytes:
    """``message`` as a frame's bytes (its descriptors travel beside them)."""
    body = marshal.dumps(message)
    return _HEADER.pack(len(body), len(fds)) + body


def send(sock: socket.socket, message: tuple[Any, ...], fds: Sequence[int] = ()) -> None:
    """Send one frame; ``fds`` go with it (the sender keeps its own copies)."""
    data = frame(message, fds)
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, passing.pack(fds))] if fds else []
    sent = sock.sendmsg([data], rights)
    if sent < len(data):
        sock.sendall(data[sent:])


def receive(sock: socket.socket) -> tuple[tuple[Any, ...], list[int]] | None:
    """The next frame and the descriptors that came with it; ``None`` at EOF."""
    room = passing.room(_MAX_FDS)
    head, ancillary, _, _ = sock.recvmsg(_HEADER.size, room, _CLOEXEC)
    fds = passing.received(ancillary)
    if not head:
        _close(fds)
        return None
    try:
        head += _exactly(sock, _HEADER.size - len(head))
        size, _count = _HEADER.unpack(head)
        return marshal.loads(_exactly(sock, size)), fds
    except BaseException:
        _close(fds)
        raise


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("the other end closed in the middle of a frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
