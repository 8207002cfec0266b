"""Small faults a new user met (issue: nothing a child starts outlives it, item 6).

Each has a test here: files left at exit by daemon threads inside goforkpy,
goforkpy's own warnings under ``-X dev``, and an error for an argument that
will not pickle that names the argument and the way around it.
"""

from __future__ import annotations

import errno
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import DEADLOCK_NET, RunScript, children, zygotes

import goforkpy as fork

DAEMONS_AT_EXIT = """
import os, sys, threading, time
import goforkpy as fork
from goforkpy._shared import tmpdir

@fork.register
def sleeper():
    print("ready", flush=True)
    time.sleep(60)

def loop(started):
    child = fork.spawn("sleeper", stdout=fork.PIPE)
    child.stdout.readline()  # it runs, and its crash-stacks file exists
    started.release()
    child.result()

if __name__ == "__main__":
    fork.init()
    started = threading.Semaphore(0)
    for _ in range(3):
        threading.Thread(target=loop, args=(started,), daemon=True).start()
    for _ in range(3):
        started.acquire()
    print(tmpdir.payload_dir(), os.getpid(), flush=True)
    sys.exit(0)  # with the daemon threads inside fork.spawn(...).result()
"""


@pytest.mark.parametrize("attempt", range(3))
def test_no_file_is_left_when_a_program_exits_with_threads_inside_run(
    run_script: RunScript, attempt: int
) -> None:
    done = run_script(DAEMONS_AT_EXIT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, "a daemon thread woke into the exit"
    directory, pid = done.stdout.split()
    left = [name for name in os.listdir(directory) if name.startswith(f"{pid}-")]
    assert left == []


DEV_MODE = """
import os
import goforkpy as fork

def square(x):
    return x * x

@fork.register
def add(a, b):
    return a + b

if __name__ == "__main__":
    fork.init()
    assert fork.run("add", 1, 2) == 3
    assert fork.isolated(square)(3) == 9
    assert fork.spawn("add", (1, 1), start="warm").result() == 2
    assert fork.snapshot(square, 4).result() == 16
    with fork.Executor(2) as executor:
        assert list(executor.map(square, range(3))) == [0, 1, 4]
    print("done")
"""


def test_no_warning_of_ours_under_dev_mode(run_script: RunScript, tmp_path: object) -> None:
    script = run_script(DEV_MODE)  # writes script.py and runs it plainly first
    assert script.returncode == 0, script.stderr
    done = run_script(
        DEV_MODE,
        command=[sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "script.py"],
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")


@fork.register
def takes(a: object, b: object, x: object = None) -> None:
    """Never runs: its arguments do not pickle."""


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [((1, threading.Lock()), {}, "args[1]"), ((1, 2), {"x": threading.Lock()}, "kwargs['x']")],
)
def test_an_argument_that_will_not_pickle_is_named(
    args: tuple[object, ...], kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(fork.PayloadError) as caught:
        fork.run("takes", *args, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{named} of 'takes', a lock, cannot be pickled")
    assert "fork.snapshot(takes, ...)" in message


EAGER_MODULE = """
import goforkpy as fork

@fork.register
def double(x):
    return 2 * x

print(fork.run("double", 21))  # at import time: the child imports this module again
"""


def test_forking_at_import_time_says_so(run_script: RunScript) -> None:
    run_script(EAGER_MODULE, name="eager.py")  # writes it; run alone it forks from __main__
    done = run_script("import eager\n", name="main.py")
    assert done.returncode == 1
    assert (
        "InitError: fork() was called while the module 'eager' was being imported: a child "
        "imports it again, so forking at import time would fork in every child; move the "
        "call into a function, or under `if __name__ == '__main__':`"
    ) in done.stderr


def test_the_sigint_tests_pass_with_sigint_ignored_by_the_caller() -> None:
    """As under ``nohup make test``: the suite sets the disposition its SIGINT tests need."""
    import signal
    import subprocess

    tests = Path(__file__).parent
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tests / "test_trees.py::test_send_signal_goes_to_the_group"),
            str(tests / "test_lifetime.py::test_parent_signal_ends_children_gracefully"),
        ],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=300,  # a deadlock net: a hang is the failure under test
    )
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr


NO_LIMIT = [math.inf, 1e100, 1e308, threading.TIMEOUT_MAX * 2]


@pytest.mark.parametrize("value", NO_LIMIT)
def test_a_timeout_past_the_clock_means_no_limit(value: float) -> None:
    """API.md section 10: inf, or more than threading.TIMEOUT_MAX, is no limit anywhere."""
    child = fork.spawn("add", (1, 2), timeout=value, start_timeout=value, grace=value)
    assert child.wait(value) == 0 and child.result(value) == 3
    with fork.Executor(1, task_timeout=value, grace=value) as executor:
        assert executor.submit(abs, -3).result(value) == 3
        assert list(executor.map(abs, [-1, -2], timeout=value)) == [1, 2]
    assert fork.isolated(abs, timeout=value, grace=value)(-4) == 4
    assert fork.shell("true", timeout=value, grace=value) == 0


@pytest.mark.parametrize("value", [math.nan, -1, "5", True, None.__class__])
@pytest.mark.parametrize(
    "call",
    [
        lambda v: fork.spawn("add", (1, 2), timeout=v),
        lambda v: fork.spawn("add", (1, 2), start_timeout=v),
        lambda v: fork.spawn("add", (1, 2), grace=v),
        lambda v: fork.Executor(1, task_timeout=v),
        lambda v: fork.isolated(abs, timeout=v),
        lambda v: fork.receive(timeout=v),
    ],
    ids=["timeout", "start_timeout", "grace", "task_timeout", "isolated", "receive"],
)
def test_a_timeout_that_is_no_number_of_seconds_is_a_value_error(call: Any, value: object) -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        call(value)


def test_a_zero_timeout_polls() -> None:
    child = fork.spawn("add", (1, 2))
    child.wait(None)
    assert child.wait(0) == 0 and child.result(0) == 3


LENT_PATH = """
import importlib, sys
import goforkpy as fork

if __name__ == "__main__":
    fork.init()
    sys.path.insert(0, sys.argv[1])
    module = importlib.import_module("lent")  # as Celery and plugin loaders do:
    sys.path.remove(sys.argv[1])  # the directory is on sys.path only for the import
    for start in ("cold", "warm"):
        print(start, fork.isolated(module.double, start=start)(21))
"""


def test_a_module_found_on_a_path_lent_for_its_import(
    run_script: RunScript, tmp_path: Path
) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "lent.py").write_text("def double(x):\n    return 2 * x\n")
    done = run_script(LENT_PATH, args=[str(apps)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cold", "42", "warm", "42"]


@pytest.mark.parametrize("start", ["cold", "warm", "snapshot"])
@pytest.mark.parametrize(
    ("env", "error", "words"),
    [
        ({1: "x"}, TypeError, "the name 1 is of type int"),
        ({"A": 1}, TypeError, "the value of 'A' is of type int"),
        ({"A=B": "x"}, ValueError, "'A=B' is not a variable name"),
        ({"": "x"}, ValueError, "'' is not a variable name"),
        ({"A\0": "x"}, ValueError, "holds a NUL byte"),
        ({"A": "x\0y"}, ValueError, "the value of 'A' holds a NUL byte"),
        (["A=B"], TypeError, "pass a mapping"),
    ],
)
def test_a_bad_env_is_refused_before_anything_starts(
    start: str, env: object, error: type[Exception], words: str
) -> None:
    fork.spawn("add", (1, 2), start=start if start != "snapshot" else "cold").wait()
    helpers = zygotes()
    with pytest.raises(error, match=re.escape(words)):
        fork.spawn("add", (1, 2), start=start, env=env)  # type: ignore[arg-type]
    assert children() == [], "nothing started (a zygote's spare is not a start)"
    assert zygotes() == helpers, "no zygote started either"


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_a_bad_stdio_descriptor_is_the_callers_error_and_spares_the_zygote(start: str) -> None:
    fork.spawn("add", (1, 2), start=start).wait()
    helpers = zygotes()
    closed = os.dup(0)
    os.close(closed)
    for _ in range(5):
        with pytest.raises(OSError) as caught:
            fork.spawn("add", (1, 2), start=start, stdout=closed)
        assert caught.value.errno == errno.EBADF
    assert zygotes() == helpers, "the same zygotes, none started or left behind"
    assert children() == [], "nothing started"
    assert fork.spawn("add", (1, 2), start=start).result(DEADLOCK_NET) == 3


MANY_DESCRIPTORS = """
import os, signal, sys
import goforkpy as fork

@fork.register
def leave_late():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(7))
    print("ready", flush=True)
    signal.pause()

if __name__ == "__main__":
    fork.init()
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # a busy server's
    for start in ("cold", "warm", "snapshot"):
        child = fork.spawn("leave_late", start=start, stdout=fork.PIPE, grace=60)
        assert child.stdout.readline() == b"ready\\n", start
        child.stdout.close()
        child.terminate()
        print(start, child.returncode, flush=True)
"""


def test_a_caller_with_descriptors_past_1023_keeps_its_children(run_script: RunScript) -> None:
    """A snapshot's intermediate and a child's lifeline watcher inherit descriptor numbers
    past select()'s limit: the child runs until it is ended, and ends as it chose."""
    done = run_script(MANY_DESCRIPTORS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == ["cold 7", "warm 7", "snapshot 7"]
    assert "Traceback" not in done.stderr, done.stderr
