"""SIGTERM and SIGHUP end a parent's children before the parent dies of them.

Where their disposition is the default, the first fork from the main thread
installs a handler that ends the live children gracefully, then dies of the
signal as the default would have. Python runs that handler in the main
thread, between bytecodes, and a main thread waiting in C can miss it for
good: a semaphore wait woken by a post in the same instant as the signal
arrives goes back to waiting, the handler due but never run.
(``multiprocessing.Pool.terminate`` hung so in a worker.)

A watcher thread closes that gap. It reads the signals from Python's wake-up
fd, where nothing else uses it. When one of ours arrives and its handler has
not started a moment later, the watcher sends it again, to the main thread
alone: that interrupts the wait, and the handler runs.

A child being started when one arrives is ended with the others: the handler
is held back during a start in the main thread, and waits for the starts of
other threads (``starting``).

A forked copy gets the default dispositions back, and none of the original's
wake-up pipe (what is installed is a ``_state.Local``, reset by its one at-fork
hook). Its own first fork from its main thread installs its own.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found,unused-ignore] # signal's C half
import os
import signal
import threading

from .._state import Local, close_quietly
from . import starting

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_NAMES = ("SIGTERM", "SIGHUP")
_SIGNALS = tuple(getattr(signal, name) for name in _NAMES if hasattr(signal, name))
_AGAIN_AFTER = 0.1  # seconds a handler may take to start before its signal is sent again


class _Installed:
    """Our handlers in this process: what they call first, and the watcher's pipe."""

    def __init__(self) -> None:
        self.on_signal: Callable[[], None] = lambda: None
        self.handling = threading.Event()  # one of ours is being handled: no more resending
        self.wake: tuple[int, int] | None = None  # our wake-up pipe (read end, write end)


def install(on_signal: Callable[[], None]) -> None:
    """Once, from the main thread: ``on_signal()`` and then death, for each of ours whose
    disposition is the default. The user's own handlers stay in place."""
    if _ours.peek() is not None or threading.current_thread() is not threading.main_thread():
        return  # handlers can only be set from the main thread; retried next fork
    installed = _ours.get()
    installed.on_signal = on_signal
    signals = [sig for sig in _SIGNALS if signal.getsignal(sig) == signal.SIG_DFL]
    for sig in signals:
        signal.signal(sig, _end_children_then_die)
    if signals:
        _watch(installed, frozenset(signals))


def _end_children_then_die(signum: int, frame: Any) -> None:
    installed = _ours.peek()
    if installed is not None:
        installed.handling.set()  # handled (now, or once a start is done): not sent again
    if starting.hold(_end_children_then_die, signum):
        return  # run at the end of the start the main thread is in
    try:
        starting.stop()
        if installed is not None:
            installed.on_signal()
    finally:  # whatever happened to the children, the signal kills us as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


starting.holding_itself(_end_children_then_die)


def _watch(installed: _Installed, signals: frozenset[int]) -> None:
    """Start the watcher, if Python's wake-up fd is free to be ours."""
    from . import reaper

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    if previous != -1:  # an event loop's (asyncio, Trio): it stays theirs
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)
        return
    installed.wake = (read_end, write_end)
    reaper.start_thread(_resend_unhandled, "signals", read_end, signals, installed.handling)


def _resend_unhandled(read_end: int, signals: frozenset[int], handling: threading.Event) -> None:
    main = threading.main_thread().ident
    assert main is not None
    while True:
        try:
            arrived = os.read(read_end, 512)
        except OSError:
            return  # closed: a forked copy let go of it
        if not arrived:
            return
        for sig in signals.intersection(arrived):
            # only while the handler is still ours: one the program set since is its own
            while not handling.wait(_AGAIN_AFTER) and _still_ours(sig):
                signal.pthread_kill(main, sig)


def _still_ours(sig: int) -> bool:
    # through _signal: signal.getsignal wraps each handler in an enum, at a cost each
    # fork would pay (_reset_in_copy)
    return _signal.getsignal(sig) is _end_children_then_die


def _reset_in_copy(installed: _Installed, handing: bool) -> None:
    """In a forked copy: the default dispositions, no watcher; a fork installs anew.

    Through ``_signal``: ``signal``'s functions wrap each handler in an enum, at a cost
    each fork would pay (0.1 ms)."""
    released = False
    try:
        for sig in _SIGNALS:
            if _still_ours(sig):
                _signal.signal(sig, _signal.SIG_DFL)
        if installed.wake is not None:
            current = signal.set_wakeup_fd(-1)
            if current != installed.wake[1]:
                signal.set_wakeup_fd(current)  # not ours any more (an event loop's)
            released = True
    except ValueError:
        pass  # Python would not let this thread change them
    if installed.wake is not None:
        read_end, write_end = installed.wake
        close_quietly(read_end)
        if released:
            close_quietly(write_end)
        else:  # Python still writes there: to nowhere, not to the original's watcher
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, write_end, inheritable=False)
            os.close(null)


_ours: Local[_Installed] = Local(_Installed, _reset_in_copy)
