"""The parent's own death and signals: no orphans, graceful ends, no zombies or fds left.

Children signal readiness ("ready" on stdout) before anything is done to them;
timeouts here are deadlock nets, never what a test measures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import DEADLOCK_NET, RunScript, children, wait_gone

import goforkpy as fork

ORPHAN_SCRIPT = """
import os, subprocess, sys, threading
import goforkpy as fork

@fork.register
def grandchild():
    threading.Event().wait()

@fork.register
def quick():
    pass

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
    if sys.argv[1] == "reused":  # the guardian's slots of reaped children filled again
        for _ in range(3):
            fork.fork("quick").wait()
    fork.fork("child", sys.argv[1]).wait()
"""
ORPHAN_ROUNDS = ["at-once", "settled", "stuck", "reused"] * 7


def _guardians() -> set[int]:
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if any("goforkpy guardian" in part for part in process.info["cmdline"] or ()):
            found.add(process.pid)
    return found


def test_parent_sigkilled_leaves_no_survivor(tmp_path: Path) -> None:
    """The child and every descendant, whatever group or session it moved to: gone within 1 s.

    Rounds kill the parent at once, once the child has settled (its watcher
    thread running), while the child is stuck in C code holding the GIL (so
    only the guardian can act), or after children that ended (the guardian
    finds the live child in a slot one of theirs held).
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
        assert wait_gone(pids, 1.0) == [], f"survivors a second after the parent died ({how})"


STALLED_WRITE_SCRIPT = """
import threading
import goforkpy as fork
from goforkpy._shared import wire

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


def _reruns(parent: int, script: Path) -> list[int]:
    """The descendants of ``parent`` that run ``script``."""
    found = psutil.Process(parent).children(recursive=True)
    return [child.pid for child in found if str(script) in _cmdline(child)]


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
        # the script re-run (not the guardian): a cold child forked by the spawner may
        # not have reached its exec yet
        deadline = time.monotonic() + DEADLOCK_NET
        while not (children := _reruns(parent.pid, script)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert children, "the child was started before its payload was written"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    assert wait_gone(children, DEADLOCK_NET) == []


def test_the_guardian_leaves_with_its_parent(run_script: RunScript) -> None:
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
    assert wait_gone(list(_guardians() - before), DEADLOCK_NET) == []


# A child that says it is ready, then writes "graceful" to the note on SIGTERM.
_GRACEFUL_CHILD = """
@fork.register
def child(path):
    import os, signal, threading
    def on_term(signum, frame):
        open(path, "w").write("graceful")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    with open(path + ".pid", "w") as pid:
        pid.write(str(os.getpid()))
    os.rename(path + ".pid", path + ".ready")
    print("ready", flush=True)
    threading.Event().wait()
"""

SIGNAL_SCRIPT = """
import signal, sys
import goforkpy as fork

USER_HANDLER = sys.argv[2:] == ["--user-handler"]
if USER_HANDLER and not fork.is_child():
    print("before any fork:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
"""
SIGNAL_SCRIPT += (
    _GRACEFUL_CHILD
    + """
def mine(signum, frame):
    print("user handler ran", flush=True)
    sys.exit(7)

if __name__ == "__main__":
    fork.init()
    if USER_HANDLER:
        signal.signal(signal.SIGTERM, mine)
    fork.fork("child", sys.argv[1]).wait()
"""
)


def _assert_ended_gracefully(note: Path, err: str) -> None:
    """The child's SIGTERM handler wrote its note; where it did not, say what is known."""
    if note.exists() and note.read_text() == "graceful":
        return
    ready = Path(f"{note}.ready")
    pid = int(ready.read_text()) if ready.exists() else None
    state = "never got ready" if pid is None else f"pid {pid}"
    if pid is not None:
        state += ", still running" if psutil.pid_exists(pid) else ", gone"
    pytest.fail(f"the child was not ended gracefully ({state}); the parent's stderr:\n{err}")


def _start_parent(
    tmp_path: Path, *options: str, source: str = SIGNAL_SCRIPT
) -> tuple[subprocess.Popen[str], Path]:
    """Run ``source`` as a real parent: (its process, the note its child writes)."""
    script, note = tmp_path / "signals.py", tmp_path / "note"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    parent = subprocess.Popen(
        [sys.executable, str(script), str(note), *options],
        stdin=subprocess.PIPE,
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
    _assert_ended_gracefully(note, err)


_STRAY_SIGNAL = """
import signal, sys, threading
import goforkpy as fork
"""
_STRAY_SIGNAL += (
    _GRACEFUL_CHILD
    + """
def stray():
    sys.stdin.readline()
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

if __name__ == "__main__":
    fork.init()
    fork.spawn("child", (sys.argv[1],), start=sys.argv[2])
    threading.Thread(target=stray, daemon=True).start()
    threading.Event().wait()  # the main thread blocks in C, in a lock's wait
"""
)


@pytest.mark.parametrize("start", ["cold", "warm", "snapshot"])
def test_a_sigterm_caught_by_another_thread_still_ends_children_then_the_parent(
    tmp_path: Path, start: str
) -> None:
    """Python runs handlers in the main thread only; a SIGTERM that another thread took
    leaves the handler due while the main thread sleeps in C. goforkpy sends it again
    to the main thread, so the parent still ends its children and dies of it."""
    parent, note = _start_parent(tmp_path, start, source=_STRAY_SIGNAL)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        _, err = parent.communicate("go\n", timeout=DEADLOCK_NET)
    finally:
        parent.kill()  # where it hung: the leftovers check ends its children
        parent.wait()
    assert parent.returncode == -signal.SIGTERM, err
    _assert_ended_gracefully(note, err)


_MID_START = """
import os, signal, sys, threading, time
import goforkpy as fork
from goforkpy._process import lifeline
"""
_MID_START += (
    _GRACEFUL_CHILD
    + """
@fork.register
def nothing():
    pass

def main_thread_in(function):
    frame = sys._current_frames()[threading.main_thread().ident]
    while frame is not None and frame.f_code.co_name != function:
        frame = frame.f_back
    return frame is not None

def when(done, what):  # a handshake with a deadlock net
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)

def ending_then(record):
    # the child is made and its handler set; its pid is not recorded yet
    def recording(child):
        if not sent:
            sent.append(True)
            when(lambda: os.path.exists(note + ".ready"), "the child's handler")
            if where in ("main thread", "own handler"):
                os.kill(os.getpid(), signal.SIGTERM)
            elif where == "ctrl-c":
                os.kill(os.getpid(), signal.SIGINT)
            elif where == "another thread":
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                when(lambda: main_thread_in("_end_children_then_die"), "the handler")
            else:  # the main thread returns: the interpreter's exit ends the children
                starting.set()
                when(lambda: main_thread_in("_at_exit"), "the exit")
        record(child)
    return recording

sent, starting = [], threading.Event()

if __name__ == "__main__":
    fork.init()
    note, start, where = sys.argv[1:]
    fork.spawn("nothing", start=start).wait()  # goforkpy's handler is in place
    lifeline.track = ending_then(lifeline.track)
    lifeline.expect = ending_then(lifeline.expect)  # a snapshot's pid is told later
    spawn = lambda: fork.spawn("child", (note,), start=start)
    if where == "own handler":  # the program's: it exits, raising SystemExit mid-start
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
    if where in ("main thread", "own handler"):
        spawn()
    elif where == "ctrl-c":
        try:
            spawn()
        except KeyboardInterrupt:
            import psutil
            pid = int(open(note + ".ready").read())
            when(lambda: not psutil.pid_exists(pid), "the child's end")
            sys.exit(4)
    elif where == "another thread":
        threading.Thread(target=spawn).start()
    else:
        threading.Thread(target=spawn, daemon=True).start()
        starting.wait()
        sys.exit(3)
    threading.Event().wait()
"""
)


@pytest.mark.parametrize(
    ("where", "exit_code"),
    [
        ("main thread", -signal.SIGTERM),
        ("own handler", 7),
        ("ctrl-c", 4),
        ("another thread", -signal.SIGTERM),
        ("exit", 3),
    ],
    ids=[
        "SIGTERM in the thread starting it",
        "SIGTERM to the program's own handler",
        "Ctrl+C in the thread starting it",
        "SIGTERM from another thread",
        "exit",
    ],
)
@pytest.mark.parametrize("start", ["cold", "warm", "snapshot"])
def test_a_child_being_started_is_ended_with_the_rest(
    tmp_path: Path, start: str, where: str, exit_code: int
) -> None:
    """The pid of a child being started is recorded a moment after the child is made. A
    SIGTERM in that moment waits for it (in the thread that starts it, for the end of
    the start, whoever's the handler; from another, goforkpy's handler waits for the
    start), as the interpreter's exit waits for a daemon thread's start: the child is
    ended gracefully too, not left to the lifeline's abrupt end. Ctrl+C raises
    KeyboardInterrupt once the start is done, with the child ended and reaped (the
    script exits 4 once its pid is gone), never left running (a snapshot) or a zombie
    (cold and warm) with no handle on it."""
    parent, note = _start_parent(tmp_path, start, where, source=_MID_START)
    try:
        _, err = parent.communicate(timeout=DEADLOCK_NET)
    finally:
        parent.kill()  # where it hung: the leftovers check ends its children
        parent.wait()
    assert parent.returncode == exit_code, err
    _assert_ended_gracefully(note, err)


_SLOW_ZYGOTE = """
import os, sys, threading
if os.environ.setdefault("FIRST_RUN", str(os.getpid())) != str(os.getpid()):
    open(sys.argv[1] + ".zygote", "w").close()  # the zygote, re-running this script
    threading.Event().wait()  # never reaches fork.init()
import goforkpy as fork

@fork.register
def nothing():
    pass

if __name__ == "__main__":
    fork.init()
    fork.spawn("nothing", start="warm").wait()
"""


def test_a_sigterm_while_a_zygote_starts_is_not_held_back(tmp_path: Path) -> None:
    """A start holds the program's signal handlers back only once its child may exist:
    while it waits for its zygote to start (which may take long, or never end), a
    SIGTERM ends the parent at once."""
    parent, note = _start_parent(tmp_path, source=_SLOW_ZYGOTE)
    zygote_running = Path(f"{note}.zygote")
    try:
        deadline = time.monotonic() + DEADLOCK_NET
        while not zygote_running.exists():  # a handshake: the parent waits for its zygote
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.01)
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=DEADLOCK_NET)
    finally:
        parent.kill()
        parent.wait()
    assert parent.returncode == -signal.SIGTERM, err


_LATER_HANDLER = """
import signal, sys, threading
import goforkpy as fork

@fork.register
def nothing():
    pass

calls = []

if __name__ == "__main__":
    fork.init()
    fork.run("nothing")  # goforkpy's handler and its watcher are in place
    signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    print("ready", flush=True)
    sys.stdin.readline()  # SIGTERM comes meanwhile
    threading.Event().wait(0.5)  # five times the watcher's resend interval
    print(len(calls), flush=True)
"""


def test_a_handler_the_program_sets_later_gets_each_signal_once(tmp_path: Path) -> None:
    """goforkpy resends a signal only while the handler is its own: a program that set
    its own since (a server's graceful shutdown) sees one SIGTERM, not a stream of them."""
    script = tmp_path / "later.py"
    script.write_text(_LATER_HANDLER)
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)},
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        parent.send_signal(signal.SIGTERM)
        out, _ = parent.communicate("go\n", timeout=DEADLOCK_NET)
    finally:
        parent.kill()
        parent.wait()
    assert out == "1\n"


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
    _assert_ended_gracefully(note, err)


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
    assert children() == [] or wait_gone([c.pid for c in children()], DEADLOCK_NET) == []
    assert len(os.listdir("/proc/self/fd")) == fds_before


GUARDIAN_TABLE_SCRIPT = """
import subprocess, sys, threading
from goforkpy._process import guardian

assert guardian.ensure_started()
ended = [subprocess.Popen(["true"]) for _ in range(3)]
for process in ended:  # slots filled, then cleared as each is reaped
    guardian.watch(process.pid)
    process.wait()
    guardian.forget(process.pid)
watched = subprocess.Popen(["sleep", "300"], start_new_session=True)  # in a freed slot
kept = subprocess.Popen(["sleep", "300"], start_new_session=True)
guardian.watch(watched.pid)
print(watched.pid, kept.pid, flush=True)
threading.Event().wait()
"""


def test_the_guardian_ends_what_its_table_lists_when_the_parent_is_killed(
    tmp_path: Path,
) -> None:
    """The guardian reads its parent's table of children at EOF: a child listed in a
    slot that reaped children held before is ended; one never listed is not."""
    script = tmp_path / "table.py"
    script.write_text(GUARDIAN_TABLE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    with parent.stdout:
        watched, kept = (int(pid) for pid in parent.stdout.readline().split())
    try:
        parent.kill()
        parent.wait()
        assert wait_gone([watched], DEADLOCK_NET) == [], "the guardian ended the listed child"
        assert wait_gone([kept], 0.0) == [kept], "what was never listed is not the guardian's"
    finally:
        parent.kill()
        parent.wait()
        for pid in (watched, kept):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_gone([watched, kept], DEADLOCK_NET)
