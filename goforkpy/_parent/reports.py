"""A side channel from every child to its parent, read when the child is reaped.

Each process that forks has one datagram socketpair; every child gets the
sending end. A child sends at most a few datagrams, ``<pid> <kind> <text>``,
never blocking (``telling.tell_parent``):

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

from .._process import lifeline, passing
from .._state import Local, close_quietly


class _Reports:
    """This process's socketpair, and what its children sent, kept by pid until asked for."""

    def __init__(self) -> None:
        self.receiving, self.sending = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        if hasattr(socket, "SO_PASSCRED"):
            self.receiving.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.receiving.setblocking(False)
        self.sending.setblocking(False)  # a child never waits on a full socket
        self.lock = threading.Lock()
        self.reasons: dict[int, str] = {}
        self.results: dict[int, int] = {}  # pid -> fd of its sealed result

    def disown(self, handing: bool) -> None:
        """In a forked copy: close the original's ends (the sending one stays in a child
        that is handed it) and the results it held."""
        close_quietly(self.receiving.detach(), *self.results.values())
        sending = self.sending.detach()  # detached: dropping the object must not close it
        if not handing:
            close_quietly(sending)


_reports: Local[_Reports] = Local(_Reports, _Reports.disown)


def _close_at_exit() -> None:
    """Once the children are ended, at exit: the pair is closed, not left to the collector."""
    reports = _reports.take()
    if reports is not None:
        with reports.lock:
            reports.receiving.close()
            reports.sending.close()
            for fd in reports.results.values():
                os.close(fd)


lifeline.after_children(_close_at_exit)


def write_end() -> int:
    """The sending end to pass to a child (the socketpair is made on first use)."""
    return _reports.get().sending.fileno()


def take(pid: int) -> tuple[str | None, int | None]:
    """(the reason child ``pid`` gave, the fd of its sealed result); call once it has exited.

    The caller owns the fd.
    """
    reports = _reports.peek()
    if reports is None:
        return None, None  # none made, or closed at exit
    with reports.lock:
        _drain(reports)
        return reports.reasons.pop(pid, None), reports.results.pop(pid, None)


def _drain(reports: _Reports) -> None:
    room = passing.room(1) + socket.CMSG_SPACE(12)
    while True:
        try:
            data, ancillary, _, _ = reports.receiving.recvmsg(1024, room)
        except (BlockingIOError, InterruptedError):
            return
        fds, sender = _ancillary(ancillary)
        claimed, kind, text = [*data.decode("ascii", "replace").split(" ", 2), "", ""][:3]
        pid = sender if sender is not None else int(claimed) if claimed.isdigit() else -1
        _file(reports, pid, kind, text, fds)


def _ancillary(ancillary: list[tuple[int, int, bytes]]) -> tuple[list[int], int | None]:
    """(the descriptors passed, the sender's pid where the kernel said it)."""
    sender = None
    credentials = getattr(socket, "SCM_CREDENTIALS", None)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == credentials:
            sender = int.from_bytes(data[:4], sys.byteorder, signed=True)  # struct ucred
    return passing.received(ancillary), sender


def _file(reports: _Reports, pid: int, kind: str, text: str, fds: list[int]) -> None:
    """Keep what ``pid`` sent for its handle; close what nobody will take."""
    if kind == "why":
        reports.reasons[pid] = text
    elif kind == "result" and fds:
        old = reports.results.pop(pid, None)
        if old is not None:
            os.close(old)
        reports.results[pid], fds = fds[0], fds[1:]
    for fd in fds:
        os.close(fd)
