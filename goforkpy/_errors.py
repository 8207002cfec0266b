"""The exception tree of goforkpy.

Every error goforkpy raises derives from one root::

    ForkError
     ├── RegistryError     a name that is unknown, or taken by another function
     ├── InitError         fork.init() misuse: missing, too late, too deep
     ├── PayloadError      arguments/results that cannot cross, or fail integrity
     ├── ChildCrashed      the child died without sending a result
     ├── TimeoutExpired    a deadline passed (also a built-in TimeoutError)
     ├── IPCError          messaging between processes failed
     ├── ShellError        a shell command exited non-zero
     ├── SandboxUnavailable  this machine cannot enforce a part of a fork.Sandbox
     └── SandboxedError    a sandboxed child's function raised (never unpickled)

Errors carry structured fields as keyword-only constructor arguments; they are
kept in ``__dict__``, so every error pickles and unpickles intact (the message
travels in ``args``, the fields in the instance state).

``RemoteTraceback`` is not an error: it carries a child's traceback text and is
attached as ``__cause__`` to exceptions re-raised in the parent, the way
``concurrent.futures`` does it.
"""


class ForkError(Exception):
    """Root of every error goforkpy raises."""


class RegistryError(ForkError):
    """A function name is unknown, or already taken by a different function."""


class InitError(ForkError):
    """``fork.init()`` was misused: not reached, reached too late, or recursion too deep."""


class PayloadError(ForkError):
    """Arguments or a result could not be pickled, unpickled or verified."""


class ChildCrashed(ForkError):
    """The child died without a result.

    Attributes:
        pid: the child's pid.
        returncode: subprocess-style: ``-N`` for death by signal N.
        signal: the signal's name (``"SIGSEGV"``) or ``None`` for a plain exit.
        reason: why, in one word: ``"signal"`` (a fatal fault, or a signal from
            outside), ``"memory-limit"``, ``"cpu-limit"``, ``"oom-killer"``
            (where the platform tells), ``"exit"`` (``os._exit``, or an exit
            before a result) or ``"lost-parent"``.
        traceback: the Python stack of every thread at a fatal signal
            (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT), whether or not stderr
            was captured; else ``None``. On Python 3.11+ it is in the
            exception's notes too, so an uncaught one (in Jupyter, say) shows it.
        stderr_tail: the last lines of the child's stderr where it was captured.
        rusage: what the child used (``.max_rss``, ``.user_time``,
            ``.system_time``), where it is known.
        name: the registered name of the function the child ran.
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        returncode: int | None = None,
        signal: str | None = None,
        stderr_tail: str | None = None,
        name: str | None = None,
        reason: str | None = None,
        traceback: str | None = None,
        rusage: object = None,
    ) -> None:
        super().__init__(message)
        self.pid = pid
        self.returncode = returncode
        self.signal = signal
        self.stderr_tail = stderr_tail
        self.name = name
        self.reason = reason
        self.traceback = traceback
        self.rusage = rusage
        if traceback and hasattr(self, "add_note"):  # Python 3.11+: shown wherever it goes
            self.add_note(f"The child's Python stack at the fault:\n{traceback.rstrip()}")


class TimeoutExpired(ForkError, TimeoutError):
    """A deadline passed.

    Attributes:
        timeout: the deadline in seconds.
        pid: the pid concerned, where there is one.
        name: the registered name concerned, where there is one.
        traceback: for a child past its ``start_timeout``, the Python stack of
            every thread of it at that moment (where it had got far enough to
            say: past ``import goforkpy``), else ``None``. On Python 3.11+ it is
            in the exception's notes too.
    """

    def __init__(
        self,
        message: str,
        *,
        timeout: float | None = None,
        pid: int | None = None,
        name: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.pid = pid
        self.name = name
        self.traceback = traceback
        if traceback and hasattr(self, "add_note"):  # Python 3.11+: shown wherever it goes
            self.add_note(f"The child's threads when it passed:\n{traceback.rstrip()}")


class IPCError(ForkError):
    """Sending or receiving a message between processes failed."""


class ShellError(ForkError):
    """A shell command exited with a non-zero status.

    Attributes:
        returncode: the command's exit status (``-N`` for signal N).
        output: its stdout and stderr together.
        cmd: the command line.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        output: str | None = None,
        cmd: str | None = None,
    ) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output
        self.cmd = cmd


class SandboxUnavailable(ForkError):
    """This machine's kernel cannot enforce a part of the ``fork.Sandbox`` asked for;
    nothing was started."""


class SandboxedError(ForkError):
    """The function of a sandboxed child raised: its exception, described in plain text.

    The object itself never crosses: a sandboxed child is not trusted to send
    anything the parent would unpickle.

    Attributes:
        type_name: the exception's type, ``"module.QualName"``.
        message: ``str()`` of the exception.
        remote_traceback: the child's formatted traceback.
    """

    def __init__(self, message: str, *, type_name: str = "", remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if type_name else message)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in a child."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
