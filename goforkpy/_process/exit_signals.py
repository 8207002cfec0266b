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

A child that is being started when one arrives is ended with the others: the
parent learns its pid only once the zygote, the spawner or the fork has made
it, so ``starting_child`` holds the handler back until the pid is known (it
runs when the start in the main thread is done), and the handler waits for
the starts other threads have under way, and lets no new one begin. Ctrl+C
(Python's own SIGINT handler) is held back the same way in the main thread:
the KeyboardInterrupt comes after the start, with the child ended.

A forked copy gets the default dispositions back, and none of the original's
wake-up pipe (what is installed is a ``_state.Local``, reset by its one at-fork
hook). Its own first fork from its main thread installs its own.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

from .._state import Local, close_quietly

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

    from .handle import ExitWatch

_NAMES = ("SIGTERM", "SIGHUP")
_SIGNALS = tuple(getattr(signal, name) for name in _NAMES if hasattr(signal, name))
_AGAIN_AFTER = 0.1  # seconds a handler may take to start before its signal is sent again
_OTHERS_WAITED = 5.0  # seconds a handler waits for the starts under way in other threads


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
        installed.handling.set()  # handled, now or once the start under way is done
    starts = _starts.peek()
    if starts is not None and starts.hold(signum):
        return
    try:
        stop_starts()
        if installed is not None:
            installed.on_signal()
    finally:  # whatever happened to the children, the signal kills us as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


# --- children being started ---------------------------------------------------------


class _Starts:
    """The children being started: the main thread's nesting (while it is in one, a
    signal of ours is held, and so is Ctrl+C), and how many other threads are starting
    one."""

    def __init__(self) -> None:
        # reentrant: the handler runs in the main thread, maybe while it holds this
        self.changed = threading.Condition(threading.RLock())
        self.in_main = 0
        self.elsewhere = 0
        self.held: int | None = None  # a signal of ours that came while in_main
        self.ctrl_c: _CtrlC | None = None  # while in_main, where Python's handler was set
        self.stopped = False  # the children are being ended: no new start

    def hold(self, signum: int) -> bool:
        """In the handler: keep ``signum`` for the end of the main thread's start."""
        if self.in_main:
            self.held = signum
            return True
        return False

    def enter(self, main: bool) -> None:
        with self.changed:
            if main:
                self.in_main += 1
                if self.in_main == 1:
                    self.ctrl_c = _CtrlC.hold()
                return
            while self.stopped:  # the process is dying: this thread's start waits for it
                self.changed.wait()
            self.elsewhere += 1

    def leave(self, main: bool) -> tuple[int | None, bool]:
        """The end of one start: where it is the main thread's last, the signal of ours
        held meanwhile, and whether Ctrl+C was pressed."""
        with self.changed:
            if not main:
                self.elsewhere -= 1
                self.changed.notify_all()
                return None, False
            self.in_main -= 1
            if self.in_main:
                return None, False
            held, self.held = self.held, None
            ctrl_c, self.ctrl_c = self.ctrl_c, None
            return held, ctrl_c is not None and ctrl_c.let_go()


class _CtrlC:
    """Python's Ctrl+C handler, swapped for one that notes the press while a child is
    made in the main thread: the KeyboardInterrupt comes once that child is known, and
    ended, not in the middle of its start, with the child left behind unknown."""

    def __init__(self) -> None:
        self.pressed = False

    @classmethod
    def hold(cls) -> _CtrlC | None:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None  # the program's own handler: it runs as it would
        ctrl_c = cls()
        signal.signal(signal.SIGINT, ctrl_c._note)
        return ctrl_c

    def _note(self, signum: int, frame: Any) -> None:
        self.pressed = True

    def let_go(self) -> bool:
        """Python's handler back; whether Ctrl+C was pressed meanwhile."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return self.pressed


def _starts_in_copy(starts: _Starts, handing: bool) -> None:
    """In a forked copy (a snapshot, made inside a start): Python's Ctrl+C handler back."""
    if starts.ctrl_c is not None:
        try:
            starts.ctrl_c.let_go()
        except ValueError:
            pass  # not forked by the main thread: the handler it saw is the program's


_starts: Local[_Starts] = Local(_Starts, _starts_in_copy)


def stop_starts() -> None:
    """The children are about to be ended (a signal of ours, the interpreter's exit): no
    start begins from now on, and those under way in other threads end first (within a
    few seconds), so their children are ended with the rest."""
    starts = _starts.peek()
    if starts is None:
        return
    with starts.changed:
        starts.stopped = True
        starts.changed.wait_for(lambda: starts.elsewhere == 0, _OTHERS_WAITED)


@contextmanager
def starting_child() -> Iterator[list[ExitWatch]]:
    """Around a child's start, until its pid is recorded (the start adds its handle to
    the list): a SIGTERM or SIGHUP of ours that comes meanwhile ends it with the other
    children (see the module docstring); Ctrl+C in the main thread ends it, then raises
    KeyboardInterrupt."""
    main = threading.current_thread() is threading.main_thread()
    starts = _starts.get()
    starts.enter(main)
    started: list[ExitWatch] = []
    try:
        yield started
    finally:
        held, pressed = starts.leave(main)
        if held is not None:
            _end_children_then_die(held, None)
        if pressed:
            from . import tree

            tree.end_handles(started, signal.SIGKILL, 0.0)  # and reaped
            raise KeyboardInterrupt


@contextmanager
def no_child_yet() -> Iterator[None]:
    """Inside ``starting_child``, a wait before any child of it exists (its zygote starting,
    which may take long): signals are not held back meanwhile."""
    main = threading.current_thread() is threading.main_thread()
    starts = _starts.get()
    held, pressed = starts.leave(main)
    if held is not None:
        _end_children_then_die(held, None)
    try:
        if pressed:
            raise KeyboardInterrupt
        yield
    finally:
        starts.enter(main)


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
    return signal.getsignal(sig) is _end_children_then_die


def _reset_in_copy(installed: _Installed, handing: bool) -> None:
    """In a forked copy: the default dispositions, no watcher; a fork installs anew."""
    released = False
    try:
        for sig in _SIGNALS:
            if _still_ours(sig):
                signal.signal(sig, signal.SIG_DFL)
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
