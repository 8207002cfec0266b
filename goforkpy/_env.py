"""Environment markers and configuration, named and read in one place.

The markers are how a parent tells a re-executed interpreter that it is a
goforkpy child and where its payload is. They are read once, when goforkpy is
first imported, so ``is_child()`` holds from the child's first line on;
``init()`` then removes them from ``os.environ`` so that grandchildren and shell
commands do not inherit them.

This module is on the child's start-up path: it imports nothing but built-in
modules the interpreter has loaded already (``os``, ``sys``, ``_signal``).
"""

import _signal  # type: ignore[import-not-found,unused-ignore] # loaded already: not signal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, MutableMapping

# Markers the parent sets for its child.
PAYLOAD = "GOFORKPY_PAYLOAD"  # path of the private payload file
KEY = "GOFORKPY_KEY"  # hex of the parent's HMAC key
PARENT = "GOFORKPY_PARENT"  # pid of the forking process
DEPTH = "GOFORKPY_DEPTH"  # how many forks deep this child is
LIFELINE = "GOFORKPY_LIFELINE"  # fd of the pipe whose EOF means the parent died
READY = "GOFORKPY_READY"  # fd that yields a byte once a big payload file is written
STARTED = "GOFORKPY_STARTED"  # fd the child writes a byte to as its function starts
GUARDED = "GOFORKPY_GUARDED"  # "1": the parent's guardian will end our tree if it dies
PRIVATE_DIR = "GOFORKPY_DIR"  # the parent's private directory, which the child shares
REPORT = "GOFORKPY_REPORT"  # fd of the socket a child reports on (see _parent.reports)
PAYLOAD_FD = "GOFORKPY_PAYLOAD_FD"  # fd of the sealed memfd a big payload travels in
PYTHONPATH_SAVED = "GOFORKPY_PYTHONPATH"  # the PYTHONPATH to restore, where we changed it
FAULTS = "GOFORKPY_FAULTS"  # the private file a fatal signal's Python stacks go to
PASSED = "GOFORKPY_FDS"  # comma-separated fds passed on to the function (Executor workers)
# In a frozen application, where the binary is the only interpreter: what a run of it
# that goforkpy started is, for fork.init() to become ("boot", or "guardian:<walk>").
HELPER = "GOFORKPY_HELPER"
FROZEN = bool(getattr(sys, "frozen", False))
TIED = "GOFORKPY_TIED"  # "1": a spawner made us a subreaper that dies with it, before the exec
ZYGOTE = "GOFORKPY_ZYGOTE"  # "<requests fd>,<notices fd>": this process is a zygote
SANDBOXED = "GOFORKPY_SANDBOXED"  # "1": a zygote of sandboxed children (loads the sandbox)
UNSET = "\0unset"  # PYTHONPATH_SAVED's value when there was no PYTHONPATH

MARKERS = (
    PAYLOAD,
    KEY,
    PARENT,
    DEPTH,
    LIFELINE,
    READY,
    STARTED,
    GUARDED,
    PRIVATE_DIR,
    REPORT,
    PAYLOAD_FD,
    PYTHONPATH_SAVED,
    PASSED,
    ZYGOTE,
    FAULTS,
    TIED,
)
# Every launch sets these; a process with only some of them was not started by
# goforkpy (they were left in an environment), so it is no child.
_ALWAYS = (PAYLOAD, KEY, PARENT, DEPTH, LIFELINE)

# Configuration users may set.
MAX_DEPTH = "GOFORKPY_MAX_DEPTH"
START = "GOFORKPY_START"  # the default start method: "cold" or "warm"
TMPDIR = "GOFORKPY_TMPDIR"
# "posix" makes goforkpy use only what every POSIX system has, even on Linux:
# how the portable layer is tested where the native one would be chosen.
PLATFORM = "GOFORKPY_PLATFORM"
DEFAULT_MAX_DEPTH = 8


class Markers:
    """What the parent told this process, as read at import time.

    Only a complete, well-formed set of markers makes a child; ``stale``
    names the markers of an incomplete set, which goforkpy ignores.
    """

    __slots__ = (
        "depth",
        "faults",
        "guarded",
        "key",
        "lifeline",
        "parent",
        "passed",
        "payload",
        "payload_fd",
        "private_dir",
        "ready",
        "report",
        "stale",
        "started",
        "tied",
        "zygote",
    )

    def __init__(self, environ: "Mapping[str, str]") -> None:
        present = [name for name in MARKERS if name in environ]
        parent = environ.get(PARENT, "")
        depth = environ.get(DEPTH, "")
        lifeline = _fd(environ.get(LIFELINE))
        complete = (
            all(name in environ for name in _ALWAYS)
            and parent.isdigit()
            and depth.isdigit()
            and lifeline is not None
        )
        self.stale = () if complete else tuple(present)
        self.payload = environ.get(PAYLOAD) if complete else None
        self.key = environ.get(KEY) if complete else None
        self.parent = int(parent) if complete else None
        self.depth = int(depth) if complete else 0
        self.lifeline = lifeline if complete else None
        self.ready = _fd(environ.get(READY)) if complete else None
        self.started = _fd(environ.get(STARTED)) if complete else None
        self.guarded = complete and environ.get(GUARDED) == "1"
        self.private_dir = environ.get(PRIVATE_DIR) if complete else None
        self.report = _fd(environ.get(REPORT)) if complete else None
        self.payload_fd = _fd(environ.get(PAYLOAD_FD)) if complete else None
        self.passed = _fds(environ.get(PASSED)) if complete else ()
        self.faults = environ.get(FAULTS) if complete else None
        self.tied = complete and environ.get(TIED) == "1"
        zygote = _fds(environ.get(ZYGOTE)) if complete else ()
        self.zygote = (zygote[0], zygote[1]) if len(zygote) == 2 else None

    @property
    def is_child(self) -> bool:
        return self.payload is not None

    def keep_private(self) -> None:
        """The descriptors the parent gave us are ours alone, not our subprocesses'."""
        for fd in (self.ready, self.started, self.report, self.payload_fd):
            if fd is not None:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass  # not open: reading or writing it fails later, and says so


def write_markers(
    *,
    payload: str,
    key: bytes,
    parent: int,
    depth: int,
    lifeline: int,
    report: int,
    private_dir: str,
    guarded: bool,
    faults: str = "",
    zygote: tuple[int, int] | None = None,
) -> dict[str, str]:
    """A child's markers as environment variables: the inverse of ``Markers``.

    Descriptors made for one start are added with ``hand_fds``.
    """
    written = {
        PAYLOAD: payload,
        KEY: key.hex(),
        PARENT: str(parent),
        DEPTH: str(depth),
        LIFELINE: str(lifeline),
        REPORT: str(report),
        PRIVATE_DIR: private_dir,
    }
    if guarded:
        written[GUARDED] = "1"
    if faults:
        written[FAULTS] = faults
    if zygote is not None:
        written[ZYGOTE] = f"{zygote[0]},{zygote[1]}"
    return written


# The markers a descriptor handed to one child goes in; PASSED lists several.
FD_MARKERS = (READY, STARTED, PAYLOAD_FD, PASSED)


def hand_fds(environ: dict[str, str], handed: list[tuple[str, int]]) -> None:
    """Record in ``environ`` where each (marker, descriptor) of ``handed`` is in the child."""
    for marker, fd in handed:
        assert marker in FD_MARKERS, marker
        listed = environ.get(marker) if marker == PASSED else None
        environ[marker] = f"{listed},{fd}" if listed else str(fd)


def _fd(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _fds(value: str | None) -> tuple[int, ...]:
    found = [_fd(part) for part in (value or "").split(",")]
    return tuple(fd for fd in found if fd is not None)


MARKED = Markers(os.environ)


# The signal the parent sends a child whose start-up passed its start_timeout: it writes
# the stack of every thread to its fault file, then dies of it (a real-time signal where
# there are some: nothing else sends them; no core dump, as SIGABRT would leave).
STACKS = _signal.SIGRTMIN + 1 if hasattr(_signal, "SIGRTMIN") else _signal.SIGUSR1


def record_faults(marked: Markers) -> None:
    """Have a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) write the Python
    stack of every thread to the private file the parent named, never to the user's
    stderr (the parent reads it, and removes it, when it reaps us)."""
    if not marked.faults:
        return
    import faulthandler  # built in: loading it costs microseconds

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(marked.faults, flags, 0o600)  # stays open for as long as we live
        faulthandler.enable(file=fd, all_threads=True)
        if marked.started is not None:  # timed: should its start-up pass start_timeout,
            # STACKS writes every thread's stack there, then ends it (until its function
            # starts: run._announce_start)
            faulthandler.register(STACKS, file=fd, all_threads=True, chain=True)
    except (OSError, ValueError, RuntimeError):
        pass  # no room, or no directory: a crash is reported without the stacks


def reread(environ: dict[str, str]) -> Markers:
    """A forked child's markers, made for it after the fork (a warm child's came from
    its zygote): read from ``environ``, the environment it is to take on, and taken out
    of it, so that they never reach ``os.environ``."""
    global MARKED
    MARKED = Markers(environ)
    _remove_markers(environ)
    return MARKED


def _start_cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # started in a directory that has since been removed
        return "/"


# Where this process started, to resolve a relative script path after a chdir.
START_CWD = _start_cwd()


def environ_data() -> "dict[bytes, bytes] | None":
    """``os.environ`` as it keeps it (bytes, on POSIX): cheap to compare and to look in,
    where ``os.environ`` decodes each name and value; ``None`` where it keeps none."""
    return getattr(os.environ, "_data", None)


def remove_markers() -> None:
    """Take the markers out of ``os.environ`` (restoring a PYTHONPATH we changed)."""
    data = environ_data()
    if data is not None and not any(os.fsencode(name) in data for name in MARKERS):
        return  # none there: a forked child's never were (reread)
    _remove_markers(os.environ)


def _remove_markers(environ: "MutableMapping[str, str]") -> None:
    if MARKED.stale:
        for name in MARKED.stale:
            environ.pop(name, None)
        return
    saved = environ.get(PYTHONPATH_SAVED)
    if saved is not None:
        if saved == UNSET:
            environ.pop("PYTHONPATH", None)
        else:
            environ["PYTHONPATH"] = saved
    for name in MARKERS:
        environ.pop(name, None)


def without_markers(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` without any goforkpy marker (a child gets only the ones made for it)."""
    for name in (*MARKERS, HELPER):
        environ.pop(name, None)
    return environ


def max_depth() -> int:
    """The recursion limit for forks, from ``GOFORKPY_MAX_DEPTH``."""
    raw = os.environ.get(MAX_DEPTH)
    if raw is None:
        return DEFAULT_MAX_DEPTH
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 1:
        from ._errors import InitError

        raise InitError(
            f"{MAX_DEPTH}={raw!r} is not a positive whole number; "
            f"set it to the deepest fork nesting you allow (default {DEFAULT_MAX_DEPTH})"
        )
    return value
