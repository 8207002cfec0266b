"""goforkpy's own threads leave the program's signals to the program's main thread.

Python runs a signal handler in the main thread only, between two bytecodes.
A signal the kernel hands to another thread sets the handler off but cannot
wake a main thread that waits in C (a semaphore, a lock, a ``read``): a
SIGTERM could then wait for ever. goforkpy's threads therefore block every
signal a program may handle, and the kernel hands such a signal to a thread
that does not block it, the main thread first. Faults (SIGSEGV and the like)
stay open: they belong to the thread that causes them. (What a main thread
can still miss, ``exit_signals`` sends again.)

A thread inherits its creator's mask, so the creator blocks the signals for
the moment of ``start`` only: no signal can reach the new thread before it
is quiet. A process started from a quiet thread inherits the mask too; every
goforkpy child opens it again as it starts (``open_all``).

Builtins only: a child's start-up path imports this.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")
else:
    import _signal  # signal's C half: the Python half imports enum

# Signals the kernel sends to the thread that faults: blocked, they would kill outright.
_FAULTS = {
    getattr(_signal, name)
    for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGTRAP", "SIGSYS")
    if hasattr(_signal, name)
}
HANDLED = _signal.valid_signals() - _FAULTS  # what a program may handle (``starting`` too)


def start(begin: "Callable[[], T]") -> "T":
    """``begin()`` (which starts a thread) with the program's signals blocked in the new
    thread: ``quiet.start(thread.start)``."""
    mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, HANDLED)
    try:
        return begin()
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)


def open_all() -> None:
    """In a new child: block no signal, whichever thread of its parent started it."""
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


# What a helper (a zygote, the cold children's spawner, a snapshot's intermediate) does
# not hear: the signals a child of its could send it (``os.kill(os.getppid(), ...)``)
# whose default ends or stops a process. A helper is ended over its channels, or by
# SIGKILL; the faults stay its own (faulthandler's), and SIGCHLD tells it of its children.
_DEAF = {
    getattr(_signal, name)
    for name in (
        *("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM"),
        *("SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGSTKFLT", "SIGXCPU", "SIGXFSZ"),
        *("SIGTSTP", "SIGTTIN", "SIGTTOU"),
    )
    if hasattr(_signal, name)
}
if hasattr(_signal, "SIGRTMIN"):
    _DEAF |= set(range(_signal.SIGRTMIN, _signal.SIGRTMAX + 1)) & _signal.valid_signals()
_heard: "dict[int, Any]" = {}  # what each deaf signal did before deafen()


def deafen() -> None:
    """In a helper: ignore what its children could send it (see ``_DEAF``)."""
    for number in _DEAF:
        previous = _signal.signal(number, _signal.SIG_IGN)
        _heard.setdefault(number, previous)


def hear() -> None:
    """In a helper's new child: the signals do again what they did before ``deafen()``
    (an ignored disposition would outlive even an exec)."""
    for number, previous in _heard.items():
        if previous is not None:  # None: set outside Python, and left as it is
            _signal.signal(number, previous)
    _heard.clear()
