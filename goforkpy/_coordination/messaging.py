"""Messages between goforkpy processes of one user, addressed by pid.

A process that calls ``receive()`` listens on a Unix socket named
``<pid>-ipc.sock`` in the user's private 0700 directory (the one payload files
use), never in the abstract namespace: other users can neither connect nor
read. Both ends check each other where the OS tells who is at the other end
(SO_PEERCRED on Linux, LOCAL_PEERCRED elsewhere): the receiver drops peers of
another uid and takes the sender's pid from the kernel, not from what the
sender claims; the sender refuses a socket held by another user, or by a
process other than the one it is sending to.

A sender keeps one connection per receiver and group, and sends frames on it
under a lock, so one sender's messages arrive in order and whole; a send
that timed out drops its connection, and the receiver (``inbox``) queues
what that connection carried before anything of the sender's next one.
Socket files are removed when their process exits (or by the next sweep, if
it was killed).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time

from .. import _checks
from .._errors import IPCError, TimeoutExpired
from .._process.platform import pid_exists
from .._shared import hooks
from .._state import Local
from .inbox import Inbox, Message, socket_path

__all__ = ["Message", "close_inbox", "forget", "receive", "send", "socket_path"]

_MAX_MESSAGE = 1 << 30
_MAX_GROUP = 1024
_SMALL = 1 << 16  # below this, header and data go in one write


def _not_in_a_sandbox(what: str) -> None:
    import sys

    inside = sys.modules.get("goforkpy._sandbox.inside")
    if inside is not None:
        inside.refuse(what)


# --- sending ---------------------------------------------------------------------------


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()


def _close_all(connections: dict[tuple[int, str], _Connection], handing: bool) -> None:
    for connection in connections.values():  # a forked copy's: the original's
        connection.sock.close()


_connections: Local[dict[tuple[int, str], _Connection]] = Local(dict, _close_all)


def send(pid: int, data: bytes | str, group: str = "default", timeout: float = 5.0) -> None:
    """Send ``data`` to the goforkpy process ``pid``, in ``group``.

    If ``pid`` has not called ``receive()`` yet, this waits up to ``timeout``
    seconds for it to; it also waits while the receiver's queue for ``group``
    is full.

    Raises:
        IPCError: no process ``pid``; it never started receiving; it went away;
            it did not take the message within ``timeout``; or the socket
            for ``pid`` is held by another user or process.
        TypeError: ``data`` is not bytes or str, or ``pid`` not an int.
        ForkError: called inside a sandbox (``fork.Sandbox``), which reaches no
            socket outside it.
        ValueError: ``pid`` is not positive, or ``timeout`` is NaN or negative.
    """
    _check_pid(pid)
    _not_in_a_sandbox("fork.send()")
    limit = _checks.seconds("timeout", timeout)
    frame = _frame(data, group)
    deadline = None if limit is None else time.monotonic() + limit
    connection = _connect(pid, group, deadline, timeout)
    with connection.lock:
        connection.sock.settimeout(None if deadline is None else _left(deadline))
        try:
            for part in frame:
                connection.sock.sendall(part)
        except (TimeoutError, OSError) as exc:
            _forget((pid, group), connection)
            if isinstance(exc, socket.timeout):
                raise IPCError(
                    f"pid {pid} did not take the message within {timeout} s; its queue "
                    f"for group {group!r} is full (is it calling fork.receive({group!r})?)"
                ) from None
            raise IPCError(f"pid {pid} went away while the message was sent: {exc}") from exc


def _check_pid(pid: object) -> None:
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"fork.send() needs the receiver's pid as an int, not {pid!r}")
    if pid <= 0:
        raise ValueError(f"fork.send({pid}, ...): a pid is a positive number")


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


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
    _group_bytes(group)
    if len(data) > _MAX_MESSAGE:
        raise IPCError(
            f"message too large: data up to {_MAX_MESSAGE >> 20} MiB; split it, "
            "or send a path to a file instead"
        )
    header = len(data).to_bytes(8, "little")
    if len(data) < _SMALL:
        return [header + data]
    return [header, data]


def _group_bytes(group: str) -> bytes:
    if not isinstance(group, str):
        raise TypeError(f"group must be a str, not {type(group).__name__}")
    encoded = group.encode()
    if len(encoded) > _MAX_GROUP:
        raise IPCError(f"group name too long: up to {_MAX_GROUP} bytes")
    return encoded


def _connect(pid: int, group: str, deadline: float | None, timeout: float) -> _Connection:
    connections = _connections.get()
    with _connections.lock:
        known = connections.get((pid, group))
    if known is not None:
        return known
    path, delay = socket_path(pid), 0.001
    hello = os.getpid().to_bytes(8, "little") + _with_length(_group_bytes(group))
    while True:
        if not pid_exists(pid):
            raise IPCError(f"cannot send to pid {pid}: no such process")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            _check_receiver(sock, pid, path)
            sock.sendall(hello)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()  # not receiving (yet): wait for it, up to the deadline
        except IPCError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise IPCError(f"cannot connect to pid {pid} at {path}: {exc.strerror}") from exc
        else:
            return _remember((pid, group), _Connection(sock))
        if deadline is not None and _left(deadline) <= 0:
            raise IPCError(
                f"pid {pid} is running but did not call fork.receive() within {timeout} s; "
                "a process must call fork.receive() to get messages"
            )
        time.sleep(delay if deadline is None else min(delay, _left(deadline)))
        delay = min(delay * 2, 0.05)


def _with_length(group: bytes) -> bytes:
    return len(group).to_bytes(2, "little") + group


def _check_receiver(sock: socket.socket, pid: int, path: str) -> None:
    """Refuse a socket that another user, or another process, is listening on."""
    from .._process import platform

    peer_pid, peer_uid = platform.peer_credentials(sock)
    if peer_uid is not None and peer_uid != os.geteuid():
        raise IPCError(
            f"refusing to send to pid {pid}: its socket {path} is held by uid {peer_uid}, "
            f"not by us (uid {os.geteuid()}); check who can write to the private directory"
        )
    if peer_pid is not None and peer_pid != pid:
        raise IPCError(
            f"refusing to send to pid {pid}: its socket {path} is held by pid {peer_pid}"
        )


def _remember(key: tuple[int, str], connection: _Connection) -> _Connection:
    connections = _connections.get()
    with _connections.lock:
        existing = connections.setdefault(key, connection)
    if existing is not connection:
        connection.sock.close()  # another thread connected first: share its connection
    return existing


def forget(pid: int) -> None:
    """Close our connections to ``pid`` (it exited)."""
    known = _connections.peek()
    if known is None:
        return
    with _connections.lock:
        gone = [known.pop(key) for key in [key for key in known if key[0] == pid]]
    for connection in gone:
        connection.sock.close()


def _forget(key: tuple[int, str], connection: _Connection) -> None:
    connections = _connections.get()
    with _connections.lock:
        if connections.get(key) is connection:
            del connections[key]
    connection.sock.close()


# --- receiving --------------------------------------------------------------------------


def _new_inbox() -> Inbox:
    global _closing_registered
    if not _closing_registered:  # once: a forked copy inherits these
        _closing_registered = True
        import atexit

        atexit.register(close_inbox)
        hooks.on_leaving.append(close_inbox)  # a child leaves by os._exit: no atexit
    return Inbox()


_closing_registered = False
_inbox: Local[Inbox] = Local(_new_inbox, lambda inbox, handing: inbox.disown())


def receive(group: str = "default", timeout: float | None = None) -> Message:
    """The next message sent to this process in ``group``.

    The first call starts listening; messages sent before it wait for it.

    Raises:
        TimeoutExpired: nothing arrived within ``timeout`` seconds.
        ForkError: called inside a sandbox (``fork.Sandbox``).
    """
    _not_in_a_sandbox("fork.receive()")
    inbox = _inbox.get()
    limit = _checks.seconds("timeout", timeout)
    try:
        return inbox.queue(group).get(timeout=limit)
    except queue.Empty:
        raise TimeoutExpired(
            f"no message in group {group!r} within {timeout} s", timeout=timeout, pid=os.getpid()
        ) from None


def close_inbox() -> None:
    """Stop listening and remove this process's socket file."""
    inbox = _inbox.take()
    if inbox is not None:
        inbox.close()


hooks.on_reaped.append(forget)  # a reaped child's connections are dead
