"""Leaving an Executor block or a map early ends the running tasks in steps (API.md
section 10): the exception raised inside the task (KeyboardInterrupt for Ctrl+C,
CancelledError otherwise, so its ``finally`` runs), SIGTERM to its worker's tree
after ``grace``, then SIGKILL. Ctrl+C comes through a real terminal."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET, FORKS_WITH_THREADS, wait_gone

import goforkpy as fork

TASKS = """
import os, signal, sys, time
import goforkpy as fork

MARKS, KIND, GRACE = sys.argv[1], sys.argv[2], float(sys.argv[3])

def mark(name, text=""):
    with open(os.path.join(MARKS, name), "w") as f:
        f.write(text)

def task(i):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a task that handles SIGTERM
    try:
        mark(f"started-{i}")  # started once inside: whatever stops it from now on is noted
        try:
            time.sleep(300)
        except KeyboardInterrupt:
            if KIND == "stubborn":  # ignores the first step: SIGTERM comes after grace
                time.sleep(300)
            raise
    except BaseException as exc:
        mark(f"raised-{i}", type(exc).__name__)
        raise
    finally:
        mark(f"finally-{i}")

if __name__ == "__main__":
    began = time.monotonic()
    try:
        with fork.Executor(2, grace=GRACE) as pool:
            for _ in pool.map(task, range(2)):
                pass
    except KeyboardInterrupt:
        print("interrupted after %.1f s" % (time.monotonic() - began), flush=True)
"""


def _ctrl_c_through_a_terminal(script: Path, marks: Path, kind: str, grace: float) -> str:
    """Run the script on a new pty, type Ctrl+C once both tasks run; what it printed."""
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    pid, terminal = pty.fork()
    if pid == 0:  # the script leads the pty's session, in its foreground group
        os.execve(sys.executable, [sys.executable, str(script), str(marks), kind, str(grace)], env)
    output = b""
    try:
        deadline = time.monotonic() + 60  # a deadlock net
        while len(list(marks.glob("started-*"))) < 2 and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.05)[0]:
                output += os.read(terminal, 4096)
        os.write(terminal, b"\x03")  # the terminal sends SIGINT to its foreground group
        while select.select([terminal], [], [], 60)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the script exited, the pty closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.waitpid(pid, 0)
        os.close(terminal)
    return output.decode(errors="replace")


@FORKS_WITH_THREADS  # pty.fork(), then an exec at once
@pytest.mark.parametrize(
    ("kind", "grace", "raised"),
    [("plain", 30.0, "KeyboardInterrupt"), ("stubborn", 0.5, "SystemExit")],
)
def test_ctrl_c_in_map_inside_a_block(tmp_path: Path, kind: str, grace: float, raised: str) -> None:
    """Plain tasks get KeyboardInterrupt and the exit does not wait the grace period; tasks
    that ignore it get SIGTERM after grace, which they turn into SystemExit. Either way
    each task's finally runs."""
    script, marks = tmp_path / "tasks.py", tmp_path / "marks"
    marks.mkdir()
    script.write_text(TASKS)
    output = _ctrl_c_through_a_terminal(script, marks, kind, grace)
    assert "interrupted after" in output, output
    assert [(marks / f"raised-{i}").read_text() for i in range(2)] == [raised, raised]
    assert all((marks / f"finally-{i}").exists() for i in range(2))
    seconds = float(output.split("interrupted after ")[1].split()[0])
    assert seconds < 30.0, "the block waited the whole grace period"


def sleeper(marks: str, i: int) -> int:
    """Return at once for i == 0; otherwise wait, recording how it was ended."""
    if i == 0:
        return 0
    path = Path(marks)
    try:
        (path / f"started-{i}").touch()  # once inside: whatever stops it from now on is noted
        time.sleep(300)
    except BaseException as exc:
        (path / f"raised-{i}").write_text(type(exc).__name__)
        raise
    finally:
        (path / f"finally-{i}").touch()
    return i


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60  # a deadlock net
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_break_out_of_map_cancels_the_running_task(tmp_path: Path, start: str) -> None:
    """CancelledError in the task (its finally runs); the executor goes on."""
    with fork.Executor(2, start=start, grace=30.0) as pool:
        results = pool.map(sleeper, [str(tmp_path)] * 2, range(2))
        _wait_for(tmp_path / "started-1")
        assert next(results) == 0
        results.close()  # what `break` does to the generator
        _wait_for(tmp_path / "finally-1")
        assert (tmp_path / "raised-1").read_text() == "CancelledError"
        assert pool.submit(sleeper, str(tmp_path), 0).result(timeout=60) == 0


def test_an_error_in_the_block_cancels_the_running_task(tmp_path: Path) -> None:
    began = time.monotonic()
    with pytest.raises(ValueError, match="the caller's own"), fork.Executor(1, grace=30.0) as pool:
        future = pool.submit(sleeper, str(tmp_path), 1)
        _wait_for(tmp_path / "started-1")
        raise ValueError("the caller's own error")
    assert (tmp_path / "raised-1").read_text() == "CancelledError"
    assert (tmp_path / "finally-1").exists()
    assert future.cancelled()
    assert time.monotonic() - began < 30.0, "the block waited the whole grace period"


def _nested(x: int) -> tuple[int, bool]:
    """goforkpy used inside a task: the result, and whether this worker's guardian runs."""
    from goforkpy._process import guardian

    return fork.isolated(sleeper)("", 0), guardian.ensure_started()


def test_goforkpy_helpers_a_task_started_outlive_the_task() -> None:
    """What a task starts ends with the task, but not goforkpy's own helpers (the
    guardian, the spawner) when the task used goforkpy itself: API.md section 4."""
    with fork.Executor(1) as pool:
        assert [pool.submit(_nested, i).result(timeout=60) for i in range(3)] == [(0, True)] * 3


def _leaves_a_daemon(marks: str, stubborn: bool) -> None:
    """Start ``sleep`` in a session of its own, say its pid, then wait (SIGTERM ignored
    where ``stubborn``)."""
    import signal
    import subprocess

    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    daemon = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path(marks, "daemon.tmp").write_text(str(daemon.pid))
    os.replace(Path(marks, "daemon.tmp"), Path(marks, "daemon"))  # whole once it is there
    time.sleep(300)


@pytest.mark.parametrize("start", ["cold", "warm"])
@pytest.mark.parametrize("how", ["terminate_workers", "kill_workers"])
def test_terminate_and_kill_workers_end_every_tree_and_shut_down(
    tmp_path: Path, start: str, how: str
) -> None:
    """Python 3.14's ProcessPoolExecutor methods: every worker's tree ends now, the
    running and pending futures are cancelled, nothing more is taken. kill_workers does
    not wait for a grace that a SIGTERM-ignoring task would use up."""
    stubborn = how == "kill_workers"
    pool = fork.Executor(1, start=start, grace=1000.0 if stubborn else 30.0)
    running = pool.submit(_leaves_a_daemon, str(tmp_path), stubborn)
    pending = pool.submit(_leaves_a_daemon, str(tmp_path), stubborn)
    _wait_for(tmp_path / "daemon")
    daemon = int((tmp_path / "daemon").read_text())
    getattr(pool, how)()
    assert running.cancelled() and pending.cancelled()
    assert wait_gone([daemon], 10.0) == []
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(_leaves_a_daemon, str(tmp_path), stubborn)


def test_a_worker_whose_task_ended_as_the_stop_came_takes_no_more_tasks() -> None:
    """A stop (joblib's abort, leaving a map early) can reach a worker just after its task
    ended: the worker then leaves, and the pool sends it nothing more. Before, the pool
    gave it the next task, which it left unanswered (a crash with exit code 0)."""
    from goforkpy._executor.worker import CANCELLED

    with fork.Executor(1) as pool:
        for i in range(300):  # stops that land before, during and after the task's end
            future = pool.submit(time.sleep, 0.002)
            time.sleep(0.0015 + (i % 10) * 0.0002)
            pool._pool.end_running([future], CANCELLED)
            assert pool.submit(abs, -i).result(timeout=DEADLOCK_NET) == i
