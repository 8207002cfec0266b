"""The zygote's side: wait, fork on request, report how each child ended.

``serve()`` runs where a cold child would dispatch (``fork.init()`` in a
re-run script, or goforkpy's entry point). In the zygote it never returns; in
each child it forks it returns, with the child's own standard streams,
directory, environment and markers in place, and the child dispatches as a
cold one would.

A zygote stays single-threaded: a fork copies only the thread that calls it,
so a lock another thread held would stay locked in the child for good. If
the program's own imports started a thread, the zygote refuses to fork and
the parent starts cold children instead.
"""

from __future__ import annotations

import gc
import os
import selectors
import socket
import sys
import time

from .. import _env
from .._process import platform, quiet
from .._process.family import die_at_end_of, end_family_and_die
from .._shared import zygote_messages as messages
from .._state import close_selector_in_copy
from . import exits, takeon
from .orphans import Orphans
from .reify import reify_lazy_imports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

_REQUEST, _RELEASE, _LIFELINE, _EXIT, _EXIT_ONCE = range(5)
# Seconds after a hand-out, at most, the next spare is forked; and after a fork that
# failed (out of processes), before the next try.
_SPARE_AFTER = 0.005
# A request this soon after the last child was reaped (or while it ran) comes from a
# run of calls: the next spare is then forked at once (_spare_due).
_QUICK = 0.002


def serve(booting: bool) -> None:
    """Be a zygote until a fork returns here in a new child (the zygote never returns).

    ``booting``: this is goforkpy's entry point (not a re-run script), so
    functions may come by value and modules are imported on request.
    """
    quiet.deafen()  # a child's os.kill(os.getppid(), ...) must not end its siblings
    requests_fd, notices_fd = _env.MARKED.zygote or (-1, -1)
    requests, notices = socket.socket(fileno=requests_fd), socket.socket(fileno=notices_fd)
    for sock in (requests, notices):
        sock.set_inheritable(False)
    _preload(booting)
    zygote = _Zygote(requests, notices)
    zygote.refusal = running_thread()
    messages.send(notices, (messages.READY, os.getpid()))
    zygote.run()
    _left_unfreed.append(zygote)  # in the new child: see _Zygote._leave_zygote


_left_unfreed: list[_Zygote] = []


def running_thread() -> str | None:
    """Why this process must not fork: the threads other than ours that run (in words), or
    None. Native threads count too (a library's pool), unless their library makes a fork
    safe (see ``_process.threads``)."""
    from .._process import threads

    found = threads.unvouched()
    if not found:
        return None
    return (
        f"the program's imports started the {threads.described(found)}, and a fork would "
        "copy only one thread (a lock another held would stay locked in the child); "
        "starting children cold instead. Start threads after fork.init(), or use start='cold'"
    )


def _preload(booting: bool) -> None:
    """What a child would otherwise load itself: once here, for all of them.

    Then the garbage collector leaves what is loaded alone (``gc.freeze``), so
    collections in the children do not copy the zygote's pages.
    """
    import faulthandler  # noqa: F401 - each child's crash stacks (_env.record_faults)

    from .._shared.wire import tag

    tag.load_hash()  # the hash the child's payload needs
    if os.environ.pop(_env.SANDBOXED, None):  # its children enter a sandbox: load it once
        from .._sandbox import inside
        from . import telling

        inside.prepare()
        telling.load_what_reporting_needs()
    reify_lazy_imports()  # the program's lazy imports, once here rather than in each child
    if booting:  # functions may come by value
        import importlib

        try:
            importlib.import_module("cloudpickle")
        except ImportError:  # pragma: no cover - a dependency; by-value calls say so
            pass
    gc.collect()
    gc.freeze()


class _Zygote:
    """The zygote's loop, and the spare child it keeps forked ahead of the next request.

    The spare (an idea from Android's pool of unspecialised app processes)
    takes the fork off the critical path: a request is handed to a child that
    already exists, which then takes on the request's streams, directory and
    environment, and a new spare is forked once that child has ended, or at once
    in a run of calls (see ``_spare_due``).
    """

    def __init__(self, requests: socket.socket, notices: socket.socket) -> None:
        self.requests, self.notices = requests, notices
        # Notices wait here while the parent is slow to read: a zygote blocked
        # on a send would stop reading the releases the parent is sending.
        self.outbox = bytearray()
        self.refusal: str | None = None
        self.spare: tuple[int, socket.socket] | None = None  # (pid, its socket)
        self.handed_out: dict[int, float] = {}  # children the parent knows of -> their grace
        self.handed: int | None = None  # the child last handed out, while it runs
        self.spare_at = 0.0  # when the next spare is due (_spare_due)
        self.reaped_at = 0.0  # when the child last handed out was reaped
        self.exits = exits.new()
        # A subreaper (see _leave_zygote) ends what its children leave.
        self.orphans = Orphans(self._watch) if platform.NATIVE else None
        self.selector = selectors.DefaultSelector()
        self.selector.register(requests, selectors.EVENT_READ, _REQUEST)
        self.selector.register(notices, selectors.EVENT_READ, _RELEASE)
        lifeline = _env.MARKED.lifeline
        if lifeline is not None:
            self.selector.register(lifeline, selectors.EVENT_READ, _LIFELINE)
        for fd in self.exits.fds():
            self.selector.register(fd, selectors.EVENT_READ, _EXIT)

    def run(self) -> None:
        """Serve until a request reaches this process as a child; then return in it."""
        while True:
            try:
                if self._spare_due() and self._fork_spare():
                    return  # we are the spare, and a request came
                if self._serve_ready():
                    return  # forked for this request, with no spare at hand
            except ConnectionError:  # reset or broken: the parent died mid-conversation
                _end_family()

    def _serve_ready(self) -> bool:
        """Handle what the selector says is ready; True in a child forked for a request."""
        wait = None if self.orphans is None else self.orphans.next_deadline()
        if self.spare is None and self.refusal is None:
            due = max(0.0, self.spare_at - time.monotonic())
            wait = due if wait is None else min(wait, due)  # the next spare's fork
        for key, events in self.selector.select(wait):
            if key.data == _REQUEST and self._answer():
                return True
            if key.data == _RELEASE:
                if events & selectors.EVENT_WRITE:
                    self._flush()
                if events & selectors.EVENT_READ:
                    self._release()
            elif key.data == _LIFELINE:
                die_at_end_of(key.fd)
            elif key.data in (_EXIT, _EXIT_ONCE):
                if key.data == _EXIT_ONCE:
                    self.selector.unregister(key.fd)
                self._ended(self.exits.ended(key.fd))
        if self.orphans is not None:
            self.orphans.kill_overdue()
        return False

    def _spare_due(self) -> bool:
        """Time to fork the next spare: once the child last handed out is reaped (or
        ``_SPARE_AFTER`` seconds after it was handed out); in a run of calls, at once.

        The fork takes half a millisecond of a core (more for a big image). Made at
        the hand-out, it competes with that child and with the parent taking it on
        (a call between pauses 0.3-0.5 ms slower); made once the child is reaped, it
        is still under way when the next of a run of calls comes (which then waits
        for it: 3.6 ms a short call, not 2.5). So the zygote forks at once only
        where the last request came within ``_QUICK`` of the reaping before it.
        """
        if self.spare is not None or self.refusal is not None:
            return False
        return time.monotonic() >= self.spare_at

    def _fork_spare(self) -> bool:
        """Fork the next child ahead of its request; True in that child, once a request came."""
        try:
            ours, theirs = socket.socketpair()
            try:
                pid = os.fork()
            except OSError:
                ours.close()
                theirs.close()
                raise
        except OSError:  # out of processes or descriptors: the next request forks, and
            # reports the error; no new try for _SPARE_AFTER seconds (no spinning)
            self.spare_at = time.monotonic() + _SPARE_AFTER
            return False
        if pid == 0:
            ours.close()
            self._leave_zygote()
            takeon.ready_ahead()
            received = messages.receive(theirs)
            theirs.close()
            if received is None:
                os._exit(0)  # the zygote let go of us (it ends, or an import made us stale)
            (_, setup), fds = received
            takeon.take_on(takeon.Setup.unpack(setup), fds)
            return True
        theirs.close()
        self._watch(pid)
        self.spare = (pid, ours)
        self.outbox += messages.frame((messages.SPARE, pid))
        self._flush()
        return False

    def _answer(self) -> bool:
        """Handle one request; True in a child forked for it."""
        received = messages.receive(self.requests)
        if received is None:
            _end_family()  # the parent let go of us: it is exiting, or shutting us down
        (_, setup, module, sys_path, grace), fds = received
        try:
            if self.refusal is not None:
                messages.send(self.requests, (messages.REFUSED, self.refusal))
                return False
            pid = self._hand_to_spare(setup, fds)
            if pid is None:
                try:
                    pid = os.fork()
                except OSError as exc:
                    messages.send(self.requests, (messages.FAILED, exc.errno, exc.strerror))
                    return False
                if pid == 0:
                    self._leave_zygote()
                    takeon.take_on(takeon.Setup.unpack(setup), fds)
                    fds = []  # placed, or closed
                    return True
                self._watch(pid)
            self.handed_out[pid] = grace
            now = time.monotonic()
            quick = self.handed is not None or now - self.reaped_at < _QUICK
            self.handed, self.spare_at = pid, now if quick else now + _SPARE_AFTER
            messages.send(self.requests, (messages.FORKED, pid))
        finally:
            for fd in fds:
                os.close(fd)
        self._import(module, sys_path)
        return False

    def _hand_to_spare(self, setup: bytes, fds: list[int]) -> int | None:
        """Pass the child's set-up to the spare; its pid, or None if there is none (or it
        died)."""
        if self.spare is None:
            return None
        pid, sock = self.spare
        self.spare = None
        try:
            messages.send(sock, (messages.FORK, setup), fds)
        except OSError:
            return None  # it died; its exit is collected as a spare's
        finally:
            sock.close()
        return pid

    def _watch(self, pid: int) -> None:
        for fd in self.exits.add(pid):
            self.selector.register(fd, selectors.EVENT_READ, _EXIT_ONCE)

    def _ended(self, ended: list[tuple[int, int]]) -> None:
        """Tell the parent of its children's exits, then end what they left; a spare that
        died, or an orphan, is only reaped."""
        left: list[float] = []  # the grace of each child handed out that ended
        for pid, code in ended:
            if pid in self.handed_out:
                left.append(self.handed_out.pop(pid))
                self.outbox += messages.frame((messages.EXITED, pid, code))
            elif self.orphans is not None and self.orphans.ended(pid, self.exits.watched()):
                self.exits.release(pid)
            else:
                if self.spare is not None and self.spare[0] == pid:
                    self.spare[1].close()
                    self.spare = None
                self.exits.release(pid)
        self._flush()  # the parent waits on these; the search for orphans need not delay them
        if self.orphans is not None:
            for grace in left:
                self.orphans.adopt(self.exits.watched(), grace)

    def _flush(self) -> None:
        """Send what the outbox holds, as far as the parent takes it now; never block."""
        try:
            sent = self.notices.send(self.outbox, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        del self.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
        self.selector.modify(self.notices, events, _RELEASE)

    def _import(self, module: str | None, sys_path: list[str] | None) -> None:
        """Import the function's module here, for every later child of it.

        The first child imports it itself, as a cold child would (its
        ``start_timeout`` counts that), while the zygote does the same; the
        spare, forked before, is let go and a fresh one forked.
        """
        if module is None or sys_path is None or module in sys.modules:
            return
        sys.path[:] = sys_path
        before = self._children()
        try:
            __import__(module)
            reify_lazy_imports([sys.modules[module]])
        except BaseException:  # each child imports it again, and reports the error
            pass
        if self.orphans is not None:  # processes the import started are the zygote's own
            self.orphans.keep(self._in_our_group(self._children() - before))
        if self.spare is not None:
            self.spare[1].close()  # it leaves at EOF; its exit is collected as a spare's
            self.spare = None
        self.refusal = running_thread()
        gc.freeze()  # what the import made stays unshared by collections in the children

    def _children(self) -> set[int]:
        return set() if self.orphans is None else set(platform.children_of(os.getpid()))

    def _in_our_group(self, pids: set[int]) -> set[int]:
        """Those of ``pids`` in the zygote's process group: what the zygote started itself,
        never what its children left (each child leads a group of its own)."""
        ours = os.getpgid(0)
        found = set()
        for pid in pids - self.exits.watched():
            try:
                if os.getpgid(pid) == ours:
                    found.add(pid)
            except ProcessLookupError:
                pass
        return found

    def _release(self) -> None:
        received = messages.receive(self.notices)
        if received is None:
            _end_family()
        (_, pid), fds = received
        for fd in fds:
            os.close(fd)
        used = self.exits.release(pid)
        if pid == self.handed:
            self.handed = None
            self.reaped_at = self.spare_at = time.monotonic()  # the next spare is due
        self.outbox += messages.frame((messages.REAPED, pid, used))
        self._flush()

    def _leave_zygote(self) -> None:
        """In a new child: its own process group, none of the zygote's machinery, the
        signals a fresh process hears.

        It is a subreaper from here on, so what it starts stays in its tree
        and comes to the zygote when it dies (see ``orphans``). Where the
        parent has a guardian, a zygote that dies (a child may SIGKILL it) does
        not take its children with it at once: the parent ends each one's whole
        tree, which it still holds (``zygote._end_orphans``); the zygote alone
        could end it, and what the child started would go to init. Without a
        guardian, the child dies with the zygote.
        """
        quiet.hear()
        os.setpgid(0, 0)
        zygote = os.getppid()
        # Only what the kernel holds is closed: the zygote's maps and lists, which grow
        # with its children, stay as they are, unfreed (see serve), so no page of theirs
        # is written to, and so copied, in every child.
        close_selector_in_copy(self.selector)
        self.exits.close_in_child()
        self.requests.close()
        self.notices.close()
        if self.spare is not None:
            self.spare[1].close()
        from .._process.platform import tie_to_parent

        if not tie_to_parent(zygote, die_with_it=not _env.MARKED.guarded):
            os._exit(1)  # the zygote is gone already


def _end_family() -> NoReturn:
    """The parent closed its end: kill every child and what it started, then leave."""
    end_family_and_die()
