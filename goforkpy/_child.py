"""The ``Child`` handle: state, waiting, results, signals.

A ``Child`` is made only by ``fork``/``spawn``. The reaper (``_reaper``) calls
``_exited`` once, the moment the process ends: it records the returncode,
takes the result file into memory and deletes what the child left, so nothing
stays on disk or in the process table whether or not anybody waits.
"""

from __future__ import annotations

import os
import signal
import threading

from . import _wire
from ._boot import PAYLOAD_SUFFIX, RESULT_SUFFIX
from ._errors import (
    ChildCrashed,
    InitError,
    PayloadError,
    RemoteTraceback,
    TimeoutExpired,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import IO, Any, Callable

_NO_PUBLIC_CONSTRUCTOR = (
    "Child has no public constructor; start one with fork.fork() or fork.spawn()"
)


class Child:
    """A running or finished child process started by ``fork``/``spawn``.

    ``returncode`` follows ``subprocess``: ``None`` while running, ``0`` for a
    returned result, ``1`` where the function raised, ``n`` for
    ``SystemExit(n)``, ``-N`` for death by signal N.
    """

    name: str
    pid: int
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def __init__(self) -> None:
        raise TypeError(_NO_PUBLIC_CONSTRUCTOR)

    @classmethod
    def _start(
        cls, name: str, popen: subprocess.Popen[bytes], stem: str, key: bytes, grace: float
    ) -> Child:
        self = cls.__new__(cls)
        self._setup(name, popen, stem, key, grace)
        return self

    def _setup(
        self, name: str, popen: subprocess.Popen[bytes], stem: str, key: bytes, grace: float
    ) -> None:
        self.name, self.pid, self._popen = name, popen.pid, popen
        self.stdin, self.stdout, self.stderr = popen.stdin, popen.stdout, popen.stderr
        self._stem, self._key, self._grace = stem, key, grace
        self._returncode: int | None = None
        self._done = threading.Event()
        self._frame: _wire.Decoded | PayloadError | None = None
        self._payload_unread = False
        self._outcome: tuple[bool, Any] | None = None
        self._on_exit: list[Callable[[Child], None]] = []
        self._lock = threading.Lock()

    # --- state ---------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        """``None`` while running, then the exit status (``-N``: killed by signal N)."""
        return self._returncode

    def poll(self) -> int | None:
        """The returncode, or ``None`` while the child runs."""
        return self._returncode

    def is_alive(self) -> bool:
        """True until the child has exited and been reaped."""
        return self._returncode is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit and return its returncode.

        Raises:
            TimeoutExpired: ``timeout`` seconds passed first; the child keeps running.
        """
        if not self._done.wait(timeout):
            raise TimeoutExpired(
                f"child {self.name!r} (pid {self.pid}) still running after {timeout} s",
                timeout=timeout,
                pid=self.pid,
                name=self.name,
            )
        assert self._returncode is not None
        return self._returncode

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return the function's return value or raise what it raised.

        The child's exception is re-raised with its original type where it
        unpickles here, with the remote traceback as ``__cause__``.

        Raises:
            TimeoutExpired: ``timeout`` passed first; the child keeps running.
            ChildCrashed: the child died without a result (a signal, ``os._exit``).
            InitError: the child exited without reaching ``fork.init()``.
            PayloadError: the result could not be unpickled or verified.
        """
        self.wait(timeout)
        with self._lock:
            if self._outcome is None:
                self._outcome = self._settle()
        ok, value = self._outcome
        if ok:
            return value
        raise value

    # --- signals -------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (to the child alone if it has none)."""
        if self._returncode is not None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass  # exited between the check and the signal

    def terminate(self, grace: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (default: the spawn's); reaps."""
        self.send_signal(signal.SIGTERM)
        try:
            self.wait(self._grace if grace is None else grace)
        except TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the child's process group at once; reaps."""
        self.send_signal(signal.SIGKILL)
        self.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._returncode is None:
            self.terminate()
        else:
            self.wait()

    def __repr__(self) -> str:
        return f"<Child {self.name!r} pid={self.pid} {describe_state(self._returncode)}>"

    # --- called by the reaper, once ----------------------------------------------

    def _exited(self, returncode: int) -> None:
        self._payload_unread = _unlink(self._stem + PAYLOAD_SUFFIX)
        try:
            self._frame = _wire.read_file(self._stem + RESULT_SUFFIX, self._key, unlink=True)
        except FileNotFoundError:
            self._frame = None
        except PayloadError as exc:
            _unlink(self._stem + RESULT_SUFFIX)
            self._frame = exc
        self._popen.returncode = returncode  # Popen must never waitpid it again
        self._returncode = returncode
        self._done.set()
        for callback in self._on_exit:
            callback(self)

    # --- turning what the child left into a value or an exception ------------------

    def _settle(self) -> tuple[bool, Any]:
        frame = self._frame
        self._frame = None  # the value is built once; free the raw bytes
        if isinstance(frame, PayloadError):
            return False, frame
        if frame is None:
            return False, self._no_result_error()
        meta, body, buffers = frame
        status, kind = meta
        try:
            record = _wire.decode(kind, body, buffers)
        except PayloadError as exc:
            return False, PayloadError(f"the result of {self.name!r} {exc}")
        if status == "ok":
            return True, record[0]
        if status == "exit":
            if record[0] == 0:
                return True, None
            return False, self._crashed(f"exited with SystemExit({record[0]}) without a result")
        return False, _rebuild_exception(self.name, *record)

    def _no_result_error(self) -> Exception:
        rc = self._returncode
        assert rc is not None
        if rc >= 0 and self._payload_unread:
            return InitError(
                f"child {self.name!r} (pid {self.pid}) exited with code {rc} without "
                "reaching fork.init(); call fork.init() in your script after the "
                "@fork.register functions and before other work"
            )
        if rc < 0:
            return self._crashed(f"was killed by {signal_name(-rc)}")
        return self._crashed(f"exited with code {rc} without a result (os._exit or a crash)")

    def _crashed(self, what: str) -> ChildCrashed:
        rc = self._returncode
        return ChildCrashed(
            f"child {self.name!r} (pid {self.pid}) {what}",
            pid=self.pid,
            returncode=rc,
            signal=signal_name(-rc) if rc is not None and rc < 0 else None,
            name=self.name,
        )


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 99`` for numbers without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_state(returncode: int | None) -> str:
    if returncode is None:
        return "running"
    if returncode < 0:
        return f"exited with {signal_name(-returncode)}"
    return f"exited with code {returncode}"


def _rebuild_exception(
    name: str, pickled: bytes | None, typename: str, message: str, tb: str
) -> BaseException:
    cause = RemoteTraceback(tb)
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
