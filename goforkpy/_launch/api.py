"""The parent side: plan how to start a child, prepare its payload, start it.

Launching is three steps: ``_plan`` picks the launch mode and command line
from where the function lives, ``_prepare`` serialises the arguments (nothing
is started if that fails), and ``_start`` runs the interpreter and hands the
process to the reaper. A small payload file is written before the start. A big
one is written while the child's interpreter starts, and a pipe tells the
child when the file is complete (its EOF, that the parent gave up).
"""

from __future__ import annotations

import errno
import os
import sys

from .. import _checks, _env
from .._child import boot
from .._errors import ForkError, PayloadError, TimeoutExpired
from .._parent.child import Child
from .._process import lifeline, platform, reaper
from .._process.limits import Limits
from .._process.popen import start_in_group
from .._shared import protocol, tmpdir, wire
from .._shared.registry import lookup, registered
from . import calls, handover, methods, plan
from . import zygote as warm
from .record import Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping

    from .._parent.child import Process, Watch
    from .._process.stdio import Redirect
    from .._shared.wire import Assembled

_OUT_OF_RESOURCES = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE})
# Payloads from this size on are written while the child starts.
_WRITE_WHILE_STARTING = 1 << 20


_DEFAULTS = Options()


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
    return launch(name, args, kwargs, _DEFAULTS, via="fork")


def run(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Fork ``name``, wait for it, and return its result (or raise what it raised)."""
    with launch(name, args, kwargs, _DEFAULTS, via="run") as child:
        return child.result()


async def run_async(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """``run`` for asyncio: await the result; cancelling the task terminates the child."""
    return await launch(name, args, kwargs, _DEFAULTS, via="run_async").result_async()


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

    Raises:
        TypeError: ``args`` is not a tuple or list, ``kwargs`` not a mapping,
            or they do not fit the function's signature (nothing is started).
    """
    options = Options(
        timeout=timeout,
        start_timeout=start_timeout,
        grace=grace,
        stdio=(stdin, stdout, stderr),
        env=env,
        cwd=cwd,
        limits=limits,
        start=start,
    )
    if options.start == methods.SNAPSHOT:
        from .snapshot import start as start_snapshot

        return start_snapshot(name, args, kwargs, options)
    return launch(name, args, kwargs, options, via="spawn")  # type: ignore[arg-type] # lookup says


def warm_up(timeout: float | None = None) -> None:
    """Start the zygotes that warm starts of the registered functions need, and wait for them.

    Otherwise each starts at the first warm fork of its kind: one for
    functions in the main script, one for functions in modules or sent by
    value. Where a zygote cannot serve, its functions start cold (logged).

    Raises:
        TimeoutExpired: a zygote was not ready within ``timeout`` seconds (it
            goes on starting).
    """
    import time

    boot.require_can_fork()
    limit = _checks.wait_timeout("timeout", timeout)
    deadline = None if limit is None else time.monotonic() + limit
    wanted: dict[str, tuple[str, list[str]]] = {}
    for fn in registered().values():
        mode, argv, _, _ = plan.plan(fn)
        wanted.setdefault(warm.path_of(mode), (mode, argv))
    if not wanted:
        wanted[warm.BOOT_PATH] = (protocol.VALUE, plan.boot_command())
    key = handover.parent_key()
    for mode, argv in wanted.values():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            warm.ready(mode, argv, key, left)
        except TimeoutExpired as exc:
            raise TimeoutExpired(
                f"{str(exc).partition(' was not ready')[0]} was not ready after {timeout} s; "
                "it goes on starting (what runs before fork.init() is slow, or stuck?)",
                timeout=timeout,
                pid=exc.pid,
            ) from None


def launch(
    name: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: Mapping[str, Any] | None,
    options: Options,
    via: str = "spawn",
) -> Child:
    """Start ``name`` with ``options``; ``via`` names the caller in error messages."""
    return launch_function(name, lookup(name, via), args, kwargs, options, via)


def launch_function(
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...] | list[Any],
    kwargs: Mapping[str, Any] | None,
    options: Options,
    via: str,
    *,
    rerun_main: bool = True,
) -> Child:
    """Start ``fn``, known as ``name``, with ``options``.

    ``rerun_main``: a function of the main script may start by re-running it
    up to ``fork.init()`` (registered functions); otherwise it is sent by value.
    """
    boot.require_can_fork()
    call = calls.check(name, fn, args, kwargs, via)
    mode, argv, module, qualname = plan.plan(fn, rerun_main=rerun_main)
    key = handover.parent_key()
    applied = options.limits._to_apply() if options.limits is not None else ()
    stem, assembled = _prepare(mode, name, fn, module, qualname, call, applied, key)
    path = protocol.payload_path(stem)
    early = assembled[1] >= _WRITE_WHILE_STARTING
    sealed = early and assembled[1] >= wire.SEALED_FROM and platform.sealed_memory_supported()
    if not early:
        _write_payload(name, path, key, assembled)
    try:
        child, ready, sealed_fd = _start_child(
            name, (mode, argv, module), (stem, key), options, (early, sealed)
        )
    except OSError as exc:
        _unlink_quietly(path)
        if exc.errno not in _OUT_OF_RESOURCES:
            raise  # a redirect or cwd that does not exist: the user's to fix, as subprocess says
        raise ForkError(
            f"cannot start a child for {name!r}: {exc.strerror or exc}; the system is out "
            "of processes, memory or file descriptors (see ulimit -u / -n)"
        ) from exc
    except BaseException:
        _unlink_quietly(path)
        raise
    if ready is not None:
        _write_while_starting(child, (path, sealed_fd), key, assembled, ready)
    return child


def _start_child(
    name: str,
    planned: tuple[str, list[str], str | None],
    files: tuple[str, bytes],
    options: Options,
    how: tuple[bool, bool],
) -> tuple[Child, int | None, int | None]:
    """Start the child; ``Child._started`` watches it from then on.

    ``planned`` is (mode, argv, module). ``how`` is (early, sealed): an early
    start leaves the payload to be written while the child starts, and
    returns the write end of the pipe that tells it the payload is complete;
    a sealed one writes it into a memfd the child inherits, instead of a
    file, and returns that memfd too.
    """
    (stem, key), (early, sealed) = files, how
    env = plan.child_env(planned[0], options.env, key)
    env[_env.PAYLOAD] = protocol.payload_path(stem)
    env[_env.FAULTS] = protocol.faults_path(env[_env.PAYLOAD])
    with handover.Pipes() as pipes:
        handed = [(_env.PASSED, fd) for fd in options.pass_fds]  # (marker, fd) for the child
        if early:
            wait_end, ready = pipes.make()
            handed.append((_env.READY, wait_end))
        payload_fd = pipes.add(platform.new_sealable("goforkpy-payload")) if sealed else None
        if payload_fd is not None:
            handed.append((_env.PAYLOAD_FD, payload_fd))
        timed = options.timeout is not None or options.start_timeout is not None
        if timed:
            started, tell_end = pipes.make()
            handed.append((_env.STARTED, tell_end))
        process, watch, method = _start_process(planned, key, env, handed, options)
        if payload_fd is not None:
            pipes.take(payload_fd)  # the handle closes it once the child has exited
        kept = (stem, key, payload_fd)
        child = Child._started(
            name, process, kept, options, pipes.take(started) if timed else None, (watch, method)
        )
        return child, pipes.take(ready) if early else None, payload_fd


def _start_process(
    planned: tuple[str, list[str], str | None],
    key: bytes,
    env: dict[str, str],
    handed: list[tuple[str, int]],
    options: Options,
) -> tuple[Process, Watch, str]:
    """Start the process, warm where asked and possible: (it, how to watch it, the method)."""
    mode, argv, module = planned
    if methods.chosen(options.start) == methods.WARM:
        for _ in range(2):  # a zygote found dead at the fork is replaced once
            zygote = warm.ready(mode, argv, key, options.start_timeout)
            if zygote is None:
                break
            sys_path = None if mode == protocol.MAIN else _absolute_sys_path()
            try:
                process = zygote.start_child(
                    env, handed, options.stdio, options.cwd, module, sys_path
                )
            except warm.Gone:
                continue
            except warm.Unusable as exc:  # it refuses: an import started a thread in it
                warm.give_up(zygote, str(exc))
                break
            return process, zygote.watch, methods.WARM
    reaper.prepare()  # a reaper that cannot run stops us before anything starts
    for marker, fd in handed:
        env[marker] = f"{env[marker]},{fd}" if marker in env else str(fd)
    pass_fds = (int(env[_env.LIFELINE]), int(env[_env.REPORT]), *(fd for _, fd in handed))
    popen = lifeline.from_long_lived_thread(
        lambda: start_in_group(argv, env, pass_fds, options.stdio, options.cwd)
    )
    return popen, reaper.watch, methods.COLD


def _write_payload(
    name: str, path: str, key: bytes, assembled: Assembled, sealed_fd: int | None = None
) -> None:
    """Write the payload: into the sealed memfd ``sealed_fd`` if given, else to ``path``."""
    try:
        if sealed_fd is not None:
            wire.write_sealed(os.path.basename(path), key, assembled, fd=sealed_fd)
        else:
            wire.write_assembled(path, key, assembled)
    except OSError as exc:
        raise PayloadError(
            f"cannot write the arguments of {name!r} to {path}: {exc.strerror or exc}; "
            f"free some space there, or set {_env.TMPDIR} to another directory"
        ) from exc


def _write_while_starting(
    child: Child, where: tuple[str, int | None], key: bytes, assembled: Assembled, ready: int
) -> None:
    """Write the payload, then tell the (starting) child it may read it.

    ``where`` is the payload file's path and, where it travels in one, the
    sealed memfd. If the payload cannot be written, the child is told by
    EOF, killed (it may be busy in a main script's top level) and reaped, and
    the error raised.
    """
    try:
        _write_payload(child.name, *where[:1], key, assembled, where[1])
    except BaseException:
        os.close(ready)
        child.kill()
        child.wait()
        raise
    try:
        os.write(ready, b"\1")
    except BrokenPipeError:
        pass  # the child is gone already; its exit tells how
    finally:
        os.close(ready)


# --- prepare -----------------------------------------------------------------------


def _prepare(
    mode: str,
    name: str,
    fn: Callable[..., Any],
    module: str | None,
    qualname: str,
    call: tuple[tuple[Any, ...], dict[str, Any]],
    limits: tuple[tuple[str, int], ...],
    key: bytes,
) -> tuple[str, Assembled]:
    """Serialise the call: (the stem of the child's files, the payload file assembled)."""
    body = (fn if mode == protocol.VALUE else None, *call)
    kind, chunks, buffers = wire.encode(body, main_is_shared=mode == protocol.MAIN)
    sys_path = None if mode == protocol.MAIN else _absolute_sys_path()
    argv = None if mode == protocol.MAIN else list(sys.argv)
    meta = protocol.Meta(mode, name, module, qualname, sys_path, kind, limits, argv).pack()
    return tmpdir.new_stem(), wire.assemble(meta, chunks, buffers)


def _absolute_sys_path() -> list[str]:
    cwd = os.getcwd()
    return [os.path.join(cwd, entry) if entry else cwd for entry in sys.path]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
