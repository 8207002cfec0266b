"""Standard stream redirection for children: the ``spawn(stdin=..., ...)`` values."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

from .._state import Local
from . import quiet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Iterator, Protocol, Tuple, Union
    from weakref import WeakSet

    class Piped(Protocol):
        """A started process's ends of its pipes (``Popen`` or a warm child's stand-in)."""

        stdin: IO[bytes] | None
        stdout: IO[bytes] | None
        stderr: IO[bytes] | None

    Redirect = Union[None, int, IO[Any], str, "os.PathLike[str]"]
    Resolved = Union[None, int, IO[Any]]

PIPE = subprocess.PIPE
"""``stdin=``/``stdout=``/``stderr=``: a pipe to the child, as ``Child.stdin`` and so on."""
STDOUT = subprocess.STDOUT
"""``stderr=``: the child's stderr goes where its stdout goes."""
DEVNULL = subprocess.DEVNULL
"""``stdin=``/``stdout=``/``stderr=``: ``/dev/null``."""
_SPECIAL = frozenset({PIPE, STDOUT, DEVNULL})


@contextlib.contextmanager
def open_redirects(
    stdin: Redirect, stdout: Redirect, stderr: Redirect
) -> Iterator[Tuple[Resolved, Resolved, Resolved]]:
    """Resolve the three redirects for Popen, opening paths and closing them after."""
    with contextlib.ExitStack() as opened:
        yield (
            _resolve("stdin", stdin, "rb", opened),
            _resolve("stdout", stdout, "wb", opened),
            _resolve("stderr", stderr, "wb", opened),
        )


@contextlib.contextmanager
def child_ends(
    stdin: Redirect, stdout: Redirect, stderr: Redirect
) -> Iterator[tuple[list[int | None], list[IO[bytes] | None]]]:
    """The three redirects as descriptors for a child that is not ours to exec.

    Yields (the child's descriptors for streams 0-2, ``None`` where closed;
    our ends of its pipes as file objects, as ``Popen`` would have them).
    What the child gets is closed here after the block; our ends too if the
    block raised.
    """
    with open_redirects(stdin, stdout, stderr) as resolved, contextlib.ExitStack() as opened:
        ends: list[int | None] = []
        ours: list[IO[bytes] | None] = [None, None, None]
        try:
            for number, value in enumerate(resolved):
                ends.append(_child_end(number, value, ends, ours, opened))
            yield ends, ours
        except BaseException:
            for stream in ours:
                if stream is not None:
                    stream.close()
            raise


def _child_end(
    number: int,
    value: Resolved,
    ends: list[int | None],
    ours: list[IO[bytes] | None],
    opened: contextlib.ExitStack,
) -> int | None:
    if value is None:
        return number if _is_open(number) else None  # inherit ours, as they are now
    if value == PIPE:
        read, write = os.pipe()
        theirs, mine = (read, write) if number == 0 else (write, read)
        _pipe_ends.get().hold(theirs, opened)
        ours[number] = open(mine, "wb" if number == 0 else "rb")  # noqa: SIM115
        keep_from_copies(ours[number])
        return theirs
    if value == DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        opened.callback(os.close, fd)
        return fd
    if value == STDOUT:
        return ends[1]
    return value if isinstance(value, int) else value.fileno()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _resolve(stream: str, value: Redirect, mode: str, opened: contextlib.ExitStack) -> Resolved:
    if value is None or hasattr(value, "fileno"):
        return value  # type: ignore[return-value]
    if isinstance(value, (str, os.PathLike)):
        return opened.enter_context(open(value, mode))
    if isinstance(value, int) and not isinstance(value, bool):
        if value == STDOUT and stream != "stderr":
            raise ValueError(f"{stream}=fork.STDOUT only makes sense for stderr")
        if value in _SPECIAL or value >= 0:
            return value
    raise TypeError(
        f"{stream}={value!r} is not a redirect; pass None, fork.PIPE, fork.DEVNULL, "
        "fork.STDOUT (stderr only), a file object, a file descriptor or a path"
    )


def keep_from_copies(*streams: IO[bytes] | None) -> None:
    """Keep a forked copy of this process (a snapshot child, a program's own fork) from
    holding these ends of a child's pipes: in the copy they lead to ``/dev/null``."""
    ends = _pipe_ends.get()
    for stream in streams:
        if stream is not None:
            ends.streams.add(stream)


class _PipeEnds:
    """This process's ends of its children's pipes, and the ends meant for a child
    while it starts (by the thread starting it, which closes them after)."""

    def __init__(self) -> None:
        from weakref import WeakSet

        self.streams: WeakSet[IO[bytes]] = WeakSet()
        self.theirs: dict[int, int] = {}  # descriptor -> the thread that holds it

    def hold(self, fd: int, opened: contextlib.ExitStack) -> None:
        """``fd`` is a starting child's end, closed when ``opened`` closes."""
        self.theirs[fd] = threading.get_ident()
        opened.callback(self._close, fd)

    def _close(self, fd: int) -> None:
        del self.theirs[fd]  # first: a copy made meanwhile must not blank a reused number
        os.close(fd)

    def blank_in_copy(self, handing: bool) -> None:
        """In a forked copy: point what this holds at /dev/null, but the ends a child
        started by the forking thread is handed (the copy is that child).

        Holding the end that writes to a child's stdin (or the one its stdout is
        written to), the copy would keep that child, or its parent, from reading
        the end for as long as the copy lives (the original's close would not be
        the last). The numbers stay open, on /dev/null, so a file object of the
        original's that the copy closes closes nothing of the copy's own.
        """
        me = threading.get_ident()
        numbers = [stream.fileno() for stream in list(self.streams) if not stream.closed]
        numbers += [fd for fd, holder in self.theirs.items() if not handing or holder != me]
        if numbers:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            for number in numbers:
                os.dup2(null, number, inheritable=False)
            os.close(null)


_pipe_ends: Local[_PipeEnds] = Local(_PipeEnds, _PipeEnds.blank_in_copy)


class Streams:
    """A child's pipes, drained by background threads for ``communicate``.

    Each piped stream gets its own thread (stdin a writer, stdout and stderr
    readers), so no pipe can fill up while we block on another: the deadlock
    ``subprocess`` warns about cannot happen. Threads start on first use only.
    """

    TAIL_LINES = 20

    def __init__(self, popen: Piped) -> None:
        self._popen = popen
        keep_from_copies(popen.stdin, popen.stdout, popen.stderr)
        self._threads: list[threading.Thread] | None = None
        self._out: list[bytes] = []
        self._err: list[bytes] = []

    def finish(self, input: bytes | None, timeout: float | None) -> bool:
        """Start (once) feeding and draining; True once every stream is done."""
        if self._threads is None:
            self._threads = self._start(input)
        elif input is not None:
            raise ValueError("communicate() was already given its input; pass input=None")
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def collected(self) -> tuple[bytes | None, bytes | None]:
        out = b"".join(self._out) if self._popen.stdout is not None else None
        err = b"".join(self._err) if self._popen.stderr is not None else None
        return out, err

    def stderr_tail(self) -> str | None:
        """The last lines of a piped stderr (reading what is left, without blocking)."""
        err = self._popen.stderr
        if err is None:
            return None
        if self._threads is None and not err.closed:
            self._err.append(_read_available(err))
        text = b"".join(self._err).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-self.TAIL_LINES :]) or None

    def _start(self, input: bytes | None) -> list[threading.Thread]:
        jobs: list[tuple[Callable[..., None], Any, Any]] = []
        if self._popen.stdin is not None:
            jobs.append((_feed, self._popen.stdin, input))
        elif input is not None:
            raise ValueError("communicate(input=...) needs stdin=fork.PIPE")
        if self._popen.stdout is not None:
            jobs.append((_drain, self._popen.stdout, self._out))
        if self._popen.stderr is not None:
            jobs.append((_drain, self._popen.stderr, self._err))
        threads = [threading.Thread(target=job, args=args, daemon=True) for job, *args in jobs]
        for thread in threads:
            quiet.start(thread.start)
        return threads


def _feed(stream: IO[bytes], data: bytes | None) -> None:
    try:
        if data:
            stream.write(data)
    except BrokenPipeError:
        pass  # the child stopped reading (or exited): what it did not take is dropped
    finally:
        try:
            stream.close()
        except BrokenPipeError:
            pass


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    with stream:
        while chunk := stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16):
            sink.append(chunk)


def _read_available(stream: IO[bytes]) -> bytes:
    fd = stream.fileno()
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except BlockingIOError:
        pass  # nothing more for now (a grandchild may still hold the pipe open)
    finally:
        os.set_blocking(fd, True)
    return b"".join(chunks)
