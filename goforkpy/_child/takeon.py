"""A forked child taking on what its caller's options make of it: its streams,
descriptors, directory and environment, before anything of its call runs.

Two forks make children without running an interpreter anew. A zygote's:
the parent makes the ``Setup`` once (``Setup.made``), its fork request
carries it as plain data, and ``take_on`` puts it in place in a fork of the
zygote (see ``serve``), which then dispatches as a cold child would, or,
for a spawner's request, runs the command line. A snapshot's: the child is a
copy of the caller, which has its descriptors already, and its ``InCopy``
(``InCopy.made``) changes only what the options change. Both are made from
``Options`` (``_launch.record``), in the parent, where the directory is
checked (``directory``), as ``Popen`` checks it; ``Popen``, the fallback,
takes the options as its own arguments. So an option that acts in the child
is named in ``Options``, here, and in ``spawn``'s signature, and nowhere else.
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager

from .. import _env
from .._process import streams

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Iterator, Mapping, NoReturn

    from .._process.stdio import Redirect

    Ours = list[IO[bytes] | None]  # our ends of the child's pipes, as Popen has them


class Setup:
    """What a child forked by a zygote is given before anything of its call runs."""

    __slots__ = ("argv", "cwd", "env", "handed", "stdio")

    def __init__(
        self,
        env: dict[str, str],
        handed: list[str],
        stdio: list[int],
        cwd: str,
        argv: list[str] | None = None,
    ) -> None:
        self.env = env  # its whole environment and markers (a descriptor's: once placed)
        self.handed = handed  # the marker of each descriptor after the streams', in order
        self.stdio = stdio  # for each standard stream, its descriptor's index; -1: closed
        self.cwd = cwd  # absolute: the zygote's own directory may differ from the parent's
        self.argv = argv  # a command line to run instead (a cold child of a spawner)

    def pack(self) -> bytes:
        """The fields, marshalled: the zygote hands them on to its child as one ``bytes``,
        never unpacked (every object it made would be a page copied at its next fork)."""
        import marshal

        return marshal.dumps((self.env, self.handed, self.stdio, self.cwd, self.argv))

    @classmethod
    def unpack(cls, packed: bytes) -> Setup:
        import marshal

        return cls(*marshal.loads(packed))

    @classmethod
    @contextmanager
    def made(
        cls,
        stdio: tuple[Redirect, Redirect, Redirect],
        cwd: str | os.PathLike[str] | None,
        env: dict[str, str],
        handed: list[tuple[str, int]],
        argv: list[str] | None,
    ) -> Iterator[tuple[Setup, list[int], Ours]]:
        """In the parent, for the block's time: (the ``Setup``, the descriptors it
        indexes, in order, to send with it; our ends of the child's pipes).

        ``handed`` are (marker, descriptor) pairs: each descriptor is passed and
        its number in the child set as the marker's value.

        Raises:
            OSError: a bad directory, redirect or descriptor, as ``Popen`` raises it.
        """
        from .._process.stdio import child_ends

        where = directory(cwd)
        with child_ends(*stdio) as (ends, ours):
            fds = [end for end in ends if end is not None]
            indexes = iter(range(len(fds)))
            indexed = [-1 if end is None else next(indexes) for end in ends]
            fds += [fd for _, fd in handed]
            for fd in fds:
                os.fstat(fd)  # a bad one is the caller's OSError (EBADF), as Popen raises it,
                # not a failed send that would pass for a dead zygote
            names = [name for name, _ in handed]
            yield cls(env, names, indexed, where, argv), fds, ours


class InCopy:
    """What a snapshot child, a copy of its caller, takes on: its streams, directory,
    environment and resource limits."""

    __slots__ = ("cwd", "ends", "env", "limits")

    def __init__(
        self,
        ends: list[int | None],
        cwd: str | None,
        env: Mapping[str, str] | None,
        limits: tuple[tuple[str, int], ...],
    ) -> None:
        self.ends = ends  # its descriptors for streams 0-2 (None: closed), in the caller
        self.cwd, self.env, self.limits = cwd, env, limits

    @classmethod
    @contextmanager
    def made(
        cls,
        stdio: tuple[Redirect, Redirect, Redirect],
        cwd: str | os.PathLike[str] | None,
        env: Mapping[str, str] | None,
        limits: tuple[tuple[str, int], ...],
    ) -> Iterator[tuple[InCopy, Ours]]:
        """In the caller, for the block's time, in which it forks: (the ``InCopy``, our
        ends of the child's pipes).

        Raises:
            OSError: a bad directory or redirect, as ``Popen`` raises it.
        """
        from .._process.stdio import child_ends

        where = None if cwd is None else directory(cwd)
        with child_ends(*stdio) as (ends, ours):
            yield cls(ends, where, env, limits), ours

    def take_on(self) -> None:
        """In the child: the streams as 0-2, with fresh ``sys`` stream objects (the
        caller's may be held by another of its threads, or hold its unflushed output),
        then the directory, the environment over the caller's, and the limits."""
        streams.install(self.ends)
        sys.stdin = _fresh(0, "r", sys.stdin)
        sys.stdout = _fresh(1, "w", sys.stdout)
        sys.stderr = _fresh(2, "w", sys.stderr)
        if self.cwd is not None:
            os.chdir(self.cwd)
        if self.env:
            os.environ.update(self.env)
        if self.limits:
            from .._process.limits import apply

            apply(self.limits)


def directory(cwd: str | os.PathLike[str] | None) -> str:
    """In the parent: the child's working directory, absolute (a zygote's own may differ
    from ours), checked now, so a bad one fails the start as ``Popen`` fails it."""
    here = os.getcwd()
    if cwd is None:
        return here
    path = os.path.join(here, os.fspath(cwd))
    if not os.path.isdir(path):
        os.stat(path)  # FileNotFoundError, as Popen would raise
        raise NotADirectoryError(20, "Not a directory", path)
    return path


def take_on(setup: Setup, fds: list[int]) -> None:
    """Become the child ``setup`` describes, given ``fds``: its streams', then the rest.

    With a command line (a cold child, from a zygote that spawns) it then
    runs it instead of returning.
    """
    global _environ_now
    placed = _place(fds, setup.stdio)
    env = setup.env
    handed = list(zip(setup.handed, placed, strict=True))
    _env.hand_fds(env, handed)
    for name, fd in handed:
        if name == _env.PASSED:
            os.set_inheritable(fd, True)
    os.chdir(setup.cwd)
    if setup.argv is not None:
        _exec(setup.argv, env, [fd for _, fd in handed])
    marked = _env.reread(env)  # and out of env: they never reach os.environ
    replace_environ(env, _environ_now)
    _environ_now = None
    marked.keep_private()
    _env.record_faults(marked)


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


# In a spare, the environment it has, as plain text: what take_on compares with.
_environ_now: dict[str, str] | None = None


def ready_ahead() -> None:
    """In a spare, while it waits for its request: copy the environment it has (to
    compare with the one it takes on), and touch now what taking one on and reading its
    payload go through (the markers, the payload's tag check). A fresh fork pays a
    copy-on-write fault at its first write to each page it shares with its zygote; paid
    here, they are off the call's path (0.1-0.3 ms)."""
    from .._shared.wire import tag

    global _environ_now
    _environ_now = dict(os.environ)
    _env.Markers(_environ_now)
    tag.hmac_sha256(b"", [b""], 0)


def _exec(argv: list[str], env: dict[str, str], handed: list[int]) -> NoReturn:
    """Run ``argv`` in this process: a cold child, already a subreaper tied to us.

    It inherits the descriptors it was handed and the report socket, and
    signals as a fresh process has them (Python ignores SIGPIPE and SIGXFSZ).
    """
    import signal

    report = _env.MARKED.report
    for fd in (*handed, *(() if report is None else (report,))):
        os.set_inheritable(fd, True)
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    env[_env.TIED] = "1"
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        os.write(2, f"goforkpy: cannot run {argv[0]}: {exc}\n".encode())
    os._exit(127)


def replace_environ(env: dict[str, str], now: dict[str, str] | None = None) -> None:
    """Make ``os.environ`` exactly ``env``, touching only what differs (most of it does
    not). ``now``: a copy of what it holds, where one was made ahead (``ready_ahead``)."""
    if now is None:
        now = dict(os.environ)
    for name in now.keys() - env.keys():
        del os.environ[name]
    for name, value in env.items():
        if now.get(name) != value:
            os.environ[name] = value


def _place(fds: list[int], stdio: list[int]) -> list[int]:
    """Put the child's standard streams in place; the other descriptors, where they landed.

    ``stdio[n]`` indexes ``fds`` for stream ``n``, or is -1: that stream is closed.
    """
    lifted = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in fds]  # clear of 0-2
    for fd in fds:
        os.close(fd)
    streams.install([lifted[index] if index >= 0 else None for index in stdio])
    used = {index for index in stdio if index >= 0}
    for index in used:
        os.close(lifted[index])
    return [fd for index, fd in enumerate(lifted) if index not in used]
