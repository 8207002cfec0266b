"""How to start one child: ``spawn``'s process options, checked once, as one object."""

from __future__ import annotations

from .. import _checks
from .._process.limits import Limits
from . import methods

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import Mapping

    from .._process.stdio import Redirect


class Options:
    """How to start one child: the process options of ``spawn``, checked."""

    __slots__ = (
        "cwd",
        "env",
        "grace",
        "limits",
        "pass_fds",
        "start",
        "start_timeout",
        "stdio",
        "timeout",
    )

    def __init__(
        self,
        *,
        timeout: float | None = None,
        start_timeout: float | None = None,
        grace: float = 5.0,
        stdio: tuple[Redirect, Redirect, Redirect] = (None, None, None),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        limits: Limits | None = None,
        pass_fds: tuple[int, ...] = (),
        start: str | None = None,
    ) -> None:
        self.timeout = _checks.timeout("timeout", timeout)
        self.start_timeout = _checks.timeout("start_timeout", start_timeout)
        self.grace = _checks.grace(grace)
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits={limits!r}: pass a fork.Limits(...)")
        if env is not None and not hasattr(env, "items"):
            raise TypeError(f"env={env!r}: pass a mapping of variable names to values")
        self.stdio, self.env, self.cwd, self.limits = stdio, env, cwd, limits
        self.pass_fds = pass_fds
        self.start = methods.check(start, snapshot=True)
