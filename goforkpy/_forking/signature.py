"""Checking a call against the function's signature in the parent, before anything starts.

A call that cannot bind would start an interpreter only for the child to
raise ``TypeError``; binding here fails at once, and where the stray keyword
is one of ``spawn``'s own options the message shows the call that was meant.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import inspect
    from typing import Any, Callable

SPAWN_OPTIONS = frozenset(
    {"timeout", "start_timeout", "grace", "stdin", "stdout", "stderr", "env", "cwd", "limits"}
)
_signatures: dict[Callable[..., Any], inspect.Signature | None] = {}


def check_binds(
    name: str, fn: Callable[..., Any], call: tuple[tuple[Any, ...], dict[str, Any]], via: str
) -> None:
    """Raise ``TypeError`` where ``fn(*args, **kwargs)`` cannot bind; silent where unknown."""
    signature = _signature_of(fn)
    if signature is None:
        return
    args, kwargs = call
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}{signature}: {exc}{_hint(name, args, kwargs, via)}") from None


def _signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return _signatures[fn]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable: not cached
        return _read_signature(fn)
    found = _signatures[fn] = _read_signature(fn)
    return found


def _read_signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    import inspect

    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C callables may have none
        return None


def _hint(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], via: str) -> str:
    options = sorted(SPAWN_OPTIONS & set(kwargs))
    if not options or via == "spawn":
        return ""
    rest = {k: v for k, v in kwargs.items() if k not in SPAWN_OPTIONS}
    given = ", ".join(f"{option}={kwargs[option]!r}" for option in options)
    return (
        f"; fork.{via}() passes every keyword to the function. For process "
        f"options use fork.spawn({name!r}, {args!r}, {rest!r}, {given})"
    )
