"""The guardian: a tiny watchdog that outlives its parent just long enough.

When a parent dies by SIGKILL nothing in it runs, and a child's own cleanup
may not get the chance either (it may be stuck in C code, or killed by
``PR_SET_PDEATHSIG`` first), so what the child started with a bare
``subprocess`` would survive in the child's process group. The guardian,
started at the parent's first fork in a session of its own (so terminal
signals and group kills aimed at the parent miss it) and detached from it
(a double fork: never the parent's child, never its zombie), holds the read
end of a pipe whose write end only the parent has. The parent tells it each
child's process group as the child starts and as it is reaped; at EOF (the
parent is gone, however it went) it SIGKILLs every group still listed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

# Runs in `python -I -S -c`: nothing but builtins, so it is up in milliseconds.
_CODE = """\
# goforkpy guardian
import os, sys
if os.fork():
    os._exit(0)
groups = set()
for line in sys.stdin.buffer:
    (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, 9)
    except OSError:
        pass
"""
MARK = "# goforkpy guardian"

_lock = threading.Lock()
_pipe_w = -1
_owner_pid = -1


def watch(pgid: int) -> None:
    """Have the guardian kill this process group if we die before it ends."""
    _tell(b"+%d\n" % pgid)


def forget(pgid: int) -> None:
    """The group's leader was reaped: its id may be reused, so stop watching it."""
    _tell(b"-%d\n" % pgid)


def _tell(line: bytes) -> None:
    global _pipe_w, _owner_pid
    with _lock:
        if _owner_pid != os.getpid():
            _pipe_w, _owner_pid = _start(), os.getpid()
        if _pipe_w >= 0:
            try:
                os.write(_pipe_w, line)
            except OSError:
                _pipe_w = -1  # the guardian is gone: PR_SET_PDEATHSIG and lifelines remain


def _start() -> int:
    """Start a guardian; the write end of its pipe, or -1 if it cannot be had."""
    read_end, write_end = os.pipe()
    try:
        starter = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CODE],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
        )
    except OSError:
        os.close(write_end)
        return -1
    finally:
        os.close(read_end)
    from . import _reaper

    def reaped(returncode: int) -> None:
        starter.returncode = returncode  # it forked the guardian and left at once

    _reaper.watch(starter.pid, reaped, lambda: None)
    return write_end


def _forget_after_fork() -> None:
    """A forked copy must not hold the pipe: the guardian would never see EOF."""
    global _pipe_w, _owner_pid
    if _pipe_w >= 0:
        try:
            os.close(_pipe_w)
        except OSError:
            pass
    _pipe_w, _owner_pid = -1, -1


os.register_at_fork(after_in_child=_forget_after_fork)
