"""Behaviour common to every POSIX system."""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Callable


def ram_tmpdir() -> str | None:
    """A RAM-backed directory for payload files, or ``None`` to use the temp dir."""
    return None


def watch_exit_supported() -> bool:
    """True where a child's exit can be watched through a pidfd."""
    return False


def usable_cpus() -> int:
    """How many CPUs this process may run on."""
    return os.cpu_count() or 1


def tie_to_parent(parent_pid: int) -> bool:
    """In a child: die with the parent where the OS can; False if it is already gone.

    Portable POSIX has no parent-death signal: the lifeline pipe alone does it.
    """
    return os.getppid() == parent_pid


def group_and_tie_preexec() -> Callable[[], None]:
    """A ``preexec_fn`` for a short-lived command: it leads its own process group."""
    return os.setpgrp


def peer_uid(sock: socket.socket) -> int | None:
    """The uid at the other end of a Unix socket, where the OS tells (BSD, macOS).

    ``None`` where it cannot be had; the 0700 directory the sockets live in
    already keeps other users from connecting.
    """
    import socket
    import struct

    option = getattr(socket, "LOCAL_PEERCRED", None)
    if option is None:
        return None
    # struct xucred: u_int cr_version; uid_t cr_uid; ...
    creds = sock.getsockopt(0, option, struct.calcsize("2I"))
    return int(struct.unpack("2I", creds[: struct.calcsize("2I")])[1])


def pid_exists(pid: int) -> bool:
    """True while a process ``pid`` exists (ours to signal or not)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def descendant_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (psutil: portable POSIX has no cheaper way)."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
