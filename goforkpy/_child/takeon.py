"""Becoming the child a zygote's request describes: streams, descriptors, directory,
environment; or, for a spawner's request, the command line to run.

Runs in a fork of the zygote (see ``serve``), before the child dispatches as
a cold one would.
"""

from __future__ import annotations

import fcntl
import os

from .. import _env
from .._process import streams

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def take_on(request: dict[str, Any], fds: list[int]) -> None:
    """Become the child the request describes: streams, descriptors, directory, environment.

    A request with a command line (a cold child, from a zygote that spawns)
    then runs it instead of returning.
    """
    placed = _place(fds, request["stdio"])
    env = request["env"]
    handed = list(zip(request["handed"], placed, strict=True))
    _env.hand_fds(env, handed)
    for name, fd in handed:
        if name == _env.PASSED:
            os.set_inheritable(fd, True)
    os.chdir(request["cwd"])
    if request["exec"] is not None:
        _exec(request["exec"], env, [fd for _, fd in handed])
    replace_environ(env)
    marked = _env.reread()
    marked.keep_private()
    _env.record_faults(marked)


def ready_ahead() -> None:
    """In a spare, while it waits for its request: touch now what taking one on and
    reading its payload go through (the environment, the markers, the payload's tag
    check). A fresh fork pays a copy-on-write fault at its first write to each page it
    shares with its zygote; paid here, they are off the call's path (0.1-0.3 ms)."""
    from .._shared.wire import tag

    replace_environ(dict(os.environ))
    _env.Markers(os.environ)
    tag.hmac_sha256(b"", [b""], 0)


def _exec(argv: list[str], env: dict[str, str], handed: list[int]) -> NoReturn:
    """Run ``argv`` in this process: a cold child, already a subreaper tied to us.

    It inherits the descriptors it was handed and the report socket, and
    signals as a fresh process has them (Python ignores SIGPIPE and SIGXFSZ).
    """
    import signal

    report = _env.MARKED.report
    for fd in (*handed, *(() if report is None else (report,))):
        os.set_inheritable(fd, True)
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    env[_env.TIED] = "1"
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        os.write(2, f"goforkpy: cannot run {argv[0]}: {exc}\n".encode())
    os._exit(127)


def replace_environ(env: dict[str, str]) -> None:
    """Make ``os.environ`` exactly ``env``, touching only what differs (most of it does not)."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _place(fds: list[int], stdio: list[int]) -> list[int]:
    """Put the child's standard streams in place; the other descriptors, where they landed.

    ``stdio[n]`` indexes ``fds`` for stream ``n``, or is -1: that stream is closed.
    """
    lifted = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in fds]  # clear of 0-2
    for fd in fds:
        os.close(fd)
    streams.install([lifted[index] if index >= 0 else None for index in stdio])
    used = {index for index in stdio if index >= 0}
    for index in used:
        os.close(lifted[index])
    return [fd for index, fd in enumerate(lifted) if index not in used]
