"""Receiving messages: this process's listening socket, its readers, its queues.

One reader thread per connection files whole messages into their group's
queue, of bounded depth (``_QUEUE_DEPTH``): a full queue stops that reader
only, its socket buffers fill and its sender blocks (back-pressure rather
than loss) while the other groups flow on. A sender's later connection to
a group waits for its earlier one's reader, so one sender's messages stay in
order even when a ``send`` timed out and another followed.
"""

from __future__ import annotations

import os
import queue
import socket
import threading

from .._errors import IPCError
from .._process import reaper
from .._shared import protocol, tmpdir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_QUEUE_DEPTH = 1024  # messages a group holds before its senders are made to wait


class Message:
    """A message received from another goforkpy process.

    Attributes:
        pid: the sender's pid.
        group: the group it was sent to.
        data: the payload, as bytes (a ``str`` was sent as UTF-8).
    """

    __slots__ = ("data", "group", "pid")

    def __init__(self, pid: int, group: str, data: bytes) -> None:
        self.pid, self.group, self.data = pid, group, data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.pid, self.group, self.data) == (
            other.pid,
            other.group,
            other.data,
        )

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 40 else self.data[:40] + b"..."
        return f"Message(pid={self.pid}, group={self.group!r}, data={shown!r})"


def socket_path(pid: int) -> str:
    return os.path.join(tmpdir.payload_dir(), protocol.socket_name(pid))


class Inbox:
    """This process's listening socket and its per-group queues."""

    def __init__(self) -> None:
        self.path = socket_path(os.getpid())
        self._groups: dict[str, queue.Queue[Message]] = {}
        self._readers: dict[tuple[int, str], threading.Thread] = {}  # the latest, by sender
        self._lock = threading.Lock()
        try:
            os.unlink(self.path)  # left by a dead process that had our pid
        except FileNotFoundError:
            pass
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.bind(self.path)
        except OSError as exc:
            self._listener.close()
            raise IPCError(
                f"cannot listen at {self.path}: {exc.strerror}; set GOFORKPY_TMPDIR "
                "to a short, writable path (Unix socket paths are limited to ~100 bytes)"
            ) from exc
        os.chmod(self.path, 0o600)
        self._listener.listen(64)
        reaper.start_thread(self._accept, "inbox")

    def queue(self, group: str) -> queue.Queue[Message]:
        with self._lock:
            found = self._groups.get(group)
            if found is None:
                found = self._groups[group] = queue.Queue(_QUEUE_DEPTH)
            return found

    def close(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._listener.close()

    def disown(self) -> None:
        """In a forked copy: close the original's listening socket; its file stays, the
        original's to remove."""
        self._listener.close()

    def _accept(self) -> None:
        from .._process import platform

        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            peer_pid, uid = platform.peer_credentials(conn)
            if uid is not None and uid != os.geteuid():
                conn.close()  # another user: the 0700 directory should have stopped them
                continue
            reaper.start_thread(self._read, f"inbox-{peer_pid}", conn, peer_pid)

    def _after_earlier_connection(self, key: tuple[int, str]) -> None:
        """Wait for the reader of this sender's earlier connection to this group.

        A sender whose ``send`` timed out drops its connection and opens another;
        what the old one carried (the timed-out message at most) must be queued
        before anything the new one brings, or one sender's messages would be
        out of order.
        """
        me = threading.current_thread()
        with self._lock:
            earlier = self._readers.get(key)
            self._readers[key] = me
        if earlier is not None:
            earlier.join()

    def _read(self, conn: socket.socket, peer_pid: int | None) -> None:
        with conn, conn.makefile("rb", buffering=1 << 18) as stream:
            claimed = _read_int(stream, 8)
            group_size = _read_int(stream, 2)
            if claimed is None or group_size is None:
                return
            sender = claimed if peer_pid is None else peer_pid  # the kernel's word first
            group = stream.read(group_size).decode("utf-8", "replace")
            waiting, key = self.queue(group), (sender, group)
            self._after_earlier_connection(key)
            try:
                _file_messages(stream, waiting, key)
            finally:
                with self._lock:
                    if self._readers.get(key) is threading.current_thread():
                        del self._readers[key]


def _file_messages(stream: Any, waiting: queue.Queue[Message], key: tuple[int, str]) -> None:
    """Queue each whole message of one connection, in order, until it ends."""
    sender, group = key
    while True:
        data_size = _read_int(stream, 8)
        if data_size is None:
            return
        data = stream.read(data_size)
        if len(data) != data_size:
            return  # the sender died or gave up mid-message: drop the partial frame
        waiting.put(Message(sender, group, data))  # blocks this group's sender when full


def _read_int(stream: Any, size: int) -> int | None:
    raw = stream.read(size)
    return int.from_bytes(raw, "little") if len(raw) == size else None
