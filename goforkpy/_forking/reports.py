"""A side channel from every child to its parent, read when the child is reaped.

Each process that forks has one datagram socketpair; every child gets the
sending end. A child sends at most a few datagrams, ``<pid> <kind> <text>``,
never blocking (``boot.tell_parent``):

- ``why``: the reason it leaves no result (a full disk, ``Limits(file_size=
  ...)`` or ``Limits(open_files=...)``, no memory left), which it has nowhere
  else to say: its stderr may be the user's terminal.
- ``result``: its result travels in a sealed memfd, passed with the datagram
  (SCM_RIGHTS), instead of a file (on Linux, for big results).

The parent drains the socket when it reaps a child and keeps what came by pid
until that child's handle asks. Where the kernel tells (SO_PASSCRED, Linux),
the pid is the sender's real one, not the one it wrote.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from .._process import passing

_lock = threading.Lock()
_pair: tuple[socket.socket, socket.socket] | None = None
_owner_pid = -1
_reasons: dict[int, str] = {}
_results: dict[int, int] = {}  # pid -> fd of its sealed result


def write_end() -> int:
    """The sending end to pass to a child (the socketpair is made on first use)."""
    global _pair, _owner_pid
    with _lock:
        if _pair is None or _owner_pid != os.getpid():
            if _pair is not None:  # a forked copy's duplicates of its parent's pair
                for end in _pair:
                    end.close()
                for fd in _results.values():
                    os.close(fd)
                _results.clear()
            receiving, sending = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            if hasattr(socket, "SO_PASSCRED"):
                receiving.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            receiving.setblocking(False)
            sending.setblocking(False)  # a child never waits on a full socket
            _pair, _owner_pid = (receiving, sending), os.getpid()
            _reasons.clear()
        return _pair[1].fileno()


def take(pid: int) -> tuple[str | None, int | None]:
    """(the reason child ``pid`` gave, the fd of its sealed result); call once it has exited.

    The caller owns the fd.
    """
    with _lock:
        if _pair is not None and _owner_pid == os.getpid():
            _drain(_pair[0])
        return _reasons.pop(pid, None), _results.pop(pid, None)


def _drain(receiving: socket.socket) -> None:
    room = passing.room(1) + socket.CMSG_SPACE(12)
    while True:
        try:
            data, ancillary, _, _ = receiving.recvmsg(1024, room)
        except (BlockingIOError, InterruptedError):
            return
        fds, sender = _ancillary(ancillary)
        claimed, kind, text = [*data.decode("ascii", "replace").split(" ", 2), "", ""][:3]
        pid = sender if sender is not None else int(claimed) if claimed.isdigit() else -1
        _file(pid, kind, text, fds)


def _ancillary(ancillary: list[tuple[int, int, bytes]]) -> tuple[list[int], int | None]:
    """(the descriptors passed, the sender's pid where the kernel said it)."""
    sender = None
    credentials = getattr(socket, "SCM_CREDENTIALS", None)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == credentials:
            sender = int.from_bytes(data[:4], sys.byteorder, signed=True)  # struct ucred
    return passing.received(ancillary), sender


def _file(pid: int, kind: str, text: str, fds: list[int]) -> None:
    """Keep what ``pid`` sent for its handle; close what nobody will take."""
    if kind == "why":
        _reasons[pid] = text
    elif kind == "result" and fds:
        old = _results.pop(pid, None)
        if old is not None:
            os.close(old)
        _results[pid], fds = fds[0], fds[1:]
    for fd in fds:
        os.close(fd)
