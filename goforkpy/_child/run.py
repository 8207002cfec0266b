"""The child's run: from its payload to its result file and its exit.

``stage`` says where this process stands (see ``boot.require_can_fork`` for
what each stage allows); ``dispatch`` reads the call (the payload file or
sealed memfd the markers name), finds the function, applies the limits,
tells the parent the function starts, runs it, writes the result and
leaves with ``os._exit``. A snapshot child comes in through
``become_snapshot`` and ``run_and_leave`` instead, with its call in memory.

On the child's start-up path: it imports only builtins until the payload
asks for more.
"""

import os
import sys

from .. import _env
from .._errors import PayloadError, RegistryError
from .._process import quiet
from .._process.family import end_family_and_die
from .._shared.registry import registered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

    from .._shared import protocol
    from .._shared.protocol import Result

# Where this process stands.
PARENT, WAITING, BOOTING, RUNNING = "parent", "waiting", "booting", "running"
SNAPSHOT = "snapshot"  # a snapshot child (see _launch.snapshot): runs one function, then leaves
stage = WAITING if _env.MARKED.is_child else PARENT


def report_early(error: BaseException, traceback_text: str) -> "NoReturn":
    from .._shared.protocol import Result, result_path

    path, key = _take_markers()
    _finish(result_path(path), key, Result.raised(error, traceback_text), 1)


def _take_markers() -> tuple[str, bytes]:
    """(the payload path, the parent's key: empty if malformed), the markers removed."""
    from .._shared.wire import KEY_SIZE

    path, key_hex = _env.MARKED.payload or "", _env.MARKED.key or ""
    _env.remove_markers()
    return path, bytes.fromhex(key_hex) if len(key_hex) == 2 * KEY_SIZE else b""


def dispatch() -> "NoReturn":
    """Run the call this child was started for; never returns."""
    global stage
    # Loaded now, not on the way out: under Limits(open_files=...) nothing more may load.
    from .._shared import hooks, protocol, wire  # noqa: F401 - a parent never needs them
    from .._shared.protocol import Result
    from . import telling  # noqa: F401

    if _env.MARKED.zygote is not None:
        from .serve import serve

        serve(booting=stage == BOOTING)  # returns in each child it forks
    marked = _env.MARKED
    path, key = _take_markers()
    if not key:
        _die(f"goforkpy: {_env.KEY} is malformed; this process was not started by goforkpy")
    if marked.ready is not None:
        _await_payload(marked.ready)
    result_path = protocol.result_path(path)
    try:
        fn, args, kwargs = _load_call(path, key, booting=stage == BOOTING)
    except BaseException as exc:  # report, don't crash: the parent is waiting
        _finish(result_path, key, Result.raised(exc), 1)
    stage = RUNNING
    _announce_start(marked.started)
    _finish(result_path, key, *_call(fn, args, kwargs))


def _load_call(path: str, key: bytes, *, booting: bool) -> "tuple[Callable[..., Any], Any, Any]":
    """(the function, its args, its kwargs), read from the payload; the limits applied.

    ``booting``: goforkpy's entry point, which takes the parent's ``sys.path``
    and ``sys.argv`` and imports the function's module.
    """
    from .._shared import protocol, wire
    from . import telling

    packed, body, buffers = _read_payload(path, key)
    meta = protocol.Meta.unpack(packed)
    if booting:
        take_parents_path(meta)
    if meta.sandbox is not None:  # before the function's module and arguments load
        from .._sandbox import inside

        telling.load_what_reporting_needs()
        inside.enter(meta.sandbox)
    if booting and meta.module is not None:
        __import__(meta.module)
    fn, args, kwargs = wire.decode(meta.kind, body, buffers)
    del body, buffers
    if fn is None:
        fn = _resolve(meta)
    if meta.limits:
        from .._process.limits import apply

        telling.load_what_reporting_needs()
        apply(meta.limits)
    return fn, args, kwargs


def take_parents_path(meta: "protocol.Meta") -> None:
    """In a child started from goforkpy's entry point: the parent's ``sys.path`` and
    ``sys.argv``.

    ``sys.path`` becomes a new list, not the old one changed in place: the thread
    watching the parent may be importing, and an import walking a list that shifts
    under it can skip the folder it looks for.
    """
    sys.path = list(meta.sys_path or sys.path)
    sys.argv[:] = meta.argv or sys.argv


def _read_payload(path: str, key: bytes) -> "Any":
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
        if _parent_gone():  # its guardian cleared its files; nobody is left to tell
            end_family_and_die()
        _die(
            f"goforkpy: {_env.PAYLOAD}={path!r} names no payload file: the goforkpy "
            "markers in this environment are stale (left by an earlier run, or set by "
            "hand); unset the GOFORKPY_* variables"
        )


def _parent_gone() -> bool:
    """True if the parent is dead: its lifeline at EOF (nobody writes to one), or its pid
    gone."""
    import select

    marked = _env.MARKED
    if marked.lifeline is not None:
        poller = select.poll()
        poller.register(marked.lifeline, select.POLLIN)
        if any(events & (select.POLLIN | select.POLLHUP) for _, events in poller.poll(0)):
            return True
    if marked.parent is None:
        return False
    try:
        os.kill(marked.parent, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # alive, and not ours to signal
    return False


def _announce_start(fd: int | None) -> None:
    """Tell the parent the function starts now: its ``timeout`` counts from here, and
    ``STACKS`` is no longer ours (``_env.record_faults``)."""
    if fd is None:
        return
    try:
        os.write(fd, b"\1")
        os.close(fd)
    except OSError:
        pass  # the parent stopped listening: it is gone or gave up on us
    faulthandler = sys.modules.get("faulthandler")
    if faulthandler is not None:
        faulthandler.unregister(_env.STACKS)


def _await_payload(fd: int) -> None:
    """Wait for the parent to finish writing a big payload file (one byte; EOF: it gave up)."""
    try:
        done = os.read(fd, 1)
        os.close(fd)
    except OSError:
        done = b""
    if not done:
        _die("goforkpy: the parent could not write this child's arguments; see its error")


def _resolve(meta: "protocol.Meta") -> "Callable[..., Any]":
    """Find the function: by import path, or by registered name after a re-run."""
    from .._shared import protocol

    if meta.mode == protocol.MODULE:
        found: "Any" = sys.modules[meta.module or ""]
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


def _call(fn: "Callable[..., Any]", args: "Any", kwargs: "Any") -> "tuple[Result, int]":
    """Run the function: (its result, the exit code)."""
    from .._shared.protocol import Result

    try:
        value = fn(*args, **kwargs)
    except SystemExit as exc:
        return _exit_result(exc.code)
    except BaseException as exc:
        return Result.raised(exc), 1
    return Result.ok(value), 0


def _exit_result(code: object) -> "tuple[Result, int]":
    from .._shared.protocol import Result

    if code is None:
        return Result.exited(0), 0
    if isinstance(code, int):
        return Result.exited(code), code
    print(code, file=sys.stderr)
    return Result.exited(1), 1


def _finish(path: str, key: bytes, result: "Result", code: int) -> "NoReturn":
    """Write the result file, then exit with ``code``."""
    from .._shared import wire
    from .._shared.protocol import Result
    from . import telling

    try:
        if _sandboxed():
            _send_plain(path, key, result, code)
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
        _say(f"goforkpy: {reason}")
        code = code or 1
    exit_now(code)


def _sandboxed() -> bool:
    inside = sys.modules.get("goforkpy._sandbox.inside")
    return inside is not None and bool(inside.sealed)


def _send_plain(path: str, key: bytes, result: "Result", code: int) -> "NoReturn":
    """A sandboxed child's result: plain data (no pickle) in a sealed memfd, for it may
    write no file; its exception as its type's name, its message and its traceback."""
    from .._sandbox import plain
    from .._shared import wire
    from .._shared.protocol import RAISED, Result
    from . import telling

    fields = result.fields
    if result.status == RAISED:
        fields = (None, *fields[1:])  # never the pickled exception
    try:
        body = plain.encode(fields)
    except PayloadError as exc:  # the return value is not plain data
        problem = f"the result of the child's function could not be sent back: {exc}"
        code, result = 1, Result.raised(PayloadError(problem))
        body = plain.encode((None, *result.fields[1:]))
    assembled = wire.assemble((result.status, plain.KIND), [body], [])
    try:
        if not telling.send_sealed(path, key, assembled, always=True):
            raise OSError("the parent's report socket took no result")
    except BaseException as exc:
        reason = telling.unsent_result(exc)
        telling.tell_parent(reason)
        _say(f"goforkpy: {reason}")
        code = code or 1
    exit_now(code)


def _die(message: str) -> "NoReturn":
    from . import telling

    telling.tell_parent(message.removeprefix("goforkpy: "))
    _say(message)
    exit_now(1)


def _say(message: str) -> None:
    """``message`` on stderr, where it can go: under ``Limits(file_size=...)`` a
    redirected stderr may be past the limit, and the parent has the reason anyway."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass  # past a limit, closed, or None


def become_snapshot(markers: dict[str, str], parent: int) -> None:
    """In a snapshot child: its markers (``is_child()``, ``ppid()``, where to report).

    ``parent`` forked it: the caller, or an intermediate between them. No
    watcher thread: with the guardian watching, a parent's death ends our
    tree; without it, the kernel's parent-death signal, where there is one.
    """
    global stage
    stage = SNAPSHOT
    quiet.open_all()  # forked from any thread of the parent's, quiet ones included
    marked = _env.MARKED = _env.Markers(markers)
    _env.record_faults(marked)
    from .._process.platform import tie_to_parent

    if not tie_to_parent(parent, die_with_it=not marked.guarded):
        end_family_and_die()


def run_and_leave(
    fn: "Callable[..., Any]", args: "Any", kwargs: "Any", result_path: str, key: bytes
) -> "NoReturn":
    """Run a snapshot's function, write its result and leave."""
    _announce_start(_env.MARKED.started)
    _finish(result_path, key, *_call(fn, args, kwargs))


def leave_with(result_path: str, key: bytes, error: BaseException) -> "NoReturn":
    """A snapshot child that could not get ready: report ``error`` and leave."""
    from .._shared.protocol import Result

    _finish(result_path, key, Result.raised(error), 1)


def exit_now(code: int) -> "NoReturn":
    """Leave at once with ``code``: hooks run (not ``atexit``), standard streams flushed."""
    from .._shared import hooks

    hooks.leaving()  # os._exit skips atexit, where these would otherwise run
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass  # a closed or broken stream must not change the exit code
    os._exit(code & 0xFF)
