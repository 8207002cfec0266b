"""What Linux enforces for a sandboxed child: Landlock, seccomp and ``no_new_privs``.

A small ctypes layer of our own: the Landlock bindings on the package index
are pre-releases or unmaintained, and libseccomp's (``pyseccomp``) is a 2021
ctypes wrapper over a library the machine may not have; both kernel
interfaces are a handful of system calls on fixed structures, which this
module writes down once and the sandbox tests exercise on the real kernel.

Applied in the child, in this order (``restrict``): ``no_new_privs`` (a
setuid program gains nothing, and it lets an unprivileged process install
the rest), every capability dropped (a child of root holds none), one
Landlock ruleset (the files it may read and write; with ABI 4 the TCP ports
it may connect to; with ABI 6 no signal to, and no abstract Unix socket of,
a process outside its own domain), then one seccomp filter (no ``ptrace``,
other processes' memory, namespaces, mounts, kernel modules, ``TIOCSTI``;
no sockets but Unix ones unless the network is allowed; no ``execve``
unless programs are). Nothing here undoes itself: the restrictions hold
for the process and everything it starts, until it exits.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform as _platform
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

# --- the system calls, by machine --------------------------------------------------

_MACHINES = {
    # machine: (seccomp's AUDIT_ARCH, {call: number}); Landlock's are the same on both
    "x86_64": (
        0xC000003E,
        {
            "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
            "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
            "pivot_root": 155, "chroot": 161, "move_mount": 429, "open_tree": 428,
            "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
            "mount_setattr": 442, "kexec_load": 246, "kexec_file_load": 320,
            "init_module": 175, "finit_module": 313, "delete_module": 176, "bpf": 321,
            "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
            "request_key": 249, "acct": 163, "swapon": 167, "swapoff": 168,
            "reboot": 169, "socket": 41, "socketpair": 53, "ioctl": 16, "clone": 56,
            "clone3": 435, "execve": 59, "execveat": 322,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
            "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41,
            "chroot": 51, "move_mount": 429, "open_tree": 428, "fsopen": 430,
            "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
            "kexec_load": 104, "kexec_file_load": 294, "init_module": 105,
            "finit_module": 273, "delete_module": 106, "bpf": 280,
            "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
            "request_key": 218, "acct": 89, "swapon": 224, "swapoff": 225,
            "reboot": 142, "socket": 198, "socketpair": 199, "ioctl": 29, "clone": 220,
            "clone3": 435, "execve": 221, "execveat": 281,
        },
    ),
}  # fmt: skip
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446

# --- Landlock ---------------------------------------------------------------------

_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
# filesystem rights, and the ABI that brought the last ones
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_AND_REMOVE = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make anything
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | _TRUNCATE | _IOCTL_DEV  # what a file may get
_BIND_TCP, _CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


_loaded: list[Any] = []  # [the C library, the Landlock ABI], once loaded


def prepare() -> None:
    """Load the C library and ask the Landlock ABI now, once for this process."""
    if not _loaded:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
        _loaded[:] = [libc, None]
        _loaded[1] = _ask_abi()
        _last_capability()
        if seccomp_works():  # the filter most sandboxes take, made once (in a zygote)
            _programs[False, False] = b"".join(_filter(False, False))


def _libc() -> ctypes.CDLL:
    prepare()
    return _loaded[0]  # type: ignore[no-any-return]


def _call(number: int, *args: object) -> int:
    result = int(_libc().syscall(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers (0: none, or not enabled at boot)."""
    prepare()
    return int(_loaded[1])


def _ask_abi() -> int:
    try:
        return _call(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except OSError:
        return 0


def seccomp_works() -> bool:
    """True where this kernel and machine take a seccomp filter from us."""
    if _platform.machine() not in _MACHINES:
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def _fs_rights(abi: int) -> int:
    """Every filesystem right this ABI can handle (so that none is left unhandled)."""
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _MAKE_AND_REMOVE
    for needs, right in ((2, _REFER), (3, _TRUNCATE), (5, _IOCTL_DEV)):
        if abi >= needs:
            rights |= right
    return rights


def _ruleset(abi: int, network_ruled: bool) -> int:
    """A new Landlock ruleset that handles every right this ABI knows (its descriptor)."""
    handled_net = _BIND_TCP | _CONNECT_TCP if network_ruled and abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = struct.pack("<QQQ", _fs_rights(abi), handled_net, scoped)[:size]
    buffer = ctypes.create_string_buffer(attr, size)
    return _call(_LANDLOCK_CREATE_RULESET, buffer, ctypes.c_size_t(size), 0)


def _allow_path(ruleset: int, path: str, rights: int) -> None:
    """Let the ruleset's process have ``rights`` on ``path`` and beneath it (a path that
    does not exist is skipped)."""
    import stat

    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_ONLY  # a file takes no directory right (EINVAL)
        attr = ctypes.create_string_buffer(struct.pack("<Qi", rights, fd), 12)
        _call(_LANDLOCK_ADD_RULE, ruleset, _RULE_PATH_BENEATH, attr, 0)
    finally:
        os.close(fd)


def _allow_port(ruleset: int, port: int) -> None:
    attr = ctypes.create_string_buffer(struct.pack("<QQ", _CONNECT_TCP, port), 16)
    _call(_LANDLOCK_ADD_RULE, ruleset, _RULE_NET_PORT, attr, 0)


def landlock(read: Iterable[str], write: Iterable[str], ports: Iterable[int] | None) -> None:
    """Restrict this process to reading ``read`` and writing ``write`` (and beneath
    them); with ``ports`` (not ``None``), to TCP connections to those ports only, and no
    TCP bind; with ABI 6 and later, to signals and abstract Unix sockets within its own
    domain. Paths that do not exist are skipped.

    Raises:
        OSError: the kernel refused (no Landlock, or a ruleset it cannot take).
    """
    abi = landlock_abi()
    if abi < 1:
        raise OSError(errno.ENOSYS, "this kernel has no Landlock")
    readable = EXECUTE | READ_FILE | READ_DIR
    ruleset = _ruleset(abi, ports is not None)
    try:
        for rights, paths in ((readable, read), (_fs_rights(abi), write)):
            for path in paths:
                _allow_path(ruleset, path, rights)
        for port in ports or ():
            _allow_port(ruleset, port)
        _call(_LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)


# --- no_new_privs and capabilities -------------------------------------------------

_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP, _PR_CAP_AMBIENT = 38, 24, 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2


def no_new_privs() -> None:
    """From now on nothing this process runs gains privileges (setuid, file caps)."""
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def drop_capabilities(bounding: bool = True) -> None:
    """Hold no capability, and be unable to regain any (root's included).

    ``bounding``: empty the bounding set too, which is what a program run
    later could be granted (needless where ``execve`` is refused).
    """
    libc = _libc()
    for cap in range(_last_capability() + 1) if bounding else ():
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # needs CAP_SETPCAP: a no-op without it
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("<Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    empty = bytes(24)  # two {effective, permitted, inheritable} sets of 32 bits, all clear
    if libc.capset(ctypes.create_string_buffer(header), ctypes.create_string_buffer(empty)):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


_last_cap: list[int] = []


def _last_capability() -> int:
    if not _last_cap:
        _last_cap.append(_read_last_capability())
    return _last_cap[0]


def _read_last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63


# --- seccomp -----------------------------------------------------------------------

# BPF, as the kernel's seccomp takes it
_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x06
_RET_ALLOW, _RET_KILL = 0x7FFF0000, 0x80000000
_RET_ERRNO = 0x00050000
_NR, _ARCH = 0, 4
_ARG = (16, 24, 32, 40, 48, 56)  # args[i], its low 32 bits (little-endian)
_ALU_AND_K = 0x54
_AF_UNIX, _AF_INET, _AF_INET6, _SOCK_STREAM, _IPPROTO_TCP = 1, 2, 10, 1, 6
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "unshare", "setns", "mount",
    "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "bpf", "perf_event_open", "userfaultfd", "keyctl",
    "add_key", "request_key", "acct", "swapon", "swapoff", "reboot",
)  # fmt: skip


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def _filter(network: bool | str, programs: bool) -> list[bytes]:
    """The seccomp program: (code, jt, jf, k) instructions, read top to bottom.
    ``network``: ``True`` (any socket), ``"tcp"`` (and TCP ones), ``False`` (Unix only)."""
    arch, calls = _MACHINES[_platform.machine()]
    deny = _RET_ERRNO | errno.EPERM
    program = [_op(_LD_W_ABS, _ARCH), _op(_JEQ_K, arch, 1, 0), _op(_RET_K, _RET_KILL)]
    program.append(_op(_LD_W_ABS, _NR))
    if arch == 0xC000003E:  # x86_64's x32 calls: another table, refused whole
        program += [_op(_JGE_K, 0x40000000, 0, 1), _op(_RET_K, deny)]
    denied = [*_DENIED, *(() if programs else ("execve", "execveat"))]
    for name in denied:
        program += [_op(_JEQ_K, calls[name], 0, 1), _op(_RET_K, deny)]
    # clone3 hides its flags in memory a filter cannot read: ENOSYS sends libc to clone
    program += [_op(_JEQ_K, calls["clone3"], 0, 1), _op(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    program += _arg_test(calls["clone"], 0, _JSET_K, _NAMESPACES, deny)
    program += _arg_test(calls["ioctl"], 1, _JEQ_K, _TIOCSTI, deny)
    program += _arg_test(calls["ioctl"], 1, _JEQ_K, _TIOCLINUX, deny)
    if network is not True:
        program += _sockets(calls["socket"], tcp=network == "tcp", unix=False)
        program += _sockets(calls["socketpair"], tcp=False, unix=True)
    program.append(_op(_RET_K, _RET_ALLOW))
    return program


def _sockets(number: int, tcp: bool, unix: bool) -> list[bytes]:
    """With ``unix``, Unix sockets (``socketpair``: a connected pair, reaching nothing
    outside); with ``tcp``, IPv4 and IPv6 stream sockets (whose connections Landlock
    holds to the allowed ports); nothing else: no UDP, raw or netlink socket, and no
    lone Unix socket, which could connect to a pathname one outside (Landlock does not
    rule those)."""
    refuse = _RET_ERRNO | errno.EACCES
    if not tcp:
        return [
            _op(_JEQ_K, number, 0, 4),
            _op(_LD_W_ABS, _ARG[0]),
            _op(_JEQ_K, _AF_UNIX if unix else 0xFFFFFFFF, 1, 0),
            _op(_RET_K, refuse),
            _op(_LD_W_ABS, _NR),
        ]
    block = [
        _op(_JEQ_K, number, 0, 12),
        _op(_LD_W_ABS, _ARG[0]),
        _op(_JEQ_K, _AF_UNIX if unix else 0xFFFFFFFF, 9, 0),  # on to the next test: allowed
        _op(_JEQ_K, _AF_INET, 1, 0),
        _op(_JEQ_K, _AF_INET6, 0, 6),  # neither: refused
        _op(_LD_W_ABS, _ARG[1]),
        _op(_ALU_AND_K, 0xF),  # the type, without SOCK_NONBLOCK and SOCK_CLOEXEC
        _op(_JEQ_K, _SOCK_STREAM, 0, 3),
        _op(_LD_W_ABS, _ARG[2]),  # and TCP, not another stream protocol (SCTP)
        _op(_JEQ_K, 0, 2, 0),
        _op(_JEQ_K, _IPPROTO_TCP, 1, 0),
        _op(_RET_K, refuse),
        _op(_LD_W_ABS, _NR),
    ]
    return block


def _arg_test(number: int, arg: int, test: int, k: int, deny: int) -> list[bytes]:
    """Deny ``number`` where its argument ``arg`` passes ``test`` against ``k``."""
    return [
        _op(_JEQ_K, number, 0, 4),
        _op(_LD_W_ABS, _ARG[arg]),
        _op(test, k, 0, 1),
        _op(_RET_K, deny),
        _op(_LD_W_ABS, _NR),
    ]


_programs: dict[tuple[bool | str, bool], bytes] = {}  # the filters made, by their options


def seccomp(network: bool | str, programs: bool) -> None:
    """Install the filter (after ``no_new_privs``): the calls listed above fail, EPERM."""
    program = _programs.get((network, programs))
    if program is None:
        program = _programs[network, programs] = b"".join(_filter(network, programs))
    count = len(program) // 8
    instructions = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("<HxxxxxxQ", count, ctypes.addressof(instructions))
    if _libc().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.create_string_buffer(fprog)):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def restrict(
    read: Sequence[str],
    write: Sequence[str],
    *,
    network: bool,
    ports: Sequence[int] | None,
    programs: bool,
) -> None:
    """All of it, in order (see the module docstring): for good, in this process."""
    no_new_privs()
    drop_capabilities(bounding=programs)
    landlock(read, write, None if network else (ports or ()))
    seccomp(True if network else "tcp" if ports else False, programs)
