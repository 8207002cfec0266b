"""Nothing a child starts outlives it: every start method, every ending, every shape of
descendant (API.md section 4).

Each case's descendants run ``sleep`` with a token of their own as its argument,
so the test finds them in the process table wherever they went (their own
group or session, or re-parented after a double fork), and asserts none is
left one second plus ``grace`` after the child ended.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import goforkpy as fork
from goforkpy._process import platform

native_only = pytest.mark.skipif(
    not platform.NATIVE, reason="the portable layer has no subreapers: see test_portable_*"
)

GRACE = 0.5
ENDINGS = ["return", "raise", "os._exit", "SIGKILL", "segfault", "timeout"]
SHAPES = ["same group", "own group", "own session", "daemon", "daemon at once"]
METHODS = ["cold", "warm", "snapshot", "isolated", "reused worker", "executor", "manager"]
_tokens = itertools.count()


def _token() -> str:
    """A ``sleep`` argument no other process has: 300.<pid><n> seconds."""
    return f"300.{os.getpid()}{next(_tokens):04d}"


def _started_sleep(token: str, **popen: object) -> None:
    subprocess.Popen(["sleep", token], **popen)  # type: ignore[call-overload]  # returns after exec


def _daemon(token: str, wait: bool) -> None:
    """Double-fork a ``sleep`` in a session of its own; with ``wait``, return once it runs."""
    read, write = os.pipe()  # the write end closes at the exec: EOF says it runs
    if os.fork() == 0:
        os.close(read)
        os.setsid()
        if os.fork() == 0:
            os.set_inheritable(write, False)
            os.execvp("sleep", ["sleep", token])
        os._exit(0)
    os.close(write)
    os.wait()
    if wait:
        os.read(read, 1)
    os.close(read)


def leave_and_end(shape: str, ending: str, token: str) -> str:
    """Start a descendant of ``shape``, then end as ``ending`` says."""
    if shape == "daemon at once":
        _daemon(token, wait=False)
    elif shape == "daemon":
        _daemon(token, wait=True)
    elif shape == "same group":
        _started_sleep(token)
    elif shape == "own group":
        _started_sleep(token, preexec_fn=os.setpgrp)
    else:
        _started_sleep(token, start_new_session=True)
    if ending == "raise":
        raise ValueError("ended by raising")
    if ending == "os._exit":
        os._exit(3)
    if ending == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    if ending == "segfault":
        import faulthandler

        faulthandler._sigsegv()
    if ending == "timeout":
        time.sleep(300)
    return "returned"


fork.register(leave_and_end)


def holders(token: str) -> list[int]:
    """The pids of live processes whose command line holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if token.encode() in argv and state != b"Z":
            found.append(int(entry))
    return found


def _run(method: str, shape: str, ending: str, token: str) -> None:
    """Run one case to its end; what the call raised or returned is not the point here."""
    args = (shape, ending, token)
    timeout = 0.5 if ending == "timeout" else None
    options = {"timeout": timeout, "grace": GRACE}
    try:
        if method in ("cold", "warm", "snapshot"):
            fn = leave_and_end if method == "snapshot" else "leave_and_end"
            fork.spawn(fn, args, start=method, **options).result(timeout=60)
        elif method == "isolated":
            fork.isolated(leave_and_end, **options)(*args)
        elif method == "reused worker":
            try:
                fork.isolated(leave_and_end, isolate="worker", **options)(*args)
            finally:
                _let_reused_workers_go()
        elif method == "executor":
            with fork.Executor(1, task_timeout=timeout, grace=GRACE) as pool:
                pool.submit(leave_and_end, *args).result(timeout=60)
        else:
            with fork.Manager() as manager:
                manager.spawn("leave_and_end", args, **options).result(timeout=60)
    except (ValueError, fork.ChildCrashed, fork.TimeoutExpired):
        pass


def _let_reused_workers_go() -> None:
    """The reused workers live as long as this process: the test ends them itself."""
    from goforkpy._executor import reused

    pools = reused._pools.get()
    with pools.lock:
        executors, pools.executors = list(pools.executors.values()), {}
    for executor in executors:
        executor.shutdown()


@native_only
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("method", METHODS)
def test_nothing_outlives_the_child(method: str, ending: str) -> None:
    """One case per method and ending, with every shape of descendant at once."""
    tokens = {shape: _token() for shape in SHAPES}
    for shape, token in tokens.items():
        _run(method, shape, ending, token)
    deadline = time.monotonic() + 1.0 + GRACE
    left = {shape: holders(token) for shape, token in tokens.items()}
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
        left = {shape: holders(token) for shape, token in tokens.items() if holders(token)}
    assert not any(left.values()), f"alive one second plus grace after the end: {left}"


def leave_stubborn(token: str) -> None:
    """Leave a process that ignores SIGTERM, in a session of its own, and return."""
    script = f"trap '' TERM; exec sleep {token}"  # ignored stays ignored across the exec
    subprocess.Popen(["sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60  # a deadlock net: return once it runs
    while not holders(token) and time.monotonic() < deadline:
        time.sleep(0.005)


@native_only
@pytest.mark.parametrize("method", ["cold", "warm", "snapshot", "executor"])
def test_what_ignores_sigterm_is_killed_after_grace(method: str) -> None:
    """SIGTERM first, SIGKILL only once the child's grace has passed."""
    token, grace = _token(), 2.0
    began = time.monotonic()
    if method == "executor":
        with fork.Executor(1, grace=grace) as pool:
            pool.submit(leave_stubborn, token).result(timeout=60)
    else:
        fn = leave_stubborn if method == "snapshot" else "leave_stubborn"
        fork.spawn(fn, (token,), start=method, grace=grace).result(timeout=60)
    if method in ("snapshot", "executor"):  # the result comes once what it left is gone
        assert time.monotonic() - began >= grace, "SIGKILLed before its grace was over"
    else:  # the zygote or spawner ends it after the result came
        time.sleep(0.5)
        assert holders(token), "SIGKILLed before its grace was over"
    deadline = time.monotonic() + 1.0 + grace
    while holders(token) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert holders(token) == []


fork.register(leave_stubborn)


PARENT_DIES = """
import os, signal, sys, threading
import goforkpy as fork

@fork.register
def start_a_family(token):
    import subprocess
    if os.fork() == 0:  # a daemon, at once
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", token])
        os._exit(0)
    subprocess.Popen(["sleep", token], start_new_session=True)
    subprocess.Popen(["sleep", token])
    threading.Event().wait()

@fork.register
def nothing():
    pass

fork.init()
if __name__ == "__main__":
    start, delay, token = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    if start == "warm":
        fork.warm_up()
    else:
        fork.run("nothing")  # the spawner and the guardian are up, as in a program that ran
    print("ready", flush=True)
    sys.stdin.readline()
    threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
    fork.spawn("start_a_family", (token,), start=start)
    threading.Event().wait()
"""


@native_only
@pytest.mark.parametrize("start", ["cold", "warm", "snapshot"])
def test_parent_killed_at_any_moment_of_a_start(tmp_path: Path, start: str) -> None:
    """SIGKILL to the parent at 31 moments from 0 to 50 ms after the call: whatever the
    child had started by then is gone within one second."""
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent(PARENT_DIES))
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    survivors = {}
    for step in range(31):
        delay, token = step * 0.05 / 30, _token()
        parent = subprocess.Popen(
            [sys.executable, str(script), start, str(delay), token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert parent.stdout is not None and parent.stdin is not None
        assert parent.stdout.readline() == b"ready\n"
        parent.stdin.write(b"go\n")
        parent.stdin.flush()
        assert parent.wait(timeout=60) == -signal.SIGKILL
        parent.stdin.close()
        parent.stdout.close()
        deadline = time.monotonic() + 1.0
        while holders(token) and time.monotonic() < deadline:
            time.sleep(0.02)
        if holders(token):
            survivors[f"{delay * 1000:.1f} ms"] = holders(token)
    for pids in survivors.values():
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    assert survivors == {}


@pytest.mark.parametrize("start", ["cold", "warm"])
@pytest.mark.parametrize("ending", ["return", "SIGKILL"])
def test_portable_the_childs_group_goes_with_it(start: str, ending: str) -> None:
    """What holds everywhere, subreapers or not (docs/platforms.md): a descendant in the
    child's own process group is gone once the child ended, however it ended."""
    token = _token()
    _run(start, "same group", ending, token)
    deadline = time.monotonic() + 1.0 + GRACE
    while _alive(token) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(token)


@pytest.mark.parametrize("shape", ["own group", "own session"])
def test_portable_terminate_ends_the_whole_tree(shape: str) -> None:
    """Everywhere: terminate() ends every descendant still in the tree, in whatever group
    or session (a daemon orphaned to init is out of reach without subreapers)."""
    token = _token()
    child = fork.spawn("leave_and_end", (shape, "timeout", token), grace=GRACE)
    deadline = time.monotonic() + 60  # a deadlock net: the descendant starts
    while not _alive(token) and time.monotonic() < deadline:
        time.sleep(0.01)
    child.terminate()
    assert not _alive(token)


def _alive(token: str) -> bool:
    """True while a process has ``token`` in its command line (psutil: any POSIX system)."""
    import psutil

    for process in psutil.process_iter(["cmdline", "status"]):
        if token in (process.info["cmdline"] or []) and process.info["status"] != "zombie":
            return True
    return False
