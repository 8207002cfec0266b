"""Hooks by which upper layers join in at two moments of a child's life.

The fork path must not import what is built on it (messaging, say), so a
layer that needs to act at these moments adds a callable here instead:

- ``on_reaped``: in the parent, called with a child's pid once it is reaped
  (messaging drops its connections to it).
- ``on_leaving``: in a child, called as it leaves with ``os._exit``, which
  skips ``atexit`` (messaging removes its socket file).

A hook must be quick and must not raise; one that raises is skipped.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

on_reaped: "list[Callable[[int], None]]" = []
on_leaving: "list[Callable[[], None]]" = []


def reaped(pid: int) -> None:
    for hook in on_reaped:
        try:
            hook(pid)
        except Exception:
            pass  # a hook's failure must not stop the reaping


def leaving() -> None:
    for hook in on_leaving:
        try:
            hook()
        except Exception:
            pass  # leaving anyway; the sweep removes what a hook could not
