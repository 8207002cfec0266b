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

A forked copy gets the default dispositions back, and none of the original's
wake-up pipe. Its own first fork from its main thread installs its own.
"""

from __future__ import annotations

import os
import signal
import threading

from .._state import close_quietly

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_NAMES = ("SIGTERM", "SIGHUP")
_SIGNALS = tuple(getattr(signal, name) for name in _NAMES if hasattr(signal, name))
_AGAIN_AFTER = 0.1  # seconds a handler may take to start before its signal is sent again

_installed = False
_on_signal: Callable[[], None] | None = None
_handling = threading.Event()  # one of ours is being handled: no more resending
_wake: tuple[int, int] | None = None  # our wake-up pipe (read end, write end)


def install(on_signal: Callable[[], None]) -> None:
    """Once, from the main thread: ``on_signal()`` and then death, for each of ours whose
    disposition is the default. The user's own handlers stay in place."""
    global _installed, _on_signal
    if _installed or threading.current_thread() is not threading.main_thread():
        return  # handlers can only be set from the main thread; retried next fork
    _installed, _on_signal = True, on_signal
    ours = [sig for sig in _SIGNALS if signal.getsignal(sig) == signal.SIG_DFL]
    for sig in ours:
        signal.signal(sig, _end_children_then_die)
    if ours:
        _watch(frozenset(ours))


def _end_children_then_die(signum: int, frame: Any) -> None:
    _handling.set()
    try:
        if _on_signal is not None:
            _on_signal()
    finally:  # whatever happened to the children, the signal kills us as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _watch(ours: frozenset[int]) -> None:
    """Start the watcher, if Python's wake-up fd is free to be ours."""
    global _wake
    from . import reaper

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    if previous != -1:  # an event loop's (asyncio, Trio): it stays theirs
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)
        return
    _wake = (read_end, write_end)
    reaper.start_thread(_resend_unhandled, "signals", read_end, ours)


def _resend_unhandled(read_end: int, ours: frozenset[int]) -> None:
    main = threading.main_thread().ident
    assert main is not None
    while True:
        try:
            arrived = os.read(read_end, 512)
        except OSError:
            return  # closed: a forked copy let go of it
        if not arrived:
            return
        for sig in ours.intersection(arrived):
            # only while the handler is still ours: one the program set since is its own
            while not _handling.wait(_AGAIN_AFTER) and _still_ours(sig):
                signal.pthread_kill(main, sig)


def _still_ours(sig: int) -> bool:
    return signal.getsignal(sig) is _end_children_then_die


def _reset_in_copy() -> None:
    """In a forked copy: the default dispositions, no watcher; a fork installs anew."""
    global _installed, _wake, _handling
    if not _installed:
        return
    _installed, _handling = False, threading.Event()
    released = False
    try:
        for sig in _SIGNALS:
            if _still_ours(sig):
                signal.signal(sig, signal.SIG_DFL)
        if _wake is not None:
            current = signal.set_wakeup_fd(-1)
            if current != _wake[1]:
                signal.set_wakeup_fd(current)  # not ours any more (an event loop's)
            released = True
    except ValueError:
        pass  # Python would not let this thread change them
    if _wake is not None:
        read_end, write_end = _wake
        _wake = None
        close_quietly(read_end)
        if released:
            close_quietly(write_end)
        else:  # Python still writes there: to nowhere, not to the original's watcher
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, write_end, inheritable=False)
            os.close(null)


os.register_at_fork(after_in_child=_reset_in_copy)
