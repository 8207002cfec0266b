"""Start methods by name (``cold``, ``warm``, ``snapshot``): checking one, and the default.

What each does is its unit's (see ``units``).
"""

from __future__ import annotations

import os

from .. import _env
from .._state import Lock

COLD, WARM, SNAPSHOT = "cold", "warm", "snapshot"
METHODS = (COLD, WARM)  # what a default may be; a snapshot is asked for call by call

_lock = Lock()
_default: str | None = None


def check(start: str | None, what: str = "start", *, snapshot: bool = False) -> str | None:
    """``start`` if it names a start method (or is ``None``), else a ``ValueError``.

    ``snapshot``: ``"snapshot"`` is allowed too (a single child's, not a default's).
    """
    if start is None or start in METHODS or (snapshot and start == SNAPSHOT):
        return start
    if start == SNAPSHOT:
        raise ValueError(
            f"{what}='snapshot' cannot be a default or a pool's: a snapshot forks the "
            "calling process at one instant; use fork.snapshot(fn, ...) or "
            "fork.spawn(fn, args, start='snapshot') for each one"
        )
    extra = ", or 'snapshot' (a fork of this very process)" if snapshot else ""
    raise ValueError(
        f"{what}={start!r} is not a start method; pass 'cold' (a fresh interpreter per "
        f"child) or 'warm' (a fork of a zygote that already ran your imports){extra}"
    )


def set_start_method(method: str) -> None:
    """Make ``method`` (``"cold"`` or ``"warm"``) the default for every later child.

    Calls with ``start=`` still choose for themselves.

    Raises:
        ValueError: ``method`` is not a start method.
    """
    global _default
    if method is None:
        raise ValueError("set_start_method(None): pass 'cold' or 'warm'")
    checked = check(method, "method")
    with _lock:
        _default = checked


def get_start_method() -> str:
    """The default start method: set by ``set_start_method``, else ``GOFORKPY_START``,
    else ``"cold"``.

    Raises:
        ValueError: ``GOFORKPY_START`` names no start method.
    """
    global _default
    with _lock:
        if _default is None:
            _default = check(os.environ.get(_env.START) or COLD, _env.START) or COLD
        return _default


def chosen(start: str | None) -> str:
    """The method a call uses: its own ``start=``, or the default."""
    return start if start is not None else get_start_method()
