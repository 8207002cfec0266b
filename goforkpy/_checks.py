"""Checks of the numbers users pass: timeouts, grace periods, pids.

One place, so every entry point takes the same values by the same rule (see
``seconds``): NaN, negative and non-numeric seconds never reach a timer or a
wait (where NaN would hang), and no limit reaches them as ``None``, never as
a number too big for the platform's clock (which would kill a timer thread).
"""

from __future__ import annotations

import math
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def seconds(name: str, value: Any) -> float | None:
    """Any timeout of the API, by the one rule: ``None``, ``inf`` or more than
    ``threading.TIMEOUT_MAX`` mean no limit (``None``); any finite number >= 0 is a
    limit (0 only polls); NaN, negative numbers and non-numbers are a ``ValueError``."""
    if value is None:
        return None
    wanted = "a number of seconds >= 0, or None (or inf) for no limit"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r}: expected {wanted}")
    given = float(value)
    if math.isnan(given) or given < 0:
        raise ValueError(f"{name}={value!r}: give {wanted}")
    return None if given > _longest() else given


def grace(value: Any) -> float:
    """Seconds between SIGTERM and SIGKILL, by the rule of ``seconds``; no limit is ``inf``
    (SIGTERM, then wait for as long as it takes)."""
    given = seconds("grace", value)
    return math.inf if given is None else given


def _longest() -> float:
    """The longest wait the platform's timers take (``threading.TIMEOUT_MAX``)."""
    import threading  # loaded already wherever a timeout is checked

    return threading.TIMEOUT_MAX


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


def environment(env: Any) -> Any:
    """``env``, checked as ``subprocess`` checks it, before anything starts.

    Raises:
        TypeError: not a mapping, or a name or value that is not a string.
        ValueError: a name that is empty or holds ``=``, or a NUL anywhere.
    """
    if env is None:
        return None
    if not hasattr(env, "items"):
        raise TypeError(f"env={env!r}: pass a mapping of variable names to values")
    for name, value in env.items():
        for what, text in ((f"name {name!r}", name), (f"value of {name!r}", value)):
            if not isinstance(text, str):
                raise TypeError(
                    f"env: the {what} is of type {type(text).__name__}, not str; "
                    "environment variables are strings (str(...) it)"
                )
            if "\0" in text:
                raise ValueError(f"env: the {what} holds a NUL byte, which no variable may")
        if not name or "=" in name:
            raise ValueError(
                f"env: {name!r} is not a variable name (empty, or holding '='); name "
                "variables without '='"
            )
    return env
