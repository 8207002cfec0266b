"""An Executor that stays healthy for days: limits, recycling, captured output,
escalating timeouts, and the pid of each task's worker."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET, wait_gone
from workers.pool import allocate_in_task, chatty, deaf_and_stuck, hoard, pid_of, slow_with_cleanup

import goforkpy as fork


def test_future_pid_is_the_workers() -> None:
    with fork.Executor(max_workers=1) as pool:
        first, second = pool.submit(pid_of), pool.submit(pid_of)
        assert first.result(DEADLOCK_NET) == first.pid == second.result(DEADLOCK_NET) == second.pid
    idle = fork.Executor(max_workers=1)
    future = idle.submit(abs, -1)
    assert future.result(DEADLOCK_NET) == 1 and future.pid is not None
    idle.shutdown()


def test_limits_apply_to_every_worker(caplog: pytest.LogCaptureFixture) -> None:
    limits = fork.Limits(memory="256M")
    with fork.Executor(max_workers=1, limits=limits) as pool, caplog.at_level(logging.INFO):
        with pytest.raises(fork.ChildCrashed) as caught:
            pool.submit(allocate_in_task, 1 << 30).result(DEADLOCK_NET)
        assert caught.value.reason == "memory-limit"
        assert "Limits(memory='256M')" in str(caught.value)
        assert isinstance(caught.value.__cause__, MemoryError)
        assert pool.submit(allocate_in_task, 1 << 20).result(DEADLOCK_NET) == 1 << 20
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "out of memory" in r.message]
    assert said and {level for level, _ in said} == {"INFO"}, said


def test_a_worker_past_max_worker_memory_is_replaced() -> None:
    with fork.Executor(max_workers=1, max_worker_memory="100M") as pool:
        small = pool.submit(hoard, 1).result(DEADLOCK_NET)
        assert pool.submit(pid_of).result(DEADLOCK_NET) == small, "under the limit: kept"
        big = pool.submit(hoard, 200).result(DEADLOCK_NET)
        assert big == small, "the task that passed it still finishes"
        after = pool.submit(pid_of).result(DEADLOCK_NET)
        assert after != big, "the next task runs in a fresh worker"
    assert wait_gone([big], DEADLOCK_NET) == []


def test_each_future_gets_its_own_tasks_output() -> None:
    with fork.Executor(max_workers=2, capture_output=True) as pool:
        futures = [pool.submit(chatty, f"task{i}") for i in range(6)]
        for i, future in enumerate(futures):
            assert future.result(DEADLOCK_NET) == f"task{i}"
            assert sorted(future.stdout.splitlines()) == [f"task{i} fd1", f"task{i} out"]
            assert future.stderr == f"task{i} err\n"
    with fork.Executor(max_workers=1) as plain:
        future = plain.submit(abs, -2)
        assert future.result(DEADLOCK_NET) == 2 and future.stdout is None


def test_a_timed_out_task_cleans_up_and_the_worker_stays(tmp_path: Path) -> None:
    note = tmp_path / "note"
    with fork.Executor(max_workers=1, task_timeout=0.5, grace=DEADLOCK_NET) as pool:
        before = pool.submit(pid_of).result(DEADLOCK_NET)
        with pytest.raises(fork.TimeoutExpired, match=r"task_timeout=0\.5"):
            pool.submit(slow_with_cleanup, str(note)).result(DEADLOCK_NET)
        assert pool.submit(pid_of).result(DEADLOCK_NET) == before, "it stopped: it is kept"
    assert note.read_text() == "cleaned up", "its finally block ran"


def test_a_task_deaf_and_stuck_code_is_ended_by_signals() -> None:
    with fork.Executor(max_workers=1, task_timeout=0.3, grace=0.3) as pool:
        stuck = pool.submit(deaf_and_stuck)
        with pytest.raises(fork.TimeoutExpired):
            stuck.result(DEADLOCK_NET)
        after = pool.submit(pid_of).result(DEADLOCK_NET)
        assert after != stuck.pid, "SIGTERM (or SIGKILL) ended the stuck worker; a new one runs"
    assert stuck.pid is not None and wait_gone([stuck.pid], DEADLOCK_NET) == []


@pytest.mark.parametrize(
    ("option", "value", "error", "text"),
    [
        ("limits", {"memory": 1}, TypeError, "fork.Limits"),
        ("max_worker_memory", "lots", ValueError, "max_worker_memory: 'lots' is no size"),
        ("max_worker_memory", -1, ValueError, "must be positive"),
    ],
)
def test_bad_health_options(option: str, value: object, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        fork.Executor(**{option: value})


def test_the_goforkpy_logger_tells_of_children(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="goforkpy"):
        child = fork.spawn("add", (1, 2))
        assert child.result(DEADLOCK_NET) == 3
        timed = fork.spawn("sleep_for", (300.0,), timeout=0.2)
        with pytest.raises(fork.TimeoutExpired):
            timed.result(DEADLOCK_NET)
    said = [record.getMessage() for record in caplog.records if record.name == "goforkpy"]
    assert f"child 'add' (pid {child.pid}) started {child.start}" in said
    assert f"child 'add' (pid {child.pid}) exited with code 0" in said
    assert any(f"(pid {timed.pid}) ran past its timeout" in line for line in said)
    assert not logging.getLogger("goforkpy").handlers, "goforkpy adds no handler of its own"
    assert os.getpid() not in (child.pid, timed.pid)
