"""Why a child left no result, told on a side channel the parent always reads.

A child that cannot write its result file (a full disk, ``Limits(file_size=
...)`` or ``Limits(open_files=...)``, no memory left) has nowhere else to say
so: its stderr may be the user's terminal. Every child of a process gets the
write end of one pipe of that process; it writes one line, ``<pid>
<reason>``, in one ``write`` (atomic below PIPE_BUF, so lines never mix) and
without blocking (``_boot.tell_parent``). The parent drains the pipe when it
reaps a child and keeps each line by pid until that child's handle asks.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_pipe: tuple[int, int] | None = None
_owner_pid = -1
_lines: dict[int, str] = {}


def write_end() -> int:
    """The write end to pass to a child (the pipe is made on first use)."""
    global _pipe, _owner_pid
    with _lock:
        if _pipe is None or _owner_pid != os.getpid():
            if _pipe is not None:  # a forked copy's duplicates of its parent's pipe
                for fd in _pipe:
                    os.close(fd)
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)  # a child never waits on a full pipe
            _pipe, _owner_pid = (read, write), os.getpid()
            _lines.clear()
        return _pipe[1]


def take(pid: int) -> str | None:
    """The reason child ``pid`` gave, if it gave one (call once it has exited)."""
    with _lock:
        if _pipe is not None and _owner_pid == os.getpid():
            _drain(_pipe[0])
        return _lines.pop(pid, None)


def _drain(fd: int) -> None:
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    for line in data.decode("utf-8", "replace").splitlines():
        pid, _, reason = line.partition(" ")
        if pid.isdigit():
            _lines[int(pid)] = reason
