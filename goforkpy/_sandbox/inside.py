"""In a sandboxed child: enter the sandbox, after goforkpy's set-up and before the call.

``enter`` takes the rules its parent made (``policy.rules``): it caps its
processes with ``RLIMIT_NPROC`` (a child of root, which that limit does not
bind, first takes a real user id of its own, keeping root's effective one to
reach files, with every capability dropped next), closes every descriptor
but goforkpy's own channels, moves into its scratch directory, and has the
kernel restrict it for good (``kernel.restrict``). From then on ``sealed``
is true: the result goes back as plain data in a sealed memfd (``plain``),
and nothing the parent reads from this process is a pickle.
"""

from __future__ import annotations

import os
import resource

from .. import _env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

sealed = False  # this process is sandboxed: it sends plain data only
# A sandboxed child of root takes the real user id _UIDS - its pid: unused by any
# account, and its own while it lives, so that RLIMIT_NPROC counts its tree alone.
_UIDS = 0x7FFF0000


def refuse(what: str) -> None:
    """Raise ``ForkError`` for ``what`` (a call of goforkpy's) inside a sandbox."""
    if sealed:
        from .._errors import ForkError

        raise ForkError(
            f"{what} inside a sandbox: a sandboxed child reaches no socket and no private "
            "directory outside its sandbox; return what it has to say as its result"
        )


def prepare() -> None:
    """Load what entering a sandbox takes (in a zygote of sandboxed children: once)."""
    from . import kernel, plain  # noqa: F401

    kernel.prepare()


def enter(rules: tuple[Any, ...], keep_descriptors: bool = False) -> None:
    """Apply ``rules`` (see ``policy.rules``) to this process and all it starts.

    ``keep_descriptors``: a sandboxed test's, which keeps pytest's and its fixtures'.
    """
    global sealed
    read, write, network, ports, programs, scratch, own_uid, cap = rules
    from . import kernel, plain  # noqa: F401 - loaded while the files can be read

    kernel.prepare()
    sealed = True  # from here on, even a failure to enter goes back as plain data
    _cap_processes(own_uid, cap)
    if not keep_descriptors:
        _close_all_but_ours()
    if scratch:
        os.chdir(scratch)
    own = f"/proc/{os.getpid()}"  # its own /proc entry only: its descriptors, its children
    kernel.restrict((*read, own), write, network=network, ports=ports, programs=programs)


def _cap_processes(own_uid: str, cap: int) -> None:
    if own_uid:  # root, whom RLIMIT_NPROC does not bind: a real user id of its own
        os.setresuid(_UIDS - os.getpid(), 0, 0)  # files are still reached as root's
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))
        return

    # RLIMIT_NPROC counts all this user's processes: allow those running (every
    # user's, an upper bound read in one listing) and ``cap`` more
    running = sum(1 for name in os.listdir("/proc") if name.isdigit())
    limit = running + cap
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def _close_all_but_ours() -> None:
    """Close every descriptor but the standard streams and goforkpy's channels: the
    lifeline, the report socket, the start pipe, what the call is handed, the fault file."""
    marked = _env.MARKED
    keep = {0, 1, 2, marked.lifeline, marked.report, marked.started, *marked.passed}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            if marked.faults and os.readlink(f"/proc/self/fd/{fd}") == marked.faults:
                continue  # faulthandler writes a crash's stacks there
        except OSError:
            continue  # the listing's own descriptor, closed already
        try:
            os.close(fd)
        except OSError:
            pass
