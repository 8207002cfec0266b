"""The kernel layer of the sandbox (``goforkpy._sandbox.kernel``), on the real kernel.

Each case forks a process that restricts itself and then tries one way out;
the exact error it met comes back over a pipe, and the test checks that the
files around it are untouched.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import FORKS_WITH_THREADS

from goforkpy._sandbox import kernel

pytestmark = [
    pytest.mark.skipif(
        kernel.landlock_abi() < 6 or not kernel.seccomp_works(),
        reason="needs Landlock ABI 6 and seccomp (this machine's kernel has them)",
    ),
    FORKS_WITH_THREADS,  # each check restricts a fork of this process
]


def _system_paths() -> list[str]:
    """What an interpreter needs to go on reading: itself, its library, the system's."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr", "/lib", "/lib64", "/etc"}
    paths |= {entry for entry in sys.path if entry}
    return sorted(paths)


def _in_sandbox(
    attempt: Callable[[], Any],
    *,
    read: list[str] = (),  # type: ignore[assignment]
    write: list[str] = (),  # type: ignore[assignment]
    network: bool = False,
    ports: list[int] | None = None,
    programs: bool = False,
) -> Any:
    """``attempt()`` in a forked process restricted as asked: what it returned, or the
    name of the errno of the OSError it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            kernel.restrict(
                [*_system_paths(), *read],
                list(write),
                network=network,
                ports=ports,
                programs=programs,
            )
            try:
                outcome = {"returned": attempt()}
            except OSError as exc:
                outcome = {"errno": errno.errorcode.get(exc.errno or 0, str(exc))}
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        told = f.read()
    os.waitpid(pid, 0)
    assert told, "the sandboxed process died before it said anything"
    outcome = json.loads(told)
    return outcome.get("returned", outcome.get("errno"))


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret"
    path.parent.mkdir()
    path.write_text("the parent's secret")
    return path


def test_files_outside_cannot_be_read_listed_or_written(secret: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # (a hard link across what the rules allow is EXDEV, as Landlock says it)
    cases: dict[str, tuple[Callable[[], Any], str]] = {
        "read": (secret.read_text, "EACCES"),
        "list": (lambda: os.listdir(secret.parent), "EACCES"),
        "write": (lambda: (secret.parent / "new").write_text("x"), "EACCES"),
        "symlink": (lambda: _via_symlink(scratch, secret), "EACCES"),
        "hard link": (lambda: os.link(secret, scratch / "linked"), "EXDEV"),
        "rename": (lambda: os.rename(secret, scratch / "moved"), "EACCES"),
        "parent's environ": (lambda: Path(f"/proc/{os.getppid()}/environ").read_bytes(), "EACCES"),
        "/proc/self/root": (
            lambda: (Path("/proc/self/root") / str(secret)[1:]).read_text(),
            "EACCES",
        ),
    }
    for name, (attempt, error) in cases.items():
        assert _in_sandbox(attempt, write=[str(scratch)]) == error, name
    assert secret.read_text() == "the parent's secret"
    assert sorted(os.listdir(secret.parent)) == ["secret"]


def _via_symlink(scratch: Path, target: Path) -> str:
    link = scratch / "link"
    link.symlink_to(target)
    return link.read_text()


def test_named_paths_and_the_scratch_directory_work(tmp_path: Path) -> None:
    readable, writable = tmp_path / "readable", tmp_path / "writable"
    readable.mkdir()
    writable.mkdir()
    (readable / "data").write_text("for reading")

    def work() -> str:
        (writable / "out").write_text((readable / "data").read_text().upper())
        return (writable / "out").read_text()

    assert _in_sandbox(work, read=[str(readable)], write=[str(writable)]) == "FOR READING"
    assert _in_sandbox(lambda: (readable / "x").write_text("no"), read=[str(readable)]) == "EACCES"


def _connect(family: socket.AddressFamily, address: tuple[str, int]) -> str:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.connect(address)
        return "connected"


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_the_network_is_off_and_connect_opens_one_port(family: socket.AddressFamily) -> None:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family, socket.SOCK_STREAM) as allowed, socket.socket(family) as other:
        for server in (allowed, other):
            server.bind((host, 0))
            server.listen()
        port, other_port = allowed.getsockname()[1], other.getsockname()[1]
        assert _in_sandbox(lambda: _connect(family, (host, port))) == "EACCES"
        assert _in_sandbox(lambda: _connect(family, (host, port)), ports=[port]) == "connected"
        assert _in_sandbox(lambda: _connect(family, (host, other_port)), ports=[port]) == "EACCES"
        assert _in_sandbox(lambda: _connect(family, (host, port)), network=True) == "connected"
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        made = lambda kind=kind: socket.socket(family, kind).close()  # noqa: E731
        assert _in_sandbox(made, ports=[port]) == "EACCES"
    netlink = getattr(socket, "AF_NETLINK", 16)
    assert _in_sandbox(lambda: socket.socket(netlink, socket.SOCK_RAW).close()) == "EACCES"
    assert _in_sandbox(lambda: socket.socketpair()[0].close()) is None, "Unix sockets work"


@pytest.mark.parametrize("where", ["abstract", "pathname"])
def test_unix_sockets_outside_are_out_of_reach(where: str, tmp_path: Path) -> None:
    """No lone Unix socket (a pathname one is beyond Landlock's rules): a connected
    pair only; and with the network on, an abstract one outside is scoped away."""
    name = f"\0goforkpy-test-{os.getpid()}" if where == "abstract" else str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()

        def reach() -> str:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(name)
            return "connected"

        assert _in_sandbox(reach) == "EACCES"
        assert _in_sandbox(reach, ports=[9]) == "EACCES"
        if where == "abstract":
            assert _in_sandbox(reach, network=True) == "EPERM"


def test_other_processes_cannot_be_signalled_traced_or_read() -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def ptrace() -> None:
        if libc.ptrace(16, os.getppid(), None, None) != 0:  # PTRACE_ATTACH
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    assert _in_sandbox(lambda: os.kill(os.getppid(), signal.SIGUSR1)) == "EPERM"
    assert _in_sandbox(ptrace) == "EPERM"
    assert _in_sandbox(lambda: Path(f"/proc/{os.getppid()}/mem").read_bytes()) == "EACCES"
    assert _in_sandbox(lambda: os.kill(os.getpid(), 0)) is None, "its own process it may"


def test_no_programs_namespaces_mounts_or_terminal_injection() -> None:
    import fcntl
    import termios

    primary, secondary = os.openpty()  # the test's terminal, open before the sandbox

    def inject() -> None:
        fcntl.ioctl(secondary, termios.TIOCSTI, b"x")

    libc = ctypes.CDLL(None, use_errno=True)

    def unshare() -> None:
        if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    try:
        assert _in_sandbox(lambda: os.execv("/bin/sh", ["sh", "-c", "true"])) == "EPERM"
        assert _in_sandbox(inject) == "EPERM"
        assert _in_sandbox(unshare) == "EPERM"
        assert _in_sandbox(_fork_and_reap) == 0, "a plain fork still works"
    finally:
        os.close(primary)
        os.close(secondary)


def _fork_and_reap() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def test_no_capability_is_left_to_a_child_of_root() -> None:
    def capabilities() -> str:
        with open("/proc/self/status") as f:
            return next(line.split()[1] for line in f if line.startswith("CapEff:"))

    assert _in_sandbox(capabilities, read=["/proc/self/status"]) == "0000000000000000"
