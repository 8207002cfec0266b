"""Putting descriptors in place as a new process's standard streams (0, 1 and 2).

A forked child (a warm start, a snapshot) is handed its streams as ordinary
descriptors, which may themselves sit at 0-2: each is lifted clear of 0-2
before any ``dup2``, so installing one stream never clobbers another's source.
Lean on purpose: the zygote's children run it.
"""

from __future__ import annotations

import fcntl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence


def install(ends: Sequence[int | None]) -> None:
    """Make ``ends[n]`` this process's descriptor ``n``; ``None`` closes ``n``.

    The ends themselves stay open: they are the caller's to close.
    """
    lifted = [None if end is None else fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 3) for end in ends]
    for number, fd in enumerate(lifted):
        if fd is None:
            try:
                os.close(number)
            except OSError:
                pass
        else:
            os.dup2(fd, number)  # inheritable, as a standard stream is
            os.close(fd)
