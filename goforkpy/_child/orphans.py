"""What a zygote's children leave behind: adopted, then ended after a grace period.

A zygote is a subreaper, and so is each child it forks. Whatever a child
starts stays in the child's tree while it lives (a daemon that double-forks
comes back to it), and when the child dies, however it dies, the kernel
hands all of it to the zygote. ``Orphans`` finds those processes among the
zygote's children (the ones it did not fork), sends SIGTERM to each one's
family at once, and SIGKILLs what is left when the grace period of the child
they came from is over. A process orphaned later (its parent ended in the
meantime) comes to the zygote too, and goes by the same deadline.

The zygote is single-threaded: it asks ``next_deadline()`` how long it may
wait for its next event, and calls ``kill_overdue()`` after each wait.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from .._process.family import die_at_end_of, send_each
from .._process.platform import children_of, descendant_pids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable


class Orphans:
    """The processes a zygote adopted, each with the moment it is SIGKILLed."""

    def __init__(self, watch: Callable[[int], None]) -> None:
        self._watch = watch  # so their exits are noticed, and they are reaped
        self._deadlines: dict[int, float] = {}  # adopted pid -> when it is killed
        self._killed: set[int] = set()  # SIGKILLed: only their exits are awaited
        self._own: set[int] = set()  # children the zygote's own imports started

    def keep(self, pids: Iterable[int]) -> None:
        """``pids`` are the zygote's own children (a module it imported started them)."""
        self._own.update(pids)

    def adopt(self, known: Iterable[int], grace: float) -> None:
        """End every child of ours not in ``known`` (nor our own) within ``grace`` seconds."""
        self._adopt(set(known), time.monotonic() + grace)

    def ended(self, pid: int, known: Iterable[int]) -> bool:
        """``pid`` exited: True if it was adopted. What it orphaned goes by its deadline."""
        deadline = self._deadlines.pop(pid, None)
        if deadline is None:
            return False
        self._killed.discard(pid)
        self._adopt({*known, pid}, deadline)
        return True

    def pending(self) -> list[int]:
        """The adopted processes not yet reaped."""
        return list(self._deadlines)

    def next_deadline(self) -> float | None:
        """Seconds until the next adopted process is due to be killed (``None``: none is)."""
        due = [when for pid, when in self._deadlines.items() if pid not in self._killed]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def kill_overdue(self) -> None:
        """SIGKILL the families of adopted processes whose grace period is over."""
        now = time.monotonic()
        for pid, deadline in self._deadlines.items():
            if deadline <= now and pid not in self._killed:
                _signal_family(pid, signal.SIGKILL)
                self._killed.add(pid)

    def _adopt(self, known: set[int], deadline: float) -> None:
        me = os.getpid()
        found = [
            pid
            for pid in children_of(me)
            if pid not in known and pid not in self._own and pid not in self._deadlines
        ]
        overdue = deadline <= time.monotonic()
        for pid in found:
            self._deadlines[pid] = deadline
            self._watch(pid)
            _signal_family(pid, signal.SIGKILL if overdue else signal.SIGTERM)
            if overdue:
                self._killed.add(pid)


def _signal_family(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid`` and every descendant; to SIGKILL, stop them all first."""
    family = [pid, *descendant_pids(pid)]
    if sig == signal.SIGKILL:
        send_each(family, signal.SIGSTOP)  # nothing stopped can fork a new member meanwhile
        family = [pid, *descendant_pids(pid)]
    send_each(family, sig)


def contain(pid: int, grace: float, lifeline: int) -> int:
    """Wait for our child ``pid`` to exit, end what it left (a subreaper's), then reap it.

    For a process whose only child is ``pid`` (a snapshot's intermediate):
    ``pid`` stays unreaped, its pid not reusable, until its orphans are gone.
    At EOF on ``lifeline`` (the parent died) the whole family is ended at
    once, and this process with it. Returns ``pid``'s wait status.
    """
    _wait_for_exit(pid, lifeline)
    end_children({pid}, grace)
    return os.wait4(pid, 0)[1]


def end_children(known: set[int], grace: float) -> None:
    """End every child of ours but ``known``, and all they started; return once all are reaped.

    SIGTERM first, SIGKILL to what is left after ``grace`` seconds. What an
    executor's worker does after each task: the processes a task started do
    not outlive it.
    """
    orphans = Orphans(lambda adopted: None)
    orphans.adopt(known, grace)
    tick = 0.001
    while orphans.pending():
        for adopted in orphans.pending():
            if _reaped(adopted):
                orphans.ended(adopted, known)
        orphans.kill_overdue()
        if orphans.pending():
            wait = orphans.next_deadline()
            time.sleep(tick if wait is None else min(wait, tick))
            tick = min(tick * 2, 0.05)


def own_helpers(children: Iterable[int], kept: set[int]) -> set[int]:
    """goforkpy's own helpers among our ``children`` but ``kept``: the zygotes and
    guardians of goforkpy used in this process (a task's, a test's). They live as long
    as this process does; they are not what the task left."""
    from .._process.guardian import is_guardian

    zygotes = sys.modules.get("goforkpy._launch.kept_zygotes")
    helpers = set() if zygotes is None else set(zygotes.pids())
    helpers.update(pid for pid in children if pid not in kept and is_guardian(pid))
    return helpers


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True  # reaped by its owner (a Popen, goforkpy's reaper) meanwhile


def _wait_for_exit(pid: int, lifeline: int) -> None:
    """Block until child ``pid`` has exited (unreaped), or end everything if the parent dies."""
    import select

    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()  # not select(): a forked caller's descriptors go past 1023
        poller.register(pidfd, select.POLLIN)
        poller.register(lifeline, select.POLLIN)
        while True:
            ready = [fd for fd, _ in poller.poll()]
            if pidfd in ready:
                return
            die_at_end_of(lifeline)
    finally:
        os.close(pidfd)
