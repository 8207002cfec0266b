"""Reused workers (API.md section 14): each task starts from its worker's process as it
was before the first task, and what cannot be put back retires the worker.

The same for every surface that reuses workers: the Executor, ``fork.isolated(...,
isolate="worker")`` and the joblib backend, cold and warm.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from helpers import DEADLOCK_NET
from workers import reuse

import goforkpy as fork

STATE = ["environment", "directory", "umask", "signals", "alarm", "timer", "sys.path"]


def _executor(start: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    executor = fork.Executor(max_workers=1, start=start)

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return executor.submit(fn, *args).result(DEADLOCK_NET)

    run.close = executor.shutdown  # type: ignore[attr-defined]
    return run


def _isolated(start: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from goforkpy._executor import reused

    monkeypatch.setattr(reused, "_pools", reused.kept.kept())  # pools of the test's own

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return fork.isolated(fn, isolate="worker", start=start)(*args)

    def close() -> None:
        for executor in reused._pools.get().executors.values():
            executor.shutdown()

    run.close = close  # type: ignore[attr-defined]
    return run


def _joblib(start: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    joblib = pytest.importorskip("joblib")
    import goforkpy.joblib

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        with joblib.parallel_config(backend="goforkpy", n_jobs=1, start=start):
            (value,) = joblib.Parallel()([joblib.delayed(fn)(*args)])
        return value

    run.close = goforkpy.joblib.shutdown  # type: ignore[attr-defined]
    return run


SURFACES = {"executor": _executor, "isolated": _isolated, "joblib": _joblib}


@pytest.fixture(params=["cold", "warm"])
def start(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(SURFACES))
def run(request: pytest.FixtureRequest, start: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    runner = SURFACES[request.param](start, monkeypatch)
    yield runner
    runner.close()


@pytest.mark.parametrize("what", STATE)
def test_the_next_task_starts_from_the_workers_first_state(run: Any, what: str) -> None:
    before = run(reuse.state)
    left_in = run(reuse.leave_state, what)
    after = run(reuse.state)
    assert after[what] == before[what]
    if left_in == before["pid"] == after["pid"]:
        assert after == {**before, "pid": after["pid"]}  # nothing else changed either


@pytest.mark.parametrize("leave", [reuse.leave_a_thread, reuse.leave_a_descriptor])
def test_a_task_that_leaves_what_cannot_be_undone_retires_its_worker(
    run: Any, leave: Callable[[], int]
) -> None:
    left_in = run(leave)
    assert run(reuse.pid) != left_in, "the next task runs in another worker"
    assert run(reuse.state)["pid"] != left_in


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
def test_a_child_a_task_left_is_gone_before_the_next_task(run: Any, ended: bool) -> None:
    """Running or ended but unwaited for, a child the task left is ended and reaped:
    the next task finds its worker with no child, and the worker stays."""
    left_in = run(reuse.leave_a_child, ended)
    assert run(reuse.children) == (left_in, [])


def test_tasks_sent_ahead_of_a_retiring_worker_run_elsewhere(start: str) -> None:
    """Tiny tasks go several to a worker ahead of time: those behind the one that
    retires it are run by the next worker, none failed."""
    with fork.Executor(max_workers=1, start=start) as executor:
        futures = [executor.submit(reuse.pid) for _ in range(20)]
        leaving = executor.submit(reuse.leave_a_descriptor)
        futures += [executor.submit(reuse.pid) for _ in range(20)]
        pids = [future.result(DEADLOCK_NET) for future in futures]
        left_in = leaving.result(DEADLOCK_NET)
    assert set(pids[:20]) == {left_in} and left_in not in pids[20:]


def test_a_worker_whose_tasks_leave_nothing_is_reused(start: str) -> None:
    """What the worker's own start-up loads in the background (ctypes, for its watcher
    of the parent) is no task's leftover: innocent tasks never retire it."""
    with fork.Executor(max_workers=1, start=start) as executor:
        pids = [executor.submit(reuse.pid).result(DEADLOCK_NET) for _ in range(10)]
    assert len(set(pids)) == 1, pids
