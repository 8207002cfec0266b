"""``fork.isolated``: a wrapper that runs its function in a child wherever it is called."""

from __future__ import annotations

import concurrent.futures as cf
import os
import pickle
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import DEADLOCK_NET, RunScript, wait_gone
from workers import isolation
from workers.isolation import double, parse

import goforkpy as fork


def test_it_keeps_the_function_s_name_and_docstring() -> None:
    assert double.__name__ == "double"
    assert double.__qualname__ == "double"
    assert double.__doc__ == "Double ``x`` in a child."
    assert double.__module__ == "workers.isolation"
    assert double.__wrapped__(2)[1] == os.getpid()  # the function itself runs here
    assert repr(parse).startswith("<isolated <function parse") and "timeout=30" in repr(parse)


def test_a_call_runs_in_a_child_and_returns() -> None:
    value, pid, _ = double(21)
    assert value == 42
    assert pid != os.getpid()


def test_without_a_decorator_and_with_options() -> None:
    wrapped = fork.isolated(isolation.where, timeout=30, limits=fork.Limits(memory="1G"))
    assert wrapped(1)[0] == 2
    assert fork.isolated(start="cold")(isolation.where)(2)[0] == 4


def test_the_function_s_exception_comes_back() -> None:
    with pytest.raises(ValueError, match="bad row"):
        fork.isolated(isolation.fail)("bad row")


def test_a_crash_is_child_crashed_and_the_caller_lives() -> None:
    with pytest.raises(fork.ChildCrashed) as caught:
        parse("crash")
    assert caught.value.reason == "signal"
    assert parse("7") == 7


def test_a_timeout_ends_the_whole_tree(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    wrapped = fork.isolated(isolation.hold, timeout=1, grace=0.2)
    with pytest.raises(fork.TimeoutExpired):
        wrapped(str(ready))
    pids = [int(pid) for pid in ready.read_text().split()]
    assert wait_gone(pids, DEADLOCK_NET) == []


def test_a_memory_limit_applies_to_each_call() -> None:
    wrapped = fork.isolated(isolation.allocate, limits=fork.Limits(memory="300M"))
    assert wrapped(10) == 10 << 20
    with pytest.raises(fork.ChildCrashed) as caught:
        wrapped(1024)
    assert caught.value.reason == "memory-limit"


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: fork.isolated(42), TypeError, "wraps a callable"),
        (lambda: fork.isolated(timeout=-1), ValueError, "timeout"),
        (lambda: fork.isolated(isolation.where, grace=-1), ValueError, "grace"),
        (lambda: fork.isolated(limits="1G"), TypeError, "fork.Limits"),
        (lambda: fork.isolated(start="hot"), ValueError, "hot"),
        (lambda: double(1, 2), TypeError, "positional"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(
    call: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        call()  # type: ignore[operator]


def test_as_a_method_the_instance_comes_first() -> None:
    class Scaler:
        factor = 3

        @fork.isolated
        def scale(self, x: int) -> int:
            return self.factor * x

    assert Scaler().scale(2) == 6


# --- pickling ----------------------------------------------------------------------


def test_a_decorated_function_pickles_by_reference() -> None:
    data = pickle.dumps(double)
    assert len(data) < 100 and b"workers.isolation" in data
    assert pickle.loads(data) is double


def test_a_wrapped_importable_function_pickles_by_reference() -> None:
    wrapped = fork.isolated(isolation.where, timeout=5)
    data = pickle.dumps(wrapped)
    assert b"co_code" not in data and b"where" in data
    again = pickle.loads(data)
    assert again.__wrapped__ is isolation.where and again(3)[0] == 6
    assert repr(again) == repr(wrapped)


def test_a_local_function_pickles_by_value() -> None:
    offset = 100
    again = pickle.loads(pickle.dumps(fork.isolated(lambda x: x + offset, timeout=5)))
    assert again(1) == 101
    assert again.__name__ == "<lambda>"


# --- wherever a function is called ----------------------------------------------------


def test_from_many_threads_at_once() -> None:
    results: dict[int, int] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, double(i)[0])) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLOCK_NET)
    assert results == {i: 2 * i for i in range(8)}


def test_from_a_thread_pool() -> None:
    with cf.ThreadPoolExecutor(4) as pool:
        assert [r[0] for r in pool.map(double, range(10))] == [2 * i for i in range(10)]
        with pytest.raises(fork.ChildCrashed):
            pool.submit(parse, "crash").result(DEADLOCK_NET)


# Process pools and joblib keep helpers of their own (a resource tracker, a fork
# server, loky's reusable workers), so they run in a script of their own.
TESTS = str(Path(__file__).parent)  # where the scripts find workers.isolation


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_from_process_pool_workers(method: str, run_script: RunScript) -> None:
    done = run_script(
        f"""
        import concurrent.futures as cf, multiprocessing, os, sys, warnings
        sys.path.insert(0, {TESTS!r})
        import goforkpy as fork
        from workers.isolation import double, parse

        if __name__ == "__main__":
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12's fork-with-threads
            context = multiprocessing.get_context({method!r})
            with cf.ProcessPoolExecutor(2, mp_context=context) as pool:
                results = list(pool.map(double, range(4)))
                print(*[value for value, _, _ in results])
                print(all(pid != os.getpid() for _, pid, _ in results))
                try:
                    pool.submit(parse, "crash").result()
                except fork.ChildCrashed as exc:
                    print(exc.reason)
                print(pool.submit(parse, "5").result())  # the worker lived
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 2 4 6", "True", "signal", "5"]


def test_from_joblib(run_script: RunScript) -> None:
    pytest.importorskip("joblib", reason="joblib is in the test extra")
    done = run_script(
        f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        import goforkpy as fork
        import joblib
        from workers.isolation import double, parse

        if __name__ == "__main__":
            outputs = joblib.Parallel(n_jobs=2)(joblib.delayed(double)(i) for i in range(6))
            print(*[value for value, _, _ in outputs])
            local = fork.isolated(lambda x: -x)  # by value, through loky's cloudpickle
            print(*joblib.Parallel(n_jobs=2)(joblib.delayed(local)(i) for i in range(3)))
            try:
                joblib.Parallel(n_jobs=2)(joblib.delayed(parse)(t) for t in ["1", "crash"])
            except fork.ChildCrashed as exc:
                print(exc.reason)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 2 4 6 8 10", "0 -1 -2", "signal"]


def test_a_main_script_s_function_travels_by_value(run_script: RunScript) -> None:
    done = run_script(
        """
        import concurrent.futures as cf, multiprocessing, os, pickle
        import goforkpy as fork

        @fork.isolated(timeout=30)
        def square(x):
            return x * x, os.getpid()

        if __name__ == "__main__":
            again = pickle.loads(pickle.dumps(square))
            assert again is not square and again(3)[0] == 9, again
            spawn = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                print(pool.submit(square, 4).result()[0])
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["16"]


def test_the_core_never_imports_dask(run_script: RunScript) -> None:
    done = run_script(
        f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        import goforkpy as fork
        from workers.isolation import double

        assert double(1)[0] == 2 and fork.isolated(print) is not None
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
        sys.modules["distributed"] = None  # as if the extra were not installed
        try:
            import goforkpy.dask
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",
        "goforkpy.dask needs Dask distributed, which is not installed; "
        "pip install 'goforkpy[dask]'",
    ]


def test_reused_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """isolate="worker": calls share a worker; a crash fails its call alone and the worker
    is replaced; a worker idle for IDLE_SECONDS leaves."""
    from goforkpy._executor import reused

    monkeypatch.setattr(reused, "_pools", reused.kept.kept())  # a pool of our own
    monkeypatch.setattr(reused.kept, "IDLE_SECONDS", 0.5)
    call = fork.isolated(isolation.where, isolate="worker")
    pids = {call(i)[1] for i in range(20)}
    assert len(pids) == 1, "one call at a time: one worker, reused"
    with pytest.raises(fork.ChildCrashed) as crashed:
        fork.isolated(isolation.segfault, isolate="worker")()
    assert crashed.value.reason == "signal"
    (value, pid, _) = call(21)
    assert value == 42 and pid not in pids, "the crashed worker was replaced"
    assert wait_gone([pid], DEADLOCK_NET) == [], "an idle worker leaves"
    assert call(1)[0] == 2, "and a new one comes for the next call"
    for executor in reused._pools.get().executors.values():
        executor.shutdown()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"isolate": "thread"}, "'task' (a fresh child per call) or 'worker'"),
        ({"isolate": "worker", "start": "snapshot"}, "cannot be reused"),
    ],
)
def test_bad_isolate_is_refused(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        fork.isolated(isolation.where, **options)
