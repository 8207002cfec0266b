"""Checks of the numbers users pass: timeouts, grace periods, pids.

One place, so every entry point refuses the same bad values with the same
words: NaN, negative and non-numeric seconds never reach a timer or a wait
(where NaN would hang and ``inf`` would kill a timer thread).
"""

from __future__ import annotations

import math
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def timeout(name: str, value: Any) -> float | None:
    """A deadline in seconds: ``None`` or ``inf`` mean no limit; it must be positive."""
    if value is None:
        return None
    seconds = _number(name, value, "a positive number of seconds, or None for no limit")
    if not seconds > 0:
        raise ValueError(
            f"{name}={value!r}: give a positive number of seconds, or None for no limit"
        )
    return None if math.isinf(seconds) else seconds


def wait_timeout(name: str, value: Any) -> float | None:
    """A wait's timeout: ``None`` or ``inf`` wait for ever; 0 only polls; never negative."""
    if value is None:
        return None
    seconds = _number(name, value, "a number of seconds >= 0, or None to wait for ever")
    if seconds < 0:
        raise ValueError(f"{name}={value!r}: give a number of seconds >= 0, or None")
    return None if math.isinf(seconds) else seconds


def grace(value: Any) -> float:
    """Seconds between SIGTERM and SIGKILL: finite and >= 0."""
    seconds = _number("grace", value, "the seconds between SIGTERM and SIGKILL (>= 0)")
    if not 0 <= seconds < math.inf:
        raise ValueError(
            f"grace={value!r}: give the seconds between SIGTERM and SIGKILL as a finite number >= 0"
        )
    return seconds


def _number(name: str, value: Any, wanted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}={value!r}: expected {wanted}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{name}=nan: give {wanted}")
    return seconds


def target_pid(pid: Any, what: str) -> int:
    """A pid it is safe to signal as a tree: not 0, 1, negative, ourselves or an ancestor."""
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"{what}: pid must be an int, not {type(pid).__name__}")
    if pid <= 1:
        raise ValueError(
            f"{what}: pid {pid} is not a single process (0 and negatives are process "
            "groups, 1 is init); pass the pid of the process to end"
        )
    if pid in _ancestry():
        raise ValueError(f"{what}: pid {pid} is this process or one of its ancestors")
    return pid


def _ancestry() -> set[int]:
    """This process and its ancestors, by parentage."""
    import psutil

    me = psutil.Process()
    found = {os.getpid()}
    try:
        found.update(p.pid for p in me.parents())
    except psutil.Error:
        pass
    return found
