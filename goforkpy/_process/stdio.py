"""Standard stream redirection for children: the ``spawn(stdin=..., ...)`` values."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Iterator, Tuple, Union

    Redirect = Union[None, int, IO[Any], str, "os.PathLike[str]"]
    Resolved = Union[None, int, IO[Any]]

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
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


class Streams:
    """A child's pipes, drained by background threads for ``communicate``.

    Each piped stream gets its own thread (stdin a writer, stdout and stderr
    readers), so no pipe can fill up while we block on another: the deadlock
    ``subprocess`` warns about cannot happen. Threads start on first use only.
    """

    TAIL_LINES = 20

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
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
            thread.start()
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
