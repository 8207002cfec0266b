"""The registry of forkable functions, by name.

On the child's start-up path (a re-run script registers its functions before
``init()`` dispatches), so it imports nothing heavy.
"""

from .._state import Lock

TYPE_CHECKING = False  # typing costs a child milliseconds; only checkers import it
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, TypeVar, overload

    F = TypeVar("F", bound=Callable[..., Any])

_MappingProxy = type(type.__dict__)  # types.MappingProxyType, without importing types

_functions: "dict[str, Callable[..., Any]]" = {}
_lock = Lock()


def _same_definition(a: "Callable[..., Any]", b: "Callable[..., Any]") -> bool:
    """True for one function, or a redefinition of it (a re-run script, a REPL edit)."""
    if a is b:
        return True
    key_a = (getattr(a, "__module__", None), getattr(a, "__qualname__", None))
    key_b = (getattr(b, "__module__", None), getattr(b, "__qualname__", None))
    return key_a == key_b and key_a[1] is not None


def register_func(name: str, fn: "F") -> "F":
    """Register ``fn`` under ``name`` (the Go-style spelling of ``@register``).

    Args:
        name: the name ``fork()`` will be called with.
        fn: the function to run in the child.

    Returns:
        ``fn`` itself, with ``fn.fork(*a, **kw)`` and ``fn.run(*a, **kw)`` attached.

    Raises:
        RegistryError: ``name`` is not a non-empty string, ``fn`` is not callable,
            or ``name`` is taken by a different function.
    """
    if not isinstance(name, str) or not name:
        raise _refused(f"a registered name must be a non-empty string, not {name!r}")
    if not callable(fn):
        raise _refused(f"register_func({name!r}, ...) needs a function, not {fn!r}")
    with _lock:
        taken = _functions.get(name)
        if taken is not None and not _same_definition(taken, fn):
            raise _refused(
                f"the name {name!r} is already registered for "
                f"{_describe(taken)}; register {_describe(fn)} under another name"
            )
        _functions[name] = fn
    _attach_shortcuts(name, fn)
    return fn


if TYPE_CHECKING:

    @overload
    def register(fn_or_name: "F") -> "F": ...
    @overload
    def register(fn_or_name: str) -> "Callable[[F], F]": ...


def register(fn_or_name: "Any") -> "Any":
    """Register a function for forking; use as ``@register`` or ``@register("name")``.

    Returns:
        The function itself, with ``.fork(*a, **kw)`` (start it in a child,
        returning a ``Child``) and ``.run(*a, **kw)`` (run it in a child and
        return its result) attached.
    """
    if isinstance(fn_or_name, str):
        given = fn_or_name

        def decorate(fn: "F") -> "F":
            return register_func(given, fn)

        return decorate
    name = getattr(fn_or_name, "__name__", None)
    if name == "<lambda>":
        raise _refused(
            "a lambda has no name of its own, so a second one would silently replace "
            "it; register it with an explicit name: fork.register_func('name', fn)"
        )
    if not isinstance(name, str):
        raise _refused(
            f"{fn_or_name!r} has no __name__; register it with an explicit name: "
            "@fork.register('name') or fork.register_func('name', fn)"
        )
    return register_func(name, fn_or_name)


def registered() -> "Mapping[str, Callable[..., Any]]":
    """A read-only, live view of the registry: name -> function."""
    return _MappingProxy(_functions)


def lookup(name: str, via: str = "fork") -> "Callable[..., Any]":
    """The function registered under ``name``; the errors name the fix.

    Raises:
        TypeError: ``name`` is not a string (a function was passed).
        RegistryError: nothing is registered under ``name``.
    """
    if not isinstance(name, str):
        raise TypeError(_not_a_name(name, via))
    fn = _functions.get(name)
    if fn is None:
        known = ", ".join(sorted(_functions)) or "none yet"
        raise _refused(
            f"no function is registered under {name!r} (registered: {known}); "
            "decorate it with @fork.register or call fork.register_func(name, fn)"
        )
    return fn


def _not_a_name(value: "Any", via: str) -> str:
    """Why ``fork.<via>(value)`` is wrong, for a ``value`` that is not a name."""
    if not callable(value):
        return f"fork.{via}() takes a registered function's name (a str), not {value!r}"
    for registered_name, fn in _functions.items():
        if fn is value:
            return (
                f"fork.{via}() takes a registered function's name, not the function: "
                f"write fork.{via}({registered_name!r}, ...) or {registered_name}.{via}(...)"
            )
    return (
        f"fork.{via}() takes the name of a function registered with @fork.register, "
        f"not a callable ({value!r}); to run any picklable callable in a child, "
        "use fork.Executor().submit(fn, *args), or register it first"
    )


def _describe(fn: "Callable[..., Any]") -> str:
    module = getattr(fn, "__module__", "?")
    qualname = getattr(fn, "__qualname__", repr(fn))
    return f"{module}.{qualname}"


# How ``fn.fork(...)``/``fn.run(...)`` start a child: ``starter(how, name, args,
# kwargs)``, set by ``goforkpy/__init__.py``, so that the registry, on every
# child's start-up path, never imports the launcher.
starter: "Callable[[str, str, tuple[Any, ...], dict[str, Any]], Any] | None" = None


def _attach_shortcuts(name: str, fn: "Callable[..., Any]") -> None:
    def fork(*args: "Any", **kwargs: "Any") -> "Any":
        assert starter is not None, "goforkpy/__init__.py sets the starter"
        return starter("fork", name, args, kwargs)

    def run(*args: "Any", **kwargs: "Any") -> "Any":
        assert starter is not None, "goforkpy/__init__.py sets the starter"
        return starter("run", name, args, kwargs)

    fork.__doc__ = f"Start {name!r} in a child process and return its Child handle."
    run.__doc__ = f"Run {name!r} in a child process and return its result."
    try:
        fn.fork = fork  # type: ignore[attr-defined]
        fn.run = run  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass  # builtins and slotted callables take no attributes; fork(name) still works


def _refused(message: str) -> Exception:
    """The ``RegistryError`` to raise (its module loads only when one is: ``import
    goforkpy`` stays cheap)."""
    from .._errors import RegistryError

    return RegistryError(message)
