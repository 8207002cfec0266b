"""The start methods' units: one table, one interface.

Each start method is a module of this package (``cold``, ``warm``,
``snapshot``) that provides what ``StartMethod`` says; ``_UNITS`` is the one
table that names them. A new start method is one module and one line here;
the callers (``spawn``, ``isolated``, the Executor, the Manager) only ever
ask ``unit(start)`` and call its ``start``.
"""

from __future__ import annotations

from .methods import COLD, SNAPSHOT, WARM, chosen

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


_UNITS = {COLD: "cold", WARM: "warm", SNAPSHOT: "snapshot"}  # name -> module of this package
_loaded: dict[str, StartMethod] = {}


def unit(start: str | None) -> StartMethod:
    """The unit of the start method a call uses (its own ``start=``, or the default)."""
    name = chosen(start)
    found = _loaded.get(name)
    if found is None:
        import importlib

        found = _loaded[name] = importlib.import_module(f".{_UNITS[name]}", __package__)
    return found
