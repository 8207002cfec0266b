"""The parent side: plan how to start a child, prepare its payload, start it.

Launching is three steps: ``_plan`` picks the launch mode and command line
from where the function lives, ``_prepare`` serialises the arguments (nothing
is started if that fails), and ``_start`` runs the interpreter and hands the
process to the reaper. A small payload file is written before the start. A big
one is written while the child's interpreter starts, and a pipe tells the
child when the file is complete (its EOF, that the parent gave up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from . import _boot, _env, _lifeline, _reaper, _tmpdir, _wire
from ._child import Child
from ._errors import ForkError
from ._limits import Limits
from ._registry import lookup
from ._stdio import open_redirects

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping

    from ._stdio import Redirect
    from ._wire import Frame

MAIN, MODULE, VALUE = "main", "module", "value"
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT_CODE = (
    f"import sys;sys.path.insert(0,{_PACKAGE_PARENT!r});from goforkpy._boot import main;main()"
)
# Payloads from this size on are written while the child starts.
_WRITE_WHILE_STARTING = 1 << 20
_key_lock = threading.Lock()
_key: bytes | None = None
_key_pid = -1


def fork(name: str, /, *args: Any, **kwargs: Any) -> Child:
    """Start the function registered as ``name`` in a fresh interpreter.

    The arguments are passed to it unchanged; returns at once.

    Raises:
        RegistryError: ``name`` is not registered (nothing is started).
        PayloadError: the arguments cannot be pickled (nothing is started).
        InitError: called in a child before ``fork.init()``, or nested too deep.
    """
    return spawn(name, args, kwargs)


def run(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Fork ``name``, wait for it, and return its result (or raise what it raised)."""
    with fork(name, *args, **kwargs) as child:
        return child.result()


async def run_async(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """``run`` for asyncio: await the result; cancelling the task terminates the child."""
    return await fork(name, *args, **kwargs).result_async()


def spawn(
    name: str,
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
) -> Child:
    """Like ``fork``, with process options.

    Args:
        name: the registered name.
        args: positional arguments for the function.
        kwargs: keyword arguments for the function.
        timeout: seconds the child may live; then its tree is terminated.
        grace: seconds between SIGTERM and SIGKILL when terminating.
        stdin: ``None`` (inherit), ``PIPE``, ``DEVNULL``, a file object or a path.
        stdout: as ``stdin``, a path is opened for writing.
        stderr: as ``stdout``, or ``STDOUT`` to share it.
        env: variables added to (or overriding) the parent's environment.
        cwd: the child's working directory (default: the parent's).
        limits: a ``fork.Limits`` applied in the child before the function runs.
    """
    return launch(name, args, kwargs, timeout, grace, (stdin, stdout, stderr), env, cwd, limits)


def launch(
    name: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: Mapping[str, Any] | None,
    timeout: float | None,
    grace: float,
    stdio: tuple[Redirect, Redirect, Redirect],
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    limits: Limits | None,
    pass_fds: tuple[int, ...] = (),
) -> Child:
    """``spawn``, plus file descriptors handed to the child under the same numbers."""
    _boot.require_can_fork()
    fn = lookup(name)
    _check_spawn_options(timeout, grace, limits)
    mode, argv, module, qualname = _plan(fn)
    key = _parent_key()
    applied = limits.to_apply() if limits is not None else ()
    call = (tuple(args), dict(kwargs or {}))
    stem, framed = _prepare(mode, name, fn, module, qualname, call, applied, key)
    path = stem + _boot.PAYLOAD_SUFFIX
    early = framed[1] >= _WRITE_WHILE_STARTING
    if not early:
        _wire.write_frame(path, key, framed)
    try:
        lifeline = _lifeline.read_end()
        child_env = _child_env(mode, env, stem, key, lifeline)
        popen, ready = _start_child(argv, child_env, (lifeline, *pass_fds), stdio, cwd, early)
    except BaseException:
        _unlink_quietly(path)
        raise
    child = Child.__new__(Child)
    child._setup(name, popen, stem, key, grace, timeout)
    _lifeline.track(child)
    _reaper.watch(child.pid, child._exited, child._zombie)
    if ready is not None:
        _write_while_starting(child, path, key, framed, ready)
    return child


def _start_child(
    argv: list[str],
    env: dict[str, str],
    pass_fds: tuple[int, ...],
    stdio: tuple[Redirect, Redirect, Redirect],
    cwd: str | os.PathLike[str] | None,
    early: bool,
) -> tuple[subprocess.Popen[bytes], int | None]:
    """Start the child; ``early``, also a pipe that will tell it its payload is written.

    Returns the process and the pipe's write end, if any.
    """
    if not early:
        popen = _lifeline.from_long_lived_thread(lambda: _start(argv, env, pass_fds, stdio, cwd))
        return popen, None
    wait_end, ready = os.pipe()
    env[_env.READY] = str(wait_end)
    try:
        popen = _lifeline.from_long_lived_thread(
            lambda: _start(argv, env, (*pass_fds, wait_end), stdio, cwd)
        )
    except BaseException:
        os.close(ready)
        raise
    finally:
        os.close(wait_end)
    return popen, ready


def _write_while_starting(child: Child, path: str, key: bytes, framed: Frame, ready: int) -> None:
    """Write the payload file, then tell the (starting) child it may read it.

    If the file cannot be written, the child is told by EOF, killed (it may be
    busy in a main script's top level) and reaped, and the error raised.
    """
    try:
        _wire.write_frame(path, key, framed)
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


def _check_spawn_options(timeout: float | None, grace: float, limits: Any) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout={timeout!r}: give a positive number of seconds, or None")
    if not grace >= 0:
        raise ValueError(f"grace={grace!r}: give the seconds between SIGTERM and SIGKILL (>= 0)")
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"limits={limits!r}: pass a fork.Limits(...)")


# --- plan ------------------------------------------------------------------------


def _plan(fn: Callable[..., Any]) -> tuple[str, list[str], str | None, str]:
    """(mode, argv, module, qualname) for starting ``fn``."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if module == "__main__":
        argv = _main_command()
        if argv is not None:
            return MAIN, argv, None, qualname
    elif module is not None and _importable(fn, module, qualname):
        return MODULE, _boot_command(), module, qualname
    return VALUE, _boot_command(), None, qualname


def _importable(fn: Callable[..., Any], module: str, qualname: str) -> bool:
    """True where importing ``module`` in the child finds ``fn`` at ``qualname``."""
    found: Any = sys.modules.get(module)
    if getattr(found, "__spec__", None) is None or "<locals>" in qualname:
        return False
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is fn


def _interpreter() -> str:
    if not sys.executable:
        raise ForkError(
            "sys.executable is empty, so there is no interpreter to re-run; "
            "goforkpy needs a normal (not embedded or frozen) Python"
        )
    return sys.executable


def _interpreter_flags() -> list[str]:
    """The running interpreter's flags (-O, -X dev, -W ...) as command-line options."""
    # The stdlib's own helper, which multiprocessing uses for the same job.
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return flags


def _boot_command() -> list[str]:
    return [_interpreter(), *_interpreter_flags(), "-c", _BOOT_CODE]


def _main_command() -> list[str] | None:
    """The command line that re-runs the main script, or ``None`` if there is none."""
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None) or "<none>"
    if main_file.startswith("<") or not sys.argv or sys.argv[0] in ("", "-", "-c"):
        return None  # REPL, -c, stdin (<stdin>), Jupyter: nothing to re-run
    spec = getattr(main, "__spec__", None)
    orig: list[str] | None = getattr(sys, "orig_argv", None)
    at = len(orig) - len(sys.argv) if orig is not None else -1
    if orig is not None and 1 <= at < len(orig):
        if spec is not None and orig[at - 1] == "-m":
            return [_interpreter(), *orig[1:at], orig[at], *orig[at + 1 :]]
        if spec is None:
            return [_interpreter(), *orig[1:at], _script_path(orig[at]), *orig[at + 1 :]]
    # Python 3.9 (no sys.orig_argv), or a script that rewrote sys.argv.
    flags = _interpreter_flags()
    target = ["-m", spec.name] if spec is not None else [_script_path(sys.argv[0])]
    return [_interpreter(), *flags, *target, *sys.argv[1:]]


def _script_path(arg: str) -> str:
    """``arg`` made absolute, so a parent that changed directory still finds it."""
    if os.path.isabs(arg):
        return arg
    main_file = getattr(sys.modules["__main__"], "__file__", "") or ""
    if os.path.isabs(main_file) and main_file.endswith(os.sep + os.path.normpath(arg)):
        return main_file
    return os.path.join(_env.START_CWD, arg)


# --- prepare -----------------------------------------------------------------------


def _parent_key() -> bytes:
    global _key, _key_pid
    with _key_lock:
        if _key is None or _key_pid != os.getpid():
            _key, _key_pid = _wire.new_key(), os.getpid()
        return _key


def _prepare(
    mode: str,
    name: str,
    fn: Callable[..., Any],
    module: str | None,
    qualname: str,
    call: tuple[tuple[Any, ...], dict[str, Any]],
    limits: tuple[tuple[str, int], ...],
    key: bytes,
) -> tuple[str, Frame]:
    """Serialise the call: (the stem of the child's files, the payload file framed)."""
    body = (fn if mode == VALUE else None, *call)
    kind, chunks, buffers = _wire.encode(body, main_is_shared=mode == MAIN)
    sys_path = None if mode == MAIN else _absolute_sys_path()
    meta = (mode, name, module, qualname, sys_path, kind, limits)
    return _tmpdir.new_stem(), _wire.frame(meta, chunks, buffers)


def _absolute_sys_path() -> list[str]:
    cwd = os.getcwd()
    return [os.path.join(cwd, entry) if entry else cwd for entry in sys.path]


def _child_env(
    mode: str, extra: Mapping[str, str] | None, stem: str, key: bytes, lifeline: int
) -> dict[str, str]:
    env = dict(os.environ)
    if extra:
        env.update(extra)
    if mode == MAIN and getattr(sys.modules["__main__"], "__spec__", None) is not None:
        _keep_module_findable(env)
    env[_env.PAYLOAD] = stem + _boot.PAYLOAD_SUFFIX
    env[_env.KEY] = key.hex()
    env[_env.PARENT] = str(os.getpid())
    env[_env.DEPTH] = str(_boot.depth() + 1)
    env[_env.LIFELINE] = str(lifeline)
    return env


def _keep_module_findable(env: dict[str, str]) -> None:
    """``python -m pkg.mod`` finds pkg through the start directory; keep it on the path."""
    start = sys.path[0] if sys.path else ""
    if not start or not os.path.isabs(start) or start == os.getcwd():
        return
    old = env.get("PYTHONPATH")
    env[_env.PYTHONPATH_SAVED] = _env.UNSET if old is None else old
    env["PYTHONPATH"] = start if not old else start + os.pathsep + old


# --- start -------------------------------------------------------------------------


def _start(
    argv: list[str],
    env: dict[str, str],
    pass_fds: tuple[int, ...],
    stdio: tuple[Redirect, Redirect, Redirect],
    cwd: str | os.PathLike[str] | None,
) -> subprocess.Popen[bytes]:
    with open_redirects(*stdio) as (stdin, stdout, stderr):
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            close_fds=True,
            pass_fds=pass_fds,
            **_group_and_guard(),
        )


def _group_and_guard() -> dict[str, Any]:
    """Popen arguments that make the child lead its own process group."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}  # keeps Popen on its fast vfork path
    return {"preexec_fn": os.setpgrp}  # 3.9/3.10 have no process_group argument


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
