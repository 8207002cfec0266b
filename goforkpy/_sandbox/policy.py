"""``fork.Sandbox``: what a sandboxed child may reach, checked here and made into the
rules its child applies (``inside``), and ``fork.sandbox_support()``.

The parent does the work a child must not be trusted with: it lists what the
child may read (the interpreter, its standard library, ``sys.path``, the
shared libraries) and write (a scratch directory it makes, and removes when
the child has ended), builds the environment from a short list instead of
its own, and caps the child's processes (``RLIMIT_NPROC``; a child of root,
whom it does not bind, takes a user id of its own first). The rules travel
as plain data in the payload's head; nothing is run unsandboxed where the
kernel lacks a part (``SandboxUnavailable``).
"""

from __future__ import annotations

import os
import sys

from .._errors import SandboxUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

MAX_RESULT = 64 * 2**20
PROCESSES = 256  # the cap on a sandbox's processes and threads, without Limits(processes=)
_SHARED_LIBRARIES = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
)
_DEVICES_READ = ("/dev/null", "/dev/zero", "/dev/urandom")
# what libraries ask of the machine at import (psutil, numpy's BLAS, zoneinfo): no secrets
_SYSTEM_FACTS = (
    *("/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu"),
    *("/etc/localtime", "/usr/share/zoneinfo"),
)
_KEPT_ENV = ("PATH", "LANG", "TZ", "PYTHONPATH")  # with LC_*; PYTHONPATH finds goforkpy


class Sandbox:
    """What a sandboxed child may reach (see the guide "Running untrusted code").

    Args:
        read: files or directories (recursive) it may read, beyond the
            interpreter, its standard library, ``sys.path`` and the shared libraries.
        write: files or directories it may write, beyond its scratch directory
            (its ``HOME``, ``TMPDIR`` and working directory).
        network: ``True`` lets it use the network; ``False`` (the default) allows
            no IP, raw or netlink socket and no connection to a Unix socket.
        connect: TCP ports it may connect to (and nothing else on the network).
        programs: ``True`` lets it run programs under ``read`` (inside the same
            sandbox); ``False`` refuses ``execve``.
        results: classes the parent may rebuild from the child's result, beyond
            plain data (rebuilt from their state, never by running their code).
        max_result: the largest result, in bytes, taken from the child.

    Raises:
        ValueError: a path that does not exist, a port out of range, ``connect``
            with ``network=True``, a ``max_result`` that is not positive.
        TypeError: an option of the wrong type.
    """

    __slots__ = ("connect", "max_result", "network", "programs", "read", "results", "write")

    def __init__(
        self,
        *,
        read: Iterable[str | os.PathLike[str]] = (),
        write: Iterable[str | os.PathLike[str]] = (),
        network: bool = False,
        connect: Iterable[int] = (),
        programs: bool = False,
        results: Iterable[type] = (),
        max_result: int = MAX_RESULT,
    ) -> None:
        self.read = _paths("read", read)
        self.write = _paths("write", write)
        self.network = _flag("network", network)
        self.connect = tuple(_port(port) for port in _many("connect", connect))
        if self.network and self.connect:
            raise ValueError(
                f"Sandbox(network=True, connect={list(self.connect)}): connect= limits the "
                "network to those ports; pass one or the other"
            )
        self.programs = _flag("programs", programs)
        self.results = tuple(_many("results", results))
        for cls in self.results:
            if not isinstance(cls, type):
                raise TypeError(f"Sandbox(results=...): {cls!r} is not a class")
        if isinstance(max_result, bool) or not isinstance(max_result, int) or max_result < 1:
            raise ValueError(f"Sandbox(max_result={max_result!r}): give a positive number of bytes")
        self.max_result = max_result

    def __repr__(self) -> str:
        given = [
            f"{name}={getattr(self, name)!r}"
            for name, default in _DEFAULTS.items()
            if getattr(self, name) != default
        ]
        return f"Sandbox({', '.join(given)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sandbox):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self.__slots__))


_DEFAULTS = {
    "read": (),
    "write": (),
    "network": False,
    "connect": (),
    "programs": False,
    "results": (),
    "max_result": MAX_RESULT,
}


def _many(option: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes, os.PathLike)):
        raise TypeError(f"Sandbox({option}={values!r}): give a list, e.g. {option}=[{values!r}]")
    try:
        return list(values)
    except TypeError:
        raise TypeError(f"Sandbox({option}={values!r}): give a list") from None


def _paths(option: str, values: Any) -> tuple[str, ...]:
    paths = []
    for value in _many(option, values):
        path = os.path.abspath(os.fspath(value))
        if not os.path.exists(path):
            raise ValueError(
                f"Sandbox({option}=[{str(value)!r}]): no such file or directory; "
                "create it first, or correct the path"
            )
        paths.append(os.path.realpath(path))
    return tuple(paths)


def _flag(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Sandbox({option}={value!r}): give True or False")
    return value


def _port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"Sandbox(connect=[{port!r}]): a TCP port is a number from 1 to 65535")
    return port


def check(sandbox: object) -> Sandbox | None:
    """``spawn``'s ``sandbox=``: ``None`` or a ``Sandbox``."""
    if sandbox is None or isinstance(sandbox, Sandbox):
        return sandbox
    raise TypeError(f"sandbox={sandbox!r}: pass a fork.Sandbox(...)")


# --- what this machine enforces ----------------------------------------------------


def sandbox_support() -> dict[str, Any]:
    """What this machine enforces of a ``fork.Sandbox``.

    Returns:
        A dict: ``"available"`` (a sandbox can run here), ``"missing"`` (what
        stops it, in words; empty where it can), ``"landlock_abi"``,
        ``"seccomp"``, ``"ports"`` (``connect=`` can be enforced: Landlock ABI 4),
        ``"scoped"`` (signals and abstract Unix sockets kept inside: ABI 6) and
        ``"processes"`` (what caps its processes: ``"rlimit"``; ``"uid"`` for
        root, whose children take a user id of their own first; ``None`` off Linux).
    """
    from .._process import platform

    if not platform.NATIVE or not sys.platform.startswith("linux"):
        missing = ["Linux's Landlock and seccomp (this platform layer has neither)"]
        return {
            "available": False,
            "missing": missing,
            "landlock_abi": 0,
            "seccomp": False,
            "ports": False,
            "scoped": False,
            "processes": None,
        }
    from . import kernel

    abi, seccomp = kernel.landlock_abi(), kernel.seccomp_works()
    processes = "uid" if os.geteuid() == 0 else "rlimit"
    missing = []
    if abi < 1:
        missing.append("Landlock (Linux 5.13, enabled at boot: lsm=landlock)")
    if not seccomp:
        missing.append("seccomp filters on this machine (x86_64 or aarch64)")
    return {
        "available": not missing,
        "missing": missing,
        "landlock_abi": abi,
        "seccomp": seccomp,
        "ports": abi >= 4,
        "scoped": abi >= 6,
        "processes": processes,
    }


def require(sandbox: Sandbox, ports_needed: bool) -> None:
    """Raise ``SandboxUnavailable`` naming what this machine lacks for ``sandbox``."""
    support = _support()
    missing = list(support["missing"])
    if ports_needed and support["available"] and not support["ports"]:
        missing.append("Landlock's TCP rules for connect= (ABI 4, Linux 6.7)")
    if missing:
        raise SandboxUnavailable(
            f"{sandbox!r} cannot be enforced on this machine: it lacks {'; '.join(missing)}; "
            "nothing was started"
        )


_supported: dict[str, Any] | None = None


def _support() -> dict[str, Any]:
    global _supported
    if _supported is None:
        _supported = sandbox_support()
    return _supported


# --- the rules one child applies ---------------------------------------------------


def scratch_of(stem: str) -> str:
    """The scratch directory of the child whose files are named ``stem``."""
    return stem + ".sandbox"


def rules(sandbox: Sandbox, stem: str, processes: int | None) -> tuple[Any, ...]:
    """The rules for one child, as plain data (``inside.enter`` applies them): its
    scratch directory and process cap are made here, removed by ``remove``."""
    require(sandbox, bool(sandbox.connect))
    scratch = scratch_of(stem)
    os.mkdir(scratch, 0o700)
    cap = PROCESSES if processes is None else processes
    own_uid = "uid" if os.geteuid() == 0 else ""  # root: RLIMIT_NPROC binds it under another
    read = (*_readable(), *sandbox.read)
    write = (scratch, "/dev/null", *sandbox.write)
    return (read, write, sandbox.network, sandbox.connect, sandbox.programs, scratch, own_uid, cap)


_read_by_path: dict[tuple[str, ...], list[str]] = {}  # sys.path -> what _readable found


def _readable() -> list[str]:
    """The interpreter, its standard library, ``sys.path`` and the shared libraries
    (looked up again only when ``sys.path`` changed)."""
    key = tuple(sys.path)
    found = _read_by_path.get(key)
    if found is None:
        _read_by_path.clear()
        found = _read_by_path[key] = _look_up_readable()
    return found


def _look_up_readable() -> list[str]:
    found = {os.path.realpath(sys.executable), *_DEVICES_READ, *_SHARED_LIBRARIES, *_SYSTEM_FACTS}
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        found.add(os.path.realpath(prefix))
    for entry in sys.path:
        if entry:
            found.add(os.path.realpath(entry))
    found.add(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # goforkpy
    kept: list[str] = []  # each once, and none beneath another (a rule covers beneath)
    for path in sorted(path for path in found if os.path.exists(path)):
        if not any(path.startswith(above.rstrip("/") + "/") for above in kept):
            kept.append(path)
    return kept


def environment(extra: Mapping[str, str] | None, scratch: str) -> dict[str, str]:
    """A sandboxed child's environment: ``PATH``, ``LANG``, ``LC_*``, ``TZ`` (and the
    ``PYTHONPATH`` that finds goforkpy) from ours, ``HOME`` and ``TMPDIR`` its scratch
    directory, then ``extra``; never the rest."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name in _KEPT_ENV or name.startswith("LC_")
    }
    if scratch:  # a child's; a zygote for sandboxed children has none
        env["HOME"] = env["TMPDIR"] = scratch
    env.update(extra or {})
    return env


def remove(stem: str) -> None:
    """Remove the scratch directory of the ended child of files ``stem``."""
    import shutil

    scratch = scratch_of(stem)
    if os.path.isdir(scratch):
        shutil.rmtree(scratch, ignore_errors=True)
