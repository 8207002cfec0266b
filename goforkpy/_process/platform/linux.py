"""Linux: /dev/shm for payloads, pidfds, a parent-death signal, subreapers."""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, Callable

_pidfd_ok: "bool | None" = None


def ram_tmpdir() -> "str | None":
    """``/dev/shm`` where it is a writable directory (tmpfs on every mainstream distro)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def watch_exit_supported() -> bool:
    """True where ``os.pidfd_open`` works (Linux 5.3+, Python 3.9+)."""
    global _pidfd_ok
    if _pidfd_ok is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd_ok = True
        except (AttributeError, OSError):  # old kernel, or seccomp forbids it
            _pidfd_ok = False
    return _pidfd_ok


def max_rss_bytes(reported: int) -> int:
    """``ru_maxrss`` in bytes: Linux reports kilobytes."""
    return reported * 1024


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask, not the machine's)."""
    return len(os.sched_getaffinity(0)) or 1


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def tie_to_parent(parent_pid: int, die_with_it: bool) -> bool:
    """In a child: stay findable, and die with the parent; False if it is already gone.

    Makes the child a subreaper, so descendants that double-fork stay in its
    tree, where ``terminate()`` and the guardian find them. With
    ``die_with_it`` (a parent without a guardian) also arms
    ``PR_SET_PDEATHSIG`` (SIGKILL), which works even while the child is stuck
    in C code. The kernel fires it when the parent *thread* that started us
    exits, so parents start children from a thread that lives as long as
    they do. The parent may die before the arming, hence the pid check after.
    Both settings outlive an ``execve``.
    """
    prctl = _prctl()
    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if die_with_it:
        prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    return os.getppid() == parent_pid


def adopt_orphans() -> bool:
    """Become a subreaper: what our descendants orphan (a daemon that double-forks)
    becomes our child, not init's. True: Linux has subreapers."""
    _prctl()(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return True


def prepare_tie() -> None:
    """Load now what ``tie_to_parent`` needs (ctypes), for a child that must not import."""
    _prctl()


def group_and_tie_preexec() -> "Callable[[], None]":
    """A ``preexec_fn`` for a short-lived command (a shell) we wait for.

    It leads its own process group and is SIGKILLed if the calling thread
    (blocked waiting for it) or this process dies.
    """
    prctl, parent = _prctl(), os.getpid()

    def preexec() -> None:
        os.setpgid(0, 0)
        prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


_SIGKILL = 9


_prctl_function: "Any" = None


def _prctl() -> "Any":
    """libc's prctl, through ctypes (loaded on first use, then kept)."""
    global _prctl_function
    if _prctl_function is None:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.restype = ctypes.c_int
        prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
        _prctl_function = prctl
    return _prctl_function


def peer_credentials(sock: "socket.socket") -> "tuple[int | None, int | None]":
    """(pid, uid) of the process at the other end of a Unix socket (SO_PEERCRED).

    The kernel records them when the connection is made: the peer cannot lie.
    """
    import socket
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


def has_exited(pid: int) -> bool:
    """True once our child ``pid`` has exited (or is gone); it is not reaped."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def wait_unreaped(pid: int) -> "int | None":
    """Block until our child ``pid`` has exited, leaving it to be reaped by its owner.

    Returns its subprocess-style returncode, or ``None`` if it was reaped first.
    """
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status  # killed or dumped core: subprocess's convention


def descendant_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (each after its parent), from one pass over /proc/*/stat.

    No psutil here: this runs when a parent has died, and must be quick.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    queue = [pid]
    while queue:
        young = children.get(queue.pop(), [])
        found.extend(young)
        queue.extend(young)
    return found


def has_children() -> bool:
    """Whether this process has a child, running or ended: one ``waitid``, none reaped."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    """The children of ``pid``, whichever of its threads forked them, from /proc."""
    found: list[int] = []
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as f:
                found += [int(child) for child in f.read().split()]
    except FileNotFoundError:  # gone, or a kernel built without CONFIG_PROC_CHILDREN
        if not os.path.exists(f"/proc/{pid}"):
            return []
        return [child for child in descendant_pids(pid) if _parent_of(child) == pid]
    except OSError:
        return found  # a thread ended mid-walk: its children are its process's still
    return found


def _parent_of(pid: int) -> "int | None":
    return _stat_field(f"/proc/{pid}/stat", 1)


def _stat_field(path: str, index: int) -> "int | None":
    """Field ``index`` of a /proc "stat" file, counted from the state after the name
    (``None``: the process or thread has ended)."""
    try:
        with open(path, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[index])


def sealed_memory_supported() -> bool:
    """True where a payload can travel in a sealed memfd (Linux 3.17+, Python 3.8+)."""
    return hasattr(os, "memfd_create") and hasattr(os, "MFD_ALLOW_SEALING")


def new_sealable(name: str) -> int:
    """An anonymous in-memory file, in no filesystem, that can be sealed (``seal``)."""
    return os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)


def seal(fd: int) -> None:
    """Make the memfd ``fd`` unchangeable for good: no write, grow or shrink, no unsealing."""
    import fcntl

    seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)


def is_sealed(fd: int) -> bool:
    """True if nobody can change ``fd``'s contents any more (the kernel guarantees it)."""
    import fcntl

    needed = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & needed == needed
    except OSError:
        return False  # not a memfd


_oom_seen: "int | None" = None


def oom_kills_since_last_look() -> bool:
    """True if the OOM killer has ended a process of our cgroup since the last call.

    Read from the cgroup's ``memory.events`` (v2) or ``memory.oom_control``
    (v1); False where neither can be read (a container that hides them).
    """
    global _oom_seen
    count = _oom_kill_count()
    if count is None:
        return False
    seen, _oom_seen = _oom_seen, count
    return seen is not None and count > seen


def _oom_kill_count() -> "int | None":
    try:
        with open("/proc/self/cgroup") as f:
            groups = dict(line.strip().split(":", 2)[1:] for line in f if line.count(":") >= 2)
    except OSError:
        return None
    places = []
    if "" in groups:  # cgroup v2: "0::/path"
        places.append(f"/sys/fs/cgroup{groups['']}/memory.events")
    if "memory" in groups:  # cgroup v1
        places.append(f"/sys/fs/cgroup/memory{groups['memory']}/memory.oom_control")
    for place in places:
        try:
            with open(place) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


def oom_counter_readable() -> bool:
    """True where this process's cgroup counts OOM kills where we can read it."""
    return _oom_kill_count() is not None


def subreaper_supported() -> bool:
    """True where this kernel has subreapers (``PR_SET_CHILD_SUBREAPER``, Linux 3.4+)."""
    import ctypes

    flag = ctypes.c_int()
    return bool(_prctl()(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), 0, 0, 0) == 0)


def note_oom_kills() -> None:
    """Remember the OOM killer's count now, for ``oom_kills_since_last_look``."""
    oom_kills_since_last_look()


def anonymous_file() -> int:
    """A private, anonymous file (in no directory): a worker's captured output."""
    return os.memfd_create("goforkpy-capture", os.MFD_CLOEXEC)


def resident_bytes(pid: int) -> "int | None":
    """The resident memory of ``pid`` now, in bytes (``None`` if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def thread_ids() -> "list[int] | None":
    """The id of every thread of this process, from /proc/self/task."""
    return [int(entry) for entry in os.listdir("/proc/self/task")]


def thread_name(tid: int) -> "str | None":
    """The name of thread ``tid`` of this process (``None``: it has ended)."""
    try:
        with open(f"/proc/self/task/{tid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return None


def thread_started(tid: int) -> "int | None":
    """When thread ``tid`` started, in clock ticks since boot (``None``: it has ended):
    with its id, what tells it from a later thread given the same id."""
    return _stat_field(f"/proc/self/task/{tid}/stat", 19)


_STACK_BYTES = 16384  # how much of a waiting thread's stack to look through
_RUNNING_WAIT = 0.5  # seconds to wait for a running thread to wait (a pool spins a while)


def thread_libraries(tid: int) -> list[str]:
    """The shared objects whose code addresses lie on thread ``tid``'s stack (innermost
    first): where it waits, and who started it. Empty where it cannot be read, or the
    thread runs on for ``_RUNNING_WAIT`` seconds (only a waiting thread's stack is still).
    """
    import bisect
    import struct

    try:
        stack_pointer = _waiting_stack_pointer(tid)
        if stack_pointer is None:
            return []
        with open("/proc/self/maps", "rb") as f:
            maps = f.read().splitlines()
        code: list[tuple[int, int, str]] = []  # (start, end, path) of each mapping of code
        top = stack_pointer  # the end of the stack's mapping: what lies past it is not its
        for line in maps:
            parts = line.split(maxsplit=5)
            low, _, high = parts[0].partition(b"-")
            first, last = int(low, 16), int(high, 16)
            if first <= stack_pointer < last:
                top = last
            if len(parts) == 6 and b"x" in parts[1] and parts[5].startswith(b"/"):
                code.append((first, last, os.fsdecode(parts[5])))
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            mem.seek(stack_pointer)
            stack = mem.read(min(_STACK_BYTES, top - stack_pointer))
    except (OSError, ValueError, OverflowError):
        return []
    code.sort()
    starts = [start for start, _, _ in code]
    found: list[str] = []
    usable = len(stack) - len(stack) % struct.calcsize("P")
    for (word,) in struct.iter_unpack("P", stack[:usable]):
        at = bisect.bisect_right(starts, word) - 1
        if at >= 0 and word < code[at][1] and code[at][2] not in found:
            found.append(code[at][2])
    return found


def _waiting_stack_pointer(tid: int) -> "int | None":
    """The stack pointer of thread ``tid`` once it waits in a system call (``None``: it
    ran on). Its /proc "syscall" line is "number args... sp pc", or "running"."""
    import time

    deadline = time.monotonic() + _RUNNING_WAIT
    while True:
        with open(f"/proc/self/task/{tid}/syscall", "rb") as f:
            fields = f.read().split()
        if len(fields) >= 3:
            return int(fields[-2], 16)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)
