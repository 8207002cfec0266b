"""Linux: /dev/shm for payloads, pidfds, a parent-death signal, subreapers."""

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


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def tie_to_parent(parent_pid: int) -> bool:
    """In a child: die with the parent; False if it is already gone.

    Arms ``PR_SET_PDEATHSIG`` (SIGKILL), which works even while the child is
    stuck in C code. The kernel fires it when the parent *thread* that started
    us exits, so parents start children from a thread that lives as long as
    they do. The parent may die before the arming, hence the pid check after.
    Also makes the child a subreaper, so descendants that double-fork stay in
    its tree, where ``terminate()`` finds them.
    """
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return os.getppid() == parent_pid
