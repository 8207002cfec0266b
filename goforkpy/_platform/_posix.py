"""Behaviour common to every POSIX system."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


def ram_tmpdir() -> str | None:
    """A RAM-backed directory for payload files, or ``None`` to use the temp dir."""
    return None


def watch_exit_supported() -> bool:
    """True where a child's exit can be watched through a pidfd."""
    return False


def usable_cpus() -> int:
    """How many CPUs this process may run on."""
    return os.cpu_count() or 1


def child_guard(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` tying a child's life to ours, where the OS has one.

    Portable POSIX has no parent-death signal: the lifeline pipe alone does it.
    """
    return None
