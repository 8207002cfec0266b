"""What an exited child leaves behind, collected the moment it is reaped.

Its process group's stragglers (killed), its messaging socket file, its
crash stacks, its payload if it never read it, the reason it sent on the
report socket, and its result (a file, or a sealed memfd it passed): all
read into its ``Ending`` and removed at once, so nothing stays on disk or
in the process table whether or not anybody waits on the handle.
"""

from __future__ import annotations

import os
import signal

from .._errors import PayloadError
from .._shared import protocol, wire
from . import reports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .outcome import Ending


def collect(ending: Ending, stem: str, key: bytes, payload_fd: int | None) -> None:
    """Fill ``ending`` with what the child of files ``stem`` left, and remove it.

    ``payload_fd`` is the sealed memfd its payload travelled in (closed here).
    """
    payload = protocol.payload_path(stem)
    _unlink(os.path.join(os.path.dirname(stem), protocol.socket_name(ending.pid)))
    ending.traceback = _read_faults(protocol.faults_path(payload), ending.returncode)
    ending.payload_unread = _payload_left_unread(payload, payload_fd)
    ending.report, sealed_result = reports.take(ending.pid)
    if ending.sandbox is not None:
        ending.frame = _read_sandboxed(payload, key, sealed_result, ending.sandbox.max_result)
        from .._sandbox import policy

        policy.remove(stem)
        return
    ending.frame = _read_result(protocol.result_path(payload), key, sealed_result)


def clear_group(pgid: int) -> None:
    """No orphans: what the child left running in its process group dies with it.

    Safe after reaping: a pid is not handed out again while a group of that id exists.
    """
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _payload_left_unread(path: str, sealed: int | None) -> bool:
    """True if the child never took its payload (it did not reach ``init()``)."""
    if sealed is None:
        return _unlink(path)
    # A child that read its sealed payload moved the (shared) offset.
    unread = os.lseek(sealed, 0, os.SEEK_CUR) == 0
    os.close(sealed)
    return unread


def _read_result(path: str, key: bytes, sealed: int | None) -> wire.Decoded | PayloadError | None:
    """The child's result: from the sealed memfd it sent, or from its result file."""
    try:
        if sealed is not None:
            return wire.read_sealed(sealed, key, os.path.basename(path))
        return wire.read_file(path, key, unlink=True)
    except FileNotFoundError:
        return None
    except PayloadError as exc:
        _unlink(path)
        return exc
    finally:
        if sealed is not None:
            os.close(sealed)


def _read_sandboxed(
    payload: str, key: bytes, sealed: int | None, limit: int
) -> wire.Decoded | PayloadError | None:
    """A sandboxed child's result: only from a sealed memfd (it can write no file), and
    only up to ``limit`` bytes, refused unread past that."""
    path = protocol.result_path(payload)
    _unlink(path)  # never its own: a sandboxed child cannot write here
    if sealed is None:
        return None
    size = os.fstat(sealed).st_size
    if size > limit + 4096:  # its plain data, and the frame's head and tag
        os.close(sealed)
        return PayloadError(
            f"is {size} bytes, past the sandbox's max_result={limit}: refused unread"
        )
    return _read_result(path, key, sealed)


def _read_faults(path: str, returncode: int) -> str | None:
    """The stacks a fatal signal left in the child's fault file (then removed), or ``None``."""
    try:
        if -returncode not in _fatal_signals():
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            text = os.read(fd, 1 << 16).decode("utf-8", "replace").strip()
        finally:
            os.close(fd)
        return text or None
    except OSError:
        return None
    finally:
        _unlink(path)


def _fatal_signals() -> frozenset[int]:
    """The signals a child writes its threads' stacks at before it dies of them: the fatal
    faults, and ``_env.STACKS`` (its start-up passed ``start_timeout``)."""
    from .. import _env

    faults = ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT")
    return frozenset(int(getattr(signal, name)) for name in faults if hasattr(signal, name)) | {
        _env.STACKS
    }


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
