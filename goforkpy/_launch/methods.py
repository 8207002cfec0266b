"""Start methods: how a child comes to be, one unit each, and the default one.

Each start method is a module of this package (``cold``, ``warm``,
``snapshot``) that implements ``StartMethod``; ``_UNITS`` is the one table
that names them. A new start method is one module and one line here; the
callers (``spawn``, ``isolated``, the Executor, the Manager) only ever ask
``unit(start)`` and call its ``start``.
"""

from __future__ import annotations

import os

from .. import _env
from .._state import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from .._parent.child import Child
    from .record import Launch

    class StartMethod(Protocol):
        """What a start method's module provides."""

        # Its children get their call pickled, in another interpreter (so open
        # files and sockets are refused, and only registered or importable
        # functions go by name).
        PICKLES: bool

        def start(self, launch: Launch) -> Child:
            """Start the child ``launch`` describes; it is watched from then on."""
            ...


COLD, WARM, SNAPSHOT = "cold", "warm", "snapshot"
_UNITS = {COLD: "cold", WARM: "warm", SNAPSHOT: "snapshot"}  # name -> module of this package
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


_loaded: dict[str, StartMethod] = {}


def unit(start: str | None) -> StartMethod:
    """The start method a call uses (its own ``start=``, or the default), loaded on first use."""
    name = chosen(start)
    found = _loaded.get(name)
    if found is None:
        import importlib

        found = _loaded[name] = importlib.import_module(f".{_UNITS[name]}", __package__)
    return found
