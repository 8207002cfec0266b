"""The guardian: a tiny watchdog that outlives its parent just long enough.

When a parent dies by SIGKILL nothing in it runs, and a child's own cleanup
may not get the chance either (it may be stuck in C code), so what the child
started would survive: in its process group, or in groups and sessions of
its own. The guardian, started before the parent's first child in a session
of its own (so terminal signals and group kills aimed at the parent miss it)
and detached from it (a double fork: never the parent's child, never its
zombie), holds the read end of a pipe whose write end only the parent has,
and a file the parent keeps its children's pids in: each written into a slot
as the child starts, cleared as it is reaped (a write to a file in memory,
which wakes nobody: telling the guardian over its pipe cost a warm call
0.2 ms, a cold one 0.5). At EOF (the parent is gone, however it went) it
reads the file, and stops every listed child and all of its descendants,
found by parentage while the child still holds them (on Linux each child is
a subreaper, so even orphaned descendants stay in its tree), then SIGKILLs
them all and each child's process group.
On Linux it first gives the zygotes and the spawner, which end their own
families at the same EOF, half a second to do so: two walkers stopping and
killing the same tree at once could each leave what the other stopped.

Children of a guarded parent do not arm ``PR_SET_PDEATHSIG``: the kernel
would kill them before their tree could be walked. Where the guardian could
not start, they arm it, and only their own process group is then sure to go.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from .._env import FROZEN, HELPER
from .._state import Local, close_quietly
from . import platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# Runs in `python -I -S -c`: nothing but builtins, so it is up in milliseconds.
# argv[1] is "proc" where /proc lists the processes, "ps" elsewhere; argv[2] the
# descriptor of the parent's table of children: a 4-byte little-endian pid per slot.
_CODE = """\
# goforkpy guardian
import os, sys
if os.fork():
    os._exit(0)
table = int(sys.argv[2])
sys.stdin.buffer.read()  # nothing comes: EOF is the parent's end
listed = os.pread(table, os.fstat(table).st_size, 0)
roots = {int.from_bytes(listed[at:at + 4], "little") for at in range(0, len(listed) - 3, 4)}
roots.discard(0)

def parents():
    found = {}
    if sys.argv[1] == "proc":
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/" + entry + "/stat", "rb") as f:
                    stat = f.read()
                found[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    else:
        with os.popen("ps -A -o pid= -o ppid=") as ps:
            for line in ps:
                pid, ppid = line.split()
                found[int(pid)] = int(ppid)
    return found

def family():
    young = {}
    for pid, ppid in parents().items():
        young.setdefault(ppid, []).append(pid)
    members, queue = set(), [root for root in roots]
    while queue:
        pid = queue.pop()
        members.add(pid)
        queue.extend(young.get(pid, ()))
    return members

def alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False

if sys.argv[1] == "proc":  # subreapers (zygotes, spawners) end their own families first:
    import time  # give them half a second before walking over what is left
    deadline = time.monotonic() + 0.5
    while any(alive(pid) for pid in roots) and time.monotonic() < deadline:
        time.sleep(0.005)

stopped, quiet = set(), 0
for _ in range(20):  # stopped members cannot fork: stop what is new until nothing is
    new = family() - stopped
    quiet = 0 if new else quiet + 1
    if quiet == 2:  # twice: a member dying mid-walk hides its young from one walk
        break
    for pid in new:
        try:
            os.kill(pid, 19)
        except OSError:
            pass
    stopped |= new
for pgid in roots | stopped:  # the groups they lead hold members orphaned to init
    try:
        os.killpg(pgid, 9)
    except OSError:
        pass
for pid in stopped:
    try:
        os.kill(pid, 9)
    except OSError:
        pass
"""
MARK = "# goforkpy guardian"


class _Watchdog:
    """This process's guardian: the write end of the pipe it reads (-1: none could start)
    and the table of children it reads at EOF, a slot per live child."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # a new one with each process's own guardian
        self.slots: dict[int, int] = {}  # pid -> its slot
        self.free: list[int] = []  # slots cleared, to fill again
        try:
            self.table = platform.anonymous_file()
        except OSError:
            self.table = self.write_end = -1
        else:
            self.write_end = _start(self.table)
            if self.write_end < 0:  # no guardian to read it
                os.close(self.table)
                self.table = -1

    def watch(self, pid: int) -> None:
        with self.lock:
            if self.write_end < 0 or pid in self.slots:
                return
            slot = self.free.pop() if self.free else len(self.slots)
            self.slots[pid] = slot
            self._write(slot, pid)

    def forget(self, pid: int) -> None:
        with self.lock:
            slot = self.slots.pop(pid, None)
            if slot is not None:
                self._write(slot, 0)
                self.free.append(slot)

    def _write(self, slot: int, pid: int) -> None:
        try:
            os.pwrite(self.table, pid.to_bytes(4, "little"), slot * 4)
        except OSError:  # no memory for the file's next page: lifelines (and
            self.write_end = -1  # PDEATHSIG) remain, as where no guardian started

    def disown(self, handing: bool) -> None:
        """In a forked copy: let go of the pipe, or the guardian would never see EOF, and
        of the table, which is the original's."""
        if self.table >= 0:
            close_quietly(self.table)
        if self.write_end >= 0:
            close_quietly(self.write_end)


_guardian: Local[_Watchdog] = Local(_Watchdog, _Watchdog.disown)


def ensure_started() -> bool:
    """Start this process's guardian if it is not running; True if it is."""
    return _guardian.get().write_end >= 0


def watch(pid: int) -> None:
    """Have the guardian end this child's tree if we die before it ends."""
    _guardian.get().watch(pid)


def forget(pid: int) -> None:
    """The child was reaped: its pid may be reused, so stop watching it."""
    _guardian.get().forget(pid)


def _start(table: int) -> int:
    """Start a guardian that reads ``table`` at EOF; the write end of its pipe, or -1 if
    it cannot be had."""
    read_end, write_end = os.pipe()
    walk = "proc" if platform.NATIVE else "ps"
    if FROZEN:  # the binary is the only interpreter: its fork.init() runs us (run_here)
        argv, env = [sys.executable], {**os.environ, HELPER: f"guardian:{walk}:{table}"}
    else:
        argv, env = [sys.executable, "-I", "-S", "-c", _CODE, walk, str(table)], None
    try:
        starter = subprocess.Popen(
            argv,
            env=env,
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            pass_fds=(table,),
            start_new_session=True,
        )
    except OSError:
        os.close(write_end)
        return -1
    finally:
        os.close(read_end)
    _reap_soon(starter)
    return write_end


def is_guardian(pid: int) -> bool:
    """True if ``pid`` is a goforkpy guardian (Linux: by its command line or environment).

    In a subreaper (an Executor worker, a zygote) the guardian of goforkpy used
    inside it is a child once its starter has left; it is a helper, not a
    leftover.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if MARK.encode() in f.read():
                return True
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{HELPER}=guardian:".encode() in f.read()
    except OSError:
        return False


def run_here(argument: str) -> NoReturn:
    """Be a guardian in this process (a frozen application's binary, run for it);
    ``argument`` is its walk and its table's descriptor, as ``walk:fd``."""
    sys.argv[1:] = argument.split(":")
    exec(compile(_CODE, MARK, "exec"), {"__name__": "__goforkpy_guardian__"})
    os._exit(0)


def _reap_soon(starter: subprocess.Popen[bytes]) -> None:
    """Reap the starter (it forks the guardian and leaves at once) without waiting for it."""
    from .._errors import ForkError
    from . import reaper

    def reaped(returncode: int, usage: object) -> None:
        starter.returncode = returncode

    try:
        reaper.watch(starter.pid, reaped, lambda: None)
    except ForkError:
        starter.wait()  # no reaper thread to be had: a few milliseconds here instead
