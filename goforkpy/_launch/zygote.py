"""The parent's side of one zygote: starting it, asking it for children, learning of
their exits.

A ``Zygote`` is asked over one socket (``FORK``, answered ``FORKED``,
``FAILED`` or ``REFUSED``) and tells over another (``READY``, ``SPARE``,
``EXITED``, ``REAPED``, to which the parent answers ``RELEASE``): see
``zygote_messages`` and, for the other side, ``serve``. Which zygotes this
process keeps, and when it falls back to cold starts, is ``warm``'s.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from .. import _env
from .._errors import TimeoutExpired
from .._process import guardian, lifeline, reaper
from .._process.handle import ForkedProcess
from .._process.popen import start_in_group
from .._process.usage import LOST_PARENT, usage_of
from .._shared import protocol
from .._shared import zygote_messages as messages
from . import handover, plan
from .record import DEFAULTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .._process.usage import Usage
    from .record import Options

    OnExit = Callable[[int, "Usage | None"], None]
    OnZombie = Callable[[], None]

_log = logging.getLogger("goforkpy")
MAIN_PATH, BOOT_PATH, SPAWN_PATH = "main", "boot", "spawn"
# a launch path's sandboxed twin: a zygote started with a sandbox's environment, so
# that no warm sandboxed child holds the program's (in os.environ or in its memory)
SANDBOXED = "+sandboxed"


class Unusable(Exception):
    """This zygote refuses to make children; ``str`` says why."""


class Gone(Unusable):
    """This zygote has died: replace it."""


class Zygote:
    """One zygote: asked for children over one socket, telling of their exits on another."""

    def __init__(self, path: str, pid: int, requests: socket.socket, notices: socket.socket):
        self.path, self.pid = path, pid
        self._requests, self._notices = requests, notices
        self._asking = threading.Lock()  # one request (and its answer) at a time
        self._sending = threading.Lock()  # releases come from two threads
        self._lock = threading.Lock()  # guards what follows
        self._watched: dict[int, tuple[OnExit, OnZombie]] = {}
        self._exited_early: dict[int, int] = {}  # reported before its handle watched it
        self._reaping: dict[int, tuple[int, OnExit]] = {}  # released, not yet reaped
        self._ready = threading.Event()
        self.trouble: str | None = None  # why it cannot serve
        self.dead = False
        self.spare: int | None = None  # the child it forked ahead of our next request

    @classmethod
    def start(cls, path: str, mode: str, argv: list[str], key: bytes) -> Zygote:
        """Start a zygote for launch ``path``; it tells when it is ready (``wait_ready``)."""
        requests, their_requests = socket.socketpair()
        notices, their_notices = socket.socketpair()
        try:
            reaper.prepare()
            theirs = (their_requests.fileno(), their_notices.fileno())
            # a zygote reads no payload of its own
            markers = handover.markers(key, payload="", zygote=theirs)
            sandboxed = path.endswith(SANDBOXED)
            env = plan.child_env(mode, _SANDBOXED if sandboxed else DEFAULTS, markers)
            if sandboxed:
                env[_env.SANDBOXED] = "1"  # it loads the sandbox once, for all its children
            pass_fds = (*handover.kept_open(markers), *theirs)
            popen = lifeline.from_long_lived_thread(lambda: start_in_group(argv, env, pass_fds))
        except BaseException:
            requests.close()
            notices.close()
            raise
        finally:
            their_requests.close()
            their_notices.close()
        popen.returncode = 0  # the reaper reaps it; Popen must never wait for it itself
        self = cls(path, popen.pid, requests, notices)
        try:
            reaper.watch(self.pid, self._zygote_exited, lambda: None)
        except BaseException:
            os.kill(self.pid, signal.SIGKILL)  # unwatched, it would be nobody's to reap
            reaper.reap(self.pid)
            self.close()
            raise
        guardian.watch(self.pid)
        try:
            reaper.start_thread(self._read_notices, f"zygote-{self.pid}")
        except BaseException:
            self.close()  # the zygote ends itself (and the reaper reaps it)
            raise
        _log.debug("zygote %d started for %s", self.pid, describe(path))
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the zygote serves.

        Raises:
            Unusable: it died first, or refuses to fork.
            TimeoutExpired: ``timeout`` seconds passed first.
        """
        if not self._ready.wait(timeout):
            raise TimeoutExpired(
                f"the zygote for {describe(self.path)} (pid {self.pid}) was not ready "
                f"after {timeout} s",
                timeout=timeout,
                pid=self.pid,
            )
        if self.trouble is not None:
            raise Unusable(self.trouble)

    # --- asking for a child -----------------------------------------------------------

    def start_child(
        self,
        env: dict[str, str],
        handed: list[tuple[str, int]],
        options: Options,
        module: str | None,
        sys_path: list[str] | None,
        argv: list[str] | None = None,
    ) -> ForkedProcess:
        """Have the zygote fork a child set up as a cold one would be, by ``options``.

        ``handed`` are (marker, descriptor) pairs: each descriptor is passed
        and its number in the child set as the marker's value. With ``argv``
        the child runs that command line (a cold child of a spawner).

        Raises:
            Unusable: the zygote is gone or refuses (start cold instead).
            OSError: the fork or a redirect failed, as ``Popen`` would raise it.
        """
        with options.setup(env, handed, argv) as (setup, fds, ours):
            request = (messages.FORK, setup.pack(), module, sys_path, options.grace)
            answer = self._ask(request, fds, env.get(_env.PAYLOAD))
            if answer[0] == messages.FORKED:
                if self.spare == answer[1]:
                    self.spare = None  # ours now
                return ForkedProcess(answer[1], ours)
        for stream in ours:
            if stream is not None:
                stream.close()
        raise self._refused(answer)

    def _refused(self, answer: tuple[Any, ...]) -> Exception:
        """The error for an answer other than FORKED: the fork failed, or it refuses."""
        if answer[0] == messages.FAILED:
            return OSError(answer[1], answer[2])
        self.trouble = answer[1]
        return Unusable(answer[1])

    def _ask(
        self, request: tuple[Any, ...], fds: list[int], payload: str | None
    ) -> tuple[Any, ...]:
        """The zygote's answer to a fork request.

        Raises:
            Gone: it died before the request was acted on (ask another): the payload
                file is still there once its spare is ended.
            ChildCrashed: it died with the request in hand, and the child took its
                payload (and may have killed it at once): the call is not made again,
                which could run the function twice; what it forked is ended.
        """
        with self._asking:
            try:
                messages.send(self._requests, request, fds)
            except OSError:
                self._mark_dead()
                raise Gone(f"the zygote (pid {self.pid}) is gone") from None
            try:
                received = messages.receive(self._requests)
            except OSError:
                received = None
        if received is None:
            self._mark_dead()
            spare = self.spare  # the child it hands a request to, forked ahead of it
            if spare is not None:
                _end_orphans([spare])  # stopped, then killed: it reads nothing more
            if payload and os.path.exists(payload):
                raise Gone(f"the zygote (pid {self.pid}) is gone")  # nothing ran
            raise protocol.crashed(
                f"the zygote (pid {self.pid}) died as it forked the child (one of its "
                "children may have killed it); what it forked is ended, and the call is "
                "not made again",
                name="",
                pid=spare or 0,
                returncode=-signal.SIGKILL,
                reason="lost-parent",
            )
        return received[0]

    def _mark_dead(self) -> None:
        with self._lock:
            self.dead = True  # the notices reader may not have seen it yet

    # --- exits ------------------------------------------------------------------------

    def watch(self, pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
        """Call ``on_zombie()`` once child ``pid`` has exited, ``on_exit(returncode, usage)``
        once it is reaped.

        As with the reaper, the pid cannot be reused before ``on_zombie`` has run.
        """
        with self._lock:
            code = self._exited_early.pop(pid, None)
            if code is None and not self.dead:
                self._watched[pid] = (on_exit, on_zombie)
                return
        if code is None:  # the zygote died meanwhile: so does its child
            on_zombie()
            on_exit(_end_orphans([pid]), LOST_PARENT)
        else:
            self._release(pid, code, (on_exit, on_zombie))

    def _read_notices(self) -> None:
        try:
            while True:
                received = messages.receive(self._notices)
                if received is None:
                    break
                message, fds = received
                for fd in fds:
                    os.close(fd)
                if message[0] == messages.READY:
                    self._ready.set()
                elif message[0] == messages.EXITED:
                    self._exited(message[1], message[2])
                elif message[0] == messages.REAPED:
                    self._reaped(message[1], message[2])
                elif message[0] == messages.SPARE:
                    self.spare = message[1]
        except OSError:
            pass  # closed by shutdown
        self._lost()

    def _exited(self, pid: int, code: int) -> None:
        with self._lock:
            callbacks = self._watched.pop(pid, None)
            if callbacks is None:
                self._exited_early[pid] = code
                return
        self._release(pid, code, callbacks)

    def _release(self, pid: int, code: int, callbacks: tuple[OnExit, OnZombie]) -> None:
        """The exit is recorded (``on_zombie``): let the zygote reap the child now."""
        on_exit, on_zombie = callbacks
        on_zombie()  # the zygote holds it unreaped (Linux) until it is released
        with self._lock:
            self._reaping[pid] = (code, on_exit)
        with self._sending:
            try:
                messages.send(self._notices, (messages.RELEASE, pid))
            except OSError:
                pass  # the zygote is gone: _lost finishes it

    def _reaped(self, pid: int, used: tuple[int, float, float] | None) -> None:
        with self._lock:
            code, on_exit = self._reaping.pop(pid)
        on_exit(code, None if used is None else usage_of(*used))

    def _lost(self) -> None:
        """The zygote is gone: its children die with it (they cannot be reported on)."""
        with self._lock:
            self.dead = True
            if self.trouble is None and not self._ready.is_set():
                self.trouble = f"the zygote (pid {self.pid}) exited before it was ready"
            watched, self._watched = self._watched, {}
            reaping, self._reaping = self._reaping, {}
        self._ready.set()
        killed = _end_orphans(list(watched)) if watched else 0
        for on_exit, on_zombie in watched.values():
            on_zombie()
            on_exit(killed, LOST_PARENT)
        for code, on_exit in reaping.values():
            on_exit(code, None)

    def _zygote_exited(self, returncode: int, usage: Usage | None) -> None:
        guardian.forget(self.pid)
        # Our ends shut down, so a read waiting on them ends (an ask, the notices reader):
        # its EOF alone could wait for ever, where a copy of this process forked while the
        # zygote started holds the zygote's ends too. No lock: an ask may hold it.
        for sock in (self._requests, self._notices):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already (discarded)
        _log.debug("zygote %d ended (%s)", self.pid, protocol.how_it_ended(returncode))

    def discard(self) -> None:
        """Close our sockets to a zygote that is gone (its notices reader ends, if it has
        not yet seen the end: the shutdown wakes it)."""
        with self._asking:
            self._requests.close()
        with self._sending:
            try:
                self._notices.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more
            self._notices.close()

    def close(self) -> None:
        """Let the zygote go: it kills the children it still has, and exits.

        Shut down, not only closed: a snapshot child may hold a copy of each socket.
        """
        with self._asking:
            self._requests.shutdown(socket.SHUT_RDWR)
            self._requests.close()
        with self._sending:
            self._notices.shutdown(socket.SHUT_RDWR)


def _end_orphans(pids: list[int]) -> int:
    """End children whose zygote died, with all they started: each is a subreaper that
    still holds its tree (see ``serve._leave_zygote``), walked and killed as one, with
    the groups they lead; their returncode, as we can know it."""
    from .._process.tree import end_trees, psutil_process

    roots = [root for root in map(psutil_process, pids) if root is not None]
    if roots:
        end_trees(roots, signal.SIGKILL, 0.0, groups=tuple(pids))
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)  # a group whose leader is gone
        except (ProcessLookupError, PermissionError):
            pass
    return -signal.SIGKILL


def describe(path: str) -> str:
    if path.endswith(SANDBOXED):
        return f"sandboxed children of {describe(path.removesuffix(SANDBOXED))}"
    if path == SPAWN_PATH:
        return "cold children"
    return "the main script" if path == MAIN_PATH else "functions in modules or sent by value"


class _SandboxedZygote:
    """The options a sandboxed path's zygote starts with: a sandbox's environment."""

    env = None
    sandbox = True


_SANDBOXED: Any = _SandboxedZygote()
