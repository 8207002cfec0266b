"""What a child used, as ``wait4`` tells its parent: the ``rusage`` of a handle."""

from __future__ import annotations

from typing import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import resource


class Usage(NamedTuple):
    """A finished child's resource use (``Child.rusage``, ``ChildCrashed.rusage``).

    Attributes:
        max_rss: its peak resident memory, in bytes.
        user_time: CPU seconds it spent in user mode.
        system_time: CPU seconds it spent in the kernel.
    """

    max_rss: int
    user_time: float
    system_time: float

    def __repr__(self) -> str:
        return (
            f"Usage(max_rss={self.max_rss / 2**20:.1f} MiB, user_time={self.user_time:.3f} s, "
            f"system_time={self.system_time:.3f} s)"
        )


def from_rusage(used: resource.struct_rusage) -> Usage:
    return usage_of(used.ru_maxrss, used.ru_utime, used.ru_stime)


def usage_of(max_rss: int, user_time: float, system_time: float) -> Usage:
    """A ``Usage`` from ``rusage`` fields as the kernel gives them (``ru_maxrss`` as is)."""
    from .platform import max_rss_bytes

    return Usage(max_rss_bytes(max_rss), user_time, system_time)


# What a zygote's handle reports for a child that died with its zygote: nobody
# could reap it and say what it used, and the reason is known.
LOST_PARENT = Usage(-1, -1.0, -1.0)
