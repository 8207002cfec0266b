"""Messages between goforkpy processes of one user, addressed by pid.

A process that calls ``receive()`` listens on a Unix socket named
``<pid>-ipc.sock`` in the user's private 0700 directory (the one payload files
use), never in the abstract namespace: other users can neither connect nor
read. The receiver also checks each peer's uid (SO_PEERCRED, or
LOCAL_PEERCRED where that is what the OS has) and drops strangers.

A sender keeps one connection per receiver and sends frames on it under a
lock, so one sender's messages arrive in order and whole. Each connection has
one reader thread that files messages into per-group queues of bounded depth:
a full queue stops the reader, the socket buffers fill and the sender blocks,
which is back-pressure rather than loss. Socket files are removed when their
process exits (or by the next sweep, if it was killed).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time

from . import _tmpdir
from ._errors import IPCError, TimeoutExpired
from ._platform import pid_exists

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SUFFIX = "-ipc.sock"
_MAX_MESSAGE = 1 << 30
_MAX_GROUP = 1024
_QUEUE_DEPTH = 1024  # messages a group holds before its senders are made to wait
_SMALL = 1 << 16  # below this, header and data go in one write


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
    return os.path.join(_tmpdir.payload_dir(), f"{pid}{_SUFFIX}")


# --- sending ---------------------------------------------------------------------------


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()


_connections: dict[int, _Connection] = {}
_connections_lock = threading.Lock()


def send(pid: int, data: bytes | str, group: str = "default", timeout: float = 5.0) -> None:
    """Send ``data`` to the goforkpy process ``pid``, in ``group``.

    If ``pid`` has not called ``receive()`` yet, this waits up to ``timeout``
    seconds for it to; it also waits while the receiver's queue is full.

    Raises:
        IPCError: no process ``pid``; it never started receiving; it went away;
            or it did not take the message within ``timeout``.
        TypeError: ``data`` is not bytes or str.
    """
    frame = _frame(data, group)
    deadline = time.monotonic() + timeout
    connection = _connect(pid, deadline, timeout)
    with connection.lock:
        connection.sock.settimeout(max(0.0, deadline - time.monotonic()))
        try:
            for part in frame:
                connection.sock.sendall(part)
        except (socket.timeout, OSError) as exc:
            _forget(pid, connection)
            if isinstance(exc, socket.timeout):
                raise IPCError(
                    f"pid {pid} did not take the message within {timeout} s; its queue "
                    f"for group {group!r} is full (is it calling fork.receive({group!r})?)"
                ) from None
            raise IPCError(f"pid {pid} went away while the message was sent: {exc}") from exc


def _frame(data: bytes | str, group: str) -> list[bytes]:
    if isinstance(data, str):
        data = data.encode()
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise TypeError(
            f"fork.send() sends bytes or str, not {type(data).__name__}; "
            "serialise other objects first (pickle.dumps, json.dumps)"
        )
    if not isinstance(group, str):
        raise TypeError(f"group must be a str, not {type(group).__name__}")
    group_bytes = group.encode()
    if len(group_bytes) > _MAX_GROUP or len(data) > _MAX_MESSAGE:
        raise IPCError(
            f"message too large: groups up to {_MAX_GROUP} bytes, data up to "
            f"{_MAX_MESSAGE >> 20} MiB; split it, or send a path to a file instead"
        )
    header = len(group_bytes).to_bytes(2, "little") + len(data).to_bytes(8, "little")
    if len(data) < _SMALL:
        return [header + group_bytes + data]
    return [header + group_bytes, data]


def _connect(pid: int, deadline: float, timeout: float) -> _Connection:
    with _connections_lock:
        known = _connections.get(pid)
    if known is not None:
        return known
    path, delay = socket_path(pid), 0.001
    while True:
        if not pid_exists(pid):
            raise IPCError(f"cannot send to pid {pid}: no such process")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            sock.sendall(os.getpid().to_bytes(8, "little"))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()  # not receiving (yet): wait for it, up to the deadline
        except OSError as exc:
            sock.close()
            raise IPCError(f"cannot connect to pid {pid} at {path}: {exc.strerror}") from exc
        else:
            return _remember(pid, _Connection(sock))
        left = deadline - time.monotonic()
        if left <= 0:
            raise IPCError(
                f"pid {pid} is running but did not call fork.receive() within {timeout} s; "
                "a process must call fork.receive() to get messages"
            )
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _remember(pid: int, connection: _Connection) -> _Connection:
    with _connections_lock:
        existing = _connections.setdefault(pid, connection)
    if existing is not connection:
        connection.sock.close()  # another thread connected first: share its connection
    return existing


def forget(pid: int) -> None:
    """Close our connection to ``pid`` (it exited)."""
    with _connections_lock:
        connection = _connections.pop(pid, None)
    if connection is not None:
        connection.sock.close()


def _forget(pid: int, connection: _Connection) -> None:
    with _connections_lock:
        if _connections.get(pid) is connection:
            del _connections[pid]
    connection.sock.close()


# --- receiving --------------------------------------------------------------------------


class _Inbox:
    """This process's listening socket and its per-group queues."""

    def __init__(self) -> None:
        self.path = socket_path(os.getpid())
        self._groups: dict[str, queue.Queue[Message]] = {}
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
        threading.Thread(target=self._accept, name="goforkpy-inbox", daemon=True).start()

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

    def _accept(self) -> None:
        from . import _platform

        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            _, uid = _platform.peer_credentials(conn)
            if uid is not None and uid != os.geteuid():
                conn.close()  # another user: the 0700 directory should have stopped them
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb", buffering=1 << 18) as stream:
            sender = _read_int(stream, 8)
            while sender is not None:
                group_size = _read_int(stream, 2)
                data_size = _read_int(stream, 8)
                if group_size is None or data_size is None:
                    return
                group = stream.read(group_size).decode("utf-8", "replace")
                data = stream.read(data_size)
                if len(data) != data_size:
                    return  # the sender died mid-message: drop the partial frame
                self.queue(group).put(Message(sender, group, data))  # blocks when full


def _read_int(stream: Any, size: int) -> int | None:
    raw = stream.read(size)
    return int.from_bytes(raw, "little") if len(raw) == size else None


_inbox: _Inbox | None = None
_inbox_lock = threading.Lock()


def receive(group: str = "default", timeout: float | None = None) -> Message:
    """The next message sent to this process in ``group``.

    The first call starts listening; messages sent before it wait for it.

    Raises:
        TimeoutExpired: nothing arrived within ``timeout`` seconds.
    """
    global _inbox
    with _inbox_lock:
        if _inbox is None:
            _inbox = _Inbox()
            import atexit

            atexit.register(close_inbox)
        inbox = _inbox
    try:
        return inbox.queue(group).get(timeout=timeout)
    except queue.Empty:
        raise TimeoutExpired(
            f"no message in group {group!r} within {timeout} s", timeout=timeout, pid=os.getpid()
        ) from None


def close_inbox() -> None:
    """Stop listening and remove this process's socket file."""
    global _inbox
    with _inbox_lock:
        inbox, _inbox = _inbox, None
    if inbox is not None:
        inbox.close()


def _after_fork() -> None:
    """A forked copy shares neither our inbox nor our connections."""
    global _inbox, _connections
    _inbox, _connections = None, {}


os.register_at_fork(after_in_child=_after_fork)
