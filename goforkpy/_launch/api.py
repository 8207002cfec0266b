"""The public calls that start children: ``fork``, ``run``, ``spawn``, ``snapshot``.

Each becomes one ``Launch`` record (``calls.prepare``: the arguments bound
and checked, nothing started yet) and goes to the start method's unit
(``units.unit``), which starts and watches the child. Nothing here knows
how a start method works.
"""

from __future__ import annotations

from .._child import boot
from .._shared.registry import lookup
from . import methods, units
from .calls import prepare
from .record import DEFAULTS, OPTION_NAMES, Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import Any, Callable, Mapping

    from .._parent.child import Child
    from .._process.limits import Limits
    from .._process.stdio import Redirect
    from .._sandbox.policy import Sandbox


def fork(name: str, /, *args: Any, **kwargs: Any) -> Child:
    """Start the function registered as ``name`` in a fresh interpreter.

    The arguments are passed to it unchanged; returns at once.

    Raises:
        RegistryError: ``name`` is not registered (nothing is started).
        TypeError: the arguments do not fit the function's signature (nothing
            is started).
        PayloadError: the arguments cannot be pickled (nothing is started).
        InitError: called in a child before ``fork.init()``, or nested too deep.
    """
    return launch(name, args, kwargs, DEFAULTS, via="fork")


def run(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Fork ``name``, wait for it, and return its result (or raise what it raised)."""
    with launch(name, args, kwargs, DEFAULTS, via="run") as child:
        return child.result()


async def run_async(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """``run`` for asyncio: await the result; cancelling the task terminates the child."""
    return await launch(name, args, kwargs, DEFAULTS, via="run_async").result_async()


# Longer than most: its docstring documents each of the options, which are
# spelled out in the signature for type checkers and help().
def spawn(
    name: str | Callable[..., Any],
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    grace: float = 5.0,
    stdin: Redirect = None,
    stdout: Redirect = None,
    stderr: Redirect = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
    start: str | None = None,
    start_timeout: float | None = None,
    sandbox: Sandbox | None = None,
) -> Child:
    """Like ``fork``, with process options.

    Args:
        name: the registered name (with ``start="snapshot"``, any callable too).
        args: positional arguments for the function, as a tuple or list.
        kwargs: keyword arguments for the function, as a mapping.
        timeout: seconds the function may run, counted from the moment it
            starts in the child (interpreter start-up and imports do not
            count); then the child's tree is terminated and ``result()``
            raises ``TimeoutExpired``.
        grace: seconds between SIGTERM and SIGKILL when terminating.
        stdin: ``None`` (inherit), ``PIPE``, ``DEVNULL``, a file object or a path.
        stdout: as ``stdin``, a path is opened for writing.
        stderr: as ``stdout``, or ``STDOUT`` to share it.
        env: variables added to (or overriding) the parent's environment.
        cwd: the child's working directory (default: the parent's).
        limits: a ``fork.Limits`` applied in the child before the function runs.
        start: ``"cold"`` (a fresh interpreter), ``"warm"`` (a fork of a
            zygote that already ran the imports) or ``"snapshot"`` (a fork of
            this process: see ``fork.snapshot``); default: the start method
            (``fork.set_start_method``, ``GOFORKPY_START``, else cold).
        start_timeout: seconds the child may take to start, up to the
            function's first line (default: no limit); the error says which
            of the two deadlines passed.
        sandbox: a ``fork.Sandbox``: the child runs the function with only
            what it allows (files, network, programs), and its result comes
            back as plain data; cold and warm starts only.

    Raises:
        TypeError: ``args`` is not a tuple or list, ``kwargs`` not a mapping,
            or they do not fit the function's signature (nothing is started).
        ValueError: ``sandbox`` with ``start="snapshot"``.
        SandboxUnavailable: this machine cannot enforce the sandbox.
    """
    given = locals()
    options = Options(**{option: given[option] for option in OPTION_NAMES})
    return launch(name, args, kwargs, options, via="spawn")


def snapshot(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Child:
    """Run ``fn(*args, **kwargs)`` in a fork of this process, on a snapshot of its memory.

    The child sees this process's memory as it was at the call, copy-on-write,
    while this process goes on at once and may change its own freely. ``fn``
    may be any callable (a closure, a bound method) and the arguments
    anything (locks, open sockets, generators): nothing is pickled on the way
    in. The return value, or the exception, comes back through
    ``Child.result()`` as from any child. For process options use
    ``fork.spawn(fn, args, kwargs, start="snapshot", ...)``.

    The child gets fresh ``sys.stdout``/``sys.stderr`` objects on the same
    descriptors; objects that still hold the parent's streams (a
    ``logging.StreamHandler`` made before) write into the parent's buffer.
    If other threads of yours run, keep ``fn`` away from the locks they
    take: the child has only the calling thread (a ``RuntimeWarning`` says
    so; goforkpy's own threads hold no lock the child needs). Off Linux
    there is no parent-death signal: without the guardian, a snapshot child
    outlives a SIGKILLed parent.

    Raises:
        TypeError: ``fn`` is not callable.
        InitError: called in a child before ``fork.init()``, or in a snapshot.
    """
    return launch(fn, args, kwargs, _SNAPSHOT, via="snapshot")


_SNAPSHOT = Options(start=methods.SNAPSHOT)


def launch(
    target: str | Callable[..., Any],
    args: Any,
    kwargs: Any,
    options: Options,
    via: str = "spawn",
    *,
    rerun_main: bool = True,
) -> Child:
    """Start ``target`` (a registered name, or a callable where ``via`` or the start
    method takes one) with ``options``; ``via`` names the public call in error messages.

    ``rerun_main``: a function of the main script may start by re-running it
    up to ``fork.init()`` (registered functions); otherwise it goes by value.
    """
    boot.require_can_fork()
    method = units.unit(options.start)
    name, fn = _resolve(target, via, callables=not method.PICKLES or via == "isolated")
    call = prepare(
        name, fn, args, kwargs, options, via, pickles=method.PICKLES, rerun_main=rerun_main
    )
    return method.start(call)


def _resolve(
    target: str | Callable[..., Any], via: str, *, callables: bool
) -> tuple[str, Callable[..., Any]]:
    """(the name, the function) that ``target`` stands for."""
    if isinstance(target, str) or not callables:
        return str(target), lookup(target, via)  # type: ignore[arg-type] # lookup says what is wrong
    if not callable(target):
        raise TypeError(
            f"fork.{via}() needs a callable, not {target!r}; pass the function itself, "
            "e.g. fork.snapshot(save, table)"
        )
    return getattr(target, "__qualname__", None) or repr(target), target
