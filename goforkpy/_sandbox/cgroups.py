"""The pids cgroups that cap a sandbox's processes where the program runs as root.

``RLIMIT_NPROC`` does not bind root, a pids cgroup does. Each sandboxed
child of a program run as root moves itself into a cgroup of its own,
``goforkpy-<program's pid>-c<its pid>`` beside the program's, and sets its
``pids.max`` before it enters the sandbox (from then on it cannot leave).
The kernel makes a move between cgroups wait for an RCU grace period, so a
zygote's spare child moves while it waits for its request, off the call's
path. The program removes a child's cgroup once the child has ended; one
still holding processes (orphans within their grace period) goes later: at
the next sandboxed start, or at exit, when what it holds is killed. A dead
program's are swept.
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

V1, V2 = "/sys/fs/cgroup/pids", "/sys/fs/cgroup"
PREFIX = "goforkpy-"

_lock = threading.Lock()
_later: set[str] = set()  # cgroups still holding processes when their child ended
_watching = False  # this program's exit and the dead programs' cgroups are seen to
_joined: list[str] = []  # in a child: the cgroup it moved into


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


def name_of(program: int, child: int) -> str:
    return f"{PREFIX}{program}-c{child}"


# --- in the child ------------------------------------------------------------------------


def move_in(program: int) -> None:
    """Move this process into a cgroup of its own (done once: a spare does it early)."""
    if _joined:
        return
    where = parent()
    if where is None:
        from .._errors import SandboxUnavailable

        raise SandboxUnavailable("no writable pids cgroup for a sandbox run as root")
    path = os.path.join(where, name_of(program, os.getpid()))
    os.mkdir(path)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write("0")
    _joined.append(path)


def cap(program: int, processes: int) -> None:
    """This process and all it starts: ``processes`` at most (moving in first)."""
    move_in(program)
    with open(os.path.join(_joined[0], "pids.max"), "w") as f:
        f.write(str(processes))


# --- in the program ----------------------------------------------------------------------


def watch() -> None:
    """Before a sandboxed start: remove what waited, sweep (once) the dead programs'
    cgroups, and see (once) that this program's go at its exit."""
    global _watching
    where = parent()
    if where is None:
        return
    with _lock:
        waiting = list(_later)
        first, _watching = not _watching, True
    for path in waiting:
        if _removed(path):
            with _lock:
                _later.discard(path)
    if first:
        from .._process import lifeline

        lifeline.after_children(_at_exit)
        _sweep(where, lambda owner: not _alive(owner))


def remove(child: int) -> None:
    """Remove the cgroup of this program's ended child ``child`` (if it made one); one
    that still holds processes goes later."""
    path = remove_for(os.getpid(), child)
    if path is not None:
        with _lock:
            _later.add(path)


def remove_for(program: int, child: int) -> str | None:
    """Remove the cgroup of ``program``'s ended child ``child``; its path where it still
    holds processes."""
    where = parent()
    if where is None:
        return None
    path = os.path.join(where, name_of(program, child))
    return None if _removed(path) else path


def _removed(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # EBUSY: processes in it (orphans within their grace period)
    return True


def _sweep(where: str, whose: Callable[[int], bool]) -> None:
    """End and remove the cgroups whose program ``whose(pid)`` says so of."""
    for name in os.listdir(where):
        owner = name[len(PREFIX) :].split("-", 1)[0]  # goforkpy-<its program's pid>-...
        if name.startswith(PREFIX) and owner.isdigit() and whose(int(owner)):
            _end_and_remove(os.path.join(where, name))


def _end_and_remove(path: str, seconds: float = 1.0) -> None:
    import signal
    import time

    deadline = time.monotonic() + seconds
    while not _removed(path) and time.monotonic() < deadline:
        for pid in _members(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


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
    """At exit, the children ended: this program's cgroups (what waited, a zygote's
    unused spare's) are emptied and removed."""
    where = parent()
    if where is not None:
        me = os.getpid()
        _sweep(where, lambda owner: owner == me)
