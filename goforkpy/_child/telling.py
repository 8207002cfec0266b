"""In a child: telling the parent on its report socket (see ``reports``).

What cannot go in the result file goes here: why there is no result, or the
sealed memfd a big result travels in. Every send is one datagram that never
blocks; if it cannot be sent, the parent falls back to the exit status or the
result file.

On the child's path: builtins only, the C module ``_socket`` and the small
``_process.passing`` when sending.
"""

import os

from .. import _env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def unsent_result(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "ran out of memory while sending its result back"
    try:
        return f"could not write its result: {exc}"
    except MemoryError:
        return "ran out of memory while sending its result back"


def tell_parent(reason: str) -> None:
    """Say why we leave no result, on the parent's report socket (see ``reports``)."""
    _send_parent("why", reason)


def _send_parent(kind: str, text: str, fd: "int | None" = None) -> bool:
    """One datagram to the parent's report socket, with ``fd`` attached; never blocks."""
    report = _env.MARKED.report
    if report is None:
        return False
    import _socket

    from .._process import passing

    line = f"{os.getpid()} {kind} {' '.join(text.split())}"[:_REPORT_LINE]
    rights = [] if fd is None else [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, passing.pack([fd]))]
    sock = _socket.socket(fileno=report)
    try:
        sock.sendmsg([line.encode("ascii", "replace")], rights)
    except OSError:
        return False  # full or gone: the parent falls back to the exit status or a file
    finally:
        sock.detach()
    return True


def load_what_reporting_needs() -> None:
    """Load now what reporting needs: under ``Limits(open_files=...)`` or ``memory``
    a module may no longer load when the result cannot be written."""
    import _socket  # noqa: F401

    from .._process import passing, platform  # noqa: F401


def send_sealed(path: str, key: bytes, assembled: "Any", *, always: bool = False) -> bool:
    """Send a big result in a sealed memfd, where the platform has them; False: use the file.

    ``always``: small ones too (a sandboxed child, which may write no file).
    """
    from .._shared import wire

    if assembled[1] < wire.SEALED_FROM and not always:
        return False  # small: a file is quicker, and loads nothing more
    from .._process import platform

    if not platform.sealed_memory_supported():
        return False
    fd = wire.write_sealed(os.path.basename(path), key, assembled)
    try:
        return _send_parent("result", "sealed", fd)
    finally:
        os.close(fd)  # the parent has its own, passed with the datagram


_REPORT_LINE = 500  # characters: a short datagram
