"""Linux: /dev/shm for payloads, pidfds for watching children exit."""

from __future__ import annotations

import os

_pidfd_ok: bool | None = None


def ram_tmpdir() -> str | None:
    """``/dev/shm`` where it is a writable directory (tmpfs on every mainstream distro)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def watch_exit_supported() -> bool:
    """True where ``os.pidfd_open`` works (Linux 5.3+, Python 3.9+)."""
    global _pidfd_ok
    if _pidfd_ok is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd_ok = True
        except (AttributeError, OSError):  # old kernel, or seccomp forbids it
            _pidfd_ok = False
    return _pidfd_ok


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask, not the machine's)."""
    return len(os.sched_getaffinity(0)) or 1
