"""Behaviour common to every POSIX system."""

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Callable


def ram_tmpdir() -> "str | None":
    """A RAM-backed directory for payload files, or ``None`` to use the temp dir."""
    return None


def watch_exit_supported() -> bool:
    """True where a child's exit can be watched through a pidfd."""
    return False


def max_rss_bytes(reported: int) -> int:
    """``ru_maxrss`` in bytes: macOS reports bytes, Linux and the BSDs kilobytes."""
    import sys

    return reported if sys.platform == "darwin" else reported * 1024


def usable_cpus() -> int:
    """How many CPUs this process may run on."""
    return os.cpu_count() or 1


def tie_to_parent(parent_pid: int, die_with_it: bool) -> bool:
    """In a child: die with the parent where the OS can; False if it is already gone.

    Portable POSIX has no parent-death signal nor subreapers: the lifeline
    pipe and the guardian do it.
    """
    return os.getppid() == parent_pid


def adopt_orphans() -> bool:
    """False: portable POSIX has no subreapers; what a descendant orphans goes to init."""
    return False


def prepare_tie() -> None:
    """Nothing to load: portable POSIX has no parent-death signal."""


def group_and_tie_preexec() -> "Callable[[], None]":
    """A ``preexec_fn`` for a short-lived command: it leads its own process group."""
    return os.setpgrp


def peer_credentials(sock: "socket.socket") -> "tuple[int | None, int | None]":
    """(pid, uid) of the peer of a Unix socket, each where the OS tells (macOS, BSD).

    ``None`` where it cannot be had; the 0700 directory the sockets live in
    already keeps other users from connecting.
    """
    import socket
    import struct

    pid = uid = None
    uid_option = getattr(socket, "LOCAL_PEERCRED", None)
    if uid_option is not None:
        # struct xucred: u_int cr_version; uid_t cr_uid; ...
        creds = sock.getsockopt(0, uid_option, struct.calcsize("2I"))
        uid = int(struct.unpack("2I", creds[: struct.calcsize("2I")])[1])
    pid_option = getattr(socket, "LOCAL_PEERPID", None)
    if pid_option is not None:
        pid = int(struct.unpack("i", sock.getsockopt(0, pid_option, 4))[0])
    return pid, uid


def has_exited(pid: int) -> bool:
    """True once our child ``pid`` is a zombie or gone; it is not reaped."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_unreaped(pid: int) -> "int | None":
    """Wait until our child ``pid`` has exited, leaving it to be reaped by its owner.

    Portable POSIX cannot wait without reaping (``waitid`` is missing on
    macOS), so this polls until the child is a zombie or gone; its exit
    status is then unknown here: ``None``.
    """
    import time

    import psutil

    delay = 0.001
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def pid_exists(pid: int) -> bool:
    """True while a process ``pid`` exists (ours to signal or not)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def descendant_pids(pid: int) -> list[int]:
    """Every descendant of ``pid``, each after its parent (psutil: POSIX has no cheaper way)."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def has_children() -> bool:
    """Whether this process may have a child, running or ended (none is reaped).

    Portable POSIX cannot tell without reaping (``waitid`` is missing on macOS):
    always True, so the caller looks with ``children_of``.
    """
    return True


def children_of(pid: int) -> list[int]:
    """The children of ``pid`` (psutil: POSIX has no cheaper way)."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def sealed_memory_supported() -> bool:
    """Portable POSIX has no sealed in-memory files: payloads go through files."""
    return False


def new_sealable(name: str) -> int:
    raise OSError("sealed in-memory files need Linux")


def seal(fd: int) -> None:
    raise OSError("sealed in-memory files need Linux")


def is_sealed(fd: int) -> bool:
    return False


def oom_kills_since_last_look() -> bool:
    """Portable POSIX does not say when the kernel killed a process for memory."""
    return False


def note_oom_kills() -> None:
    """Nothing to remember: see ``oom_kills_since_last_look``."""


def anonymous_file() -> int:
    """A private file (0600, unlinked at once): a worker's captured output."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="goforkpy-capture-")
    os.unlink(path)
    return fd


def resident_bytes(pid: int) -> "int | None":
    """The resident memory of ``pid`` now, in bytes (``None`` if it is gone)."""
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def thread_ids() -> "list[int] | None":
    """The id of every thread of this process: ``None``, POSIX cannot list them."""
    return None


def thread_name(tid: int) -> "str | None":
    """The name of thread ``tid`` of this process: unknown here (see ``linux``)."""
    return None


def thread_started(tid: int) -> "int | None":
    """When thread ``tid`` started: unknown here (see ``linux``)."""
    return None


def thread_libraries(tid: int) -> list[str]:
    """The shared objects on thread ``tid``'s stack: unknown here (see ``linux``)."""
    return []


def oom_counter_readable() -> bool:
    """True where OOM kills are counted where we can read them: Linux cgroups only."""
    return False


def subreaper_supported() -> bool:
    """True where the OS has subreapers: Linux only (FreeBSD's procctl is not used)."""
    return False
