"""How a zygote learns that one of its children ended: two twins behind one face.

``PidfdExits`` (Linux): a pidfd per child tells of its exit while it stays
unreaped; the zygote reaps it only once the parent has recorded the exit
(``release``), so until then its pid cannot be reused and a signal the parent
sends can never reach another process. ``SignalExits`` (any POSIX system):
SIGCHLD wakes the zygote, which reaps at once with ``waitpid``.
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    import resource
    from typing import Tuple, Union

    Exits = Union["PidfdExits", "SignalExits"]
    Used = Tuple[int, float, float]  # ru_maxrss, ru_utime, ru_stime


def _returncode(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _used(rusage: resource.struct_rusage) -> Used:
    return rusage.ru_maxrss, rusage.ru_utime, rusage.ru_stime


class PidfdExits:
    """One pidfd per child; each becomes readable when its child exits."""

    def __init__(self) -> None:
        self._pidfds: dict[int, int] = {}  # pidfd -> pid
        self._unreaped: dict[int, int] = {}  # pid -> pidfd, exited or not

    def add(self, pid: int) -> list[int]:
        """Watch ``pid``; the descriptors to add to the zygote's selector."""
        pidfd = os.pidfd_open(pid)
        self._pidfds[pidfd], self._unreaped[pid] = pid, pidfd
        return [pidfd]

    def fds(self) -> list[int]:
        return []

    def watched(self) -> set[int]:
        """Every child watched and not yet reaped, exited or not."""
        return set(self._unreaped)

    def ended(self, fd: int) -> list[tuple[int, int]]:
        """(pid, returncode) for the child whose pidfd ``fd`` became readable."""
        pid = self._pidfds.pop(fd)
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:  # pragma: no cover - a pidfd is readable only after the exit
            self._pidfds[fd] = pid
            return []
        code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        return [(pid, code)]

    def release(self, pid: int) -> Used | None:
        """The parent recorded the exit: reap the child now; what it used."""
        pidfd = self._unreaped.pop(pid, None)
        if pidfd is None:
            return None
        os.close(pidfd)
        try:
            return _used(os.wait4(pid, 0)[2])
        except ChildProcessError:
            return None

    def close_in_child(self) -> None:
        """Close the pidfds, leaving the maps unwritten (their pages stay shared)."""
        for pidfd in self._pidfds:
            os.close(pidfd)


class SignalExits:
    """SIGCHLD writes to a wake-up pipe; every exited child is reaped at once."""

    def __init__(self) -> None:
        self._used: dict[int, Used] = {}  # reaped, until released
        self._wake_r, wake_w = os.pipe()
        for fd in (self._wake_r, wake_w):
            os.set_blocking(fd, False)
        self._wake_w = wake_w
        signal.signal(signal.SIGCHLD, _ignore)  # a handler, so the wake-up fd is written
        signal.set_wakeup_fd(wake_w)

    def add(self, pid: int) -> list[int]:
        return []

    def fds(self) -> list[int]:
        return [self._wake_r]

    def watched(self) -> set[int]:
        return set()  # every child is reaped the moment it exits

    def ended(self, fd: int) -> list[tuple[int, int]]:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        found = []
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self._used[pid] = _used(rusage)
            found.append((pid, _returncode(status)))
        return found

    def release(self, pid: int) -> Used | None:
        """Reaped already, when it was reported: what it used."""
        return self._used.pop(pid, None)

    def close_in_child(self) -> None:
        self._used.clear()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)


def _ignore(signum: int, frame: object) -> None:
    """SIGCHLD's handler: the wake-up fd does the work."""


def new() -> Exits:
    from .._process import platform

    return PidfdExits() if platform.watch_exit_supported() else SignalExits()
