"""What new users hit: argument shapes, names, timeouts under load, bounded concurrency, Ctrl+C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import workers
from helpers import DEADLOCK_NET, RunScript, children, unexpected_stderr

import goforkpy as fork

# --- spawn's argument shapes and binding, checked before anything starts ---------------


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        pytest.param(
            lambda: fork.spawn("echo", "abc"), TypeError, r"fork\.spawn\('echo', \('abc',\)\)",
            id="string-as-args",
        ),
        pytest.param(
            lambda: fork.spawn("add", 1, 2), TypeError, "tuple or list, not int", id="loose-args"
        ),
        pytest.param(
            lambda: fork.spawn("add", (1, 2), [("b", 2)]), TypeError, "as a mapping",
            id="kwargs-not-a-mapping",
        ),
        pytest.param(
            lambda: fork.fork("add", 3, timeout=1), TypeError,
            r"fork\.spawn\('add', \(3,\), \{\}, timeout=1\)", id="spawn-option-to-fork",
        ),
        pytest.param(
            lambda: fork.run("add", 1, 2, 3), TypeError, "too many positional arguments",
            id="too-many",
        ),
        pytest.param(
            lambda: fork.spawn("add", (1, 2), {"c": 2}), TypeError, "unexpected keyword",
            id="unknown-keyword",
        ),
        pytest.param(
            lambda: fork.run(lambda: 1), TypeError, r"Executor\(\)\.submit", id="lambda-as-name"
        ),
        pytest.param(
            lambda: fork.fork(workers.add, 1, 2), TypeError, r"fork\.fork\('add', \.\.\.\)",
            id="registered-function-as-name",
        ),
        pytest.param(lambda: fork.spawn(42), TypeError, "name", id="int-as-name"),
    ],
)  # fmt: skip
def test_bad_calls_are_refused_before_anything_starts(call, error, text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=text):
        call()
    assert children() == []


def test_arguments_that_bind_still_run() -> None:
    assert fork.spawn("add", [1], {"b": 2}).result(DEADLOCK_NET) == 3
    assert fork.run("echo", 1, k=2) == ((1,), {"k": 2})


def test_a_lambda_needs_an_explicit_name() -> None:
    with pytest.raises(fork.RegistryError, match="explicit name"):
        fork.register(lambda: 1)
    named = fork.register_func("usage-lambda", lambda: 1)
    assert fork.registered()["usage-lambda"] is named


# --- timeouts count the function's run, not the start-up ---------------------------------


def test_timeout_counts_from_the_function_start() -> None:
    """The child takes 1.5 s to import its module; the function may still run 0.5 s."""
    import slow_import  # noqa: F401 - registers "quick"

    assert fork.spawn("quick", (1,), timeout=0.5).result(DEADLOCK_NET) == 2


def test_start_timeout_bounds_the_start_up_and_says_so() -> None:
    import slow_import  # noqa: F401

    # cold: a warm child finds the module imported by its zygote (test_warm has its case)
    child = fork.spawn("quick", (1,), start_timeout=0.2, timeout=DEADLOCK_NET, start="cold")
    with pytest.raises(fork.TimeoutExpired, match=r"start_timeout=0\.2") as caught:
        child.result(DEADLOCK_NET)
    assert caught.value.timeout == 0.2 and caught.value.pid == child.pid
    assert child.returncode is not None and child.returncode < 0


@pytest.mark.parametrize("value", [float("nan"), -1, "5", True])
@pytest.mark.parametrize("option", ["timeout", "start_timeout", "grace"])
def test_odd_deadlines_are_refused(option: str, value: object) -> None:
    with pytest.raises((ValueError, TypeError), match=option):
        fork.spawn("add", (1, 2), **{option: value})


def test_an_infinite_timeout_means_no_limit() -> None:
    assert fork.spawn("add", (1, 2), timeout=float("inf")).result(DEADLOCK_NET) == 3


# --- Manager(max_running=...) -----------------------------------------------------------


def test_manager_max_running_blocks_until_a_slot_is_free() -> None:
    with fork.Manager(max_running=2) as manager:
        first = manager.spawn("read_line", stdin=fork.PIPE)
        manager.spawn("read_line", stdin=fork.PIPE)
        third: list[fork.Child] = []
        waiter = threading.Thread(target=lambda: third.append(manager.fork("add", 1, 1)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and len(manager) == 2, "a third child started"
        first.communicate(b"done\n", timeout=DEADLOCK_NET)
        waiter.join(DEADLOCK_NET)
        assert third[0].result(DEADLOCK_NET) == 2
        for child in manager:
            if child.is_alive():
                child.communicate(b"done\n", timeout=DEADLOCK_NET)


def test_manager_max_running_is_checked() -> None:
    with pytest.raises(ValueError, match="max_running=0"):
        fork.Manager(max_running=0)


# --- Ctrl+C in an Executor block ends the running work ----------------------------------

CTRL_C_SCRIPT = """
import os, sys, threading
import goforkpy as fork

def stuck(note):
    try:  # ready once inside: a Ctrl+C from now on reaches this except
        print("ready", os.getpid(), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:  # Ctrl+C in the caller reaches the task as it would in-process
        open(note, "w").write("interrupted")
        raise

if __name__ == "__main__":
    try:
        with fork.Executor(max_workers=1) as pool:
            running = pool.submit(stuck, sys.argv[1])
            queued = pool.submit(stuck, sys.argv[1])
            running.result()
    except KeyboardInterrupt:
        print("interrupted", running.cancelled(), queued.cancelled(), flush=True)
"""


def test_ctrl_c_in_an_executor_block_ends_the_running_task(
    run_script: RunScript, tmp_path: Path
) -> None:
    script, note = tmp_path / "ctrl_c.py", tmp_path / "note"
    script.write_text(CTRL_C_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    parent = subprocess.Popen(
        [sys.executable, str(script), str(note)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert parent.stdout is not None
    words = parent.stdout.readline().split()
    assert words[0] == "ready"
    parent.send_signal(signal.SIGINT)
    out, _ = parent.communicate(timeout=DEADLOCK_NET)  # not the task's endless wait
    assert out == "interrupted True True\n"
    assert note.read_text() == "interrupted", "the task got KeyboardInterrupt"
    assert not psutil.pid_exists(int(words[1]))


# --- small surprises ----------------------------------------------------------------------


def test_a_module_child_sees_the_parents_argv() -> None:
    assert fork.run("argv") == sys.argv


def test_progress_bar_suits_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm.auto

    made = []

    class Recorder:
        def __init__(self, total: int) -> None:
            made.append(total)
            self.n = 0

        def update(self, step: int) -> None:
            self.n += step

        def close(self) -> None:
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    with fork.Executor(max_workers=1) as pool:
        assert list(pool.map(workers.square, range(3), progress=True)) == [0, 1, 4]
    assert made == [3]


def test_an_error_before_init_is_one_report(run_script: RunScript) -> None:
    source = """
    import goforkpy as fork

    @fork.register
    def work():
        return 1

    if fork.is_child():
        raise ValueError("config missing in the child")
    fork.init()
    try:
        fork.run("work")
    except fork.InitError as exc:
        print("InitError:", exc)
        print("cause:", "ValueError: config missing" in str(exc.__cause__))
    """
    completed = run_script(source)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("InitError: the child's script raised ValueError")
    assert lines[1] == "cause: True"
    assert unexpected_stderr(completed.stderr) == "", "the child printed its own traceback too"


def test_task_timeout_counts_from_the_task_start_not_the_worker_start() -> None:
    """A worker that takes 1.5 s to get ready still gives its task the whole 0.5 s."""
    import time

    with fork.Executor(
        max_workers=1, task_timeout=0.5, initializer=time.sleep, initargs=(1.5,)
    ) as pool:
        assert pool.submit(workers.square, 3).result(DEADLOCK_NET) == 9
