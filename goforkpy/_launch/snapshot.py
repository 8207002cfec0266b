"""Snapshots: a ``fork(2)`` of the calling process, running one function on a copy of it.

The child sees the caller's whole memory as it was at the call (copy-on-write,
so nothing is copied up front and nothing is pickled on the way in) while the
caller goes on at once. Redis saves its data set this way; like its
``rdbSaveBackground``, the child does one job and leaves with ``os._exit``,
and the parent only records the child and reaps it later.

A fork copies only the calling thread. Other threads' locks stay as they
were at that instant, so the child touches none it can avoid: it writes its
result with plain system calls, gets fresh ``sys.stdout``/``sys.stderr``
objects on the same descriptors (never the parent's buffers, which another
thread may hold, or which may hold the parent's unflushed output), runs no
``atexit`` handler and no goforkpy hook or thread, and cannot fork in turn.
"""

from __future__ import annotations

import os
import sys
import threading

from .. import _env
from .._child import boot
from .._parent.child import Child, ForkedProcess
from .._process import lifeline, reaper
from .._process.stdio import child_ends
from .._shared import protocol, tmpdir
from .._shared.registry import lookup
from .._state import handing_over
from . import calls, handover
from .record import Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Mapping, NoReturn

_SNAPSHOT_OPTIONS = Options()


def snapshot(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Child:
    """Run ``fn(*args, **kwargs)`` in a fork of this process, on a snapshot of its memory.

    The child sees this process's memory as it was at the call, copy-on-write,
    while this process goes on at once and may change its own freely. ``fn``
    may be any callable (a closure, a bound method) and the arguments
    anything (locks, open sockets, generators): nothing is pickled on the way
    in. The return value, or the exception, comes back through
    ``Child.result()`` as from any child. For process options use
    ``fork.spawn(fn, args, kwargs, start="snapshot", ...)``.

    The child gets fresh ``sys.stdout``/``sys.stderr`` objects on the same
    descriptors; objects that still hold the parent's streams (a
    ``logging.StreamHandler`` made before) write into the parent's buffer.
    If other threads of yours run, keep ``fn`` away from the locks they
    take: the child has only the calling thread (a ``RuntimeWarning`` says
    so; goforkpy's own threads hold no lock the child needs). Off Linux
    there is no parent-death signal: without the guardian, a snapshot child
    outlives a SIGKILLed parent.

    Raises:
        TypeError: ``fn`` is not callable.
        InitError: called in a child before ``fork.init()``, or in a snapshot.
    """
    return start(fn, args, kwargs, _SNAPSHOT_OPTIONS)


def start(
    fn: Callable[..., Any] | str,
    args: tuple[Any, ...] | list[Any],
    kwargs: Mapping[str, Any] | None,
    options: Options,
) -> Child:
    """Fork this process to run ``fn`` (a callable, or a registered name) with ``options``."""
    boot.require_can_fork()
    if isinstance(fn, str):
        fn = lookup(fn, "spawn")
    if not callable(fn):
        raise TypeError(
            f"fork.snapshot() needs a callable, not {fn!r}; pass the function itself, "
            "e.g. fork.snapshot(save, table)"
        )
    name = getattr(fn, "__qualname__", None) or repr(fn)
    call = calls.check(name, fn, args, kwargs, "spawn", pickled=False)
    key, stem = handover.parent_key(), tmpdir.new_stem()
    limits = options.limits._to_apply() if options.limits is not None else ()
    markers = _markers(key)
    reaper.prepare()
    with handover.Pipes() as pipes, child_ends(*options.stdio) as (ends, ours):
        markers[_env.FAULTS] = protocol.faults_path(protocol.payload_path(stem))
        started = None
        if options.timeout is not None or options.start_timeout is not None:
            started, tell = pipes.make()
            markers[_env.STARTED] = str(tell)
        cwd = None if options.cwd is None else os.fspath(options.cwd)
        pid = _fork(name)
        if pid == 0:
            _be_the_child(fn, call, (ends, cwd, options.env), markers, (stem, key), limits)
        process = ForkedProcess(pid, ours)
        kept = (stem, key, None)
        taken = None if started is None else pipes.take(started)
        return Child._started(name, process, kept, options, taken, (reaper.watch, "snapshot"))


def _markers(key: bytes) -> dict[str, str]:
    """The child's markers; what it will run is loaded now (an import in it could wait
    forever on a lock another thread of ours held at the fork)."""
    import fcntl  # noqa: F401
    import io  # noqa: F401
    import resource  # noqa: F401

    from .._child import telling
    from .._parent import reports
    from .._process import guardian, platform
    from .._process.limits import apply  # noqa: F401
    from .._shared import hooks, wire  # noqa: F401

    telling.load_what_reporting_needs()
    platform.prepare_tie()
    markers = {
        _env.PAYLOAD: "",
        _env.KEY: key.hex(),
        _env.PARENT: str(os.getpid()),
        _env.DEPTH: str(boot.depth() + 1),
        _env.LIFELINE: str(lifeline.read_end()),
        _env.REPORT: str(reports.write_end()),
    }
    if guardian.ensure_started():
        markers[_env.GUARDED] = "1"
    return markers


def _fork(name: str) -> int:
    """``os.fork()``, saying once why other threads of the caller's make it delicate.

    Python 3.12+ warns about any fork in a process with threads. goforkpy's
    own threads wait in system calls and hold nothing the child takes, so
    that warning is silenced here; where the caller has threads of its own,
    a ``RuntimeWarning`` names them instead.
    """
    import warnings

    others = [t.name for t in threading.enumerate() if _foreign(t)]
    if others:
        warnings.warn(
            f"fork.snapshot({name}) in a process with threads of its own ({', '.join(others)}): "
            "the child has only the calling thread, and a lock another one held at this "
            "instant stays locked in it; keep the function away from what they lock",
            RuntimeWarning,
            stacklevel=4,
        )
    with warnings.catch_warnings(), handing_over():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _foreign(thread: threading.Thread) -> bool:
    return thread is not threading.current_thread() and not thread.name.startswith("goforkpy-")


def _be_the_child(
    fn: Callable[..., Any],
    call: tuple[tuple[Any, ...], dict[str, Any]],
    where: tuple[list[int | None], str | None, Mapping[str, str] | None],
    markers: dict[str, str],
    files: tuple[str, bytes],
    limits: tuple[tuple[str, int], ...],
) -> NoReturn:
    """In the child: take on the options, run ``fn``, write the result, leave. Never returns."""
    ends, cwd, env = where
    stem, key = files
    result_path = protocol.result_path(protocol.payload_path(stem))
    try:
        os.setpgid(0, 0)
        _take_streams(ends)
        if cwd is not None:
            os.chdir(cwd)
        if env:
            os.environ.update(env)
        boot.become_snapshot(markers)
        if limits:
            from .._process.limits import apply

            apply(limits)
    except BaseException as exc:
        boot.leave_with(result_path, key, exc)
    boot.run_and_leave(fn, *call, result_path, key)


def _take_streams(ends: list[int | None]) -> None:
    """Put the child's standard streams in place, with fresh ``sys`` stream objects."""
    from .._process import streams

    streams.install(ends)
    sys.stdin = _fresh(0, "r", sys.stdin)
    sys.stdout = _fresh(1, "w", sys.stdout)
    sys.stderr = _fresh(2, "w", sys.stderr)


def _fresh(fd: int, mode: str, old: IO[str] | None) -> Any:
    """A new text stream on ``fd``, set up as ``old`` was (``None`` if ``fd`` is closed)."""
    try:
        os.fstat(fd)
    except OSError:
        return None
    encoding = getattr(old, "encoding", None) or "utf-8"
    errors = getattr(old, "errors", None) or "strict"
    lines = bool(getattr(old, "line_buffering", False)) or os.isatty(fd)
    # It lives as long as the child; closing it would close the descriptor too.
    return open(fd, mode, 1 if lines else -1, encoding, errors, closefd=False)
