"""A call to start, as one record: made once, then handed to its start method.

``Options`` is the one definition of ``spawn``'s process options: their
names (``OPTION_NAMES``, which ``spawn``'s signature, the hint for a stray
option and the tests list), defaults and checks. ``Launch`` is one call:
the function and its arguments (checked to bind), the options, and the
files and key it is handed with. ``calls.prepare`` makes it; a start
method's unit (``units``) takes it from there, and nothing upstream
branches on which.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _checks
from .._process.limits import Limits
from .._shared import protocol
from . import methods

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from contextlib import AbstractContextManager
    from typing import Any, Callable, Mapping

    from .._child.takeon import InCopy, Ours, Setup
    from .._process.stdio import Redirect
    from .._sandbox.policy import Sandbox

# spawn's keyword options, in its order: the one list every other one derives from
OPTION_NAMES = (
    "timeout",
    "grace",
    "stdin",
    "stdout",
    "stderr",
    "env",
    "cwd",
    "limits",
    "start",
    "start_timeout",
    "sandbox",
)


class Options:
    """How to start one child: the process options of ``spawn``, checked.

    ``pass_fds`` is goforkpy's own (an Executor worker's socket): descriptors
    handed to the function, listed in ``GOFORKPY_FDS``.
    """

    __slots__ = (*OPTION_NAMES, "pass_fds")

    def __init__(
        self,
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
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.timeout = _checks.seconds("timeout", timeout)
        self.start_timeout = _checks.seconds("start_timeout", start_timeout)
        self.grace = _checks.grace(grace)
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits={limits!r}: pass a fork.Limits(...)")
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.env, self.cwd, self.limits = _checks.environment(env), cwd, limits
        self.pass_fds = pass_fds
        self.start = methods.check(start, snapshot=True)
        self.sandbox = None if sandbox is None else _sandbox(sandbox, self.start)

    def with_sandbox(self, sandbox: Sandbox) -> Options:
        """These options, with ``sandbox`` (checked as ``spawn`` checks it)."""
        made = Options.__new__(Options)
        for name in Options.__slots__:
            setattr(made, name, getattr(self, name))
        made.sandbox = _sandbox(sandbox, self.start)
        return made

    @property
    def stdio(self) -> tuple[Redirect, Redirect, Redirect]:
        return self.stdin, self.stdout, self.stderr

    @property
    def timed(self) -> bool:
        """True where a deadline watches the child (it tells when its function starts)."""
        return self.timeout is not None or self.start_timeout is not None

    def applied_limits(self) -> tuple[tuple[str, int], ...]:
        """The limits as (rlimit name, value) pairs for the child to apply."""
        return self.limits._to_apply() if self.limits is not None else ()

    # What acts in the child, for each way of making one (see _child.takeon).

    def setup(
        self, env: dict[str, str], handed: list[tuple[str, int]], argv: list[str] | None = None
    ) -> AbstractContextManager[tuple[Setup, list[int], Ours]]:
        """A zygote's child's ``Setup``, with the descriptors to send and our ends of its
        pipes, for the block's time (``takeon.Setup.made``)."""
        from .._child.takeon import Setup

        return Setup.made(self.stdio, self.cwd, env, handed, argv)

    def in_copy(self) -> AbstractContextManager[tuple[InCopy, Ours]]:
        """A snapshot child's ``InCopy``, with our ends of its pipes, for the block's time
        (``takeon.InCopy.made``)."""
        from .._child.takeon import InCopy

        return InCopy.made(self.stdio, self.cwd, self.env, self.applied_limits())

    def popen_arguments(self) -> dict[str, Any]:
        """``start_in_group``'s arguments for a child ``Popen`` starts (the fallback)."""
        return {"stdio": self.stdio, "cwd": self.cwd}


def _sandbox(sandbox: object, start: str | None) -> Sandbox:
    from .._sandbox.policy import check

    checked = check(sandbox)
    assert checked is not None
    method = methods.lookup(start)  # None: the default, which never copies memory
    if method is not None and method.copies_memory:
        raise ValueError(
            f"sandbox= with start={start!r}: a {start} child is a copy of this process's "
            "memory (its secrets, its open files), which no sandbox can take back; "
            "use start='cold' or 'warm'"
        )
    return checked


DEFAULTS = Options()


@dataclass
class Launch:
    """One call on its way to a child: what to run, how, and what it is handed.

    ``stem`` names the child's files in the private directory (its payload,
    result and crash stacks); ``key`` tags what passes between this process
    and its children.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: Options
    via: str  # the public call that made it, named in error messages
    rerun_main: bool  # a main script's function may start by re-running the script
    key: bytes
    stem: str

    @property
    def payload_path(self) -> str:
        return protocol.payload_path(self.stem)

    @property
    def result_path(self) -> str:
        return protocol.result_path(self.payload_path)

    @property
    def faults_path(self) -> str:
        return protocol.faults_path(self.payload_path)
