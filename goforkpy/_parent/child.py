"""The ``Child`` handle: state, waiting, results, signals.

A ``Child`` is made only by a start method (``_launch``). Whatever watches its
exit (``_process.reaper``, or its zygote) calls ``_exited`` once, the moment
the process ends: it records the returncode and collects what the child left
(``remains``), so nothing stays on disk or in the process table whether or
not anybody waits.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from .. import _checks
from .._errors import TimeoutExpired
from .._process import reaper
from .._process.handle import ExitWatch
from .._process.stdio import Streams
from .._shared import hooks, protocol
from . import remains
from .awaiting import Awaiting
from .deadlines import Deadlines
from .outcome import Ending

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import IO, Any, Callable, Protocol, Union

    import psutil

    from .._process.handle import ForkedProcess, RelayedFork
    from .._process.limits import Limits
    from .._process.usage import Usage
    from .._sandbox.policy import Sandbox

    Process = Union[subprocess.Popen[bytes], ForkedProcess, RelayedFork]
    # Watches a pid: calls on_zombie() as it exits, then on_exit(returncode, usage).
    Watch = Callable[[int, Callable[[int, "Usage | None"], None], Callable[[], None]], None]

    class Options(Protocol):
        """What a handle keeps of its launch's options (``_launch.record.Options``)."""

        grace: float
        limits: Limits | None
        timeout: float | None
        start_timeout: float | None
        sandbox: Sandbox | None

    class Launch(Protocol):
        """What a handle takes from its launch (``_launch.record.Launch``)."""

        name: str
        stem: str
        key: bytes

        @property
        def options(self) -> Options: ...


_log = logging.getLogger("goforkpy")
_NO_PUBLIC_CONSTRUCTOR = (
    "Child has no public constructor; start one with fork.fork() or fork.spawn()"
)


class Child(Awaiting, ExitWatch):
    """A running or finished child process started by ``fork``/``spawn``.

    ``returncode`` follows ``subprocess``: ``None`` while running, ``0`` for a
    returned result, ``1`` where the function raised, ``n`` for
    ``SystemExit(n)``, ``-N`` for death by signal N. ``start`` names the
    start method that made it: ``"cold"`` or ``"warm"``.
    """

    name: str
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None
    start: str
    _popen: Process
    _stem: str
    _key: bytes
    _grace: float
    _exited_already: bool
    _ending: Ending | None  # what it left, once reaped
    _payload_fd: int | None  # the sealed memfd its payload travels in, if it does
    _outcome: tuple[bool, Any] | None
    _settling: threading.Event | None  # set once _outcome is made
    _streams: Streams
    _deadlines: Deadlines
    _leads_group = True  # every child leads its own process group
    _limits: Limits | None
    _sandbox: Sandbox | None
    _rusage: Usage | None

    def __init__(self) -> None:
        raise TypeError(_NO_PUBLIC_CONSTRUCTOR)

    @classmethod
    def _started(
        cls,
        launch: Launch,
        popen: Process,
        started: int | None,
        how: tuple[Watch, str] = (reaper.watch, "cold"),
        payload_fd: int | None = None,
        later: Callable[[Callable[[], None]], None] | None = None,
    ) -> Child:
        """The handle of ``launch``'s child, just started (the one way to make one).

        It is watched from here on: tracked for the lifeline and the guardian,
        handed to the reaper, and, given the read end of its ``started`` pipe,
        held to ``options.start_timeout`` and ``options.timeout``. If the
        watching cannot be set up, the child is killed and reaped, and the
        error raised. ``how`` is (what watches its exit: the reaper, or its
        zygote; its start method). ``payload_fd`` is the sealed memfd its
        payload travels in, if it does: closed once it has exited.
        ``later(begin)``, where given, runs ``begin()`` (the watching) once the
        pid is known: a snapshot's arrives from its intermediate after the
        caller has gone on. It keeps none of the call's function and arguments.
        """
        self = cls.__new__(cls)
        watch, self.start = how
        options = launch.options
        self.name, self._popen = launch.name, popen
        self.stdin, self.stdout, self.stderr = popen.stdin, popen.stdout, popen.stderr
        self._stem, self._key, self._payload_fd = launch.stem, launch.key, payload_fd
        self._grace, self._limits, self._sandbox = options.grace, options.limits, options.sandbox
        self._watch_exit()  # self._lock also guards _exited_already and _outcome
        self._exited_already = False  # true from the moment it is a zombie
        self._rusage = None
        self._ending = None
        self._outcome = None
        self._settling = None
        self._streams = Streams(popen)
        self._deadlines = Deadlines(options.start_timeout, options.timeout)
        if later is None:
            self._watch(started, watch)
        else:
            from .._process import lifeline

            lifeline.expect(self)
            later(lambda: self._watch(started, watch))
        return self

    @property
    def pid(self) -> int:  # type: ignore[override]
        """The child's process id."""
        return self._popen.pid

    def _watch(self, started: int | None, watch: Watch) -> None:
        from .._process import lifeline

        _log.debug("child %r (pid %d) started %s", self.name, self.pid, self.start)
        try:
            lifeline.track(self)
            self._when_exited(lifeline.untrack)
            watch(self.pid, self._exited, self._zombie)
        except BaseException:
            if started is not None:
                os.close(started)
            self._abandon()
            raise
        if started is not None:
            try:
                self._deadlines.enforce(self.pid, started, self._done, self._expire)
            except BaseException:
                self.kill()
                raise

    def _abandon(self) -> None:
        """Kill and reap at once: for a child the reaper could not take on."""
        remains.clear_group(self.pid)
        returncode, usage = reaper.reap(self.pid)
        self._zombie()
        self._exited(returncode, usage)

    # --- state ---------------------------------------------------------------

    @property
    def rusage(self) -> Usage | None:
        """Once it has exited, what it used (``.max_rss`` bytes, ``.user_time`` and
        ``.system_time`` seconds, from ``wait4``); ``None`` while it runs."""
        return self._rusage if self._returncode is not None else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit and return its returncode.

        Raises:
            TimeoutExpired: ``timeout`` seconds passed first; the child keeps running.
            ValueError: ``timeout`` is NaN or negative.
        """
        if not self._done.wait(_checks.seconds("timeout", timeout)):
            raise TimeoutExpired(
                f"child {self.name!r} (pid {self.pid}) still running after {timeout} s",
                timeout=timeout,
                pid=self.pid,
                name=self.name,
            )
        waiter = threading.current_thread()
        if waiter.daemon and not waiter.name.startswith("goforkpy-"):  # the program's own
            from .._process import lifeline

            lifeline.stay_if_exiting()
        if self._deadlines.passed:
            raise self._deadlines.error(self.name, self.pid, self._ending)
        assert self._returncode is not None
        return self._returncode

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return the function's return value or raise what it raised.

        The child's exception is re-raised with its original type where it
        unpickles here, with the remote traceback as ``__cause__``.
        ``timeout`` bounds the whole call: the wait and turning the result
        back into an object (unpickling may run arbitrary code).

        Raises:
            TimeoutExpired: ``timeout`` passed first (the child keeps running,
                or its result is still being unpickled: call again), or the
                spawn's own timeout ended the child.
            ChildCrashed: the child died without a result (a signal, ``os._exit``).
            InitError: the child exited without reaching ``fork.init()``.
            PayloadError: the result could not be unpickled or verified.
        """
        limit = _checks.seconds("timeout", timeout)
        deadline = None if limit is None else time.monotonic() + limit
        self.wait(limit)
        ok, value = self._outcome_by(deadline, timeout)
        if ok:
            return value
        try:
            raise value
        finally:
            # The traceback holds this frame: drop our names, or the handle,
            # its pipes and the error would wait for the garbage collector.
            self = value = None  # type: ignore[assignment,unused-ignore]

    def _outcome_by(self, deadline: float | None, timeout: float | None) -> tuple[bool, Any]:
        """The settled outcome, made once (on a helper thread if there is a deadline)."""
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            first = self._settling is None
            if first:
                self._settling = threading.Event()
            settling = self._settling
        assert settling is not None
        if first and deadline is None:
            self._settle_once(settling)
        elif first:
            reaper.start_thread(self._settle_once, f"result-{self.pid}", settling)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not settling.wait(left):
            raise TimeoutExpired(
                f"the result of child {self.name!r} (pid {self.pid}) was still being "
                f"unpickled after {timeout} s; call result() again to go on waiting",
                timeout=timeout,
                pid=self.pid,
                name=self.name,
            )
        assert self._outcome is not None
        return self._outcome

    def _settle_once(self, settling: threading.Event) -> None:
        outcome: tuple[bool, Any] = (False, None)
        try:
            outcome = self._settle()
        except BaseException as exc:  # KeyboardInterrupt while unpickling: keep it
            outcome = (False, exc)
            raise
        finally:
            with self._lock:
                self._outcome = outcome
            settling.set()

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Feed ``input`` to stdin, read stdout and stderr to the end, wait for exit.

        Like ``subprocess.Popen.communicate``: streams not opened with ``PIPE``
        come back as ``None``; both pipes are drained at once, so a child
        writing megabytes to each never deadlocks.

        Raises:
            TimeoutExpired: ``timeout`` passed; call again to go on collecting.
        """
        if not self._streams.finish(input, _checks.seconds("timeout", timeout)):
            raise TimeoutExpired(
                f"child {self.name!r} (pid {self.pid}) still writing output after {timeout} s",
                timeout=timeout,
                pid=self.pid,
                name=self.name,
            )
        self.wait(timeout)
        return self._streams.collected()

    # --- signals -------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (to the child alone if it has none)."""
        _log.debug("child %r (pid %d) sent signal %d", self.name, self.pid, sig)
        with self._lock:
            if self._exited_already:
                return
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass  # raced with its exit

    def terminate(self, grace: float | None = None) -> None:
        """SIGTERM to the whole process tree, SIGKILL to what is left after ``grace``; reaps.

        ``grace`` defaults to the spawn's. Descendants that left the child's
        process group or session are found by parentage.
        """
        from .._process import tree

        grace = self._grace if grace is None else _checks.grace(grace)
        tree.end_handles([self], signal.SIGTERM, grace)

    def kill(self) -> None:
        """SIGKILL the whole process tree at once; reaps."""
        from .._process import tree

        tree.end_handles([self], signal.SIGKILL, 0.0)

    def _tree_root(self) -> psutil.Process | None:
        """A psutil handle on the child while it is still ours, else ``None``."""
        from .._process import tree

        with self._lock:
            if self._exited_already:
                return None
            # Not yet reaped, so the pid cannot have been reused: psutil binds
            # to this process (by start time), and never signals another.
            return tree.psutil_process(self.pid)

    def _expire(self, which: str) -> None:
        """A deadline passed (``deadlines``): end the tree, its stacks first for a start-up."""
        with self._lock:
            if self._returncode is not None or self._exited_already:
                return
            self._deadlines.passed = which
            asked = which == "start_timeout" and self._deadlines.ask_for_stacks(self.pid)
        _log.debug("child %r (pid %d) ran past its %s; ending it", self.name, self.pid, which)
        if asked:
            self._done.wait(min(self._grace, self._deadlines.STACKS_WAIT))
        self.terminate()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._returncode is None:
            self.terminate()
        else:
            self.wait()

    def __repr__(self) -> str:
        return f"<Child {self.name!r} pid={self.pid} {protocol.describe_state(self._returncode)}>"

    # --- called by the reaper, once ----------------------------------------------

    def _zombie(self) -> None:
        with self._lock:
            self._exited_already = True

    def _exited(self, returncode: int, usage: Usage | None = None) -> None:
        from .._process.usage import LOST_PARENT

        lost_parent = usage is LOST_PARENT
        self._rusage = usage = None if lost_parent else usage
        remains.clear_group(self.pid)
        ending = Ending(self.name, self.pid, returncode, self._limits, self._sandbox)
        ending.rusage, ending.lost_parent = usage, lost_parent
        ending.stderr_piped = self.stderr is not None
        ending.stderr_tail = self._streams.stderr_tail
        remains.collect(ending, self._stem, self._key, self._payload_fd)
        self._payload_fd = None  # closed by collect
        self._ending = ending
        self._popen.returncode = returncode  # Popen must never waitpid it again
        hooks.reaped(self.pid)
        _log.debug("child %r (pid %d) %s", self.name, self.pid, protocol.how_it_ended(returncode))
        self._record_exit(returncode)

    def _settle(self) -> tuple[bool, Any]:
        assert self._ending is not None
        if self._deadlines.passed:
            return False, self._deadlines.error(self.name, self.pid, self._ending)
        return self._ending.outcome()
