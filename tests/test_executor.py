"""fork.Executor: concurrent.futures semantics, crash isolation, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
import os
import signal
import sys
import threading
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

import psutil
import pytest
import workers
from helpers import DEADLOCK_NET, RunScript, children
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import goforkpy as fork
from goforkpy._executor import tasks_and_workers


@pytest.fixture
def executor():  # type: ignore[no-untyped-def]
    with fork.Executor(max_workers=2) as ex:
        yield ex


def _wait_for_file(path: Path) -> int:
    deadline = time.monotonic() + DEADLOCK_NET
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.005)
    return int(path.read_text())


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLOCK_NET
    while not condition():
        assert time.monotonic() < deadline, "never came to pass"
        time.sleep(0.005)


def test_submit_and_result(executor: fork.Executor) -> None:
    assert executor.submit(workers.square, 7).result(DEADLOCK_NET) == 49
    assert executor.submit(pow, 2, exp=10).result(DEADLOCK_NET) == 1024


@pytest.mark.parametrize(
    "fn",
    ["add", workers.add, lambda a, b: a + b, (lambda k: lambda a, b: a + b + k)(0)],
    ids=["registered-name", "registered-function", "lambda", "closure"],
)
def test_every_kind_of_callable(executor: fork.Executor, fn: object) -> None:
    assert executor.submit(fn, 2, 3).result(DEADLOCK_NET) == 5


def test_map_in_order_with_several_iterables_and_chunks(executor: fork.Executor) -> None:
    assert list(executor.map(workers.square, range(20))) == [x * x for x in range(20)]
    assert list(executor.map(pow, [2, 3, 4], [5, 6, 7], chunksize=2)) == [32, 729, 16384]
    assert list(executor.map(workers.square, [], chunksize=3)) == []


@pytest.mark.parametrize(("chunksize", "buffersize"), [(1, 1), (1, 2), (3, 2), (2, 100)])
def test_map_with_a_buffersize_reads_its_input_as_results_are_taken(
    executor: fork.Executor, chunksize: int, buffersize: int
) -> None:
    """Python 3.14's buffersize: at most that many chunks submitted and not yet yielded,
    so an endless iterable works; the results are those of map, in order."""
    pulled = []

    def endless():  # type: ignore[no-untyped-def]
        for x in itertools.count():
            pulled.append(x)
            yield x

    results = executor.map(workers.square, endless(), chunksize=chunksize, buffersize=buffersize)
    assert list(itertools.islice(results, 7)) == [x * x for x in range(7)]
    results.close()
    # 7 taken; the chunk that held the 7th, plus a full buffer beyond it, at most
    assert len(pulled) <= (7 // chunksize + 1 + buffersize) * chunksize
    assert list(executor.map(pow, [2, 3], [5, 6], buffersize=1)) == [32, 729]


def test_a_task_sent_ahead_to_a_worker_that_leaves_runs_and_is_never_blamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A map left early stops its running task, and that worker leaves after answering:
    another caller's task already sent ahead to it runs elsewhere, and is not reported as
    the crash of a worker that exited with code 0."""
    # a busy worker is sent its next task ahead (by the pool's measure only where its
    # tasks were quick, which a loaded machine can make them not)
    monkeypatch.setattr(tasks_and_workers, "_AHEAD_LONG", 2)
    with fork.Executor(max_workers=1) as ex:
        results = ex.map(workers.note_then_sleep, [tmp_path / "a", tmp_path / "b"], [0, 300])
        assert next(results) == 0
        worker = ex._pool._workers[0]
        running = _wait_for_file(tmp_path / "b")
        ahead = ex.submit(workers.square, 3)
        deadline = time.monotonic() + DEADLOCK_NET
        while len(worker.inflight) < 2:  # it is in that worker's hands
            assert time.monotonic() < deadline, "the task was never sent to the worker"
            time.sleep(0.001)
        results.close()
        assert ahead.result(DEADLOCK_NET) == 9
        assert ahead.pid != running
    assert not psutil.pid_exists(running)


def test_an_interrupt_meant_for_a_task_that_ended_is_not_raised_in_the_next() -> None:
    """The pool's interrupt names its task: one that ended as the signal came is not
    followed into the next task; signals that came together are read together."""
    from goforkpy._executor import worker

    read, write = os.pipe()
    os.set_blocking(read, False)
    saved = worker._why[0], list(worker._running), list(worker._leaving)
    worker._why[0], worker._running[:] = read, [5]
    try:
        os.write(write, worker.TIMED_OUT + (4).to_bytes(8, "little"))
        worker._interrupt(signal.SIGUSR2, None)  # meant for task 4: nothing raised
        assert not worker._leaving
        os.write(write, worker.TIMED_OUT + (4).to_bytes(8, "little"))
        os.write(write, worker.CANCELLED + (5).to_bytes(8, "little"))
        with pytest.raises(cf.CancelledError):
            worker._interrupt(signal.SIGUSR2, None)
        assert worker._leaving  # cancelled: the worker leaves after its answer
        with pytest.raises(BlockingIOError):  # both records were taken
            os.read(read, 100)
    finally:
        worker._why[0] = saved[0]
        worker._running[:], worker._leaving[:] = saved[1], saved[2]
        os.close(read)
        os.close(write)


def test_submits_from_many_threads_at_once_each_wake_the_pool(executor: fork.Executor) -> None:
    """The pool's manager is woken once per burst, not per submit: what is submitted
    while it drains its wake-ups, or just after, is never left waiting (a lost
    wake-up would hang here, past the deadlock net)."""

    def burst(first: int) -> list[cf.Future[int]]:
        futures = []
        for start in range(first, first + 2000, 200):
            futures += [executor.submit(workers.square, x) for x in range(start, start + 200)]
            _, pending = cf.wait(futures[-200:], timeout=DEADLOCK_NET)  # idle between
            assert not pending, f"{len(pending)} tasks never ran"  # bursts
        return futures

    with cf.ThreadPoolExecutor(4) as threads:
        futures = [f for batch in threads.map(burst, range(0, 8000, 2000)) for f in batch]
    assert [f.result(DEADLOCK_NET) for f in futures] == [x * x for x in range(8000)]


def test_a_falsey_exception_is_raised_not_returned(executor: fork.Executor) -> None:
    future = executor.submit(workers.pool.raise_falsey, "falsey")
    error = future.exception(timeout=DEADLOCK_NET)
    assert isinstance(error, workers.pool.Falsey) and str(error) == "falsey"
    if sys.version_info >= (3, 14):  # older Futures' result() skip a false exception
        with pytest.raises(workers.pool.Falsey, match="falsey"):
            future.result()


def test_map_buffersize_progress_and_bad_values(executor: fork.Executor) -> None:
    seen = []
    results = executor.map(
        workers.square, range(4), buffersize=2, progress=lambda *done: seen.append(done)
    )
    assert list(results) == [0, 1, 4, 9]
    assert sorted(seen) == [(1, None), (2, None), (3, None), (4, None)]  # no total ahead
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"buffersize must be None or > 0, not {bad}"):
            executor.map(workers.square, range(3), buffersize=bad)
    for wrong in (1.5, True, "2"):
        with pytest.raises(TypeError, match="buffersize must be an integer or None, not"):
            executor.map(workers.square, range(3), buffersize=wrong)  # type: ignore[arg-type]


def test_map_results_are_lazy_and_time_out(executor: fork.Executor) -> None:
    # map's timeout counts from the call: a worker started first, so only the tasks count
    assert executor.submit(workers.square, 2).result(DEADLOCK_NET) == 4
    results = executor.map(workers.sleep_for, [0.0, 300.0], timeout=2.0)
    assert next(results) == 0.0
    with pytest.raises(fork.TimeoutExpired) as caught:
        next(results)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, cf.TimeoutError), "what stdlib users catch, on 3.9 too"


def test_exceptions_keep_their_type_and_remote_traceback(executor: fork.Executor) -> None:
    future = executor.submit(workers.raise_value, "nope")
    with pytest.raises(ValueError, match="nope") as caught:
        future.result(DEADLOCK_NET)
    assert "raise_value" in str(caught.value.__cause__)
    with pytest.raises(ValueError):
        list(executor.map(workers.raise_value, ["in map"]))


def test_futures_work_with_wait_as_completed_and_callbacks(executor: fork.Executor) -> None:
    futures = [executor.submit(workers.square, i) for i in range(10)]
    done, not_done = cf.wait(futures, timeout=DEADLOCK_NET)
    assert len(done) == 10 and not not_done
    assert sorted(f.result() for f in cf.as_completed(futures)) == [i * i for i in range(10)]
    seen: list[int] = []
    event = threading.Event()
    executor.submit(workers.square, 5).add_done_callback(
        lambda f: (seen.append(f.result()), event.set())
    )
    assert event.wait(DEADLOCK_NET) and seen == [25]


def test_run_in_executor(executor: fork.Executor) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(executor, workers.square, i) for i in range(4))
            )
        )

    assert asyncio.run(main()) == [0, 1, 4, 9]


def test_initializer_runs_in_every_worker() -> None:
    with fork.Executor(max_workers=2, initializer=workers.remember, initargs=("ready",)) as ex:
        assert ex.submit(workers.initialized).result(DEADLOCK_NET) == ["ready"]


def test_failing_initializer_breaks_the_executor_clearly() -> None:
    with fork.Executor(max_workers=1, initializer=workers.fail_init) as ex:
        future = ex.submit(workers.square, 2)
        with pytest.raises(cf.BrokenExecutor, match="no database") as caught:
            future.result(DEADLOCK_NET)
        assert isinstance(caught.value.__cause__, RuntimeError)
        with pytest.raises(cf.BrokenExecutor):
            ex.submit(workers.square, 3)


CRASHES = [("segfault", -signal.SIGSEGV, "SIGSEGV"), ("exit", 7, None), ("sigkill", -9, "SIGKILL")]


@pytest.mark.parametrize(("how", "returncode", "signal_name"), CRASHES, ids=[c[0] for c in CRASHES])
def test_a_crash_fails_only_its_own_task(
    how: str, returncode: int, signal_name: str | None
) -> None:
    with fork.Executor(max_workers=2) as ex:
        futures = [ex.submit(workers.crash_on, i, 37, how) for i in range(100)]
        outcomes = [f.exception(DEADLOCK_NET) for f in futures]
    failed = [(i, e) for i, e in enumerate(outcomes) if e is not None]
    assert [i for i, _ in failed] == [37]
    error = failed[0][1]
    assert isinstance(error, fork.ChildCrashed)
    assert isinstance(error, BrokenProcessPool), "what ProcessPoolExecutor raises"
    assert error.returncode == returncode and error.signal == signal_name and error.pid
    assert [f.result() for i, f in enumerate(futures) if i != 37] == [
        i for i in range(100) if i != 37
    ]


def test_task_timeout_kills_the_task_and_the_pool_goes_on(tmp_path: Path) -> None:
    with fork.Executor(max_workers=1, task_timeout=0.5) as ex:
        stuck = ex.submit(workers.ready_file_then_sleep, str(tmp_path / "pid"))
        after = ex.submit(workers.square, 3)
        with pytest.raises(fork.TimeoutExpired, match="task_timeout") as caught:
            stuck.result(DEADLOCK_NET)
        assert caught.value.timeout == 0.5
        assert after.result(DEADLOCK_NET) == 9
    assert not psutil.pid_exists(int((tmp_path / "pid").read_text()))


def test_cancel_on_a_running_task_kills_it(tmp_path: Path) -> None:
    with fork.Executor(max_workers=1) as ex:
        future = ex.submit(workers.ready_file_then_sleep, str(tmp_path / "pid"))
        pid = _wait_for_file(tmp_path / "pid")
        assert future.running()
        assert future.cancel() is True
        assert future.cancelled() and future.done()
        with pytest.raises(cf.CancelledError):
            future.result()
        assert ex.submit(workers.square, 4).result(DEADLOCK_NET) == 16
    assert not psutil.pid_exists(pid)


def test_cancel_on_a_task_sent_ahead_kills_it_once_it_begins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy worker is sent its next task ahead; cancelled there, the task still reaches
    # the worker, which runs it: the pool kills it then, and goes on with a new worker.
    monkeypatch.setattr(tasks_and_workers, "_AHEAD_LONG", 2)
    go = tmp_path / "go"
    os.mkfifo(go)
    with fork.Executor(max_workers=1) as ex:
        first = ex.submit(workers.ready_file_then_wait_for, str(tmp_path / "pid"), str(go))
        pid = _wait_for_file(tmp_path / "pid")
        ahead = ex.submit(workers.ready_file_then_sleep, str(tmp_path / "ahead"))
        _wait_until(lambda: [len(w.inflight) for w in ex._pool._workers] == [2])
        assert ahead.cancel() is True and not ahead.running()
        go.write_text("go")
        assert first.result(DEADLOCK_NET) == "go"
        assert ex.submit(workers.square, 4).result(DEADLOCK_NET) == 16
        assert ahead.cancelled()
    assert not psutil.pid_exists(pid)


def test_max_tasks_per_child_recycles_workers() -> None:
    with fork.Executor(max_workers=1, max_tasks_per_child=2) as ex:
        pids = [ex.submit(workers.pid_of).result(DEADLOCK_NET) for _ in range(6)]
    assert len(set(pids)) == 3 and pids[0] == pids[1] != pids[2] == pids[3]


def test_shutdown_cancels_pending_futures_when_asked(tmp_path: Path) -> None:
    ex = fork.Executor(max_workers=1)
    running = ex.submit(workers.note_then_sleep, str(tmp_path / "pid"), 0.2)
    queued = [ex.submit(workers.square, i) for i in range(50)]
    _wait_for_file(tmp_path / "pid")
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result() == 0.2
    assert any(f.cancelled() for f in queued)
    assert all(f.done() for f in queued)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(workers.square, 1)


def test_shutdown_without_wait_still_finishes_the_work() -> None:
    ex = fork.Executor(max_workers=2)
    futures = [ex.submit(workers.square, i) for i in range(10)]
    ex.shutdown(wait=False)
    assert [f.result(DEADLOCK_NET) for f in futures] == [i * i for i in range(10)]


def test_shutdown_from_a_done_callback() -> None:
    ex = fork.Executor(max_workers=1)
    done = threading.Event()
    ex.submit(workers.square, 2).add_done_callback(lambda f: (ex.shutdown(wait=True), done.set()))
    assert done.wait(DEADLOCK_NET)
    ex.shutdown()


def test_submit_from_another_thread_during_shutdown() -> None:
    ex = fork.Executor(max_workers=2)
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def keep_submitting() -> None:
        start.wait()
        for i in range(200):
            try:
                outcomes.append(ex.submit(workers.square, i))
            except RuntimeError as exc:
                outcomes.append(exc)
                return

    thread = threading.Thread(target=keep_submitting)
    thread.start()
    start.wait()
    ex.shutdown(wait=True)
    thread.join()
    futures = [o for o in outcomes if isinstance(o, cf.Future)]
    assert all(f.done() for f in futures), "accepted work is never dropped"
    assert all(isinstance(o, cf.Future) or "after shutdown" in str(o) for o in outcomes)


def test_no_worker_outlives_the_executor() -> None:
    with fork.Executor(max_workers=2) as ex:
        pids = set(ex.map(workers.pid_of, range(20)))
    assert pids and not [p for p in pids if psutil.pid_exists(p)]


def test_dropped_executor_shuts_down() -> None:
    ex = fork.Executor(max_workers=1)
    pid = ex.submit(workers.pid_of).result(DEADLOCK_NET)
    del ex
    deadline = time.monotonic() + DEADLOCK_NET
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not psutil.pid_exists(pid)


def test_max_workers_default_and_lazy_start() -> None:
    with fork.Executor() as ex:
        assert ex._max_workers == len(os.sched_getaffinity(0))
        assert children() == [], "no worker before there is work"
        ex.submit(workers.square, 1).result(DEADLOCK_NET)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"max_workers": 0}, ValueError, "max_workers must be greater than 0"),
        ({"max_tasks_per_child": -1}, ValueError, "max_tasks_per_child"),
        ({"task_timeout": -1}, ValueError, "task_timeout"),
        ({"initializer": 42}, TypeError, "initializer must be callable"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type, text: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=text):
        fork.Executor(**kwargs)


def test_bad_calls_are_named(executor: fork.Executor) -> None:
    with pytest.raises(fork.RegistryError, match="no-such"):
        executor.submit("no-such")
    with pytest.raises(TypeError, match="callable or a registered name"):
        executor.submit(42)
    with pytest.raises(ValueError, match="chunksize"):
        executor.map(workers.square, [1], chunksize=0)
    with pytest.raises(fork.PayloadError, match="cannot pickle"):
        executor.submit(workers.square, threading.Lock())


def test_progress_callback_and_bar(
    executor: fork.Executor, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[int, int]] = []
    assert list(
        executor.map(
            workers.square, range(6), chunksize=2, progress=lambda d, t: seen.append((d, t))
        )
    ) == [x * x for x in range(6)]
    assert sorted(seen) == [(2, 6), (4, 6), (6, 6)]
    list(executor.map(workers.square, range(5), progress=True))
    assert "5/5" in capsys.readouterr().err


def test_progress_without_tqdm_says_how_to_install(
    executor: fork.Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"goforkpy\[progress\]"):
        executor.map(workers.square, range(3), progress=True)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(items=st.lists(values, max_size=20), chunksize=st.integers(1, 5))
def test_arbitrary_values_round_trip_through_map(
    executor: fork.Executor, items: list[object], chunksize: int
) -> None:
    assert list(executor.map(workers.identity_value, items, chunksize=chunksize)) == items


def test_submit_passes_any_keyword_through(executor: fork.Executor) -> None:
    future = executor.submit(workers.capture, 1, self=2, fn=3)
    assert future.result(DEADLOCK_NET) == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit(fn=workers.capture, arg=1)  # type: ignore[call-arg]


def test_map_keeps_no_reference_to_results(executor: fork.Executor) -> None:
    import gc
    import weakref

    for obj in executor.map(workers.make_dummy, range(10), chunksize=3):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None


def test_executor_keeps_no_reference_to_submitted_objects(executor: fork.Executor) -> None:
    import gc
    import weakref

    obj = workers.Dummy()
    ref = weakref.ref(obj)
    executor.submit(obj.method).result(DEADLOCK_NET)
    del obj
    gc.collect()
    assert ref() is None


EXIT_SCRIPT = """
import sys
import goforkpy as fork

def slow_write(path):
    import time
    time.sleep(0.3)
    open(path, "w").write("done")

executor = fork.Executor(max_workers=1)
executor.submit(slow_write, sys.argv[1])
print("submitted", flush=True)
"""


def test_work_submitted_before_exit_still_runs(run_script: RunScript, tmp_path: Path) -> None:
    """As with ProcessPoolExecutor, the interpreter finishes submitted work before it exits."""
    note = tmp_path / "note"
    completed = run_script(EXIT_SCRIPT, args=[str(note)])
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "submitted\n" and note.read_text() == "done"


_SEEN = "at import"


def _seen(_: object) -> str:
    return _SEEN


@pytest.mark.parametrize(
    ("context", "start", "sees"),
    [
        ("spawn", "cold", "at import"),
        ("forkserver", "warm", "at import"),
        ("fork", "snapshot", "at run time"),
    ],
)
def test_mp_context_picks_the_start_method_as_processpoolexecutor_users_expect(
    monkeypatch: pytest.MonkeyPatch, context: str, start: str, sees: str
) -> None:
    """ProcessPoolExecutor's mp_context, by name or as a context: spawn starts workers
    cold, forkserver warm, fork as snapshots (which see this process's memory now)."""
    import multiprocessing

    monkeypatch.setattr(sys.modules[__name__], "_SEEN", "at run time")
    for passed in (context, multiprocessing.get_context(context)):
        with warnings.catch_warnings():  # a snapshot worker is forked beside our threads
            warnings.simplefilter("ignore", RuntimeWarning)
            with fork.Executor(1, mp_context=passed) as pool:
                assert pool._pool.settings.start == start
                assert list(pool.map(_seen, range(3))) == [sees] * 3


def test_mp_context_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="pass 'spawn', 'forkserver' or 'fork'"):
        fork.Executor(1, mp_context="threads")
    with pytest.raises(ValueError, match="mp_context='spawn' starts workers cold, but start"):
        fork.Executor(1, mp_context="spawn", start="warm")


_RAISES_BY_VALUE = """
import goforkpy as fork

def fails(x):
    raise ValueError(x)  # the line the traceback must show

if __name__ == "__main__":
    with fork.Executor(1) as pool:
        try:
            pool.submit(fails, "boom").result()
        except ValueError as exc:
            print(exc.__cause__)
"""


def test_a_function_sent_by_value_keeps_its_file_in_tracebacks(run_script: RunScript) -> None:
    """A main script's function travels by value (cloudpickle names its code's file
    "<dynamic-code>"): the worker's traceback still names the script and its line."""
    done = run_script(_RAISES_BY_VALUE, name="tasks.py")
    assert done.returncode == 0, done.stderr
    assert 'tasks.py", line 5, in fails' in done.stdout, done.stdout
    assert "raise ValueError(x)  # the line the traceback must show" in done.stdout


@pytest.mark.parametrize("how", ["error", "exit"])
def test_a_result_that_will_not_load_fails_its_task_alone(
    executor: fork.Executor, how: str
) -> None:
    """Loading a result runs the result's own code in the pool's thread: what it raises,
    SystemExit included, fails that task; the pool goes on (it used to hang)."""
    with pytest.raises(fork.PayloadError, match="unloadable returned could not be unpickled"):
        executor.submit(workers.pool.unloadable, how).result(timeout=DEADLOCK_NET)
    assert executor.submit(workers.pool.square, 7).result(timeout=DEADLOCK_NET) == 49


@pytest.mark.parametrize("context", ["spawn", "forkserver", "fork"])
def test_shutdown_right_after_a_cancel_returns(context: str) -> None:
    """A cancelled task still queued at shutdown is dropped, and the pool's thread ends
    then: it used to wait on for ever (CPython's test_hang_gh94440)."""
    for _ in range(5):
        executor = fork.Executor(max_workers=1, mp_context=context)
        assert executor.submit(int).result(timeout=DEADLOCK_NET) == 0
        assert executor.submit(int).cancel()
        ending = threading.Thread(target=executor.shutdown)
        ending.start()
        ending.join(DEADLOCK_NET)
        assert not ending.is_alive(), "shutdown(wait=True) hung"


def test_a_task_whose_loading_exits_fails_as_its_workers_crash(executor: fork.Executor) -> None:
    """A SystemExit while the worker loads a task: the worker exits, as asked, and the
    task fails as its crash (a BrokenProcessPool too, as ProcessPoolExecutor says)."""
    future = executor.submit(workers.pool.identity_value, workers.pool.ExitsWhenLoaded())
    with pytest.raises(BrokenProcessPool, match="exited with code 3"):
        future.result(timeout=DEADLOCK_NET)
    assert executor.submit(workers.pool.square, 3).result(timeout=DEADLOCK_NET) == 9


def test_fork_context_workers_are_not_warned_of_one_by_one(run_script: RunScript) -> None:
    """Snapshot workers fork from the pool's thread while the program's threads run; the
    Executor's documentation says what that means once, instead of a RuntimeWarning at
    every worker's start (CPython's own test of interpreter shutdown expects silence)."""
    done = run_script(
        """
        import threading
        import goforkpy as fork

        if __name__ == "__main__":
            fork.init()
            threading.Thread(target=threading.Event().wait, daemon=True).start()
            with fork.Executor(max_workers=2, mp_context="fork") as executor:
                print(sorted(executor.map(abs, [-1, -2, -3])))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[1, 2, 3]\n" and "Warning" not in done.stderr, done.stderr
