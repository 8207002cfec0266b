"""Children being started: the moment between a child's making and the record of its pid.

The parent learns a child's pid only once the zygote, the spawner or the fork
has made it. A signal handler that runs in that moment (Python runs them in
the main thread, between any two bytecodes) would find the child unknown:
goforkpy's own SIGTERM handler would end the other children and not this
one, and a KeyboardInterrupt or the program's own handler raising would leave
it running, or a zombie, with no handle on it.

So a start in the main thread holds the program's signal handlers back
(``child``): each Python handler is swapped for one that notes the
signal, and once the start is done the handlers are put back and those noted
are run, as they would have run, with the child known. Where one raises
(Ctrl+C's KeyboardInterrupt, a ``sys.exit`` in a handler of the program's),
the child just started is ended gracefully first, as a child is when its
parent exits. A wait inside a start before its child exists (a zygote that
has to start first) lets them run (``no_child_yet``).

Other threads cannot hold the main thread's handlers back; instead, before
goforkpy ends the children (at a signal of its own, or at exit), ``stop``
lets no new start begin and waits a moment for those under way.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

from .._state import Local
from . import quiet

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any, Callable, Iterator

    from .handle import ExitWatch

    Handler = Callable[[int, Any], Any]
else:
    import _signal  # signal's C half: signal's own calls wrap each handler in an enum

_OTHERS_WAITED = 5.0  # seconds ending the children waits for the starts of other threads


class _Held:
    """The program's Python signal handlers, swapped for one that notes each signal
    (goforkpy's own handler, which asks ``hold``, stays in place)."""

    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}
        self.due: list[tuple[Handler, int]] = []
        self.passing = False  # in a wait before the child exists: handlers run at once
        for number in quiet.HANDLED:
            handler = _signal.getsignal(number)
            if callable(handler) and handler not in _holding_themselves:
                self.handlers[number] = handler
                _signal.signal(number, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        if self.passing:
            self.handlers[signum](signum, frame)
        else:
            self.later(self.handlers[signum], signum)

    def later(self, handler: Handler, signum: int) -> None:
        if (handler, signum) not in self.due:
            self.due.append((handler, signum))

    def let_go(self) -> list[tuple[Handler, int]]:
        """The handlers back in place; those due for the signals noted meanwhile."""
        for number, handler in self.handlers.items():
            if _signal.getsignal(number) == self._note:
                _signal.signal(number, handler)
        due, self.due = self.due, []
        return due


_holding_themselves: list[Handler] = []


def holding_itself(handler: Handler) -> None:
    """``handler`` calls ``hold`` first: no need to swap it out for a start (which costs)."""
    _holding_themselves.append(handler)


def hold(handler: Handler, signum: int) -> bool:
    """In a handler: where the main thread is in a start, keep the call for its end."""
    starts = _starts.peek()
    held = None if starts is None else starts.held
    if held is None or held.passing:
        return False
    held.later(handler, signum)
    return True


class _Starts:
    """The starts under way: the main thread's nesting (while it is in one, the handlers
    are held), and how many other threads have one."""

    def __init__(self) -> None:
        # reentrant: a handler may run in the main thread while it holds this
        self.changed = threading.Condition(threading.RLock())
        self.in_main = 0
        self.held: _Held | None = None
        self.elsewhere = 0
        self.stopped = False  # the children are being ended: no new start

    def enter(self, main: bool) -> None:
        with self.changed:
            if main:
                self.in_main += 1
                if self.in_main == 1:
                    self.held = _Held()
                return
            while self.stopped:  # the process is ending: this thread's start waits for it
                self.changed.wait()
            self.elsewhere += 1

    def leave(self, main: bool) -> list[tuple[Handler, int]]:
        """The end of one start: where it is the main thread's last, the handlers due."""
        with self.changed:
            if not main:
                self.elsewhere -= 1
                self.changed.notify_all()
                return []
            self.in_main -= 1
            held = self.held
            if self.in_main or held is None:
                return []
            self.held = None
            return held.let_go()


def _in_copy(starts: _Starts, handing: bool) -> None:
    """In a forked copy (a snapshot, made inside a start): the program's handlers back."""
    if starts.held is not None:
        try:
            starts.held.let_go()
        except ValueError:
            pass  # not forked by the main thread: the handlers it saw are the program's


_starts: Local[_Starts] = Local(_Starts, _in_copy)


@contextmanager
def child() -> Iterator[list[ExitWatch]]:
    """Around a child's start, until its pid is recorded; the start adds the child's
    handle to the list (see the module docstring)."""
    main = threading.current_thread() is threading.main_thread()
    starts = _starts.get()
    starts.enter(main)
    started: list[ExitWatch] = []
    try:
        yield started
    finally:
        due = starts.leave(main)
        if due:
            _run(due, started)


@contextmanager
def no_child_yet() -> Iterator[None]:
    """Inside ``child``, a wait before any child of it exists (its zygote starting,
    which may take long): the handlers are not held back meanwhile."""
    starts = _starts.get()
    if threading.current_thread() is not threading.main_thread():
        starts.leave(False)  # not a start under way: ending the children need not wait
        try:
            yield
        finally:
            starts.enter(False)
        return
    held = starts.held
    if held is None:  # not in a start
        yield
        return
    due, held.due = held.due, []
    _run(due, [])
    held.passing = True
    try:
        yield
    finally:
        held.passing = False


def _run(due: list[tuple[Handler, int]], started: list[ExitWatch]) -> None:
    """Run the handlers held back; where one raises, end the children just started first."""
    try:
        for handler, number in due:
            handler(number, sys._getframe(1))
    except BaseException:
        if started:
            from . import tree

            tree.end_handles(started, signal.SIGTERM, max(child._grace for child in started))
        raise


def stop() -> None:
    """The children are about to be ended (a signal of goforkpy's, the interpreter's exit):
    no start begins from now on, and those under way in other threads end first (within
    a few seconds), so their children are ended with the rest."""
    starts = _starts.peek()
    if starts is None:
        return
    with starts.changed:
        starts.stopped = True
        starts.changed.wait_for(lambda: starts.elsewhere == 0, _OTHERS_WAITED)
