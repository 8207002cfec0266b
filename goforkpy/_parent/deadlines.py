"""A child's two deadlines: ``start_timeout`` for its start-up, ``timeout`` for its function.

The child writes one byte to a pipe as its function starts (``boot``), so
the time an interpreter takes to start and import under load is never
counted against the function. A thread per timed child waits on that pipe
for up to ``start_timeout``, then on the child's exit for up to ``timeout``,
and has the handle end the tree if either passes.
"""

from __future__ import annotations

import os

from .._errors import TimeoutExpired
from .._process import reaper

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import Callable

    from .outcome import Ending


class Deadlines:
    """The seconds allowed for each phase, and which one passed (if one did)."""

    __slots__ = ("passed", "seconds")
    STACKS_WAIT = 1.0  # seconds a child past start_timeout has to write its threads' stacks

    def __init__(self, start: float | None, run: float | None) -> None:
        self.seconds = {"start_timeout": start, "timeout": run}  # by the option's name
        self.passed: str | None = None  # which, set by Child._expire

    def enforce(
        self, pid: int, started: int, ended: threading.Event, expire: Callable[[str], None]
    ) -> None:
        """Watch child ``pid``, given the read end of its ``started`` pipe (ours to close).

        ``ended`` is set when the child has exited; ``expire(which)`` ends it.
        """
        try:
            reaper.start_thread(self._watch, f"deadline-{pid}", started, ended, expire)
        except BaseException:
            os.close(started)
            raise

    def _watch(self, started: int, ended: threading.Event, expire: Callable[[str], None]) -> None:
        import selectors

        try:
            with selectors.DefaultSelector() as selector:
                selector.register(started, selectors.EVENT_READ)
                if not selector.select(self.seconds["start_timeout"]):
                    expire("start_timeout")
                    return
            if os.read(started, 1) != b"\1":
                return  # it exited before its function started: its exit tells why
        finally:
            os.close(started)
        run_for = self.seconds["timeout"]
        if run_for is not None and not ended.wait(run_for):
            expire("timeout")

    @staticmethod
    def ask_for_stacks(pid: int) -> bool:
        """Have child ``pid``, whose start-up passed ``start_timeout``, write the stack of
        each of its threads to its fault file and die of it (``_env.STACKS``); the child
        alone, what it started is ended next. False if it is gone."""
        from .. import _env

        try:
            os.kill(pid, _env.STACKS)
        except ProcessLookupError:
            return False
        return True

    def error(self, name: str, pid: int, ending: Ending | None = None) -> TimeoutExpired:
        """The error for the deadline that passed, saying which it was; for a child past
        ``start_timeout``, with the stacks its threads had then (``ask_for_stacks``)."""
        stacks = None if ending is None else ending.traceback
        which = self.passed or "timeout"
        seconds = self.seconds[which]
        if which == "start_timeout":
            what = (
                f"did not reach its function within start_timeout={seconds} s "
                "(interpreter start-up and imports)"
            )
        else:
            what = f"ran past its timeout of {seconds} s (counted from the function's start)"
            stacks = None
        told = "; the stack of each of its threads then is in .traceback" if stacks else ""
        return TimeoutExpired(
            f"child {name!r} (pid {pid}) {what}; its process tree was terminated{told}",
            timeout=seconds,
            pid=pid,
            name=name,
            traceback=stacks,
        )
