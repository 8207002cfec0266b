"""``fork.isolated``: a function that runs in a goforkpy child wherever it is called.

The wrapper holds the function and checked process options, and pickles small:
by reference where it (or the function) can be imported from a module, by
value (cloudpickle) otherwise, so it travels to threads, process pools,
joblib and Dask workers alike. Each call starts a child on the machine where
it is made, as ``fork.run`` does.

Watchers see each call's child start and end: the Dask plugin uses them to
know which child belongs to which task, without this module knowing Dask.
"""

from __future__ import annotations

import functools

from .._launch import methods
from .._launch.record import Options
from .._process.limits import Limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Protocol, TypeVar

    from .._parent.child import Child
    from .._sandbox.policy import Sandbox

    F = TypeVar("F", bound=Callable[..., Any])

    class Watcher(Protocol):
        def started(self, child: Child) -> None: ...
        def ended(self, child: Child) -> None: ...


_watchers: list[Watcher] = []
ISOLATES = ("task", "worker")
_default_isolate = "task"  # what isolate=None means here (goforkpy.dask may change it)
_default_sandbox: Sandbox | None = None  # the sandbox of calls that name none (the same)


def set_default_isolate(isolate: str) -> None:
    """What ``isolate=None`` means in this process from now on."""
    global _default_isolate
    _default_isolate = _check_isolate(isolate, None) or "task"


def set_default_sandbox(sandbox: Sandbox | None) -> None:
    """The sandbox of isolated calls that name none, in this process from now on."""
    global _default_sandbox
    _default_sandbox = sandbox


def _check_isolate(isolate: str | None, start: str | None) -> str | None:
    if isolate is not None and isolate not in ISOLATES:
        raise ValueError(
            f"isolate={isolate!r}: use 'task' (a fresh child per call) or 'worker' "
            "(isolated workers reused from call to call)"
        )
    if isolate == "worker" and not methods.properties(methods.check(start, snapshot=True)).reusable:
        raise ValueError(
            f"isolate='worker' with start={start!r}: such a child is a fork of the caller at "
            "each call, so it cannot be reused; use start='cold' or 'warm' for reused workers"
        )
    return isolate


def add_watcher(watcher: Watcher) -> None:
    """Tell ``watcher`` of every isolated call's child, from now on."""
    _watchers.append(watcher)


def remove_watcher(watcher: Watcher) -> None:
    try:
        _watchers.remove(watcher)
    except ValueError:
        pass


def isolated(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    timeout: float | None = None,
    grace: float = 5.0,
    limits: Limits | None = None,
    start: str | None = None,
    isolate: str | None = None,
    sandbox: Sandbox | None = None,
) -> Any:
    """Wrap ``fn`` so that each call runs it in a goforkpy child, where it is called.

    Use it as ``fork.isolated(fn, timeout=10)``, or as a decorator, with or
    without arguments. The wrapper keeps ``fn``'s ``__name__``,
    ``__qualname__``, ``__doc__`` and ``__module__`` (``__wrapped__`` is
    ``fn``) and can be pickled: by reference where it or ``fn`` can be
    imported from a module, by value otherwise. So it can be handed to
    threads, ``concurrent.futures``, joblib, Celery or Dask, and each call
    returns or raises as ``fork.run`` does: the function's exception, or
    ``ChildCrashed`` and ``TimeoutExpired`` while the caller stays up.

    Args:
        fn: the function; any picklable callable.
        timeout: seconds each call's function may run (start-up not counted);
            then its process tree is terminated and ``TimeoutExpired`` raised.
        grace: seconds between SIGTERM and SIGKILL when terminating.
        limits: a ``fork.Limits`` applied in each child.
        start: ``"cold"``, ``"warm"`` or ``"snapshot"``; default: the start
            method in force at each call.
        isolate: ``"task"``, a fresh child per call; ``"worker"``, isolated
            worker processes reused from call to call (far cheaper for short
            calls; a crash still fails only its call, and what a call started
            does not outlive it); ``None``, the process's default (``"task"``
            unless ``goforkpy.dask.Isolation`` set another).
        sandbox: a ``fork.Sandbox`` for each call's child (or for the reused
            workers, for their whole life).

    Raises:
        TypeError: ``fn`` is not callable, or an option has the wrong type.
        ValueError: an option's value is out of range.
    """
    isolate = _check_isolate(isolate, start)
    options = Options(timeout=timeout, grace=grace, limits=limits, start=start, sandbox=sandbox)
    if fn is None:  # a decorator with arguments: bad options failed here, not at decoration
        return functools.partial(_wrap, options=options, isolate=isolate)
    return _wrap(fn, options, isolate)


def _wrap(fn: F, options: Options, isolate: str | None) -> F:
    if not callable(fn):
        raise TypeError(
            f"fork.isolated() wraps a callable, not {fn!r}; pass the function itself, "
            "or use @fork.isolated(timeout=...) as a decorator"
        )
    return Isolated(fn, options, isolate)  # type: ignore[return-value] # it calls like fn


class Isolated:
    """A function that runs in a goforkpy child at each call (see ``fork.isolated``)."""

    __wrapped__: Callable[..., Any]
    __qualname__: str

    def __init__(self, fn: Callable[..., Any], options: Options, isolate: str | None) -> None:
        functools.update_wrapper(self, fn)
        self._options, self._isolate = options, isolate

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        options = self._options
        if options.sandbox is None and _default_sandbox is not None:
            options = options.with_sandbox(_default_sandbox)
        if (self._isolate or _default_isolate) == "worker" and methods.properties(
            options.start
        ).reusable:
            from . import reused

            return reused.call(self.__wrapped__, args, kwargs, options, _watchers)
        from .._launch.api import launch

        child = launch(self.__wrapped__, args, kwargs, options, "isolated", rerun_main=False)
        with child:  # an interrupted wait ends the child's tree
            for watcher in _watchers:
                watcher.started(child)
            try:
                return child.result()
            finally:
                for watcher in _watchers:
                    watcher.ended(child)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """As a method, the instance is the first argument, as for a function."""
        if instance is None:
            return self
        import types

        return types.MethodType(self, instance)

    def __repr__(self) -> str:
        options, isolate = self._options, self._isolate
        shown = [f"timeout={options.timeout}"] if options.timeout is not None else []
        shown += [f"grace={options.grace}"] if options.grace != 5.0 else []
        shown += [f"limits={options.limits!r}"] if options.limits is not None else []
        shown += [f"start={options.start!r}"] if options.start is not None else []
        shown += [f"isolate={isolate!r}"] if isolate is not None else []
        shown += [f"sandbox={options.sandbox!r}"] if options.sandbox is not None else []
        return f"<isolated {self.__wrapped__!r}{''.join(', ' + item for item in shown)}>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        if _importable(self):
            return self.__qualname__  # by reference: the decorated name in its module
        fn, settings = self.__wrapped__, (self._options, self._isolate)
        if _importable(fn):
            return Isolated, (fn, *settings)
        import cloudpickle  # type: ignore[import-untyped,unused-ignore]

        return _rebuild_by_value, (cloudpickle.dumps(fn), *settings)


def _importable(obj: object) -> bool:
    """True where ``obj`` is found by importing its module (not a script's ``__main__``)."""
    from .._launch.plan import importable

    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    return module not in (None, "__main__") and importable(obj, module, qualname)


def _rebuild_by_value(data: bytes, options: Options, isolate: str | None) -> Isolated:
    import pickle

    return Isolated(pickle.loads(data), options, isolate)
