"""Snapshots: a fork of the test process itself, running one function on a copy of it."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest
from helpers import DEADLOCK_NET, RunScript, ready, wait_gone

import goforkpy as fork
from goforkpy._process import platform

# Other tests leave threads behind (tqdm's monitor); the warning about them is tested
# on its own, in a process of its own.
pytestmark = pytest.mark.filterwarnings("ignore:fork.snapshot.*threads of its own:RuntimeWarning")


def test_child_sees_the_memory_as_it_was_at_the_call() -> None:
    table = list(range(1_000_000))
    go_r, go_w = os.pipe()

    def checksum() -> int:
        os.read(go_r, 1)  # the parent has changed its table by now
        return sum(table)

    child = fork.snapshot(checksum)
    for i in range(len(table)):
        table[i] = -1
    os.write(go_w, b"!")
    os.close(go_r)
    os.close(go_w)
    assert child.result(DEADLOCK_NET) == sum(range(1_000_000))
    assert sum(table) == -1_000_000
    assert child.start == "snapshot" and child.name.endswith("checksum")


def test_closures_and_unpicklable_arguments() -> None:
    lock = threading.Lock()
    numbers = (n * n for n in range(3))
    outer = 40

    def use(lk: Any, gen: Any, *, extra: int) -> tuple[bool, list[int], int]:
        with lk:
            return lk.locked(), list(gen), outer + extra

    assert fork.snapshot(use, lock, numbers, extra=2).result(DEADLOCK_NET) == (True, [0, 1, 4], 42)
    assert not lock.locked() and list(numbers) == [0, 1, 4], "the parent's own are untouched"


def test_a_snapshot_child_has_pythons_ctrl_c_handler() -> None:
    """The caller holds Ctrl+C back while it makes a child (a KeyboardInterrupt then ends
    the child and raises after); a snapshot, a copy made in that moment, has Python's own
    handler back, so Ctrl+C or ``send_signal(SIGINT)`` raises KeyboardInterrupt in it."""

    def handler_is_pythons() -> bool:
        return signal.getsignal(signal.SIGINT) is signal.default_int_handler

    assert handler_is_pythons()  # as pytest runs the test
    assert fork.snapshot(handler_is_pythons).result(DEADLOCK_NET)
    assert handler_is_pythons()


def _segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _exit_seven() -> None:
    os._exit(7)


def _raise() -> None:
    raise KeyError("missing")


def _sleep_forever() -> None:
    print("ready", flush=True)
    threading.Event().wait()


CRASHES: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("segfault", _segfault, fork.ChildCrashed, "SIGSEGV"),
    ("os-exit", _exit_seven, fork.ChildCrashed, "code 7"),
    ("raises", _raise, KeyError, "missing"),
    ("system-exit", lambda: exit(3), fork.ChildCrashed, "SystemExit(3)"),
]


@pytest.mark.parametrize(
    ("fn", "error", "text"), [pytest.param(*row[1:], id=row[0]) for row in CRASHES]
)
def test_failures_leave_the_parent_untouched(
    fn: Callable[[], Any], error: type[BaseException], text: str
) -> None:
    kept = {"state": [1, 2, 3]}
    child = fork.snapshot(fn)
    with pytest.raises(error, match=re.escape(text)):
        child.result(DEADLOCK_NET)
    assert kept == {"state": [1, 2, 3]} and not child.is_alive()


def _wait_for_ever() -> None:
    threading.Event().wait()


@contextlib.contextmanager
def _copy_of_this_process(how: str) -> Iterator[None]:
    """A copy of the test process for the block's time: a snapshot, or a plain fork (as
    multiprocessing or a prefork server makes one)."""
    if how == "snapshot":
        holder = fork.snapshot(_wait_for_ever)
        try:
            yield
        finally:
            holder.kill()
            holder.wait()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the test process has threads
        pid = os.fork()
    if pid == 0:
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
            while True:
                signal.pause()
        finally:
            os._exit(0)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.mark.parametrize("copy", ["snapshot", "os.fork"])
@pytest.mark.parametrize("start", ["cold", "warm", "snapshot"])
def test_a_copy_of_the_parent_holds_no_end_of_a_childs_pipes(start: str, copy: str) -> None:
    """A child reads the end of its input when the parent closes its stdin, however many
    copies of itself the parent made meanwhile: each copy got the parent's descriptors,
    and a copy that held the end that writes kept the child waiting as long as it lived."""
    child = fork.spawn("shout_back", start=start, stdin=fork.PIPE, stdout=fork.PIPE)
    with _copy_of_this_process(copy):
        out, _ = child.communicate(b"hello", timeout=DEADLOCK_NET)
        assert (out, child.result()) == (b"HELLO", 5)


@pytest.mark.skipif(not platform.NATIVE, reason="no intermediate without subreapers")
def test_a_copy_forked_as_a_snapshot_starts_holds_up_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread's fork in the instant the pipe that tells a snapshot's pid is open
    gives that copy the pipe's writing end: the pid and the result come all the same,
    while the copy lives (the pid was read up to EOF, which only the copy's end could
    bring)."""
    real_pipe, copies = os.pipe, contextlib.ExitStack()

    def pipe_and_a_copy() -> tuple[int, int]:
        ends = real_pipe()
        if sys._getframe(1).f_code.co_name == "_fork_contained":
            copies.enter_context(_copy_of_this_process("os.fork"))
        return ends

    monkeypatch.setattr(os, "pipe", pipe_and_a_copy)
    with copies:
        child = fork.snapshot(divmod, 7, 2)
        assert child.result(DEADLOCK_NET) == (3, 1)
        assert child.pid != os.getpid()


def _children_of_its_own(start: str) -> tuple[int, int, list[int]]:
    """In a snapshot child: a child of its own, an Executor's task, and a child left
    running (its pid comes back, for the test to see it ended with the snapshot)."""
    sleeper = fork.spawn("ready_then_sleep", start=start, stdout=fork.PIPE)
    ready(sleeper)
    with fork.Executor(max_workers=1, start=start) as executor:
        task = executor.submit(abs, -5).result(DEADLOCK_NET)
    added = fork.spawn("add", (1, 2), start=start).result(DEADLOCK_NET)
    return added, task, [sleeper.pid]


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_a_snapshot_child_starts_children_of_its_own(start: str) -> None:
    """A snapshot is a process like any other: it may start children, and what it
    leaves running ends with it."""
    child = fork.snapshot(_children_of_its_own, start)
    added, task, left = child.result(DEADLOCK_NET)
    assert (added, task) == (3, 5)
    assert wait_gone(left, within=DEADLOCK_NET) == [], "the snapshot's own child outlived it"


def test_process_options_timeout_and_tree(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"

    def report() -> str:
        print(os.environ["SNAPSHOT_TEST"], os.getcwd(), os.getpgid(0) == os.getpid())
        return "done"

    child = fork.spawn(
        report, start="snapshot", stdout=out, env={"SNAPSHOT_TEST": "seen"}, cwd=tmp_path
    )
    assert child.result(DEADLOCK_NET) == "done"
    assert out.read_text().split() == ["seen", str(tmp_path), "True"]
    assert "SNAPSHOT_TEST" not in os.environ

    timed = fork.spawn(_sleep_forever, start="snapshot", stdout=fork.DEVNULL, timeout=0.2)
    with pytest.raises(fork.TimeoutExpired, match="timeout"):
        timed.result(DEADLOCK_NET)

    def with_grandchild() -> None:
        import subprocess

        sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
        print("ready", sleeper.pid, flush=True)
        threading.Event().wait()

    tree = fork.spawn(with_grandchild, start="snapshot", stdout=fork.PIPE)
    (grandchild,) = ready(tree, close=True)
    tree.terminate()
    assert tree.returncode == -signal.SIGTERM
    assert wait_gone([tree.pid, int(grandchild)], DEADLOCK_NET) == []


def test_limits_apply_in_the_snapshot() -> None:
    def grab() -> int:
        return len(bytearray(512 << 20))

    child = fork.spawn(grab, start="snapshot", limits=fork.Limits(memory="256M"))
    with pytest.raises(fork.ChildCrashed, match="out of memory") as caught:
        child.result(DEADLOCK_NET)
    assert caught.value.reason == "memory-limit"


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: fork.snapshot(42), TypeError, "needs a callable"),  # type: ignore[arg-type]
        (lambda: fork.set_start_method("snapshot"), ValueError, "cannot be a default"),
        (lambda: fork.Executor(start="snapshot"), ValueError, "cannot be a default"),
        (lambda: fork.spawn("nobody", start="snapshot"), fork.RegistryError, "nobody"),
        (lambda: fork.spawn(len, "ab", start="snapshot"), TypeError, "tuple or list"),
        (lambda: fork.spawn(len, (1, 2), start="snapshot"), TypeError, "len"),
    ],
)
def test_bad_snapshot_calls(call: Callable[[], Any], error: type[BaseException], text: str) -> None:
    with pytest.raises(error, match=text):
        call()


BUSY_SCRIPT = """
import sys, threading, time, warnings
import goforkpy as fork
from goforkpy._process import platform

held = threading.Lock()
stop = threading.Event()

def hold_a_lock():
    while not stop.is_set():
        with held:
            time.sleep(0.0005)

def print_lines():
    n = 0
    while not stop.is_set():
        print(f"parent {n}")  # buffered: pending output at many a fork
        n += 1

if __name__ == "__main__":
    fork.init()
    threads = [threading.Thread(target=t, name=t.__name__) for t in (hold_a_lock, print_lines)]
    for t in threads:
        t.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        children = [fork.snapshot(print, f"child {i}") for i in range(200)]
        results = [child.result(60) for child in children]
    stop.set()
    for t in threads:
        t.join()
    sys.stdout.flush()
    kinds = sorted({(w.category.__name__, "print_lines" in str(w.message)) for w in caught})
    print("warnings", kinds, file=sys.stderr)
"""


def test_busy_threads_neither_hang_nor_double_output(run_script: RunScript) -> None:
    done = run_script(BUSY_SCRIPT)
    assert done.returncode == 0, done.stderr
    # Each child writes its line at once; the parent's buffer flushes in blocks, so a
    # child's line may land inside a parent's. Taken out, the parent's stream is whole.
    children = re.findall(r"child (\d+)\n", done.stdout)
    assert sorted(map(int, children)) == list(range(200))
    parent = re.sub(r"child \d+\n", "", done.stdout)
    count = parent.count("\n")
    assert count > 0 and parent == "".join(f"parent {n}\n" for n in range(count))
    assert "warnings [('RuntimeWarning', True)]" in done.stderr, "ours, naming the thread"


def test_no_warning_without_threads_of_our_own(run_script: RunScript) -> None:
    done = run_script(
        """
        import warnings
        import goforkpy as fork

        if __name__ == "__main__":
            fork.init()
            warnings.simplefilter("error", DeprecationWarning)  # Python's own fork warning
            warnings.simplefilter("error", RuntimeWarning)  # ours
            print(fork.snapshot(sum, [1, 2]).result(60), fork.snapshot(abs, -3).result(60))
        """
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "3 3", "")


SIGKILL_SCRIPT = """
import os, subprocess, threading
import goforkpy as fork
from goforkpy._process import platform

def child():
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    print(os.getpid(), sleeper.pid, flush=True)
    threading.Event().wait()

if __name__ == "__main__":
    fork.init()
    fork.snapshot(child).wait()
"""


def test_snapshot_tree_dies_with_its_parent(tmp_path: Path) -> None:
    script = tmp_path / "orphans.py"
    script.write_text(SIGKILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(fork.__file__).parent.parent)}
    parent = psutil.Popen([sys.executable, str(script)], stdout=-1, env=env)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    parent.kill()
    parent.wait()
    parent.stdout.close()
    assert wait_gone(pids, 1.0) == [], "survivors a second after the parent died"


def test_python_fork_warning_never_reaches_the_caller() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert fork.snapshot(sum, [2, 3]).result(DEADLOCK_NET) == 5


def test_the_background_save_example(tmp_path: Path) -> None:
    example = Path(fork.__file__).parent.parent / "examples" / "snapshot.py"
    env = {**os.environ, "PYTHONPATH": str(example.parent.parent)}
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEADLOCK_NET,
    )
    assert done.returncode == 0, done.stderr
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("table-")]
    assert len(verdicts) == 6 and all(line.endswith(", consistent") for line in verdicts)


NO_IMPORT_AFTER_FORK = """
import os, sys
import goforkpy as fork
from goforkpy._process import platform

class Spy:
    '''Records every import a process other than this one attempts.'''
    def __init__(self, path):
        self.parent, self.path = os.getpid(), path
    def find_spec(self, name, path=None, target=None):
        if os.getpid() != self.parent:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            os.write(fd, name.encode() + b"\\n")
            os.close(fd)
        return None

def fail():
    raise ValueError("raised in the child")

if __name__ == "__main__":
    fork.init()
    open(sys.argv[1], "w").close()
    sys.meta_path.insert(0, Spy(sys.argv[1]))
    assert fork.snapshot(len, "four").result() == 4  # the first: nothing loaded before it
    assert fork.snapshot(bytes, 4 << 20).result() == bytes(4 << 20)  # a big result
    try:
        fork.snapshot(fail).result()
    except ValueError:
        pass
    assert fork.snapshot(dict, a=1).result() == {"a": 1}  # pickled, not marshalled
    print("done")
"""


def test_a_snapshot_child_imports_nothing(run_script: RunScript, tmp_path: Path) -> None:
    """An import in the child could wait for ever on the module lock of an import another
    thread of the parent was in at the fork: what the child runs is loaded before it."""
    log = tmp_path / "imports"
    done = run_script(NO_IMPORT_AFTER_FORK, args=[str(log)])
    assert done.returncode == 0, done.stderr
    assert log.read_text() == ""


@pytest.mark.skipif(not platform.NATIVE, reason="no intermediate without subreapers")
def test_an_intermediate_that_cannot_fork_fails_the_snapshot_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller goes on after its own fork; where the intermediate's fork fails (out of
    processes), the child's result says so, and nothing is left."""
    real_fork, caller = os.fork, os.getpid()

    def fork_in_the_caller_only() -> int:
        if os.getpid() != caller:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        return real_fork()

    monkeypatch.setattr(os, "fork", fork_in_the_caller_only)
    child = fork.snapshot(abs, -1)
    with pytest.raises(fork.ForkError, match=r"cannot fork the snapshot of abs: .*Errno 11"):
        child.result(timeout=DEADLOCK_NET)
    assert child.returncode == 1


@pytest.mark.skipif(not platform.NATIVE, reason="no intermediate without subreapers")
def test_ending_the_children_ends_a_snapshot_whose_pid_is_on_its_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The caller goes on before its intermediate tells the snapshot's pid. A SIGTERM, or
    the exit, in that moment ends the children: that one too, gracefully, not only by
    the lifeline's SIGKILL once the caller is gone."""
    from goforkpy._process import lifeline, reaper

    held: list[tuple[int, Callable[[int], None]]] = []  # the reaper never hears the pid
    monkeypatch.setattr(reaper, "when_readable", lambda fd, told: held.append((fd, told)))
    note, (ready_r, ready_w) = tmp_path / "note", os.pipe()

    def graceful() -> None:
        def on_term(signum: int, frame: object) -> None:
            note.write_text("graceful")
            os._exit(0)

        signal.signal(signal.SIGTERM, on_term)
        os.write(ready_w, b"!")
        threading.Event().wait()

    child = fork.snapshot(graceful)
    ending = threading.Thread(target=lifeline.terminate_all)
    try:
        assert os.read(ready_r, 1) == b"!"
        ending.start()
        assert wait_gone([child.pid], DEADLOCK_NET) == []
    finally:
        for fd, told in held:
            told(fd)  # now the reaper watches it, and terminate_all's wait can end
        child.kill()
        ending.join(DEADLOCK_NET)
        os.close(ready_r)
        os.close(ready_w)
    assert note.read_text() == "graceful"
    assert child.wait(DEADLOCK_NET) == 0
