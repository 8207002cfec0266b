"""Start methods by name (``cold``, ``warm``, ``snapshot``): checking one, and the default.

What each does is its unit's (see ``units``).
"""

from __future__ import annotations

import os

from .. import _env
from .._state import Lock

COLD, WARM, SNAPSHOT = "cold", "warm", "snapshot"


class Method:
    """What a start method is, beside how it starts a child (its unit, ``units``)."""

    __slots__ = ("can_default", "copies_memory", "from_zygote", "name", "reusable", "says")

    def __init__(
        self,
        name: str,
        says: str,
        *,
        can_default: bool,
        reusable: bool,
        copies_memory: bool,
        from_zygote: bool = False,
    ) -> None:
        self.name = name  # and the name of its unit's module in this package
        self.says = says  # what it is, in the words of an error message
        self.can_default = can_default  # may be the default, and an Executor's or pool's
        self.reusable = reusable  # a child of it may serve call after call (a worker)
        self.copies_memory = copies_memory  # the child is a copy of the caller's memory
        self.from_zygote = from_zygote  # forked by a zygote, which warm_up() starts ahead


# The one table of start methods: a new one is a line here and a module of its name.
TABLE = {
    method.name: method
    for method in (
        Method(
            COLD,
            "a fresh interpreter per child",
            can_default=True,
            reusable=True,
            copies_memory=False,
        ),
        Method(
            WARM,
            "a fork of a zygote that already ran your imports",
            can_default=True,
            reusable=True,
            copies_memory=False,
            from_zygote=True,
        ),
        Method(
            SNAPSHOT,
            "a fork of this very process",
            can_default=False,
            reusable=False,
            copies_memory=True,
        ),
    )
}

_lock = Lock()
_default: str | None = None


def check(start: str | None, what: str = "start", *, snapshot: bool = False) -> str | None:
    """``start`` if it names a start method (or is ``None``), else a ``ValueError``.

    ``snapshot``: a method that cannot be a default is allowed too (a single child's).
    """
    method = lookup(start)
    if start is None or (method is not None and (method.can_default or snapshot)):
        return start
    if method is not None:
        raise ValueError(
            f"{what}={start!r} cannot be a default or a pool's: it is {method.says}, at one "
            f"instant; use fork.spawn(fn, args, start={start!r}) for each child"
            + (" (or fork.snapshot(fn, ...))" if start == SNAPSHOT else "")
        )
    choices = [m for m in TABLE.values() if m.can_default or snapshot]
    listed = ", ".join(f"{m.name!r} ({m.says})" for m in choices[:-1])
    raise ValueError(
        f"{what}={start!r} is not a start method; pass {listed} or {choices[-1].name!r} "
        f"({choices[-1].says})"
    )


def lookup(start: object) -> Method | None:
    """The start method ``start`` names, or ``None`` (for ``None`` too, or a non-string)."""
    return TABLE.get(start) if isinstance(start, str) else None


def properties(start: str | None) -> Method:
    """The method a call uses (its own ``start=``, or the default): what it is."""
    return TABLE[chosen(start)]


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
