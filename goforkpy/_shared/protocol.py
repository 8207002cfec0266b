"""What passes between a parent and its child: the channels, and the records on them.

Every start method (cold, warm, snapshot) and the Executor's workers use the
same channels and the same two records, and both sides import the records
from here; nobody slices a tuple.

The channels, each made for one child unless it says "per parent"::

  channel (made by)          from -> to                        gone
  -------------------------  --------------------------------  -------------------------------
  markers                    parent env -> child _env.MARKED   init() takes them out of the env
    (handover.markers)
  payload: <stem>.in, or a   parent -> child run._load_call    the child unlinks it on reading,
    sealed memfd (reexec)                                      the parent at reaping if unread
  ready pipe (reexec,        parent: 1 byte -> child, before   after the byte; EOF: the parent
    big payloads only)         it reads the payload            could not write the payload
  started pipe (where a      child: 1 byte as its function     after the byte
    deadline is set)           starts -> parent deadlines
  result: <stem>.out, or a   child run._finish -> parent       unlinked at reaping
    sealed memfd sent on       remains.collect
    the report socket
  report socket (reports,    child datagrams ("why",           lives with the parent
    per parent)                "result") -> reports.take
  lifeline pipe (lifeline,   nobody writes; the child's        EOF when the parent dies, by any
    per parent)                watcher thread (a zygote's      means: the child ends its family
                               loop) reads
  crash stacks:              child faulthandler, at a fatal    unlinked at reaping
    <stem>.faults              signal -> remains.collect
  zygote sockets (per        requests: parent FORK -> zygote   closed when the parent lets go:
    zygote: Zygote.start)      FORKED / FAILED / REFUSED;      the zygote ends its family
                               notices: zygote READY, SPARE,
                               EXITED, REAPED <-> RELEASE

A snapshot child has no payload and no ready pipe: its call is in the
memory it shares with its parent at the fork.

The records:

- ``Meta``: what to run and how, written by the parent at the head of the
  payload file (marshalled, so it holds plain data only).
- ``Result``: what happened, written by the child at the head of its result
  file: a value (``OK``), a ``SystemExit`` code (``EXIT``) or an exception
  (``RAISED``: pickled where it can be, with its type's name, message and
  traceback text as a fallback). The parent turns it back into a value or an
  exception with ``Result.outcome``; a child that left no result at all
  becomes a ``ChildCrashed`` through ``crashed``.

File names, in the private directory: a child's files are ``<stem>.in``,
``<stem>.out`` and ``<stem>.faults`` (the stem starts with the parent's pid),
and a process that receives messages listens on ``<pid>-ipc.sock``.

This module is on the child's start-up path: it imports only builtins and
``_errors``; what only the parent needs loads inside its functions.
"""

from .._errors import ChildCrashed, PayloadError, RemoteTraceback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PAYLOAD_SUFFIX = ".in"
RESULT_SUFFIX = ".out"
FAULTS_SUFFIX = ".faults"  # where a fatal signal leaves the child's Python stacks

# Launch modes: where the child finds the function.
MAIN = "main"  # the re-run main script registered it: look it up by name
MODULE = "module"  # import ``module`` and walk ``qualname``
VALUE = "value"  # the function itself travels in the payload, by value

# Result statuses.
OK, EXIT, RAISED = "ok", "exit", "raised"


def payload_path(stem: str) -> str:
    return stem + PAYLOAD_SUFFIX


def result_path(payload: str) -> str:
    """The result file that belongs to the payload file ``payload``."""
    return payload[: -len(PAYLOAD_SUFFIX)] + RESULT_SUFFIX


def faults_path(payload: str) -> str:
    """The crash-stacks file that belongs to the payload file ``payload``."""
    return payload[: -len(PAYLOAD_SUFFIX)] + FAULTS_SUFFIX


def socket_name(pid: int) -> str:
    """The name of the messaging socket ``pid`` listens on, in the private directory."""
    return f"{pid}-ipc.sock"


class Meta:
    """What the child is to run: the head of a payload file."""

    __slots__ = (
        "argv",
        "kind",
        "limits",
        "mode",
        "module",
        "name",
        "qualname",
        "sandbox",
        "sys_path",
    )

    def __init__(
        self,
        mode: str,
        name: str,
        module: "str | None",
        qualname: str,
        sys_path: "list[str] | None",
        kind: str,
        limits: tuple[tuple[str, int], ...],
        argv: "list[str] | None",
        sandbox: "tuple[Any, ...] | None" = None,
    ) -> None:
        self.mode, self.name, self.module, self.qualname = mode, name, module, qualname
        self.sys_path = sys_path  # the parent's, absolute; None where the script re-runs
        self.kind = kind  # how the body was serialised (see wire)
        self.limits = limits  # (rlimit name, value) pairs to apply before the call
        self.argv = argv  # the parent's sys.argv; None where the script re-runs
        self.sandbox = sandbox  # the rules the child enters (see _sandbox.policy.rules)

    def pack(self) -> "tuple[Any, ...]":
        """Plain data for marshal, in field order."""
        return tuple(getattr(self, field) for field in _META_FIELDS)

    @classmethod
    def unpack(cls, packed: "Any") -> "Meta":
        if not isinstance(packed, tuple) or len(packed) != len(_META_FIELDS):
            raise PayloadError("the payload's head is not a goforkpy call record")
        return cls(*packed)


_META_FIELDS = (
    "mode",
    "name",
    "module",
    "qualname",
    "sys_path",
    "kind",
    "limits",
    "argv",
    "sandbox",
)


class Result:
    """What happened in the child: the head and body of a result file."""

    __slots__ = ("fields", "status")

    def __init__(self, status: str, *fields: "Any") -> None:
        self.status = status
        self.fields = fields  # OK: (value,); EXIT: (code,); RAISED: see raised()

    @classmethod
    def ok(cls, value: "Any") -> "Result":
        return cls(OK, value)

    @classmethod
    def exited(cls, code: int) -> "Result":
        return cls(EXIT, code)

    @classmethod
    def raised(cls, exc: BaseException, traceback_text: "str | None" = None) -> "Result":
        """A record of ``exc`` that survives even if ``exc`` will not pickle."""
        if traceback_text is None:
            import traceback

            traceback_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        exc.__traceback__ = None
        from . import wire

        try:
            # An exception is never plain data, so this is always a pickle stream.
            _, chunks, buffers = wire.encode(exc, main_is_shared=True)
            pickled: bytes | None = b"".join(chunks) if not buffers else None
        except Exception:
            pickled = None
        typename = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return cls(RAISED, pickled, typename, str(exc), traceback_text)

    def outcome(self, name: str) -> "tuple[bool, Any]":
        """In the parent: ``(True, value)`` or ``(False, exception)`` for ``name``'s child."""
        if self.status == OK:
            return True, self.fields[0]
        if self.status == EXIT:
            return self.fields[0] == 0, None
        return False, rebuild_exception(name, *self.fields)

    @property
    def typename(self) -> str:
        return str(self.fields[1]) if self.status == RAISED else ""

    @property
    def message(self) -> str:
        return str(self.fields[2]) if self.status == RAISED else ""

    @property
    def traceback(self) -> str:
        return str(self.fields[3]) if self.status == RAISED else ""


def rebuild_exception(
    name: str, pickled: "bytes | None", typename: str, message: str, tb: str
) -> BaseException:
    """The child's exception, with its traceback text as ``__cause__``.

    Its own type where it unpickles here; a ``PayloadError`` saying why where
    it does not; a ``MemoryError`` where the child had no memory left to
    pickle one.
    """
    cause = RemoteTraceback(tb)
    if pickled is None and typename == "builtins.MemoryError":
        memory_error = MemoryError(message or "the child ran out of memory")
        memory_error.__cause__ = cause
        return memory_error
    if pickled is None:
        problem = "it could not be pickled in the child"
    else:
        import pickle

        try:
            exc = pickle.loads(pickled)
        except Exception as why:
            problem = f"it could not be unpickled here ({type(why).__name__}: {why})"
        else:
            if isinstance(exc, BaseException):
                exc.__cause__ = cause
                return exc
            problem = f"it unpickled as {type(exc).__name__}, not an exception"
    error = PayloadError(f"child {name!r} raised {typename}: {message}; but {problem}")
    error.__cause__ = cause
    return error


def unloadable(name: str, why: BaseException) -> PayloadError:
    """The error for what ``name`` sent back, where loading it here raised ``why`` (the
    object's own unpickling code: a ``SystemExit`` in it too)."""
    if isinstance(why, PayloadError) and why.__cause__ is not None:
        why = why.__cause__
    error = PayloadError(
        f"what {name} returned could not be unpickled here ({type(why).__name__}: {why}); "
        "return plain, picklable data"
    )
    error.__cause__ = why
    return error


def crashed(
    what: str,
    *,
    name: str,
    pid: int,
    returncode: "int | None",
    kind: type[ChildCrashed] = ChildCrashed,
    **fields: "Any",
) -> ChildCrashed:
    """The error (a ``kind``) for a child or worker that died without a result; ``what``
    says how.

    ``fields`` are more of ``ChildCrashed``'s (``reason``, ``traceback``,
    ``stderr_tail``, ``rusage``); ``reason`` defaults to what the returncode says.
    """
    signal = signal_name(-returncode) if returncode is not None and returncode < 0 else None
    fields.setdefault("reason", "exit" if signal is None else "signal")
    return kind(what, pid=pid, returncode=returncode, signal=signal, name=name, **fields)


def how_it_ended(returncode: int) -> str:
    """``was killed by SIGKILL`` or ``exited with code 3``."""
    if returncode < 0:
        return f"was killed by {signal_name(-returncode)}"
    return f"exited with code {returncode}"


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 99`` for numbers without a name."""
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_state(returncode: "int | None") -> str:
    """``running``, ``exited with SIGKILL`` or ``exited with code 3``, for a ``repr``."""
    if returncode is None:
        return "running"
    if returncode < 0:
        return f"exited with {signal_name(-returncode)}"
    return f"exited with code {returncode}"
