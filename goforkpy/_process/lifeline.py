"""Children never outlive their parent.

Four mechanisms, so that no single failure leaves an orphan:

- The lifeline: one pipe per parent process. Children inherit its read end
  and watch it; the parent alone holds the write end, so when the parent
  dies by any means the children read EOF, kill their own descendants and
  exit.
- The guardian (``guardian``), a watchdog process that, once the parent is
  gone, stops and kills every listed child's whole tree, found by parentage
  (so descendants that moved to groups or sessions of their own go too), and
  each child's process group: this catches children stuck in C code and
  whatever they started by other means.
- On Linux, where the guardian could not start, ``PR_SET_PDEATHSIG`` (armed
  by the child's watcher thread through ``platform.tie_to_parent``), which
  works even in a child stuck in C code. The kernel fires it when the
  *thread* that started the child exits, so children are started either from
  the main thread or from one long-lived launcher thread, never from a
  short-lived one.
- At exit (normal exit, an uncaught KeyboardInterrupt, or SIGTERM/SIGHUP
  whose disposition was the default) live children are terminated
  gracefully, in parallel, before the parent goes; so are those being
  started, whose pids are waited for (``starting``). The user's own signal
  handlers are left in place and called; nothing is installed until the
  first fork.
"""

from __future__ import annotations

import os
import signal
import threading

from .._state import Local, close_quietly
from . import exit_signals, guardian, starting

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    from .handle import ExitWatch

    T = TypeVar("T")

_exit_installed = False
_exiting = False  # the interpreter is exiting: no more children
_after_children: list[Callable[[], None]] = []


class _Lifeline:
    """This process's lifeline pipe, and its children still running: by pid, and those
    whose pid is still on its way (a snapshot's, told by its intermediate)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.lock = threading.RLock()  # the signal handler may come while this thread holds it
        self.live: dict[int, ExitWatch] = {}
        self.coming: set[ExitWatch] = set()

    def disown(self, handing: bool) -> None:
        """In a forked copy: the write end must go, or the original's children would never
        see EOF; the read end stays where the copy is a child that is handed it."""
        close_quietly(self.write_end)
        if not handing:
            close_quietly(self.read_end)


_lifeline: Local[_Lifeline] = Local(_Lifeline, _Lifeline.disown)


def read_end() -> int:
    """The lifeline's read end, to pass to a child (created on first use).

    Exit handling is installed here too, before any child exists, so a signal
    arriving just after the first child starts still finds it in place.
    """
    _install_once()
    if _exiting:
        from .._errors import ForkError

        raise ForkError(
            "the program is exiting, and its children have been ended: a thread that "
            "is still running cannot start another; join your threads before exiting"
        )
    return _lifeline.get().read_end


# --- live children and exit handling ----------------------------------------------


def expect(child: ExitWatch) -> None:
    """Remember a started child whose pid is not known yet, until ``track`` takes it:
    ending the children at exit, or on a signal, ends it too (reading its pid then)."""
    lifeline = _lifeline.get()
    with lifeline.lock:
        lifeline.coming.add(child)


def track(child: ExitWatch) -> None:
    """Remember a started child until it is reaped; the guardian watches its group."""
    lifeline = _lifeline.get()
    with lifeline.lock:
        lifeline.live[child.pid] = child
        lifeline.coming.discard(child)
    guardian.watch(child.pid)


def live_child(pid: int) -> ExitWatch | None:
    """The running goforkpy child with this pid, if there is one."""
    lifeline = _lifeline.get()
    with lifeline.lock:
        return lifeline.live.get(pid)


def live_pids() -> set[int]:
    """The pids of this process's running goforkpy children."""
    lifeline = _lifeline.peek()
    if lifeline is None:
        return set()
    with lifeline.lock:
        return set(lifeline.live)


def untrack(child: ExitWatch) -> None:
    """Forget a reaped child (its group is already dead)."""
    lifeline = _lifeline.get()
    with lifeline.lock:
        lifeline.live.pop(child.pid, None)
    guardian.forget(child.pid)


def terminate_all() -> None:
    """Terminate every live child's tree at once: one walk, the longest grace of theirs."""
    from . import tree  # imported already, by _install_once

    lifeline = _lifeline.peek()
    if lifeline is None:
        return
    with lifeline.lock:
        children = [*lifeline.live.values(), *lifeline.coming]
    if children:
        tree.end_handles(children, signal.SIGTERM, max(child._grace for child in children))


def exiting() -> bool:
    """True once the interpreter's exit has begun ending the children."""
    return _exiting


def after_children(callback: Callable[[], None]) -> None:
    """At exit, once the live children are ended: ``callback()`` (a failure is skipped)."""
    _after_children.append(callback)


def _at_exit() -> None:
    """No child is started from now on; the live ones (and those being started) end; then
    what waited for that."""
    global _exiting
    _exiting = True
    starting.stop()  # what daemon threads are starting is ended too
    terminate_all()
    for callback in _after_children:
        try:
            callback()
        except Exception:
            pass  # exiting anyway; the next process's sweep removes what is left


def _install_once() -> None:
    global _exit_installed
    if not _exit_installed:  # from any thread: children started from daemon threads too
        _exit_installed = True
        import atexit

        # terminate_all needs the tree walker; import it now, not at exit: an
        # import inside an atexit handler can make CPython forget it is exiting
        # on an uncaught KeyboardInterrupt, and exit with 1 instead of -SIGINT.
        from . import platform, tree  # noqa: F401

        atexit.register(_at_exit)
        platform.note_oom_kills()  # so that a child the OOM killer ends can be told apart
    exit_signals.install(terminate_all)


# --- the launcher thread -------------------------------------------------------------


class _Launcher:
    """One long-lived daemon thread that starts children for short-lived threads."""

    def __init__(self) -> None:
        import queue

        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]]
        self._jobs = queue.SimpleQueue()
        from .reaper import start_thread

        start_thread(self._serve, "launcher")

    def call(self, start: Callable[[], T]) -> T:
        outcome: list[Any] = []
        done = threading.Event()
        self._jobs.put((start, outcome, done))
        done.wait()
        ok, value = outcome
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def _serve(self) -> None:
        while True:
            start, outcome, done = self._jobs.get()
            try:
                outcome[:] = [True, start()]
            except BaseException as exc:
                outcome[:] = [False, exc]
            done.set()


def from_long_lived_thread(start: Callable[[], T]) -> T:
    """Run ``start`` (which starts a child) on a thread that lives as long as the process."""
    if threading.current_thread() is threading.main_thread():
        return start()
    return _launcher.get().call(start)


_launcher: Local[_Launcher] = Local(_Launcher)


def stay_if_exiting() -> None:
    """Block a daemon thread for good once the interpreter's exit has ended the child
    it waited for: woken, it would raise into the interpreter's finalization, which
    stops daemon threads wherever they are (3.14 aborts when one is writing to
    stderr). It stays where it waited, as in any other wait at exit."""
    if exiting():
        threading.Event().wait()
