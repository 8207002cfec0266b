"""Ending a whole family at once, from inside it: what an orphaned child does.

This runs in a hurry (the parent is gone) and often in a child's hot path, so
it reads the process tree without psutil where the OS makes that cheap
(Linux), rather than waiting for psutil to load.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def end_family_and_die() -> NoReturn:
    """Stop and kill every descendant of this process, then this process.

    Descendants die before their ancestors: were we stopped halfway (the
    parent's guardian stops whole trees), what is left still hangs from our
    tree, where the guardian finds it, instead of from init.
    """
    import signal  # here, not at the top: a child's start-up never pays for it

    from .platform import descendant_pids

    try:
        family = descendant_pids(os.getpid())  # every process listed after its parent
        for sig, order in ((signal.SIGSTOP, family), (signal.SIGKILL, family[::-1])):
            for member in order:  # all stopped first: none can fork meanwhile
                try:
                    os.kill(member, sig)
                except OSError:
                    pass  # already gone
    finally:
        os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(1)  # pragma: no cover - SIGKILL does not return
