"""The pids cgroups that cap a sandbox's processes where the program runs as root.

``RLIMIT_NPROC`` does not bind root, a pids cgroup does. Each sandboxed
child of a program run as root gets one of its own, ``goforkpy-<stem>``
beside this process's cgroup, with ``pids.max`` set; the child joins it
before it enters the sandbox (from then on it cannot leave). A cgroup is
removed once the child has ended; one still holding processes (orphans
within their grace period) is removed later: at the next sandboxed start,
or at exit once the children are ended. A dead program's are swept.
"""

from __future__ import annotations

import os
import threading

V1, V2 = "/sys/fs/cgroup/pids", "/sys/fs/cgroup"
PREFIX = "goforkpy-"

_lock = threading.Lock()
_later: set[str] = set()  # cgroups still holding processes when their child ended
_swept = False


def parent() -> str | None:
    """The pids cgroup directory our sandboxes' cgroups go under, if we may write there."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "pids":
            base = V1 + path.rstrip("/")
        elif controllers == "" and _has_pids_v2():
            base = V2 + path.rstrip("/")
        else:
            continue
        if os.access(base, os.W_OK):
            return base
    return None


def _has_pids_v2() -> bool:
    try:
        with open(os.path.join(V2, "cgroup.subtree_control")) as f:
            return "pids" in f.read().split()
    except OSError:
        return False


def make(name: str, cap: int) -> str:
    """A new cgroup ``goforkpy-<name>`` allowing ``cap`` processes (its path)."""
    where = parent()
    if where is None:  # pragma: no cover - policy.require() said so first
        from .._errors import SandboxUnavailable

        raise SandboxUnavailable("no writable pids cgroup for a sandbox run as root")
    _tidy(where)
    path = os.path.join(where, PREFIX + name)
    os.mkdir(path)
    try:
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(cap))
    except BaseException:
        os.rmdir(path)
        raise
    return path


def remove(name: str) -> None:
    """Remove cgroup ``goforkpy-<name>`` (none made: nothing to do); one that still holds
    processes goes later."""
    where = parent()
    if where is None:
        return
    path = os.path.join(where, PREFIX + name)
    if not _removed(path):
        with _lock:
            first = not _later
            _later.add(path)
        if first:
            from .._process import lifeline

            lifeline.after_children(_at_exit)


def _removed(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # EBUSY: processes in it (orphans within their grace period)
    return True


def _tidy(where: str) -> None:
    """Remove what waited, and (once) the cgroups of programs that are gone."""
    global _swept
    with _lock:
        waiting = list(_later)
    for path in waiting:
        if _removed(path):
            with _lock:
                _later.discard(path)
    if not _swept:
        _swept = True
        _sweep(where)


def _sweep(where: str) -> None:
    """The cgroups of programs no longer running: their processes killed, then removed."""
    import signal

    for name in os.listdir(where):
        owner = name[len(PREFIX) :].split("-", 1)[0]  # goforkpy-<pid of its program>-...
        if not name.startswith(PREFIX) or not owner.isdigit() or _alive(int(owner)):
            continue
        path = os.path.join(where, name)
        for pid in _members(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _removed(path)


def _members(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(line) for line in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _at_exit() -> None:
    """At exit, the children ended: what their cgroups still hold is killed, and they go."""
    import signal
    import time

    with _lock:
        waiting = list(_later)
        _later.clear()
    for path in waiting:
        deadline = time.monotonic() + 1.0
        while not _removed(path) and time.monotonic() < deadline:
            for pid in _members(path):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)
