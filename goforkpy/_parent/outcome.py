"""What a child left behind, and the value or exception ``Child.result()`` makes of it.

When the reaper reaps a child, its handle gathers an ``Ending``: the result
file (read and verified at once, so nothing stays on disk), whether the
payload was never read (it did not reach ``init()``), and the line it wrote
on the report socket, if any. ``outcome()`` then turns that into the value, or
the exception to raise, once, when somebody asks.
"""

from __future__ import annotations

import re

from .._errors import InitError, PayloadError, RemoteTraceback
from .._shared import protocol, wire
from .._shared.protocol import Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .._errors import ChildCrashed
    from .._process.limits import Limits
    from .._process.usage import Usage
    from .._sandbox.policy import Sandbox


class Ending:
    """Everything a reaped child left, for ``outcome``."""

    __slots__ = (
        "frame",
        "limits",
        "name",
        "payload_unread",
        "pid",
        "report",
        "lost_parent",
        "returncode",
        "sandbox",
        "rusage",
        "stderr_piped",
        "stderr_tail",
        "traceback",
    )

    def __init__(
        self,
        name: str,
        pid: int,
        returncode: int,
        limits: Limits | None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.name, self.pid, self.returncode, self.limits = name, pid, returncode, limits
        self.sandbox = sandbox  # its child was sandboxed: nothing it sent is unpickled
        self.frame: wire.Decoded | PayloadError | None = None  # the result file, read
        self.payload_unread = False  # its payload was still there: it never reached init()
        self.report: str | None = None  # why it left no result, in its own words
        self.stderr_tail: Callable[[], str | None] = lambda: None
        self.rusage: Usage | None = None  # what wait4 said it used
        self.lost_parent = False  # its zygote died: it was killed with it
        self.traceback: str | None = None  # every thread's stack at a fatal signal
        self.stderr_piped = False  # its stderr was captured (stderr=PIPE)

    def outcome(self) -> tuple[bool, Any]:
        """``(True, value)`` or ``(False, exception)``; call once (the raw bytes go)."""
        frame, self.frame = self.frame, None
        if isinstance(frame, PayloadError):
            return False, frame
        if frame is None:
            return False, self._no_result()
        (status, kind), body, buffers = frame
        try:
            if self.sandbox is not None:
                result = _plain_result(status, kind, body, buffers, self.sandbox)
            else:
                result = Result(status, *wire.decode(kind, body, buffers))
        except PayloadError as exc:
            return False, PayloadError(f"the result of {self.name!r} {exc}")
        memory = getattr(self.limits, "memory", None)
        if memory is not None and _out_of_memory(result):
            return False, self._memory_limit_passed(memory, result)
        if self.sandbox is not None and result.status == protocol.RAISED:
            return False, _sandboxed_error(result)
        ok, value = result.outcome(self.name)
        if not ok and value is None:  # SystemExit(n), n != 0
            value = self._crashed(f"exited with SystemExit({result.fields[0]}) without a result")
        return ok, value

    def _no_result(self) -> Exception:
        rc = self.returncode
        if rc >= 0 and self.payload_unread:
            return InitError(
                f"child {self.name!r} (pid {self.pid}) exited with code {rc} without "
                "reaching fork.init(); call fork.init() in your script after the "
                "@fork.register functions and before other work"
            )
        if rc >= 0 and self.report is not None:
            short = getattr(self.limits, "memory", None) is not None and "memory" in self.report
            return self._crashed(
                f"exited with code {rc}: it {self.report}{self._under_limits()}",
                "memory-limit" if short else None,
            )
        if rc >= 0:
            how = f"exited with code {rc} without a result (os._exit or a crash)"
        else:
            how = protocol.how_it_ended(rc)
        memory = getattr(self.limits, "memory", None)
        if memory is not None and self._shows_no_memory(memory):
            from .._process.limits import describe_size

            return self._crashed(
                f"{how}: it most likely ran out of memory under "
                f"fork.Limits(memory={describe_size(memory)!r}) (Python aborts, or exits "
                "without a word, when even reporting needs memory it cannot have)",
                "memory-limit",
            )
        return self._crashed(how + self._under_limits())

    def _shows_no_memory(self, limit: int) -> bool:
        """True where the evidence says a child that left no result ran out of memory:
        its own words or its fault's (``MemoryError``, "out of memory", ...), or a peak
        of at least half the limit. A segfault in code that never came near the limit is
        a segfault, whatever the limit."""
        words = (self.report, self.traceback, self.stderr_tail())
        if any(_NO_MEMORY.search(text) for text in words if text):
            return True
        return self.rusage is not None and self.rusage.max_rss * 2 >= limit

    def _under_limits(self) -> str:
        """Words naming the limits the child ran under, where it had any."""
        return f" (it ran under fork.{self.limits!r})" if self.limits is not None else ""

    def _crashed(self, what: str, reason: str | None = None) -> ChildCrashed:
        reason = reason or self.reason()
        if reason == "oom-killer":
            what += (
                " (the kernel's OOM killer ended it: the machine or its cgroup ran out of memory)"
            )
        elif reason == "lost-parent":
            what += " (its zygote died, and it with it)"
        if reason in ("memory-limit", "cpu-limit", "oom-killer"):
            import logging

            # an outcome the caller is told of, and may expect: not a warning
            logging.getLogger("goforkpy").info(
                "child %r (pid %d) %s (%s)", self.name, self.pid, what, reason
            )
        return protocol.crashed(
            f"child {self.name!r} (pid {self.pid}) {what}",
            name=self.name,
            pid=self.pid,
            returncode=self.returncode,
            stderr_tail=self._stderr_tail(),
            reason=reason,
            rusage=self.rusage,
            traceback=self.traceback,
        )

    def _stderr_tail(self) -> str | None:
        """A captured stderr's last lines, then the fatal error where there was one (which
        Python writes to stderr, unless, as here, it goes to the child's fault file)."""
        tail = self.stderr_tail()
        if not self.stderr_piped or self.traceback is None:
            return tail
        return self.traceback if tail is None else f"{tail}\n{self.traceback}"

    def reason(self) -> str:
        """Why it died without a result, in one word (see ``ChildCrashed.reason``)."""
        import signal

        if self.returncode >= 0:
            return "exit"
        killed_by = -self.returncode
        if getattr(self.limits, "cpu_seconds", None) is not None and killed_by in (
            signal.SIGXCPU,
            signal.SIGKILL,
        ):
            return "cpu-limit"
        if self.lost_parent:
            return "lost-parent"
        if killed_by == signal.SIGKILL and _oom_killed():
            return "oom-killer"
        return "signal"

    def _memory_limit_passed(self, limit: int, result: Result) -> ChildCrashed:
        from .._process.limits import describe_size

        what = result.typename.removeprefix("builtins.")
        error = self._crashed(
            f"ran out of memory under fork.Limits(memory={describe_size(limit)!r})"
            + (f": {what}: {result.message}" if result.message else f": {what}")
            + "; raise the limit if the function needs more",
            "memory-limit",
        )
        error.__cause__ = RemoteTraceback(result.traceback)
        return error


def _out_of_memory(result: Result) -> bool:
    """True for an error that says the address space ran out (``Limits(memory=...)``)."""
    return result.typename == "builtins.MemoryError" or any(
        sign in result.message for sign in ("failed to map segment", "Cannot allocate memory")
    )


_NO_MEMORY = re.compile(
    r"MemoryError|out of memory|Cannot allocate memory|failed to map segment|bad_alloc"
    r"|memory allocation failed|ENOMEM",
    re.IGNORECASE,
)


def _oom_killed() -> bool:
    """True if the kernel's OOM killer has struck since we last looked, where it says."""
    from .._process import platform

    return platform.oom_kills_since_last_look()


def _plain_result(status: str, kind: str, body: Any, buffers: Any, sandbox: Sandbox) -> Result:
    """A sandboxed child's result, decoded as plain data only (``_sandbox.plain``)."""
    from .._sandbox import plain

    if kind != plain.KIND or buffers:
        raise PayloadError("came in another format than plain data: refused unread")
    fields = plain.decode(bytes(body), sandbox.results, sandbox.max_result)
    shapes = {protocol.OK: 1, protocol.EXIT: 1, protocol.RAISED: 4}
    if not isinstance(fields, tuple) or shapes.get(status) != len(fields):
        raise PayloadError("is not a goforkpy result record")
    if status == protocol.EXIT and not isinstance(fields[0], int):
        raise PayloadError("is not a goforkpy result record")
    if status == protocol.RAISED and not all(isinstance(text, str) for text in fields[1:]):
        raise PayloadError("is not a goforkpy result record")
    return Result(status, *fields)


def _sandboxed_error(result: Result) -> Exception:
    from .._errors import SandboxedError

    error = SandboxedError(
        result.message, type_name=result.typename, remote_traceback=result.traceback
    )
    error.__cause__ = RemoteTraceback(result.traceback)
    return error
