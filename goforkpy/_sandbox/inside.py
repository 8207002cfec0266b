"""In a sandboxed child: enter the sandbox, after goforkpy's set-up and before the call.

``enter`` takes the rules its parent made (``policy.rules``): it joins the
pids cgroup that caps its processes (or sets ``RLIMIT_NPROC``, which binds
every user but root), closes every descriptor but goforkpy's own channels,
moves into its scratch directory, and has the kernel restrict it for good
(``kernel.restrict``). From then on ``sealed`` is true: the result goes back
as plain data in a sealed memfd (``plain``), and nothing the parent reads
from this process is a pickle.
"""

from __future__ import annotations

import os

from .. import _env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

sealed = False  # this process is sandboxed: it sends plain data only


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
    read, write, network, ports, programs, scratch, cgroup, cap = rules
    from . import kernel, plain  # noqa: F401 - loaded while the files can be read

    kernel.prepare()
    sealed = True  # from here on, even a failure to enter goes back as plain data
    _cap_processes(cgroup, cap)
    if not keep_descriptors:
        _close_all_but_ours()
    if scratch:
        os.chdir(scratch)
    own = f"/proc/{os.getpid()}"  # its own /proc entry only: its descriptors, its children
    kernel.restrict((*read, own), write, network=network, ports=ports, programs=programs)


def _cap_processes(cgroup: str, cap: int) -> None:
    if cgroup:  # root: RLIMIT_NPROC would not bind it
        from . import cgroups

        cgroups.cap(_program(), cap)
        return
    import resource

    running = sum(1 for name in os.listdir("/proc") if name.isdigit())  # ours among them
    limit = running + cap
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def _program() -> int:
    """The program this child was started for (its cgroup is named after it)."""
    return _env.MARKED.parent or os.getppid()


def early(program: int) -> None:
    """In a zygote's spare child, while it waits for its request: move into a cgroup of
    its own now, off the call's path (the kernel makes the move wait)."""
    from . import cgroups

    if os.geteuid() == 0:
        try:
            cgroups.move_in(program)
        except OSError:
            pass  # the child tries again as it enters its sandbox, and says why there


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
