"""``fork.Sandbox`` (API.md section 18): every way out, tried from a sandboxed child.

Each attempt runs in a cold child, a warm child and an Executor worker, and
asserts the exact failure the code inside meets (the errno name it got, or
what it found) and that the parent and the files around it are untouched.
Beside them, what a sandbox allows works. On the portable layer every start
raises ``SandboxUnavailable`` and nothing runs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import pty
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import DEADLOCK_NET

import goforkpy as fork

WHERE = ["cold", "warm", "executor"]
SUPPORTED = fork.sandbox_support()["available"]
needs_sandbox = pytest.mark.skipif(
    not SUPPORTED, reason="this layer has no sandbox: test_the_portable_layer_refuses_it"
)


@fork.register("sandbox_attempt")
def attempt(what: str, arg: Any = None) -> Any:
    """One way out, from inside: what it returned, or the errno name it met."""
    try:
        return _ATTEMPTS[what](arg)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str) -> str:
    with open(path, "w") as f:
        f.write("from the sandbox")
    return "written"


def _through_symlink(target: str) -> str:
    link = os.path.join(os.environ["HOME"], "link")
    os.symlink(target, link)
    return _write(link)


def _hard_link(target: str) -> str:
    os.link(target, os.path.join(os.environ["HOME"], "linked"))
    return "linked"


def _rename_out(target_dir: str) -> str:
    mine = os.path.join(os.environ["HOME"], "mine")
    _write(mine)
    os.rename(mine, os.path.join(target_dir, "moved"))
    return "moved"


def _ptrace(pid: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
    return "attached"


def _kill(pid: int) -> str:
    os.kill(pid, 0)
    return "signalled"


def _connect(address: tuple[str, int]) -> str:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(DEADLOCK_NET)
        sock.connect(address)
    return "connected"


def _socket(kind: str) -> str:
    family, type_ = {
        "udp": (socket.AF_INET, socket.SOCK_DGRAM),
        "raw": (socket.AF_INET, socket.SOCK_RAW),
        "netlink": (getattr(socket, "AF_NETLINK", 16), socket.SOCK_RAW),
    }[kind]
    socket.socket(family, type_).close()
    return "made"


def _unix(name: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(name)
    return "connected"


def _tiocsti(_: Any) -> str:
    """Type into the terminal the child was given as its stdin."""
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    return "typed"


def _unshare(_: Any) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare")
    return "unshared"


def _mount(_: Any) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", os.environ["HOME"].encode(), b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
    return "mounted"


def _capabilities(_: Any) -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("CapEff:"))


def _fork_bomb(_: Any) -> str:
    children = []
    try:
        for _ in range(100_000):
            pid = os.fork()
            if pid == 0:
                signal.pause()
                os._exit(0)
            children.append(pid)
        return "unbounded"
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _descriptor(fd: int) -> str:
    os.fstat(fd)
    return "open"


def _compiled(source: str) -> Any:
    scope: dict[str, Any] = {}
    exec(compile(source, "<untrusted>", "exec"), scope)
    return scope["answer"]


def _numpy(_: Any) -> list[int]:
    import numpy

    return numpy.arange(3).tolist()  # type: ignore[no-any-return]


def _threads_and_asyncio(_: Any) -> list[int]:
    import asyncio
    import concurrent.futures

    async def main() -> int:
        await asyncio.sleep(0)
        return 2

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        threaded = sorted(pool.map(abs, [-1, -3]))
    return [*threaded, asyncio.run(main())]


def _hoard(size: int) -> int:
    return len(bytearray(size))


def _run_program(path: str) -> str:
    return subprocess.run([path, "-c", "echo ran"], capture_output=True, check=True).stdout.decode()


def _run_alone(path: str) -> str:
    return subprocess.run([path], capture_output=True, check=True).stdout.decode()


_ATTEMPTS = {
    "read": _read,
    "listdir": os.listdir,
    "write": _write,
    "symlink": _through_symlink,
    "hardlink": _hard_link,
    "rename": _rename_out,
    "ptrace": _ptrace,
    "kill": _kill,
    "connect": _connect,
    "socket": _socket,
    "unix": _unix,
    "execve": lambda path: os.execv(path, [path, "-c", "true"]),
    "tiocsti": _tiocsti,
    "unshare": _unshare,
    "mount": _mount,
    "capabilities": _capabilities,
    "fork_bomb": _fork_bomb,
    "descriptor": _descriptor,
    "env": lambda name: os.environ.get(name, "absent"),
    "compiled": _compiled,
    "numpy": _numpy,
    "program": _run_program,
    "run": _run_alone,
    "threads_and_asyncio": _threads_and_asyncio,
    "send": lambda pid: fork.send(pid, b"from the sandbox", timeout=DEADLOCK_NET),
    "spawn": lambda _: fork.run("sandbox_attempt", "env", "PATH"),
    "hoard": _hoard,
    "home": lambda _: (os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"], _write("x")),
}


def sandboxed(where: str, what: str, arg: Any = None, **given: Any) -> Any:
    """``attempt(what, arg)`` in a sandboxed child of ``where``: its result."""
    sandbox = fork.Sandbox(**given)
    if where == "executor":
        with fork.Executor(1, start="warm", sandbox=sandbox) as executor:
            return executor.submit(attempt, what, arg).result(DEADLOCK_NET)
    child = fork.spawn("sandbox_attempt", (what, arg), start=where, sandbox=sandbox)
    return child.result(DEADLOCK_NET)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the sandbox, with a secret in it."""
    where = tmp_path / "outside"
    where.mkdir()
    (where / "secret").write_text("the parent's secret")
    return where


def _untouched(outside: Path) -> None:
    assert sorted(path.name for path in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "the parent's secret"


# --- the filesystem --------------------------------------------------------------------


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_files_outside_cannot_be_read_listed_or_written(where: str, outside: Path) -> None:
    secret = str(outside / "secret")
    assert sandboxed(where, "read", secret) == "EACCES"
    assert sandboxed(where, "listdir", os.path.expanduser("~")) == "EACCES"
    assert sandboxed(where, "listdir", str(outside)) == "EACCES"
    assert sandboxed(where, "write", str(outside / "new")) == "EACCES"
    assert sandboxed(where, "write", secret) == "EACCES"
    assert sandboxed(where, "symlink", secret) == "EACCES"
    assert sandboxed(where, "hardlink", secret) == "EXDEV"  # Landlock: across its rules
    assert sandboxed(where, "rename", str(outside)) == "EXDEV"
    _untouched(outside)


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_other_processes_files_in_proc_are_out_of_reach(where: str) -> None:
    me = os.getpid()
    assert sandboxed(where, "read", f"/proc/{me}/environ") == "EACCES"
    assert sandboxed(where, "read", f"/proc/{me}/mem") == "EACCES"
    assert sandboxed(where, "read", "/proc/self/root/etc/hostname") == "EACCES"


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_named_paths_and_the_scratch_directory_work(where: str, outside: Path) -> None:
    secret, written = outside / "secret", outside / "written"
    assert sandboxed(where, "read", str(secret), read=[secret]) == "the parent's secret"
    assert sandboxed(where, "write", str(written), write=[outside]) == "written"
    assert written.read_text() == "from the sandbox"
    assert sandboxed(where, "home") == (True, "written")


# --- other processes, privileges, the terminal -------------------------------------------


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_the_parent_and_other_processes_cannot_be_signalled_or_traced(where: str) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        for pid in (os.getpid(), other.pid):
            assert sandboxed(where, "kill", pid) == "EPERM"
            assert sandboxed(where, "ptrace", pid) == "EPERM"
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_no_programs_namespaces_mounts_terminal_or_capabilities(where: str) -> None:
    assert sandboxed(where, "execve", "/bin/sh") == "EPERM"
    assert sandboxed(where, "unshare") == "EPERM"
    assert sandboxed(where, "mount") == "EPERM"
    assert sandboxed(where, "capabilities") == "0000000000000000"


@needs_sandbox
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_no_typing_into_the_terminal_it_was_given(start: str) -> None:
    leader, follower = pty.openpty()
    try:
        with open(follower, "rb", closefd=False) as terminal:
            child = fork.spawn(
                "sandbox_attempt",
                ("tiocsti",),
                start=start,
                stdin=terminal,
                sandbox=fork.Sandbox(),
            )
            assert child.result(DEADLOCK_NET) == "EPERM"
    finally:
        os.close(leader)
        os.close(follower)


@needs_sandbox
@pytest.mark.parametrize("where", ["cold", "warm"])
def test_programs_run_inside_the_same_sandbox(where: str, outside: Path) -> None:
    """A program under ``read`` runs with ``programs=True``; one outside it does not (a
    copy of the shell in a directory of the test's: /bin may be under the prefix)."""
    import shutil

    shell = str(outside / "sh")
    shutil.copy(os.path.realpath("/bin/sh"), shell)
    assert sandboxed(where, "program", shell, programs=True, read=[shell]) == "ran\n"
    assert sandboxed(where, "program", shell, programs=True) == "EACCES", "not under read"
    assert sandboxed(where, "execve", shell, read=[shell]) == "EPERM"


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="making a setuid program of another user's")
@pytest.mark.parametrize("where", ["cold", "warm"])
def test_a_setuid_program_gains_nothing(where: str, tmp_path: Path) -> None:
    """``id`` made setuid to nobody says euid=65534 when run plainly, and nothing of it
    inside a sandbox (no_new_privs)."""
    import shutil

    program = tmp_path / "id"
    shutil.copy("/usr/bin/id", program)
    os.chown(program, 65534, -1)
    os.chmod(program, 0o4755)
    assert "euid=65534" in subprocess.run([program], capture_output=True, text=True).stdout
    found = sandboxed(where, "run", str(program), programs=True, read=[program])
    assert found.startswith("uid=") and "euid=65534" not in found, found


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_a_fork_bomb_is_capped_inside(where: str) -> None:
    assert sandboxed(where, "fork_bomb") == "EAGAIN"


# --- the network -------------------------------------------------------------------------


@pytest.fixture(params=["127.0.0.1", "::1"])
def server(request: pytest.FixtureRequest) -> Any:
    family = socket.AF_INET6 if ":" in request.param else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listening:
        listening.bind((request.param, 0))
        listening.listen(8)
        yield request.param, listening.getsockname()[1]


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_the_network_is_off_unless_allowed(where: str, server: tuple[str, int]) -> None:
    assert sandboxed(where, "connect", server) == "EACCES"
    assert sandboxed(where, "connect", server, connect=[server[1]]) == "connected"
    assert sandboxed(where, "connect", server, connect=[server[1] ^ 1]) == "EACCES"
    assert sandboxed(where, "connect", server, network=True) == "connected"
    for kind in ("udp", "raw", "netlink"):
        assert sandboxed(where, "socket", kind) == "EACCES"


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_unix_sockets_outside_are_out_of_reach(where: str, tmp_path: Path) -> None:
    for name in (f"\0goforkpy-{os.getpid()}", str(tmp_path / "listener")):
        with socket.socket(socket.AF_UNIX) as listening:
            listening.bind(name)
            listening.listen(8)
            assert sandboxed(where, "unix", name) == "EACCES"


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_messages_and_children_of_its_own_are_refused_by_name(where: str) -> None:
    """Messages are bytes, never unpickled; but a sandbox reaches no socket outside it."""
    for what, arg in (("send", os.getpid()), ("spawn", None)):
        with pytest.raises(fork.SandboxedError, match="inside a sandbox") as refused:
            sandboxed(where, what, arg)
        assert refused.value.type_name == "goforkpy._errors.ForkError"


# --- what it inherits --------------------------------------------------------------------


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_no_secret_environment_and_no_inherited_descriptor(
    where: str, monkeypatch: pytest.MonkeyPatch, outside: Path
) -> None:
    monkeypatch.setenv("GOFORKPY_TEST_SECRET", "s3cret")
    assert sandboxed(where, "env", "GOFORKPY_TEST_SECRET") == "absent"
    assert sandboxed(where, "env", "PATH") == os.environ["PATH"]
    with open(outside / "secret") as f:
        os.set_inheritable(f.fileno(), True)
        assert sandboxed(where, "descriptor", f.fileno()) == "EBADF"


@needs_sandbox
@pytest.mark.parametrize("where", ["cold", "warm"])
def test_env_given_to_spawn_is_there(where: str) -> None:
    child = fork.spawn(
        "sandbox_attempt",
        ("env", "GIVEN"),
        start=where,
        env={"GIVEN": "yes"},
        sandbox=fork.Sandbox(),
    )
    assert child.result(DEADLOCK_NET) == "yes"


# --- what comes back ---------------------------------------------------------------------


class Hostile:
    """Unpickled, it would write a file: in a parent, that is the attack."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(self.path), "the child ran code in its parent"))


class HostileError(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(self.path), "the child ran code in its parent"))


def _send_raw(path: str, status: str) -> None:
    """What a hostile child does: skip goforkpy's encoder, send its own pickle."""
    from goforkpy import _env
    from goforkpy._child import telling
    from goforkpy._shared import protocol, wire

    marked = _env.MARKED
    body = pickle.dumps(Hostile(path) if status == protocol.OK else (HostileError(path),))
    assembled = wire.assemble((status, "p"), [body], [])
    result = protocol.result_path(marked.payload or "")
    telling.send_sealed(result, bytes.fromhex(marked.key or ""), assembled, always=True)
    os._exit(0)


@fork.register("sandbox_hostile")
def hostile(what: str, path: str) -> Any:
    if what == "result":
        return Hostile(path)
    if what == "exception":
        raise HostileError(path)
    _send_raw(path, what)


@needs_sandbox
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_nothing_that_comes_back_runs_code_in_the_parent(start: str, tmp_path: Path) -> None:
    target = tmp_path / "pwned"

    def run(what: str) -> Any:
        child = fork.spawn(
            "sandbox_hostile", (what, str(target)), start=start, sandbox=fork.Sandbox()
        )
        return child.result(DEADLOCK_NET)

    with pytest.raises(fork.PayloadError, match=r"test_sandbox\.Hostile, which is not plain"):
        run("result")
    with pytest.raises(fork.SandboxedError) as raised:
        run("exception")
    assert raised.value.type_name == f"{__name__}.HostileError"
    assert "HostileError" in raised.value.remote_traceback
    for status in ("ok", "raised"):
        with pytest.raises(fork.PayloadError, match="another format than plain data"):
            run(status)
    assert not target.exists()


@needs_sandbox
def test_allowed_classes_come_back_rebuilt_from_their_state() -> None:
    child = fork.spawn("sandbox_point", start="warm", sandbox=fork.Sandbox(results=[Point]))
    assert child.result(DEADLOCK_NET) == Point(1, 2)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


@fork.register("sandbox_point")
def _point() -> Point:
    return Point(1, 2)


@fork.register("sandbox_big")
def big(size: int) -> bytes:
    return b"x" * size


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_a_result_past_max_result_is_refused_unread(where: str) -> None:
    box = fork.Sandbox()
    with pytest.raises(fork.PayloadError, match=r"past the sandbox's max_result=67108864"):
        if where == "executor":
            with fork.Executor(1, sandbox=box) as executor:
                executor.submit(big, 1 << 30).result(DEADLOCK_NET)
        else:
            fork.spawn("sandbox_big", (1 << 30,), start=where, sandbox=box).result(DEADLOCK_NET)
    small = fork.Sandbox(max_result=1 << 20)
    child = fork.spawn("sandbox_big", (1 << 19,), start="warm", sandbox=small)
    assert len(child.result(DEADLOCK_NET)) == 1 << 19


# --- what works inside ---------------------------------------------------------------------


@needs_sandbox
@pytest.mark.parametrize("where", WHERE)
def test_code_strings_numpy_threads_and_asyncio_run_inside(where: str) -> None:
    assert sandboxed(where, "compiled", "answer = sum(range(10))") == 45
    assert sandboxed(where, "numpy") == [0, 1, 2]
    assert sandboxed(where, "threads_and_asyncio") == [1, 3, 2]


@needs_sandbox
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_limits_still_apply_inside(start: str) -> None:
    limits = fork.Limits(memory="300M")
    child = fork.spawn(
        "sandbox_attempt", ("hoard", 1 << 30), start=start, sandbox=fork.Sandbox(), limits=limits
    )
    with pytest.raises(fork.ChildCrashed) as crashed:
        child.result(DEADLOCK_NET)
    assert crashed.value.reason == "memory-limit"


# --- its errors ------------------------------------------------------------------------


def test_a_snapshot_refuses_a_sandbox() -> None:
    with pytest.raises(ValueError, match="a snapshot child is a copy of this process's memory"):
        fork.spawn(attempt, ("env", "PATH"), start="snapshot", sandbox=fork.Sandbox())
    with pytest.raises(ValueError, match="a snapshot child is a copy of this process's memory"):
        fork.isolated(attempt, start="snapshot", sandbox=fork.Sandbox())


@pytest.mark.parametrize(
    ("given", "error", "match"),
    [
        ({"read": ["/no/such/path"]}, ValueError, "no such file or directory"),
        ({"read": "/tmp"}, TypeError, r"give a list, e\.g\. read=\['/tmp'\]"),
        ({"connect": [0]}, ValueError, "a TCP port is a number from 1 to 65535"),
        ({"connect": [80], "network": True}, ValueError, "pass one or the other"),
        ({"network": "yes"}, TypeError, "give True or False"),
        ({"results": [1]}, TypeError, "is not a class"),
        ({"max_result": 0}, ValueError, "give a positive number of bytes"),
    ],
)
def test_bad_options_are_named(given: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fork.Sandbox(**given)


def test_sandbox_must_be_a_sandbox() -> None:
    with pytest.raises(TypeError, match=r"pass a fork\.Sandbox"):
        fork.spawn("sandbox_attempt", ("env", "PATH"), sandbox={"network": False})  # type: ignore[arg-type]


@pytest.mark.skipif(SUPPORTED, reason="this machine enforces it")
@pytest.mark.parametrize("where", WHERE)
def test_the_portable_layer_refuses_it(where: str) -> None:
    support = fork.sandbox_support()
    assert not support["available"] and support["missing"]
    with pytest.raises(fork.SandboxUnavailable, match="nothing was started"):
        sandboxed(where, "env", "PATH")


SECRET_AT_START = """
import os, sys
import goforkpy as fork

@fork.register
def look(needle):
    with open("/proc/self/environ", "rb") as f:
        environ = f.read()
    with open("/proc/self/maps") as f:
        stack = next(line for line in f if line.rstrip().endswith("[stack]"))
    low, high = (int(bound, 16) for bound in stack.split()[0].split("-"))
    with open("/proc/self/mem", "rb") as f:
        f.seek(low)
        memory = f.read(high - low)
    named = "GOFORKPY_TEST_SECRET" in os.environ
    return needle.encode() in environ, needle.encode() in memory, named

if __name__ == "__main__":
    fork.init()
    os.environ["GOFORKPY_TEST_SECRET"] = "".join(reversed("terces-eht"))  # before any child
    needle = "".join(reversed("terces-eht"))
    box = fork.Sandbox()
    for start in ("cold", "warm"):
        print(start, fork.spawn("look", (needle,), start=start, sandbox=box).result())
    with fork.Executor(1, start="warm", sandbox=box) as executor:
        print("executor", executor.submit(look, needle).result())
    print("unsandboxed", fork.spawn("look", (needle,), start="warm").result())
"""


@needs_sandbox
def test_no_sandboxed_child_holds_the_programs_environment(run_script: Any) -> None:
    """Not in ``os.environ``, not in ``/proc/self/environ``, not on its stack: a warm
    one comes from a zygote started with a sandbox's environment."""
    done = run_script(SECRET_AT_START)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "cold (False, False, False)",
        "warm (False, False, False)",
        "executor (False, False, False)",
        "unsandboxed (True, True, True)",
    ]


@needs_sandbox
def test_every_entry_point_takes_a_sandbox(outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Manager.spawn, fork.isolated (a child per call, and reused workers) and the joblib
    backend run their functions inside it."""
    import joblib

    import goforkpy.joblib
    from goforkpy._executor import reused

    monkeypatch.setattr(reused, "_pools", reused.kept.kept())  # pools of the test's own

    secret, box = str(outside / "secret"), fork.Sandbox()
    with fork.Manager() as manager:
        child = manager.spawn("sandbox_attempt", ("read", secret), sandbox=box)
        assert child.result(DEADLOCK_NET) == "EACCES"
    for isolate in ("task", "worker"):
        wrapped = fork.isolated(attempt, isolate=isolate, sandbox=box)
        assert wrapped("read", secret) == "EACCES"
        assert "sandbox=Sandbox()" in repr(wrapped)
    with joblib.parallel_config(backend="goforkpy", n_jobs=2, sandbox=box):
        found = joblib.Parallel()(joblib.delayed(attempt)("read", secret) for _ in range(3))
    assert found == ["EACCES"] * 3
    goforkpy.joblib.shutdown()
    for executor in reused._pools.get().executors.values():
        executor.shutdown()
    _untouched(outside)


@needs_sandbox
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_a_child_that_cannot_start_leaves_no_scratch_directory(start: str, tmp_path: Path) -> None:
    """The leftovers check of every test looks in the private directory."""
    with pytest.raises(OSError):
        fork.spawn(
            "sandbox_attempt",
            ("env", "PATH"),
            start=start,
            sandbox=fork.Sandbox(),
            cwd=tmp_path / "missing",
        ).result(DEADLOCK_NET)
