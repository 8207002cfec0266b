"""Process control: trees, grace, timeouts, orphans, signals, stdio, limits, asyncio.

Children signal readiness ("ready" on stdout) before anything is done to them;
timeouts here are deadlock nets, never what a test measures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import goforkpy as fork

DEADLOCK_NET = 60.0


def _ready(child: fork.Child) -> list[str]:
    """Wait for the child's 'ready' line; return the words after it."""
    assert child.stdout is not None
    words = child.stdout.readline().decode().split()
    assert words[:1] == ["ready"], words
    return words[1:]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], within: float) -> list[int]:
    """Pids still alive after ``within`` seconds (polling the process table)."""
    deadline = time.monotonic() + within
    alive = [p for p in pids if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [p for p in alive if not _gone(p)]
    return alive


def test_sigterm_ignored_means_sigkill_after_grace() -> None:
    child = fork.spawn("ignore_term_then_sleep", stdout=fork.PIPE)
    _ready(child)
    child.terminate(grace=0.2)
    assert child.returncode == -signal.SIGKILL
    assert repr(child).endswith("exited with SIGKILL>")
    child.stdout.close()  # type: ignore[union-attr]


def test_terminate_reaches_a_grandchild_in_its_own_session() -> None:
    child = fork.spawn("grandchild_in_own_session", stdout=fork.PIPE)
    (grandchild,) = map(int, _ready(child))
    assert os.getsid(grandchild) != os.getsid(child.pid)
    child.terminate()
    assert child.returncode == -signal.SIGTERM
    assert _wait_gone([grandchild], DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_kill_reaches_the_whole_tree() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE)
    _ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    assert family
    child.kill()
    assert child.returncode == -signal.SIGKILL
    assert _wait_gone(family, DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_leftovers_in_the_group_die_with_the_child() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE)
    _ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    os.kill(child.pid, signal.SIGKILL)  # only the child: its sleep is left behind
    child.wait(DEADLOCK_NET)
    assert _wait_gone(family, DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_send_signal_goes_to_the_group() -> None:
    child = fork.spawn("ready_then_sleep", stdout=fork.PIPE)
    _ready(child)
    child.send_signal(signal.SIGINT)
    assert child.wait(DEADLOCK_NET) == 1  # KeyboardInterrupt raised in the function
    with pytest.raises(KeyboardInterrupt):
        child.result()
    child.stdout.close()  # type: ignore[union-attr]


def test_kill_tree_on_any_pid() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    try:
        deadline = time.monotonic() + DEADLOCK_NET
        while len(psutil.Process(shell.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        family = [shell.pid, *(p.pid for p in psutil.Process(shell.pid).children())]
        signalled = fork.kill_tree(shell.pid, grace=DEADLOCK_NET)
        assert sorted(family) == signalled
    finally:
        shell.wait(DEADLOCK_NET)
    assert _wait_gone(family, DEADLOCK_NET) == []
    assert fork.kill_tree(shell.pid) == [], "a vanished pid is not an error"


def test_timeout_ends_a_sleeping_tree() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE, timeout=0.5, grace=0.5)
    _ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    with pytest.raises(fork.TimeoutExpired) as caught:
        child.result(timeout=DEADLOCK_NET)
    assert caught.value.timeout == 0.5 and caught.value.name == "sleep_with_grandchild"
    assert "ran past its timeout" in str(caught.value)
    with pytest.raises(fork.TimeoutExpired):
        child.wait()
    assert _wait_gone(family, DEADLOCK_NET) == []
    child.stdout.close()  # type: ignore[union-attr]


def test_timeout_not_reached_changes_nothing() -> None:
    assert fork.spawn("add", (1, 2), timeout=DEADLOCK_NET).result() == 3


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"timeout": 0}, ValueError, "timeout=0"),
        ({"timeout": -1.5}, ValueError, "positive"),
        ({"grace": -1}, ValueError, "grace=-1"),
        ({"limits": {"memory": 1}}, TypeError, r"fork\.Limits"),
    ],
)
def test_bad_spawn_options_are_refused(options: dict, error: type, text: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=text):
        fork.spawn("add", (1, 2), **options)


def test_megabytes_on_both_pipes_without_deadlock() -> None:
    size = 10 << 20
    child = fork.spawn("chatter", (size,), stdout=fork.PIPE, stderr=fork.PIPE)
    out, err = child.communicate(timeout=DEADLOCK_NET)
    assert out is not None and err is not None and len(out) == len(err) == size
    assert child.result() == size


def test_stdin_fed_and_read() -> None:
    child = fork.spawn("shout_back", stdin=fork.PIPE, stdout=fork.PIPE)
    out, err = child.communicate(b"hello child", timeout=DEADLOCK_NET)
    assert (out, err) == (b"HELLO CHILD", None)
    assert child.result() == len(b"hello child")


def test_communicate_input_needs_a_stdin_pipe() -> None:
    child = fork.spawn("add", (1, 2))
    with pytest.raises(ValueError, match=r"stdin=fork\.PIPE"):
        child.communicate(b"lost")
    assert child.result() == 3


def test_stderr_tail_of_a_crash() -> None:
    child = fork.spawn("complain_then_crash", stderr=fork.PIPE)
    with pytest.raises(fork.ChildCrashed) as caught:
        child.result(timeout=DEADLOCK_NET)
    assert caught.value.signal == "SIGABRT"
    tail = caught.value.stderr_tail
    assert tail is not None and tail.splitlines()[-1] == "complaint 29"
    assert "complaint 0" not in tail
    child.stderr.close()  # type: ignore[union-attr]


def test_child_forked_from_a_thread_that_exits_lives_on() -> None:
    started: list[fork.Child] = []
    thread = threading.Thread(
        target=lambda: started.append(fork.spawn("read_line", stdin=fork.PIPE))
    )
    thread.start()
    thread.join()
    (child,) = started
    assert child.is_alive()  # PR_SET_PDEATHSIG did not fire when its thread ended
    child.communicate(b"still here\n", timeout=DEADLOCK_NET)
    assert child.result() == "still here\n"


# --- limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "call", "error", "check"),
    [
        pytest.param(
            fork.Limits(memory="256M"),
            ("allocate", (1 << 30,)),
            MemoryError,
            None,
            id="memory",
        ),
        pytest.param(
            fork.Limits(cpu_seconds=1),
            ("spin", ()),
            fork.ChildCrashed,
            lambda e: e.signal in ("SIGXCPU", "SIGKILL"),
            id="cpu",
        ),
        pytest.param(
            fork.Limits(open_files=64),
            ("open_many", (100,)),
            OSError,
            lambda e: "Too many open files" in str(e),
            id="open-files",
        ),
    ],
)
def test_limits_trip(limits: fork.Limits, call: tuple, error: type, check) -> None:  # type: ignore[no-untyped-def,type-arg]
    name, args = call
    child = fork.spawn(name, args, limits=limits)
    with pytest.raises(error) as caught:
        child.result(timeout=DEADLOCK_NET)
    assert check is None or check(caught.value)


def test_file_size_limit(tmp_path: Path) -> None:
    target = tmp_path / "big"
    limits = fork.Limits(file_size="1M")
    with pytest.raises(OSError, match="File too large"):
        fork.spawn("write_file", (str(target), 2 << 20), limits=limits).result()
    assert fork.spawn("write_file", (str(target), 1000), limits=limits).result() == 1000


def test_every_limit_is_applied_in_the_child() -> None:
    """Including processes (RLIMIT_NPROC), which root is exempt from tripping."""
    limits = fork.Limits(memory="1G", cpu_seconds=30, open_files=200, processes=500, file_size="5M")
    applied = fork.spawn("rlimits", limits=limits).result(timeout=DEADLOCK_NET)
    assert applied == {
        "RLIMIT_AS": (1 << 30, 1 << 30),
        "RLIMIT_CPU": (30, 31),
        "RLIMIT_NOFILE": (200, 200),
        "RLIMIT_NPROC": (500, 500),
        "RLIMIT_FSIZE": (5 << 20, 5 << 20),
    }


def test_limits_within_bounds_let_the_function_run() -> None:
    limits = fork.Limits(memory="1G", cpu_seconds=60, open_files=256, file_size=10 << 20)
    assert fork.spawn("allocate", (10 << 20,), limits=limits).result() == 10 << 20


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"memory": "lots"}, ValueError, "optional unit"),
        ({"memory": -5}, ValueError, "must be positive"),
        ({"cpu_seconds": "10"}, TypeError, "expected an int"),
        ({"open_files": 1.5}, TypeError, "expected an int"),
        ({"open_files": 10**12}, ValueError, "hard limit"),
    ],
)
def test_bad_limits_are_named(kwargs: dict, error: type, text: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=text):
        fork.spawn("add", (1, 2), limits=fork.Limits(**kwargs))


def test_limits_sizes_and_repr() -> None:
    limits = fork.Limits(memory="1.5G", file_size="10KiB")
    assert limits.memory == 3 << 29 and limits.file_size == 10 << 10  # type: ignore[attr-defined]
    assert repr(limits) == f"Limits(memory={3 << 29}, file_size=10240)"
    assert limits == fork.Limits(memory=3 << 29, file_size=10240)
    with pytest.raises(AttributeError, match="immutable"):
        limits.memory = 5  # type: ignore[attr-defined]


# --- asyncio -----------------------------------------------------------------------


def test_run_async_and_wait_async() -> None:
    async def main() -> tuple[int, int, int]:
        child = fork.fork("add", 2, 2)
        code = await child.wait_async()
        gathered = await asyncio.gather(*(fork.run_async("add", i, i) for i in range(3)))
        return code, await child.result_async(), sum(gathered)

    assert asyncio.run(main()) == (0, 4, 6)


def test_cancelled_task_leaves_no_process() -> None:
    async def main() -> int:
        child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE)
        await asyncio.get_running_loop().run_in_executor(None, _ready, child)
        family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
        task = asyncio.ensure_future(child.result_async())
        await asyncio.sleep(0)  # let the task start waiting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert child.returncode == -signal.SIGTERM
        child.stdout.close()  # type: ignore[union-attr]
        return len(_wait_gone([child.pid, *family], DEADLOCK_NET))

    assert asyncio.run(main()) == 0


def test_wait_for_timeout_terminates() -> None:
    async def main() -> int | None:
        child = fork.fork("sleep_for", 300.0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(child.wait_async(), 0.2)
        return child.returncode

    assert asyncio.run(main()) == -signal.SIGTERM


# --- the parent's own death and signals -------------------------------------------------

ORPHAN_SCRIPT = """
import os, subprocess, sys, threading
import goforkpy as fork

@fork.register
def grandchild():
    threading.Event().wait()

@fork.register
def child(how):
    forked = fork.fork("grandchild")
    bare = subprocess.Popen(["sleep", "300"])  # started without goforkpy
    own_group = subprocess.Popen(["sleep", "300"], preexec_fn=os.setpgrp)
    own_session = subprocess.Popen(["sleep", "300"], start_new_session=True)
    if how == "settled":
        threading.Event().wait(0.3)  # its watcher thread has armed what it arms
    pids = [os.getpid(), forked.pid, bare.pid, own_group.pid, own_session.pid]
    print(*pids, flush=True)
    if how == "stuck":  # in C code, holding the GIL: none of its own threads can run
        import ctypes
        ctypes.PyDLL(None).pause()
    threading.Event().wait()

if __name__ == "__main__":
    fork.init()
    fork.fork("child", sys.argv[1]).wait()
"""
ORPHAN_ROUNDS = ["at-once", "settled", "stuck"] * 7


def _guardians() -> set[int]:
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if any("goforkpy guardian" in part for part in process.info["cmdline"] or ()):
            found.add(process.pid)
    return found


def test_parent_sigkilled_leaves_no_survivor(tmp_path: Path) -> None:
    """The child and every descendant, whatever group or session it moved to: gone within 1 s.

    Rounds kill the parent at once, once the child has settled (its watcher
    thread running), or while the child is stuck in C code holding the GIL
    (so only the guardian can act).
    """
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    for how in ORPHAN_ROUNDS:
        parent = subprocess.Popen(
            [sys.executable, str(script), how], stdout=subprocess.PIPE, env=env, text=True
        )
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 5, "the child and its four descendants are running"
        parent.kill()
        parent.wait()
        parent.stdout.close()
        assert _wait_gone(pids, 1.0) == [], f"survivors a second after the parent died ({how})"


STALLED_WRITE_SCRIPT = """
import threading
import goforkpy as fork
from goforkpy._forking import wire

@fork.register
def size(data):
    return len(data)

def stall(*args, **kwargs):  # the child has started; its payload is never finished
    print("writing", flush=True)
    threading.Event().wait()

if __name__ == "__main__":
    fork.init()
    wire.write_assembled = wire.write_sealed = stall
    fork.fork("size", bytes(2 << 20))  # big: written while the child starts
"""


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone, or a zombie
        return []


def test_parent_sigkilled_while_writing_a_big_payload(tmp_path: Path) -> None:
    """The child waiting for its payload goes with the parent; it does not wait forever."""
    script = tmp_path / "stalled.py"
    script.write_text(STALLED_WRITE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"writing\n"
        children = [  # the script re-run: not the guardian, nor its exiting first fork
            child.pid
            for child in psutil.Process(parent.pid).children()
            if str(script) in _cmdline(child)
        ]
        assert len(children) == 1, "the child was started before its payload was written"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    assert _wait_gone(children, DEADLOCK_NET) == []


def test_the_guardian_leaves_with_its_parent(run_script) -> None:  # type: ignore[no-untyped-def]
    before = _guardians()
    source = """
    import goforkpy as fork

    @fork.register
    def nothing():
        return None

    if __name__ == "__main__":
        fork.init()
        fork.run("nothing")
    """
    assert run_script(source).returncode == 0
    assert _wait_gone(list(_guardians() - before), DEADLOCK_NET) == []


SIGNAL_SCRIPT = """
import signal, sys
import goforkpy as fork

USER_HANDLER = sys.argv[2:] == ["--user-handler"]
if USER_HANDLER and not fork.is_child():
    print("before any fork:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)

@fork.register
def child(path):
    import os, signal, threading
    def on_term(signum, frame):
        open(path, "w").write("graceful")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    threading.Event().wait()

def mine(signum, frame):
    print("user handler ran", flush=True)
    sys.exit(7)

if __name__ == "__main__":
    fork.init()
    if USER_HANDLER:
        signal.signal(signal.SIGTERM, mine)
    fork.fork("child", sys.argv[1]).wait()
"""


def _start_parent(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], Path]:
    """Run SIGNAL_SCRIPT as a real parent: (its process, the note its child writes)."""
    script, note = tmp_path / "signals.py", tmp_path / "note"
    script.write_text(SIGNAL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    parent = subprocess.Popen(
        [sys.executable, str(script), str(note), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    return parent, note


@pytest.mark.parametrize(
    ("sig", "exit_code"),
    [(signal.SIGINT, -signal.SIGINT), (signal.SIGTERM, -signal.SIGTERM)],
    ids=["SIGINT", "SIGTERM"],
)
def test_parent_signal_ends_children_gracefully(tmp_path: Path, sig: int, exit_code: int) -> None:
    parent, note = _start_parent(tmp_path)
    assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
    parent.send_signal(sig)
    _, err = parent.communicate(timeout=DEADLOCK_NET)
    assert parent.returncode == exit_code, err
    assert note.read_text() == "graceful"


def test_user_signal_handlers_are_chained_not_replaced(tmp_path: Path) -> None:
    """goforkpy installs nothing on import, keeps the user's SIGTERM handler,
    and still ends the children gracefully when the parent exits."""
    parent, note = _start_parent(tmp_path, "--user-handler")
    assert parent.stdout is not None
    assert parent.stdout.readline() == "before any fork: True\n"
    assert parent.stdout.readline() == "ready\n"
    parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=DEADLOCK_NET)
    assert out == "user handler ran\n", err
    assert parent.returncode == 7
    assert note.read_text() == "graceful"


def test_many_forks_leave_no_zombie_and_no_fd() -> None:
    """1,000 forks ending every way; the autouse fixture checks fds and processes too."""
    endings = [
        ("add", (1, 2)),
        ("raise_value", ("x",)),
        ("os_exit", (3,)),
        ("system_exit", (4,)),
        ("segfault", ()),
    ]
    fds_before = len(os.listdir("/proc/self/fd"))
    batch: list[fork.Child] = []
    for i in range(1000):
        name, args = endings[i % len(endings)]
        batch.append(fork.fork(name, *args))
        if len(batch) == 8:
            for child in batch:
                child.wait(DEADLOCK_NET)
            batch.clear()
    for child in batch:
        child.wait(DEADLOCK_NET)
    assert (
        psutil.Process().children() == []
        or _wait_gone([c.pid for c in psutil.Process().children()], DEADLOCK_NET) == []
    )
    assert len(os.listdir("/proc/self/fd")) == fds_before
