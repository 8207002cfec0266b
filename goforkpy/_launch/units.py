"""The start methods' units: one table, one interface.

Each start method is a module of this package (``cold``, ``warm``,
``snapshot``) that provides what ``StartMethod`` says, named by its line in
``methods.TABLE``, which also says what the method is (whether it may be a
default, serve as a reused worker, copies the caller's memory). A new start
method is that module and that line; the callers (``spawn``, ``isolated``, the
Executor, the Manager) only ever ask ``unit(start)`` and call its ``start``,
and ask ``methods.properties(start)`` what it is.
"""

from __future__ import annotations

from .methods import properties

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


_loaded: dict[str, StartMethod] = {}


def unit(start: str | None) -> StartMethod:
    """The unit of the start method a call uses (its own ``start=``, or the default)."""
    name = properties(start).name
    found = _loaded.get(name)
    if found is None:
        import importlib

        found = _loaded[name] = importlib.import_module(f".{name}", __package__)
    return found
