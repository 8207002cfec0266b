"""A reused worker between tasks: each task starts from the process the first one found.

A task may change what the process is (its environment, working directory,
umask, signal handlers, timers and ``sys.path``), and the next task, which
has nothing to do with it, would run in what it left: an ``alarm(1)`` left
set kills the worker one second into the next task. ``Baseline`` notes the
process as it is before the first task and puts it back after each. What
cannot be put back (a thread still running, a descriptor left open) retires
the worker once it has answered: the pool runs the next task elsewhere.
Module-level state carries over, as in every pool that reuses its workers.

``located`` is the parent's side of ``sys.path``: a function whose module
was imported from a directory the worker may not have on its path (Celery
puts its application's directory there only while it imports it) travels
with that directory, which the worker adds for good before it imports the
module.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C half: no enums
import os
import signal
import sys
import threading

from .. import _env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_TIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
_FDS = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class Baseline:
    """The process as it was before the first task, put back after each.

    Checked after every task, so each check is the cheapest that tells: the
    C-level ``_signal.getsignal`` (``signal``'s wraps each answer in an enum),
    the environment's bytes, a dup for the lowest free descriptor (a listing of
    them only where that moved).
    """

    def __init__(self) -> None:
        self.environ = dict(_environ_data())  # to compare
        self.environ_text = dict(os.environ)  # to put back
        self.cwd = os.getcwd()
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        numbers = [n for n in signal.valid_signals() if n not in (signal.SIGKILL, signal.SIGSTOP)]
        handlers = list(map(_signal.getsignal, numbers))
        kept = [
            (n, h) for n, h in zip(numbers, handlers, strict=True) if h is not None
        ]  # None: set in C
        self.numbers = [n for n, _ in kept]
        self.handlers = [h for _, h in kept]
        self.path = list(sys.path)
        self.threads = threading.active_count()
        # a descriptor to dup: the lowest free number a dup takes changes when a task
        # leaves a descriptor open (open, socket, pipe, dup all take the lowest free)
        self._anchor = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.fds = {fd for fd in _listed_fds() if _is_open(fd)}
        self.lowest_free = _lowest_free(self._anchor)

    def restore(self) -> str | None:
        """Put the process back as it was; what could not be, in words (``None``: all was)."""
        for timer in _TIMERS:
            if signal.getitimer(timer) != (0.0, 0.0):
                signal.setitimer(timer, 0)  # ITIMER_REAL is alarm()'s
        handlers = list(map(_signal.getsignal, self.numbers))
        if handlers != self.handlers:
            for number, now, then in zip(self.numbers, handlers, self.handlers, strict=True):
                if now is not then:
                    signal.signal(number, then)
        if _environ_data() != self.environ:
            from .._child.takeon import replace_environ

            replace_environ(self.environ_text)
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        os.umask(self.umask)
        if sys.path != self.path:
            sys.path = list(self.path)  # a new list: see _child.run.take_parents_path
        return self._left()

    def _left(self) -> str | None:
        if threading.active_count() > self.threads:
            names = [thread.name for thread in threading.enumerate()]
            return f"it left threads running (of {', '.join(names)})"
        if _lowest_free(self._anchor) == self.lowest_free:
            return None  # the cheap look; the listing only where something changed
        fds = [fd for fd in _listed_fds() - self.fds if _is_open(fd)]  # not the listing's own
        if fds:
            return f"it left descriptors open ({', '.join(map(str, sorted(fds)))})"
        return None


def _environ_data() -> dict[Any, Any]:
    """The environment as ``os.environ`` keeps it (bytes on POSIX): cheap to compare."""
    return _env.environ_data() or dict(os.environ)


def _listed_fds() -> set[int]:
    return {int(name) for name in os.listdir(_FDS)}


def _lowest_free(anchor: int) -> int:
    probe = os.dup(anchor)
    os.close(probe)
    return probe


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


_baseline: list[Baseline] = []  # this worker's, once noted


def note() -> Baseline:
    """Note the process as it is now, as this worker's baseline."""
    _baseline[:] = [Baseline()]
    return _baseline[0]


class _Located:
    """``fn`` by reference, with the directory its module was imported from."""

    __slots__ = ("fn", "root")

    def __init__(self, fn: Callable[..., Any], root: str) -> None:
        self.fn, self.root = fn, root

    def __reduce__(self) -> tuple[Any, ...]:
        return _locate, (self.root, self.fn.__module__, self.fn.__qualname__)


def _locate(root: str, module: str, qualname: str) -> Any:
    """In the worker: ``module``'s ``qualname``, with ``root`` on ``sys.path`` for good."""
    if root not in sys.path:
        sys.path.append(root)
        for baseline in _baseline:
            baseline.path.append(root)
    import importlib

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


_roots: dict[str, str | None] = {}  # module -> the directory to send with its functions


def located(fn: Any) -> Any:
    """``fn``, or ``fn`` with the directory its module came from where that is not on
    ``sys.path`` (as pickle finds functions: by module and name)."""
    module = getattr(fn, "__module__", None)
    if not isinstance(module, str) or module == "__main__":
        return fn
    root = _roots.get(module, _UNSEEN)
    if root is _UNSEEN:
        from .._launch.plan import root_off_path

        root = _roots[module] = root_off_path(module)
    if root is None:
        return fn  # the usual case: the worker finds the module on the path it has
    from .._launch.plan import importable

    return _Located(fn, root) if importable(fn, module, getattr(fn, "__qualname__", "")) else fn


_UNSEEN = ""


def task_body(name: str, fn: Any, calls: list[Any], grace: float | None) -> list[Any]:
    """A task as its worker reads it (``fn``, located, and its calls), in parts to send.

    Raises:
        PayloadError: it would not pickle; the argument that would not is named.
    """
    from .._errors import PayloadError
    from .._shared import wire

    try:
        return wire.dumps_parts(
            (located(fn), calls, grace),
            main_is_shared=False,
            by_value=getattr(fn, "__module__", None) == "__main__",
        )
    except PayloadError as exc:
        from .._launch.calls import unpicklable_call

        advice = (
            f"run it with fork.snapshot({name}, ...), which hands the function any object, "
            "unpickled, in a fork of this process"
        )
        raise unpicklable_call(name, fn, calls, exc, advice, main_is_shared=False) from None
