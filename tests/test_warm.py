"""Warm starts: children forked from a zygote keep every guarantee of cold ones.

What differs is tested too: code before ``init()`` runs once, ``ppid()`` is
the asking process, a zygote with a thread is refused, a dead zygote is
replaced, a zygote that cannot start means a cold start. The whole suite
also runs with ``GOFORKPY_START=warm`` (``make warm``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import DEADLOCK_NET, RunScript, ready, wait_gone

import goforkpy as fork
from goforkpy import _state
from goforkpy._launch import kept_zygotes as zygotes
from goforkpy._launch import methods, zygote
from goforkpy._process import platform


def test_start_method_default_and_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(methods, "_default", None)
    monkeypatch.delenv("GOFORKPY_START", raising=False)
    assert fork.get_start_method() == "cold"
    fork.set_start_method("warm")
    assert fork.get_start_method() == "warm"
    assert fork.fork("add", 1, 2).start == "warm"
    assert fork.spawn("add", (1, 2), start="cold").start == "cold"
    monkeypatch.setattr(methods, "_default", None)
    monkeypatch.setenv("GOFORKPY_START", "warm")
    assert fork.get_start_method() == "warm"


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: fork.set_start_method("hot"), "method='hot' is not a start method"),
        (lambda: fork.set_start_method(None), "pass 'cold' or 'warm'"),  # type: ignore[arg-type]
        (lambda: fork.spawn("add", (1, 2), start="fast"), "start='fast' is not a start method"),
        (lambda: fork.Executor(start="spawn"), "start='spawn' is not a start method"),
        (lambda: fork.Manager().spawn("add", (1, 2), start=1), "start=1 is not a start method"),
    ],
)
def test_bad_start_methods_are_refused(call: object, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        call()  # type: ignore[operator]


def test_bad_environment_start_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(methods, "_default", None)
    monkeypatch.setenv("GOFORKPY_START", "lukewarm")
    with pytest.raises(ValueError, match="GOFORKPY_START='lukewarm' is not a start method"):
        fork.fork("add", 1, 2)


def test_module_is_imported_once_in_the_zygote() -> None:
    """The zygote imports a function's module as its first child does (which imports it
    itself, as a cold child would); every later child has it from the zygote."""
    fork.spawn("where_imported", start="warm").result()  # the first, run alone or not
    first = fork.spawn("where_imported", start="warm").result()
    second = fork.spawn("where_imported", start="warm").result()
    cold = fork.spawn("where_imported", start="cold").result()
    assert first[0] == second[0] not in (first[1], second[1]), "imported by the zygote"
    assert first[2] == second[2] == os.getpid(), "ppid() is the process that asked"
    assert cold[0] == cold[1], "a cold child imports it itself"


def test_by_value_function_starts_warm() -> None:
    offset = 40

    def add_offset(x: int) -> int:
        return x + offset

    fork.register_func("add_offset_warm", add_offset)
    child = fork.spawn("add_offset_warm", (2,), start="warm")
    assert (child.result(), child.start) == (42, "warm")


def test_warm_child_keeps_the_process_options(tmp_path: Path) -> None:
    """Redirects (a pipe and a path), env, cwd and a timeout, as a cold child gets them."""
    out = tmp_path / "out.txt"
    child = fork.spawn(
        "shout_env_and_cwd",
        stdin=fork.PIPE,
        stdout=out,
        stderr=fork.STDOUT,
        env={"GOFORKPY_TEST_VALUE": "seen"},
        cwd=tmp_path,
        timeout=DEADLOCK_NET,
        start="warm",
    )
    child.communicate(b"hello\n")
    assert child.result() == len(b"hello\n")
    assert out.read_text().split() == ["HELLO", "seen", str(tmp_path)]


def test_warm_child_tree_is_terminated() -> None:
    child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE, start="warm")
    ready(child)
    family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    assert family, "the grandchild is running"
    assert os.getpgid(child.pid) == child.pid, "it leads its own process group"
    child.terminate()
    assert child.returncode == -signal.SIGTERM
    child.stdout.close()  # type: ignore[union-attr]
    assert wait_gone([child.pid, *family], DEADLOCK_NET) == []


def test_warm_child_timeout_and_limits() -> None:
    timed = fork.spawn("sleep_for", (300.0,), timeout=0.2, start="warm")
    with pytest.raises(fork.TimeoutExpired, match="timeout"):
        timed.result()
    limited = fork.spawn("open_many", (100,), limits=fork.Limits(open_files=32), start="warm")
    with pytest.raises(OSError, match="Too many open files"):
        limited.result()


def test_many_warm_children_at_once_are_all_reaped() -> None:
    """More exits at once than the zygote's socket buffers hold: none is lost."""
    with fork.Manager() as manager:
        for _ in range(300):
            manager.spawn("sleep_for", (300.0,), start="warm")
        manager.terminate_all(grace=DEADLOCK_NET)
        codes = manager.wait_all(DEADLOCK_NET)
    assert set(codes.values()) == {-signal.SIGTERM}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="lists descriptors in /proc")
def test_a_warm_child_holds_none_of_its_zygotes_descriptors() -> None:
    """The zygote watches every child it forked (a pidfd each, in an epoll set) and
    talks to its parent over two sockets: its children hold none of that, however
    many siblings they have, and though the zygote's maps of them are left unfreed."""
    baseline = fork.spawn("descriptors", start="warm").result(DEADLOCK_NET)
    with fork.Manager() as manager:
        for _ in range(20):
            manager.spawn("sleep_for", (300.0,), start="warm")
        found = fork.spawn("descriptors", start="warm").result(DEADLOCK_NET)
        manager.terminate_all(grace=DEADLOCK_NET)
        manager.wait_all(DEADLOCK_NET)
    kernel_objects = [link for link in found.values() if link.startswith("anon_inode:")]
    assert kernel_objects == [], kernel_objects
    assert sorted(found) == sorted(baseline), (baseline, found)


def test_executor_replaces_a_crashed_worker_warm() -> None:
    from workers import crash_on, pid_of

    with fork.Executor(max_workers=1, start="warm") as pool:
        first = pool.submit(pid_of).result()
        with pytest.raises(fork.ChildCrashed, match="SIGSEGV"):
            pool.submit(crash_on, 1, 1, "segfault").result()
        second = pool.submit(pid_of).result()
        assert first != second
        assert psutil.Process(second).ppid() in zygotes.pids(), "forked by a zygote"


WARM_SCRIPT = """
import os, sys, threading
import goforkpy as fork

with open(sys.argv[1], "a") as log:  # top-level work: once per interpreter
    log.write(f"{os.getpid()}\\n")
if "thread" in sys.argv:
    threading.Thread(target=threading.Event().wait, name="ticker", daemon=True).start()
if "fail" in sys.argv and fork.is_child():
    raise RuntimeError("no database here")

@fork.register
def where():
    return os.getpid(), os.getppid(), fork.ppid()

if __name__ == "__main__":
    fork.init()
    fork.set_start_method("warm")
    results = [fork.run("where") for _ in range(3)]
    print(*[child_pid for child_pid, _, _ in results])
    print(*{zygote for _, zygote, _ in results})
    print(*{asker for _, _, asker in results})
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


def test_code_before_init_runs_once_in_the_zygote(run_script: RunScript, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    done = run_script(WARM_SCRIPT, args=[str(log)])
    assert done.returncode == 0, done.stderr
    children, zygotes, askers = done.stdout.splitlines()
    (zygote,) = zygotes.split()
    ran = _lines(log)
    assert len(ran) == 2, "the parent and the zygote ran the top level, no child did"
    assert ran[1] == zygote and zygote not in children.split()
    assert askers.split() == [ran[0]], "fork.ppid() is the parent, not the zygote"
    assert done.stderr == ""


def test_zygote_with_a_thread_falls_back_to_cold(run_script: RunScript, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    done = run_script(WARM_SCRIPT, args=[str(log), "thread"])
    assert done.returncode == 0, done.stderr
    assert len(_lines(log)) == 1 + 1 + 3, "the refused zygote, then three cold children"
    warnings = [line for line in done.stderr.splitlines() if "fall back to cold" in line]
    assert len(warnings) == 1 and "'ticker'" in warnings[0], done.stderr


def test_zygote_that_fails_gives_the_cold_error(run_script: RunScript, tmp_path: Path) -> None:
    done = run_script(WARM_SCRIPT, args=[str(tmp_path / "log.txt"), "fail"])
    assert done.returncode == 1
    assert "fall back to cold" in done.stderr and "exited before it was ready" in done.stderr
    assert "InitError: the child's script raised RuntimeError: no database here" in done.stderr


def test_zygote_that_cannot_start_means_a_cold_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(zygote, "start_in_group", no_processes)
    # the session's zygotes stay as they were
    monkeypatch.setattr(zygotes, "_zygotes", _state.Local(zygotes._Zygotes))
    with caplog.at_level(logging.WARNING, logger="goforkpy"):
        child = fork.spawn("add", (1, 2), start="warm")
        again = fork.spawn("add", (3, 4), start="warm")
    assert (child.result(), child.start, again.result(), again.start) == (3, "cold", 7, "cold")
    spawner = [  # cold children start through one where there are subreapers
        "cold children start without a spawner, so what they leave running when they end "
        "can outlive them: the zygote could not start ([Errno 11] Resource temporarily "
        "unavailable)"
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "warm starts for functions in modules or sent by value fall back to cold: the "
        "zygote could not start ([Errno 11] Resource temporarily unavailable)",
        *(spawner if platform.NATIVE else []),
    ]


DEAD_ZYGOTE_SCRIPT = """
import os, signal, sys
import goforkpy as fork

@fork.register
def pause():
    print("ready", flush=True)
    signal.pause()

@fork.register
def parent_pid():
    return os.getppid()

if __name__ == "__main__":
    fork.init()
    fork.set_start_method("warm")
    child = fork.spawn("pause", stdout=fork.PIPE)
    assert child.stdout.readline() == b"ready\\n"
    zygote = fork.run("parent_pid")
    os.kill(zygote, signal.SIGKILL)
    try:
        child.result(timeout=60)
    except fork.ChildCrashed as exc:
        print("running child:", exc.signal, exc.reason)
    replaced = fork.spawn("parent_pid")
    print("replaced:", replaced.result() != zygote, replaced.start)
"""


COPY_HOLDS_THE_ZYGOTES_ENDS = """
import os, signal, socket, sys
import goforkpy as fork

@fork.register
def parent_pid():
    return os.getppid()

real, made, copies = socket.socketpair, [], []
held_r, held_w = os.pipe()

def socketpair_and_a_copy(*args):
    pair = real(*args)
    if sys._getframe(1).f_globals.get("__name__") == "goforkpy._launch.zygote":
        made.append(pair)
        if len(made) == 2:  # a copy of us, forked by another thread, say, at this instant
            pid = os.fork()
            if pid == 0:
                os.close(held_w)
                os.read(held_r, 1)  # until we are gone
                os._exit(0)
            copies.append(pid)
    return pair

if __name__ == "__main__":
    fork.init()
    fork.set_start_method("warm")
    socket.socketpair = socketpair_and_a_copy
    fork.run("parent_pid")
    zygote = fork.run("parent_pid")
    socket.socketpair = real
    assert copies, "the copy was made as the zygote started"
    os.kill(zygote, signal.SIGKILL)
    replaced = fork.spawn("parent_pid")
    print("replaced:", replaced.result(timeout=30) != zygote)
    os.kill(copies[0], signal.SIGKILL)
    os.waitpid(copies[0], 0)
"""


def test_a_dead_zygote_is_seen_while_a_copy_holds_its_ends(run_script: RunScript) -> None:
    """A copy of the caller forked as its zygote started holds the zygote's ends of their
    sockets: the zygote's death is seen all the same (its exit shuts our ends down), not
    only at an EOF the copy would hold off, and the next call gets a new zygote."""
    done = run_script(COPY_HOLDS_THE_ZYGOTES_ENDS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["replaced: True"]


def test_dead_zygote_is_replaced(run_script: RunScript) -> None:
    done = run_script(DEAD_ZYGOTE_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["running child: SIGKILL lost-parent", "replaced: True warm"]


def test_warm_up_waits_for_the_zygote(run_script: RunScript) -> None:
    done = run_script(
        """
        import sys, threading
        import goforkpy as fork

        if fork.is_child() and "stuck" in sys.argv:
            threading.Event().wait()  # its imports never finish

        @fork.register
        def nothing():
            pass

        if __name__ == "__main__":
            fork.init()
            try:
                fork.warm_up(timeout=0.5 if "stuck" in sys.argv else 60)
                print("ready")
            except fork.TimeoutExpired as exc:
                print("timed out:", "not ready after 0.5 s" in str(exc))
        """,
        args=["stuck"],
    )
    assert done.stdout.split("\n")[0] == "timed out: True", done.stderr


def test_zygote_and_its_children_die_with_the_parent(tmp_path: Path) -> None:
    """SIGKILL to the parent: the zygote and every warm child's tree gone within 1 s."""
    script = tmp_path / "orphans.py"
    script.write_text(
        """
import os, subprocess, threading
import goforkpy as fork

@fork.register
def child():
    own_session = subprocess.Popen(["sleep", "300"], start_new_session=True)
    print(os.getppid(), os.getpid(), own_session.pid, flush=True)
    threading.Event().wait()

if __name__ == "__main__":
    fork.init()
    fork.spawn("child", start="warm").wait()
"""
    )
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    for _ in range(5):
        parent = psutil.Popen([sys.executable, str(script)], stdout=-1, env=env, text=True)
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 3 and pids[0] != parent.pid, "zygote, warm child, grandchild"
        parent.kill()
        parent.wait()
        parent.stdout.close()
        assert wait_gone(pids, 1.0) == [], "survivors a second after the parent died"


def test_a_zygote_whose_parent_dies_mid_conversation_leaves_quietly() -> None:
    """The parent is SIGKILLed just after a warm start, with the zygote's notices (a new
    spare) still unread: the zygote's next read finds its socket reset. It ends its
    family and leaves, without a word on the stderr it shares with the parent."""
    script = """
import threading
import goforkpy as fork

@fork.register
def wait():
    threading.Event().wait()

if __name__ == "__main__":
    fork.init()
    child = fork.spawn("wait", start="warm")
    print(child.pid, flush=True)
    threading.Event().wait()
"""
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    for _ in range(20):  # the zygote's spare notice is unread at the kill more often than not
        parent = subprocess.Popen(
            [sys.executable, "-c", script], stdout=-1, stderr=-1, env=env, text=True
        )
        assert parent.stdout is not None and parent.stderr is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        stderr = parent.stderr.read()  # EOF once the zygote and its children are gone
        parent.stdout.close()
        parent.stderr.close()
        assert stderr == "", stderr
        assert wait_gone([child], DEADLOCK_NET) == []


def test_first_warm_child_of_a_module_counts_its_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first child imports the module itself (within start_timeout), as a cold one
    would; the zygote imports it meanwhile, and later children find it there."""
    (tmp_path / "slow_for_warm.py").write_text(
        "import time\nimport goforkpy as fork\n\n"
        "if fork.is_child():\n    time.sleep(1.5)  # the start-up under test\n\n"
        "@fork.register\ndef quick_warm(x):\n    return x + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_for_warm  # noqa: F401

    first = fork.spawn("quick_warm", (1,), start_timeout=0.2, start="warm")
    with pytest.raises(fork.TimeoutExpired, match=r"start_timeout=0\.2"):
        first.result(DEADLOCK_NET)
    later = fork.spawn("quick_warm", (2,), start="warm")
    assert later.result(DEADLOCK_NET) == 3


WARM_IMPORTS = """
import goforkpy as fork

@fork.register
def noop():
    return None

if __name__ == "__main__":
    fork.init()
    fork.warm_up()
    for _ in range(2):
        child = fork.spawn("noop", start="warm", stderr=fork.PIPE)
        print(repr(child.communicate()[1].decode()))
"""


def test_a_warm_child_imports_nothing_its_zygote_could_have(run_script: RunScript) -> None:
    """What every warm child needs is loaded once, in the zygote: with the interpreter
    reporting each import (``-X importtime``), the children report none."""
    done = run_script(WARM_IMPORTS, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["''", "''"]


def test_a_zygote_out_of_processes_tries_its_next_spare_later_not_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno
    import socket

    from goforkpy._child import exits, serve

    # exits of its own that touch no signal disposition of this (the test's) process
    monkeypatch.setattr(serve.exits, "new", exits.PidfdExits)
    ends = [*socket.socketpair(), *socket.socketpair()]
    serving = serve._Zygote(ends[1], ends[3])

    def out_of_processes() -> int:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    try:
        assert serving._spare_due()
        monkeypatch.setattr(serve.os, "fork", out_of_processes)
        assert not serving._fork_spare()
        # its loop waits for the next try: it would spin, forking again and again
        assert not serving._spare_due()
        assert serving.spare is None
    finally:
        serving.selector.close()
        for end in ends:
            end.close()
