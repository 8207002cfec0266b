"""The child side: ``init()``, goforkpy's own entry point, and identity.

A child learns what to run from its environment markers and payload file,
runs it, writes its result file and exits. Three launch modes share this path:

- ``main``: the user's script was re-run; its ``fork.init()`` dispatches.
- ``module``: our entry point (``main()``) imports the function's module,
  then runs it; an ``init()`` reached during that import does nothing.
- ``value``: our entry point unpickles the function itself (cloudpickle).

This module is the child's hot path: it imports only builtins until the
payload asks for more.
"""

from __future__ import annotations

import _thread
import os
import sys

from .. import _env
from .._errors import InitError, PayloadError, RegistryError
from .._process.family import end_family_and_die
from .._shared.registry import registered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

    from .._shared import protocol
    from .._shared.protocol import Result

# Where this process stands; see require_can_fork for what each allows.
PARENT, WAITING, BOOTING, RUNNING = "parent", "waiting", "booting", "running"
SNAPSHOT = "snapshot"  # a snapshot child (see snapshot.py): it runs one function, forks nothing
_state = WAITING if _env.MARKED.is_child else PARENT

_SETTLE = 0.05  # seconds a child runs before it arms the parent-death signal


def is_child() -> bool:
    """True in a process goforkpy started, from its first line on."""
    return _env.MARKED.is_child


def pid() -> int:
    """This process's pid."""
    return os.getpid()


def ppid() -> int | None:
    """The pid of the process that forked this one; ``None`` outside a child."""
    return _env.MARKED.parent


def depth() -> int:
    """How many forks deep this process is (0 in a process goforkpy did not start)."""
    return _env.MARKED.depth


def init() -> None:
    """Dispatch a child to its function; in a parent, return at once.

    In a child started from the main script, this runs the requested function
    and exits the process: it never returns. Call it early, after the
    ``@fork.register`` functions and before side effects. Idempotent; in a
    parent, and in a child whose entry point is goforkpy's own, it does nothing.
    """
    if _state == WAITING:
        _dispatch()


def main() -> None:
    """goforkpy's own entry point, for functions in modules or sent by value."""
    global _state
    if _state != WAITING:
        raise SystemExit("goforkpy's entry point runs only in a child that goforkpy started")
    _state = BOOTING
    _dispatch()


def require_can_fork() -> None:
    """Raise ``InitError`` where forking now would be a mistake."""
    if _state == SNAPSHOT:
        raise InitError(
            "fork() was called in a snapshot child: it runs one function on a copy of its "
            "parent's memory and leaves, and starts nothing (its parent's threads, which "
            "goforkpy would need, are not in it); start children from the parent, or make "
            "this one with start='cold' or 'warm'"
        )
    if _state in (WAITING, BOOTING):
        raise InitError(
            "fork() was called in a child before fork.init() ran; call fork.init() "
            "right after your @fork.register functions, before any other work"
        )
    limit = _env.max_depth()
    if depth() + 1 > limit:
        raise InitError(
            f"fork() nesting would reach depth {depth() + 1}, past the limit of {limit}; "
            f"end the recursion sooner, or raise {_env.MAX_DEPTH}"
        )


def _guard_parent() -> None:
    """Die with the parent: at once if it is already gone, or the moment it goes."""
    _env.MARKED.keep_private()
    marked = _env.MARKED
    _env.record_faults(marked)
    fd = marked.lifeline
    if fd is None:
        return
    try:
        os.set_inheritable(fd, False)
    except OSError:
        return  # not open: the parent did not pass one
    if marked.zygote is not None:
        # A zygote stays single-threaded (see warm.serve): it ties itself to
        # the parent now and watches the lifeline in its own loop.
        from .._process.platform import tie_to_parent

        if marked.parent is None or not tie_to_parent(marked.parent, not marked.guarded, False):
            end_family_and_die()
        return
    # A thread, so the child's start does not wait for ctypes to load.
    _thread.start_new_thread(_watch_parent, (fd, marked.parent, not marked.guarded))


def _watch_parent(fd: int, parent: int | None, die_with_it: bool) -> None:
    # Arming the parent-death signal loads ctypes; a child that is done within
    # the settling time never pays for it. Meanwhile the lifeline is watched,
    # and a parent that died just before the arming fails the pid check after.
    import select

    if select.select([fd], [], [], _SETTLE)[0]:
        end_family_and_die()  # EOF already: nobody ever writes to the lifeline
    from .._process.platform import tie_to_parent

    if parent is not None and not tie_to_parent(parent, die_with_it):
        end_family_and_die()
    try:
        while os.read(fd, 4096):
            pass  # nobody writes: only EOF, when the parent's end closes, ends this
    except OSError:
        return  # user code closed the fd; the parent-death signal still stands
    end_family_and_die()


def _failed_before_init(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """``sys.excepthook`` of a re-run script: an error before ``init()`` goes to the parent.

    The parent raises it as one ``InitError`` (with this traceback as its
    cause) instead of the child printing a traceback and the parent then
    saying, separately, that init() was never reached.
    """
    if _state != WAITING:
        sys.__excepthook__(kind, exc, tb)
        return
    if _env.MARKED.zygote is not None:
        _exit(1)  # the parent starts a cold child instead, which reports the error
    import traceback

    text = "".join(traceback.format_exception(kind, exc, tb))
    if isinstance(exc, InitError):
        error = InitError(f"the child stopped before reaching fork.init(): {exc}")
    else:
        error = InitError(
            f"the child's script raised {kind.__name__}: {exc} before reaching "
            "fork.init(); the main script runs again from the top in each child, so "
            "keep the code before fork.init() free of work that can fail (or move "
            "forked functions into a module)"
        )
    _report_early(error, text)


def _report_early(error: BaseException, traceback_text: str) -> NoReturn:
    from .._shared.protocol import Result, result_path

    path, key = _take_markers()
    _finish(result_path(path), key, Result.raised(error, traceback_text), 1)


def _take_markers() -> tuple[str, bytes]:
    """(the payload path, the parent's key: empty if malformed), the markers removed."""
    from .._shared.wire import KEY_SIZE

    path, key_hex = _env.MARKED.payload or "", _env.MARKED.key or ""
    _env.remove_markers()
    return path, bytes.fromhex(key_hex) if len(key_hex) == 2 * KEY_SIZE else b""


def _warn_stale_markers() -> None:
    names = ", ".join(_env.MARKED.stale)
    _env.remove_markers()
    import logging

    logging.getLogger("goforkpy").warning(
        "ignoring %s in the environment: goforkpy did not start this process (the "
        "set of markers is incomplete, perhaps exported by hand or left by a tool); "
        "remove them from the environment",
        names,
    )


if _state == WAITING:
    _guard_parent()
    sys.excepthook = _failed_before_init
elif _env.MARKED.stale:
    _warn_stale_markers()


def _dispatch() -> NoReturn:
    global _state
    # Loaded now, not on the way out: under Limits(open_files=...) nothing more may load.
    from .._shared import hooks, protocol, wire  # noqa: F401 - a parent never needs them
    from .._shared.protocol import Result
    from . import telling

    if _env.MARKED.zygote is not None:
        from .serve import serve

        serve(booting=_state == BOOTING)  # returns in each child it forks
    marked = _env.MARKED
    path, key = _take_markers()
    if not key:
        _die(f"goforkpy: {_env.KEY} is malformed; this process was not started by goforkpy")
    if marked.ready is not None:
        _await_payload(marked.ready)
    booting = _state == BOOTING
    result_path = protocol.result_path(path)
    try:
        packed, body, buffers = _read_payload(path, key)
        meta = protocol.Meta.unpack(packed)
        if booting:
            sys.path[:] = meta.sys_path or sys.path
            sys.argv[:] = meta.argv or sys.argv
            if meta.module is not None:
                __import__(meta.module)
        fn, args, kwargs = wire.decode(meta.kind, body, buffers)
        del body, buffers
        if fn is None:
            fn = _resolve(meta)
        if meta.limits:
            from .._process.limits import apply

            telling.load_what_reporting_needs()
            apply(meta.limits)
    except BaseException as exc:  # report, don't crash: the parent is waiting
        _finish(result_path, key, Result.raised(exc), 1)
    _state = RUNNING
    _announce_start(marked.started)
    _finish(result_path, key, *_call(fn, args, kwargs))


def _read_payload(path: str, key: bytes) -> Any:
    from .._shared import wire

    sealed = _env.MARKED.payload_fd
    try:
        if sealed is None:
            return wire.read_file(path, key, unlink=True)
        decoded = wire.read_sealed(sealed, key, os.path.basename(path))
        os.lseek(sealed, 1, os.SEEK_SET)  # tells the parent we took it
        os.close(sealed)
        return decoded
    except FileNotFoundError:
        _die(
            f"goforkpy: {_env.PAYLOAD}={path!r} names no payload file: the goforkpy "
            "markers in this environment are stale (left by an earlier run, or set by "
            "hand) or the parent is gone; unset the GOFORKPY_* variables"
        )


def _announce_start(fd: int | None) -> None:
    """Tell the parent the function starts now: its ``timeout`` counts from here."""
    if fd is None:
        return
    try:
        os.write(fd, b"\1")
        os.close(fd)
    except OSError:
        pass  # the parent stopped listening: it is gone or gave up on us


def _await_payload(fd: int) -> None:
    """Wait for the parent to finish writing a big payload file (one byte; EOF: it gave up)."""
    try:
        done = os.read(fd, 1)
        os.close(fd)
    except OSError:
        done = b""
    if not done:
        _die("goforkpy: the parent could not write this child's arguments; see its error")


def _resolve(meta: protocol.Meta) -> Callable[..., Any]:
    """Find the function: by import path, or by registered name after a re-run."""
    from .._shared import protocol

    if meta.mode == protocol.MODULE:
        found: Any = sys.modules[meta.module or ""]
        for part in meta.qualname.split("."):
            found = getattr(found, part)
        return found  # type: ignore[no-any-return]
    fn = registered().get(meta.name)
    if fn is None:
        raise RegistryError(
            f"{meta.name!r} was not registered in the child when fork.init() ran; "
            "register it at module level, before the fork.init() call"
        )
    return fn


def _call(fn: Callable[..., Any], args: Any, kwargs: Any) -> tuple[Result, int]:
    """Run the function: (its result, the exit code)."""
    from .._shared.protocol import Result

    try:
        value = fn(*args, **kwargs)
    except SystemExit as exc:
        return _exit_result(exc.code)
    except BaseException as exc:
        return Result.raised(exc), 1
    return Result.ok(value), 0


def _exit_result(code: object) -> tuple[Result, int]:
    from .._shared.protocol import Result

    if code is None:
        return Result.exited(0), 0
    if isinstance(code, int):
        return Result.exited(code), code
    print(code, file=sys.stderr)
    return Result.exited(1), 1


def _finish(path: str, key: bytes, result: Result, code: int) -> NoReturn:
    """Write the result file, then exit with ``code``."""
    from .._shared import wire
    from .._shared.protocol import Result
    from . import telling

    try:
        try:
            kind, body, buffers = wire.encode(result.fields, main_is_shared=True)
        except PayloadError as exc:  # the return value would not pickle
            problem = f"the result of the child's function could not be sent back: {exc}"
            code, result = 1, Result.raised(PayloadError(problem))
            kind, body, buffers = wire.encode(result.fields, main_is_shared=True)
        assembled = wire.assemble((result.status, kind), body, buffers)
        if not telling.send_sealed(path, key, assembled):
            wire.write_assembled(path, key, assembled)
    except BaseException as exc:
        reason = telling.unsent_result(exc)
        telling.tell_parent(reason)
        print(f"goforkpy: {reason}", file=sys.stderr)
        code = code or 1
    _exit(code)


def _die(message: str) -> NoReturn:
    from . import telling

    telling.tell_parent(message.removeprefix("goforkpy: "))
    print(message, file=sys.stderr)
    _exit(1)


def become_snapshot(markers: dict[str, str]) -> None:
    """In a snapshot child: its markers (``is_child()``, ``ppid()``, where to report).

    No watcher thread: with the guardian watching, a parent's death ends our
    tree; without it, the kernel's parent-death signal, where there is one.
    """
    global _state
    _state = SNAPSHOT
    marked = _env.MARKED = _env.Markers(markers)  # type: ignore[arg-type]
    _env.record_faults(marked)
    if marked.parent is not None:
        from .._process.platform import tie_to_parent

        if not tie_to_parent(marked.parent, die_with_it=not marked.guarded):
            end_family_and_die()


def run_and_leave(
    fn: Callable[..., Any], args: Any, kwargs: Any, result_path: str, key: bytes
) -> NoReturn:
    """Run a snapshot's function, write its result and leave."""
    _announce_start(_env.MARKED.started)
    _finish(result_path, key, *_call(fn, args, kwargs))


def leave_with(result_path: str, key: bytes, error: BaseException) -> NoReturn:
    """A snapshot child that could not get ready: report ``error`` and leave."""
    from .._shared.protocol import Result

    _finish(result_path, key, Result.raised(error), 1)


def _exit(code: int) -> NoReturn:
    from .._shared import hooks

    if _state != SNAPSHOT:  # a snapshot's hooks are its parent's, about the parent's state
        hooks.leaving()  # os._exit skips atexit, where these would otherwise run
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass  # a closed or broken stream must not change the exit code
    os._exit(code & 0xFF)
