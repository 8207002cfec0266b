"""Process trees: find every descendant, signal them all, escalate, make sure.

The walk is Go's process-group recipe made thorough: every descendant by
parentage (so ones that called ``setsid``/``setpgid`` are found) plus every
process group a family member leads (so members whose parent already died
are reached too). Processes vanishing mid-walk are expected; psutil checks a
process's start time before signalling it, so a reused pid is never hit.
Escalation to SIGKILL first stops the whole family (SIGSTOP), so nothing can
fork a new member between the walk and the kill.
"""

from __future__ import annotations

import os
import signal
import time

import psutil

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol, Sequence

    class TreeHandle(Protocol):
        """What ``end_handles`` needs of a handle (``ExitWatch`` has it)."""

        @property
        def pid(self) -> int: ...

        _leads_group: bool

        def _tree_root(self) -> psutil.Process | None: ...
        def _wait_ended(self) -> None: ...


_STOP_PASSES = 10  # rounds of "stop what is new" before the final SIGKILL


def psutil_process(pid: int) -> psutil.Process | None:
    """A psutil handle on ``pid``, or ``None`` if it is gone."""
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def kill_tree(pid: int, sig: int = signal.SIGTERM, grace: float = 5.0) -> list[int]:
    """Signal ``pid``, every descendant and every process group they lead.

    Whatever is still alive ``grace`` seconds later is killed with SIGKILL.
    Processes that vanish along the way are skipped silently.

    Args:
        pid: the root of the tree (any process this user may signal).
        sig: the first signal (default SIGTERM).
        grace: seconds to wait before SIGKILL.

    Returns:
        The pids that were signalled, sorted.

    Raises:
        ValueError: ``pid`` is 0, 1, negative (process groups), this process or
            one of its ancestors; or ``grace`` is negative, NaN or infinite.
    """
    from .. import _checks

    _checks.target_pid(pid, "kill_tree")
    grace = _checks.grace(grace)
    root = psutil_process(pid)
    return [] if root is None else end_trees([root], sig, grace, groups=())


def end_handles(handles: Sequence[TreeHandle], sig: int, grace: float) -> list[int]:
    """End the trees of ``handles`` together, then wait for each to be gone.

    The one way goforkpy ends processes (a ``Child``, an ``Adopted`` process,
    a shell command, all of a Manager's): one walk and one grace period for
    all of them, however many.
    """
    roots = [root for root in (h._tree_root() for h in handles) if root is not None]
    signalled = []
    if roots:
        groups = tuple(h.pid for h in handles if h._leads_group)
        signalled = end_trees(roots, sig, grace, groups)
    for handle in handles:
        handle._wait_ended()
    return signalled


def end_trees(
    roots: list[psutil.Process], sig: int, grace: float, groups: tuple[int, ...]
) -> list[int]:
    """End many trees at once: one walk, one grace period for all of them."""
    family = _with_young(roots)
    signalled = _signal(family, sig, groups)
    if sig != signal.SIGKILL and grace > 0:
        family = _wait_gone(family, grace)
    signalled |= _kill_everything(family, groups)
    return sorted(signalled)


def _with_young(family: list[psutil.Process]) -> list[psutil.Process]:
    """The living members of ``family`` and all their descendants."""
    found = {p.pid: p for p in family if _alive(p)}
    if len(found) == 1:
        (only,) = found.values()
        young = _descendants(only)
    elif found:
        young = _descendants_of_many(set(found))
    else:
        young = []
    for process in young:
        found.setdefault(process.pid, process)
    return list(found.values())


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def _descendants_of_many(pids: set[int]) -> list[psutil.Process]:
    """Descendants of all ``pids`` from one scan of the process table."""
    children: dict[int, list[psutil.Process]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"], []).append(process)
    found: list[psutil.Process] = []
    queue = list(pids)
    while queue:
        for young in children.get(queue.pop(), ()):
            found.append(young)
            queue.append(young.pid)
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(family: list[psutil.Process], sig: int, groups: tuple[int, ...]) -> set[int]:
    """Send ``sig`` once to each process: through its group where the group is
    one we signal (ours, or led by a family member), directly otherwise."""
    groups_of: dict[int, int] = {}
    for process in family:
        try:
            groups_of[process.pid] = os.getpgid(process.pid)
        except ProcessLookupError:
            pass  # gone already
    leaders = set(groups) | {pid for pid, pgid in groups_of.items() if pid == pgid}
    signalled: set[int] = set()
    for pgid in leaders:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            continue  # the group emptied, or holds nothing of ours
        signalled.update(pid for pid, group in groups_of.items() if group == pgid)
    for process in family:
        if process.pid in groups_of and groups_of[process.pid] not in leaders:
            try:
                process.send_signal(sig)  # psutil checks it is still the same process
                signalled.add(process.pid)
            except psutil.Error:
                pass
    return signalled


def _wait_gone(family: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for the family to exit; return who is left."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        family = [p for p in family if _alive(p)]
        left = deadline - time.monotonic()
        if not family or left <= 0:
            return family
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.02)


def _kill_everything(family: list[psutil.Process], groups: tuple[int, ...]) -> set[int]:
    """Stop the family until no new member appears, then SIGKILL it all."""
    stopped: dict[int, psutil.Process] = {}
    for _ in range(_STOP_PASSES):
        new = [p for p in _with_young(family) if p.pid not in stopped]
        if not new:
            break
        _signal(new, signal.SIGSTOP, ())
        stopped.update((p.pid, p) for p in new)
        family = list(stopped.values())
    # The known groups too: they may hold members whose parents are gone.
    return _signal(list(stopped.values()), signal.SIGKILL, groups)
