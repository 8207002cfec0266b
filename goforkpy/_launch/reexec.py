"""What cold and warm starts share: a child that reads its call from a payload.

Both start a process that runs goforkpy's start-up (a fresh interpreter, or
a fork of a zygote that ran it already) and reads the call from a private
payload file. So both go through three steps here: ``plan`` picks the
launch mode and command line from where the function lives, the payload is
serialised (nothing is started if that fails), and the start method's
``create`` makes the process with the environment and descriptors prepared
here. A small payload is written before the start. A big one is written
while the child starts, and a pipe tells the child when it is complete (its
EOF: the parent gave up); the biggest travel in a sealed memfd.
"""

from __future__ import annotations

import errno
import os
import sys

from .. import _env
from .._errors import ForkError, PayloadError
from .._parent.child import Child
from .._process import platform, starting
from .._shared import protocol, wire
from . import calls, handover, plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from .._parent.child import Process, Watch
    from .._shared.wire import Assembled
    from .record import Launch

    # (the launch, its plan, the child's environment, the (marker, fd) pairs it is
    # handed) -> (the process, what watches its exit, the start method that made it)
    Create = Callable[
        ["Launch", plan.Planned, dict[str, str], list[tuple[str, int]]],
        tuple[Process, Watch, str],
    ]

_OUT_OF_RESOURCES = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE})
# Payloads from this size on are written while the child starts.
_WRITE_WHILE_STARTING = 1 << 20


def start(launch: Launch, create: Create) -> Child:
    """Start ``launch`` in a process that ``create`` makes; watched from then on."""
    planned = plan.plan(launch.fn, rerun_main=launch.rerun_main)
    assembled = _serialise(launch, planned)
    early = assembled[1] >= _WRITE_WHILE_STARTING
    sealed = early and assembled[1] >= wire.SEALED_FROM and platform.sealed_memory_supported()
    if not early:
        _write_payload(launch, assembled)
    try:
        child, ready, sealed_fd = _start_child(launch, planned, create, (early, sealed))
    except OSError as exc:
        _unlink_quietly(launch.payload_path)
        _remove_sandbox(launch)
        if exc.errno not in _OUT_OF_RESOURCES:
            raise  # a redirect or cwd that does not exist: the user's to fix, as subprocess says
        raise ForkError(
            f"cannot start a child for {launch.name!r}: {exc.strerror or exc}; the system "
            "is out of processes, memory or file descriptors (see ulimit -u / -n)"
        ) from exc
    except BaseException:
        # no handle will collect them: a child lost as it started (its zygote killed
        # by it, say) may have made its fault and result files already
        for path in (launch.payload_path, launch.faults_path, launch.result_path):
            _unlink_quietly(path)
        _remove_sandbox(launch)
        raise
    if ready is not None:
        _write_while_starting(child, launch, assembled, ready, sealed_fd)
    return child


def _start_child(
    launch: Launch, planned: plan.Planned, create: Create, how: tuple[bool, bool]
) -> tuple[Child, int | None, int | None]:
    """Start the child: (its handle, the pipe to tell it its payload is written, the memfd
    the payload goes in), the last two only where ``how`` (early, sealed) asks for them."""
    early, sealed = how
    markers = handover.markers(launch.key, payload=launch.payload_path, faults=launch.faults_path)
    env = plan.child_env(planned.mode, launch.options, markers, launch.stem)
    with starting.child() as made, handover.Pipes() as pipes:
        handed = [(_env.PASSED, fd) for fd in launch.options.pass_fds]  # (marker, fd)
        if early:
            wait_end, ready = pipes.make()
            handed.append((_env.READY, wait_end))
        payload_fd = pipes.add(platform.new_sealable("goforkpy-payload")) if sealed else None
        if payload_fd is not None:
            handed.append((_env.PAYLOAD_FD, payload_fd))
        if launch.options.timed:
            started, tell_end = pipes.make()
            handed.append((_env.STARTED, tell_end))
        process, watch, method = create(launch, planned, env, handed)
        if payload_fd is not None:
            pipes.take(payload_fd)  # the handle closes it once the child has exited
        taken = pipes.take(started) if launch.options.timed else None
        child = Child._started(launch, process, taken, (watch, method), payload_fd)
        made.append(child)
        return child, pipes.take(ready) if early else None, payload_fd


def _serialise(launch: Launch, planned: plan.Planned) -> Assembled:
    """The payload file's contents: the call record, then the arguments (and the function,
    where it goes by value)."""
    mode = planned.mode
    body = (launch.fn if mode == protocol.VALUE else None, launch.args, launch.kwargs)
    try:
        kind, chunks, buffers = wire.encode(body, main_is_shared=mode == protocol.MAIN)
    except PayloadError as exc:  # no "from": its frames would keep the arguments alive
        raise calls.unpicklable(launch, exc, main_is_shared=mode == protocol.MAIN) from None
    argv = None if mode == protocol.MAIN else list(sys.argv)
    limits = launch.options.applied_limits()
    module, qualname, sys_path = planned.module, planned.qualname, planned.sys_path
    sandbox = launch.options.sandbox
    rules = None
    if sandbox is not None:
        from .._sandbox import policy

        processes = getattr(launch.options.limits, "processes", None)
        rules = policy.rules(sandbox, launch.stem, processes)
    fields = (mode, launch.name, module, qualname, sys_path, kind, limits, argv, rules)
    return wire.assemble(protocol.Meta(*fields).pack(), chunks, buffers)


def _write_payload(launch: Launch, assembled: Assembled, sealed_fd: int | None = None) -> None:
    """Write the payload: into the sealed memfd ``sealed_fd`` if given, else to its file."""
    path = launch.payload_path
    try:
        if sealed_fd is not None:
            wire.write_sealed(os.path.basename(path), launch.key, assembled, fd=sealed_fd)
        else:
            wire.write_assembled(path, launch.key, assembled)
    except OSError as exc:
        raise PayloadError(
            f"cannot write the arguments of {launch.name!r} to {path}: {exc.strerror or exc}; "
            f"free some space there, or set {_env.TMPDIR} to another directory"
        ) from exc


def _write_while_starting(
    child: Child, launch: Launch, assembled: Assembled, ready: int, sealed_fd: int | None
) -> None:
    """Write the payload, then tell the (starting) child it may read it.

    If the payload cannot be written, the child is told by EOF, killed (it
    may be busy in a main script's top level) and reaped, and the error raised.
    """
    try:
        _write_payload(launch, assembled, sealed_fd)
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


def _remove_sandbox(launch: Launch) -> None:
    """A sandboxed child that never started: its scratch directory goes too."""
    if launch.options.sandbox is not None:
        from .._sandbox import policy

        policy.remove(launch.stem)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
