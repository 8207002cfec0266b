"""Checking a call in the parent, before anything starts, and making its record.

``spawn`` takes the arguments as a tuple or list and a mapping; a call that
cannot bind to the function's signature would start an interpreter only for
the child to raise ``TypeError``, so it is bound here first, and where the
stray keyword is one of ``spawn``'s own options the message shows the call
that was meant. Open files and sockets, which mean nothing in another
process, are refused by name.
"""

from __future__ import annotations

from .._errors import PayloadError
from .._shared import tmpdir, wire
from . import handover
from .record import OPTION_NAMES, Launch, Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    import inspect
    from typing import Any, Callable


def check(
    name: str, fn: Callable[..., Any], args: Any, kwargs: Any, via: str, *, pickled: bool = True
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call as (args, kwargs), checked to bind to ``fn``'s signature.

    ``pickled``: the arguments travel to another interpreter, so open files
    and sockets are refused (a snapshot's stay in the same memory).
    """
    if not isinstance(args, (tuple, list)):
        raise TypeError(
            f"spawn({name!r}, args=...) takes the function's arguments as a tuple or "
            f"list, not {type(args).__name__}: write fork.spawn({name!r}, ({args!r},)) "
            f"for one argument, or fork.fork({name!r}, *args, **kwargs)"
        )
    if kwargs is not None and not _is_mapping(kwargs):
        raise TypeError(
            f"spawn({name!r}, args, kwargs=...) takes keyword arguments as a mapping, "
            f"not {type(kwargs).__name__}: fork.spawn({name!r}, (1, 2), {{'key': value}})"
        )
    call = (tuple(args), dict(kwargs or {}))
    _check_binds(name, fn, call, via)
    if pickled:
        _refuse_os_handles(name, call)
    return call


def _refuse_os_handles(name: str, call: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    """An open file or socket means nothing in another process: say which argument it is."""
    args, kwargs = call
    named = [(f"argument {i}", value) for i, value in enumerate(args)]
    named += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for what, value in named:
        kind = wire.os_handle_kind(value)
        if kind is not None:
            raise PayloadError(
                f"{what} of {name!r} is {kind} ({value!r}), which cannot be sent to another "
                "process; pass its path, address or data instead"
            )


def unpicklable(launch: Launch, error: PayloadError, *, main_is_shared: bool) -> PayloadError:
    """The error for a call that would not pickle, naming the argument that would not."""
    calls = [(launch.args, launch.kwargs)]
    advice = (
        f"run it with fork.snapshot({launch.name}, ...) or start='snapshot', which hands "
        "the function any object, unpickled, in a fork of this process"
    )
    return unpicklable_call(launch.name, launch.fn, calls, error, advice, main_is_shared)


def unpicklable_call(
    name: str,
    fn: Any,
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
    error: PayloadError,
    advice: str,
    main_is_shared: bool,
) -> PayloadError:
    """The error for calls of ``fn`` that would not pickle, naming the argument (of which
    call, where there are several) that would not; ``advice`` says what to do instead.

    Each argument is tried alone (only here, once the calls have failed).
    """
    for number, (args, kwargs) in enumerate(calls):
        of = f"call {number} of {name!r}" if len(calls) > 1 else repr(name)
        named = [(f"args[{i}]", value) for i, value in enumerate(args)]
        named += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
        for what, value in named:
            why = _pickling_error(value, main_is_shared)
            if why is not None:
                return _unpicklable(f"{what} of {of}", value, why, advice)
    why = _pickling_error(fn, main_is_shared)
    if why is not None:
        return _unpicklable(f"the function {name!r} itself", fn, why, advice)
    return error


def _unpicklable(what: str, value: Any, why: str, advice: str) -> PayloadError:
    return PayloadError(
        f"{what}, a {type(value).__name__}, cannot be pickled ({why}); pass picklable "
        f"data, or {advice}"
    )


def _pickling_error(value: Any, main_is_shared: bool) -> str | None:
    """Why ``value`` will not pickle, in words (no exception kept: it would hold ``value``)."""
    try:
        wire.encode(value, main_is_shared=main_is_shared)
    except PayloadError as exc:  # kept in no local: a cycle through this frame would
        return _in_words(exc.__cause__ or exc)  # hold the value until a collection
    return None


def _in_words(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _is_mapping(value: Any) -> bool:
    from collections.abc import Mapping

    return isinstance(value, Mapping)


_signatures: dict[Callable[..., Any], inspect.Signature | None] = {}


def _check_binds(
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
    options = [option for option in OPTION_NAMES if option in kwargs]
    if not options or via in ("spawn", "isolated"):
        return ""
    rest = {k: v for k, v in kwargs.items() if k not in OPTION_NAMES}
    given = ", ".join(f"{option}={kwargs[option]!r}" for option in options)
    if via == "snapshot":  # the callable itself, not a registered name
        target, given = name, f"start='snapshot', {given}"
    else:
        target = repr(name)
    return (
        f"; fork.{via}() passes every keyword to the function. For process "
        f"options use fork.spawn({target}, {args!r}, {rest!r}, {given})"
    )


def prepare(
    name: str,
    fn: Callable[..., Any],
    args: Any,
    kwargs: Any,
    options: Options,
    via: str,
    *,
    pickles: bool,
    rerun_main: bool = True,
) -> Launch:
    """The record of one call to ``fn``, known as ``name``, checked: nothing has started.

    ``pickles``: the arguments travel to another interpreter, so open files
    and sockets are refused.
    """
    call_args, call_kwargs = check(name, fn, args, kwargs, via, pickled=pickles)
    return Launch(
        name,
        fn,
        call_args,
        call_kwargs,
        options,
        via,
        rerun_main,
        handover.parent_key(),
        tmpdir.new_stem(),
    )
