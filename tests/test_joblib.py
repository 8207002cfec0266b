"""The joblib backend "goforkpy": results, aborts, crashes, timeouts, scikit-learn, nesting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET, RunScript, wait_gone
from joblib import Parallel, delayed, parallel_config
from workers import isolation, jobs

import goforkpy as fork
import goforkpy.joblib as backend


@pytest.fixture(autouse=True)
def _workers_end() -> Iterator[None]:
    """The backend keeps its workers from call to call; each test ends them after it."""
    yield
    backend.shutdown()


def test_results_in_order_and_as_generators() -> None:
    with parallel_config(backend="goforkpy", n_jobs=2):
        assert Parallel()(delayed(jobs.square)(i) for i in range(1000)) == [
            i * i for i in range(1000)
        ]
        ordered = Parallel(return_as="generator")(delayed(jobs.square)(i) for i in range(50))
        assert list(ordered) == [i * i for i in range(50)]
        unordered = Parallel(return_as="generator_unordered")(
            delayed(jobs.square)(i) for i in range(50)
        )
        assert sorted(unordered) == [i * i for i in range(50)]


def test_workers_are_reused_across_calls_and_isolate_task_gives_fresh_ones() -> None:
    with parallel_config(backend="goforkpy", n_jobs=2):
        first = set(Parallel(batch_size=1)(delayed(jobs.pid_after)(0.01) for _ in range(20)))
        again = set(Parallel(batch_size=1)(delayed(jobs.pid_after)(0.01) for _ in range(20)))
    assert len(first) == 2 and again == first
    with parallel_config(backend="goforkpy", n_jobs=2, isolate="task"):
        pids = Parallel(batch_size=1)(delayed(jobs.pid_after)(0) for _ in range(6))
    assert len(set(pids)) == 6, "a fresh worker for each task"


def test_an_error_aborts_the_call_and_ends_the_running_tasks_trees(tmp_path: Path) -> None:
    notes = [str(tmp_path / f"note{i}") for i in range(2)]
    tasks = [delayed(jobs.leave_a_sleeper_and_wait)(note) for note in notes]
    tasks.append(delayed(jobs.fail_once_noted)(*notes))
    with parallel_config(backend="goforkpy", n_jobs=3):
        with pytest.raises(ValueError, match="task 3 failed"):
            Parallel(batch_size=1)(tasks)
        pids = [int(pid) for note in notes for pid in Path(note).read_text().split()]
        workers, sleepers = pids[::2], pids[1::2]
        assert wait_gone(sleepers, 0) == [], "what the tasks started, before it raised"
        assert wait_gone(workers, DEADLOCK_NET) == [], "stopped workers leave"
        # the backend serves the next call
        assert Parallel()(delayed(jobs.square)(i) for i in range(10)) == [i * i for i in range(10)]


def test_a_segfault_fails_its_task_with_the_stack_and_spares_the_other_workers(
    tmp_path: Path,
) -> None:
    note = str(tmp_path / "note")
    tasks = [delayed(jobs.segfault_once_noted)(note), delayed(jobs.note_pid)(note)]
    with parallel_config(backend="goforkpy", n_jobs=2):
        with pytest.raises(fork.ChildCrashed) as crashed:
            Parallel(batch_size=1)(tasks)
        assert crashed.value.signal == "SIGSEGV"
        assert "the worker running segfault_once_noted via joblib (pid" in str(crashed.value)
        assert "segfault_once_noted" in (crashed.value.traceback or "")
        kept = int(Path(note).read_text())
        later = set(Parallel(batch_size=1)(delayed(jobs.pid_after)(0.02) for _ in range(30)))
    assert kept in later, "the other worker went on"


def test_a_task_past_its_timeout_fails_ended_and_the_others_go_on(tmp_path: Path) -> None:
    note = str(tmp_path / "note")
    tasks = [delayed(jobs.hang_once_noted)(note), delayed(jobs.note_pid)(note)]
    with parallel_config(backend="goforkpy", n_jobs=2, start="cold"):
        # both workers up, with this module imported, and no timeout yet: a cold worker's
        # first import of it (pytest's, under a loaded machine) is not what 0.5 s are for
        up: set[int] = set()
        deadline = time.monotonic() + DEADLOCK_NET
        while len(up) < 2 and time.monotonic() < deadline:
            up |= set(Parallel()(delayed(jobs.pid_after)(0.02) for _ in range(30)))
    with parallel_config(backend="goforkpy", n_jobs=2, timeout=0.5, start="cold"):
        assert set(Parallel()(delayed(jobs.pid_after)(0.02) for _ in range(30))) <= up, (
            "another timeout, the same workers"
        )
        with pytest.raises(
            fork.TimeoutExpired, match="hang_once_noted via joblib ran past timeout"
        ):
            Parallel()(tasks)
        sleeper, kept = int(Path(note + ".hung").read_text()), int(Path(note).read_text())
        assert wait_gone([sleeper], DEADLOCK_NET) == [], "what the task started ends with it"
        later = set(Parallel()(delayed(jobs.pid_after)(0.02) for _ in range(30)))
    assert kept in later, "the other worker went on"


def test_a_nested_parallel_runs_on_threads_in_its_worker() -> None:
    with parallel_config(backend="goforkpy", n_jobs=2):
        ((results, nested_backend, processes),) = Parallel()([delayed(jobs.nested)(4)])
    assert results == [0, 1, 4, 9], "no process under the worker: no pool of pools"
    assert nested_backend == "ThreadingBackend" and processes == 0


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"colour": "red"}, TypeError, "has no option 'colour'; it takes start"),
        ({"isolate": "process"}, ValueError, "isolate='process': use 'worker'"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"start": "snapshot"}, ValueError, "cannot be a default or a pool's"),
        ({"limits": 5}, TypeError, "pass a fork.Limits"),
        ({"max_worker_memory": "lots"}, ValueError, "max_worker_memory"),
    ],
)
def test_bad_options_name_the_problem(options: dict[str, object], error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        backend.register(**options)
    with pytest.raises(error, match=text), parallel_config(backend="goforkpy", **options):
        Parallel(n_jobs=2)(delayed(jobs.square)(i) for i in range(2))
    if "timeout" in options:
        return  # Parallel's own timeout is joblib's: it ends the call from the caller
    with pytest.raises(error, match=text):  # given to Parallel itself: checked alike
        Parallel(n_jobs=2, backend="goforkpy", **options)(delayed(jobs.square)(i) for i in range(2))


def test_options_given_to_parallel_are_used() -> None:
    tasks = [delayed(jobs.pid_after)(0.0) for _ in range(4)]
    first = set(Parallel(n_jobs=1, backend="goforkpy")(tasks))
    assert set(Parallel(n_jobs=1, backend="goforkpy")(tasks)) == first, "a reused worker"
    fresh = Parallel(n_jobs=1, backend="goforkpy", isolate="task", batch_size=1)(tasks)
    assert len(set(fresh)) == 4 and not set(fresh) & first, "a fresh worker per task"


@pytest.mark.parametrize("n_jobs", [1, None])
def test_one_job_is_isolated_as_any_other_count(n_jobs: int | None) -> None:
    """joblib runs a call in its caller when the backend says one job: not this one."""
    import os

    pids = Parallel(n_jobs=n_jobs, backend="goforkpy")(delayed(jobs.pid_after)(0) for _ in range(3))
    assert os.getpid() not in pids and len(set(pids)) == 1
    with pytest.raises(fork.ChildCrashed) as crashed:
        Parallel(n_jobs=n_jobs, backend="goforkpy")([delayed(isolation.segfault)()])
    assert crashed.value.signal == "SIGSEGV"
    with (
        parallel_config(backend="goforkpy", n_jobs=n_jobs, timeout=0.2),
        pytest.raises(fork.TimeoutExpired),
    ):
        Parallel()([delayed(jobs.pid_after)(60)])


def test_calls_from_two_threads_with_other_settings_each_finish() -> None:
    """Each call keeps its executor until it ends, whatever another thread's call asks."""
    import threading

    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def call(start: str) -> None:
        def tasks() -> Iterator[object]:
            barrier.wait(DEADLOCK_NET)  # both calls have their executors by now
            for i in range(20):
                yield delayed(jobs.square)(i)

        try:
            with parallel_config(backend="goforkpy", n_jobs=2, start=start):
                results[start] = Parallel(batch_size=1, pre_dispatch="all")(tasks())
        except BaseException as exc:
            results[start] = exc

    threads = [threading.Thread(target=call, args=(start,)) for start in ("cold", "warm")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLOCK_NET)
    squares = [i * i for i in range(20)]
    assert results == {"cold": squares, "warm": squares}


def test_n_jobs_zero_is_refused_as_joblib_refuses_it() -> None:
    with pytest.raises(ValueError, match="n_jobs == 0"):
        Parallel(backend="goforkpy", n_jobs=0)(delayed(jobs.square)(i) for i in range(2))


SCIKIT_LEARN = """
import json
import time
import goforkpy as fork
import goforkpy.joblib
from joblib import parallel_config
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score

def fit(features, labels):
    model = LogisticRegression(max_iter=500)
    scores = cross_val_score(model, features, labels, cv=5, n_jobs=2)
    search = GridSearchCV(model, {"C": [0.1, 1.0, 10.0]}, cv=3, n_jobs=2).fit(features, labels)
    return [list(scores), search.best_params_, list(search.cv_results_["mean_test_score"])]

if __name__ == "__main__":
    fork.init()
    data = load_iris(return_X_y=True)
    with parallel_config(backend="loky"):
        print(json.dumps(fit(*data)))
    with parallel_config(backend="goforkpy"):
        print(json.dumps(fit(*data)))
"""


def test_scikit_learn_gives_the_results_loky_gives(run_script: RunScript) -> None:
    """cross_val_score and GridSearchCV with n_jobs=2, in a script of a user's."""
    done = run_script(SCIKIT_LEARN)
    assert done.returncode == 0, done.stderr
    with_loky, with_goforkpy = (json.loads(line) for line in done.stdout.splitlines())
    assert with_goforkpy == with_loky
    assert with_loky[1] in ({"C": 0.1}, {"C": 1.0}, {"C": 10.0})
