"""Shell helpers whose timeouts really end the whole command tree.

``subprocess.run(cmd, shell=True, timeout=...)`` kills only ``/bin/sh`` and
leaves its background jobs running. Here every command leads its own process
group, and a timeout, a KeyboardInterrupt or any other exception while we wait
ends the whole tree (SIGTERM, ``grace``, SIGKILL), grandchildren included. On
Linux the shell also dies if the thread waiting for it, or this process, dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from .. import _checks
from .._errors import ShellError, TimeoutExpired
from .._process import guardian, quiet
from .._process.stdio import PIPE, STDOUT, open_redirects

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Mapping, Union

    import psutil

    from .._process.stdio import Redirect

    Input = Union[Redirect, bytes, str]


def shell(
    cmd: str,
    *,
    stdin: Input = None,
    stdout: Redirect = None,
    stderr: Redirect = None,
    timeout: float | None = None,
    grace: float = 5.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> int:
    """Run ``cmd`` under ``/bin/sh -c`` and return its exit status.

    Args:
        cmd: the shell command line.
        stdin: ``bytes``/``str`` to feed it, or a redirect (``None`` inherits).
        stdout: a redirect: ``None`` (inherit), ``DEVNULL``, a file or a path.
        stderr: as ``stdout``, or ``STDOUT``.
        timeout: seconds before the whole command tree is ended.
        grace: seconds between SIGTERM and SIGKILL when ending it.
        env: variables added to (or overriding) ours.
        cwd: where to run it.

    Returns:
        The exit status; ``-N`` if the shell died of signal N.

    Raises:
        TimeoutExpired: ``timeout`` passed; the command tree has been ended.
    """
    returncode, _ = _run(cmd, stdin, stdout, stderr, timeout, grace, env, cwd)
    return returncode


def shell_exec(
    cmd: str,
    *,
    stdin: Input = None,
    timeout: float | None = None,
    grace: float = 5.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """Run ``cmd`` and return its stdout and stderr together, as text.

    Raises:
        ShellError: the command exited non-zero; ``.returncode`` and ``.output`` tell.
        TimeoutExpired: ``timeout`` passed; the command tree has been ended.
    """
    returncode, output = _run(cmd, stdin, PIPE, STDOUT, timeout, grace, env, cwd)
    text = (output or b"").decode("utf-8", "replace")
    if returncode != 0:
        raise ShellError(
            f"command {cmd!r} exited with status {returncode}: {_last_line(text)}",
            returncode=returncode,
            output=text,
            cmd=cmd,
        )
    return text


def shell_run(
    cmd: str,
    *,
    stdin: Input = None,
    timeout: float | None = None,
    grace: float = 5.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> int:
    """Run ``cmd``, streaming its output to ours (``sys.stdout``/``sys.stderr``) as it comes.

    Output goes through Python's own streams, so it lands wherever they point
    (a notebook, a redirected ``sys.stdout``). Returns the exit status.

    Raises:
        TimeoutExpired: ``timeout`` passed; the command tree has been ended.
    """
    returncode, _ = _run(cmd, stdin, sys.stdout, sys.stderr, timeout, grace, env, cwd)
    return returncode


def _run(
    cmd: str,
    stdin: Input,
    stdout: Any,
    stderr: Any,
    timeout: float | None,
    grace: float,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
) -> tuple[int, bytes | None]:
    if not isinstance(cmd, str):
        raise TypeError(f"cmd must be a shell command line (str), not {type(cmd).__name__}")
    timeout, grace = _checks.seconds("timeout", timeout), _checks.grace(grace)
    data, stdin = _split_input(stdin)
    forward = [s for s in (stdout, stderr) if _is_python_stream(s)]
    stdio = (stdin, PIPE if stdout in forward else stdout, PIPE if stderr in forward else stderr)
    process = _start(cmd, stdio, env, cwd)
    guardian.watch(process.pid)
    try:
        if forward:
            return _stream_through(process, stdout, stderr, data, timeout)
        output, _ = process.communicate(data, timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        _end(process, grace)
        raise TimeoutExpired(
            f"command {cmd!r} ran past its timeout of {timeout} s; its process tree was ended",
            timeout=timeout,
            pid=process.pid,
        ) from None
    except BaseException:  # KeyboardInterrupt, task cancellation: no survivors
        _end(process, grace)
        raise
    finally:
        guardian.forget(process.pid)


def _start(
    cmd: str,
    stdio: tuple[Redirect, Redirect, Redirect],
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
) -> subprocess.Popen[bytes]:
    """``/bin/sh -c cmd``, leading its own process group (and tied to us, on Linux)."""
    from .._process import platform

    with open_redirects(*stdio) as (stdin, stdout, stderr):
        return subprocess.Popen(
            ["/bin/sh", "-c", cmd],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **env} if env else None,
            cwd=cwd,
            preexec_fn=platform.group_and_tie_preexec(),
        )


def _split_input(stdin: Input) -> tuple[bytes | None, Redirect]:
    """(data to feed, redirect): bytes and str are fed through a pipe."""
    if isinstance(stdin, str):
        return stdin.encode(), PIPE
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        return bytes(stdin), PIPE
    return None, stdin


def _is_python_stream(stream: object) -> bool:
    """A text stream we must write to ourselves (sys.stdout may have no real fd)."""
    return hasattr(stream, "write") and hasattr(stream, "encoding")


def _stream_through(
    process: subprocess.Popen[bytes],
    stdout: IO[str],
    stderr: IO[str],
    data: bytes | None,
    timeout: float | None,
) -> tuple[int, None]:
    """Copy the pipes into Python's streams as output arrives; wait for the end."""
    pumps = [
        threading.Thread(target=_pump, args=(pipe, sink), daemon=True)
        for pipe, sink in ((process.stdout, stdout), (process.stderr, stderr))
        if pipe is not None
    ]
    for pump in pumps:
        quiet.start(pump.start)
    if data is not None and process.stdin is not None:
        feed = threading.Thread(target=_feed, args=(process.stdin, data), daemon=True)
        quiet.start(feed.start)
    returncode = process.wait(timeout)
    for pump in pumps:
        pump.join()
    return returncode, None


def _pump(pipe: IO[bytes], sink: IO[str]) -> None:
    with pipe:
        for line in iter(pipe.readline, b""):
            sink.write(line.decode(getattr(sink, "encoding", None) or "utf-8", "replace"))
            sink.flush()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        with pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass  # the command stopped reading


def _end(process: subprocess.Popen[bytes], grace: float) -> None:
    from .._process import tree

    tree.end_handles([_Command(process)], signal.SIGTERM, grace)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


class _Command:
    """A running shell command, as ``tree.end_handles`` sees it: it leads its group."""

    _leads_group = True

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.pid, self._process = process.pid, process

    def _tree_root(self) -> psutil.Process | None:
        from .._process import tree

        return tree.psutil_process(self.pid) if self._process.poll() is None else None

    def _wait_ended(self) -> None:
        self._process.wait()


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"
