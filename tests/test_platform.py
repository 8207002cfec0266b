"""The portable layer: goforkpy on nothing but waitpid, kill and process groups.

macOS and the BSDs lack ``os.waitid``, pidfds, ``prctl``, /proc, SO_PEERCRED
and /dev/shm. ``GOFORKPY_PLATFORM=posix`` picks the layer they use; CI runs
the whole suite under it too. The tests here go further and delete the
Linux-only calls from ``os`` before goforkpy is imported, as on macOS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET, RunScript

import goforkpy as fork
from goforkpy._process import platform

WITHOUT_LINUX = """
import os, sys
for name in ("waitid", "pidfd_open", "sched_getaffinity"):
    if hasattr(os, name):
        delattr(os, name)
import goforkpy as fork
from goforkpy._process import platform
assert not platform.NATIVE

@fork.register
def square(x):
    return x * x

@fork.register
def wait_forever(note):
    import signal, threading
    def on_term(signum, frame):
        open(note, "w").write("graceful")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    threading.Event().wait()

if __name__ == "__main__":
    fork.init()
    child = fork.fork("square", 7)
    print("result", child.result(timeout=30), flush=True)
    with fork.Executor(max_workers=2) as pool:
        print("executor", sum(pool.map(square, range(10))), flush=True)
    fork.fork("wait_forever", sys.argv[1]).wait()
"""


def test_without_the_linux_only_calls(tmp_path: Path) -> None:
    """Results, an Executor block, and SIGTERM ending the program and its child."""
    script, note = tmp_path / "portable.py", tmp_path / "note"
    script.write_text(WITHOUT_LINUX)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(fork.__file__).parent.parent),
        "GOFORKPY_PLATFORM": "posix",
    }
    parent = subprocess.Popen(
        [sys.executable, str(script), str(note)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert parent.stdout is not None
    assert parent.stdout.readline() == "result 49\n"
    assert parent.stdout.readline() == "executor 285\n"
    assert parent.stdout.readline() == "ready\n"
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=DEADLOCK_NET)
    assert parent.returncode == -signal.SIGTERM, err
    assert note.read_text() == "graceful"


def test_the_switch_is_checked(run_script: RunScript) -> None:
    completed = run_script("import goforkpy._process.platform", env={"GOFORKPY_PLATFORM": "macos"})
    assert completed.returncode == 1
    assert "GOFORKPY_PLATFORM='macos': set it to 'posix' or 'native'" in completed.stderr


@pytest.mark.skipif(not platform.NATIVE, reason="checks the choice made on Linux")
def test_linux_picks_the_native_layer() -> None:
    assert platform.watch_exit_supported()


@pytest.mark.parametrize("kind", ["this process's", "thread per child"])
def test_the_reaper_calls_back_when_a_descriptor_is_readable(kind: str) -> None:
    """reaper.when_readable (how a snapshot's pid arrives) on either reaper: the callback
    runs once data or EOF is there, on a reaper thread, with the descriptor to close.
    The thread-per-child reaper is what Linux without pidfds uses."""
    import threading

    from goforkpy._process import reaper

    one = reaper if kind == "this process's" else reaper._ThreadPerChild()
    called = threading.Event()
    seen: list[tuple[int, bytes, str]] = []

    def callback(fd: int) -> None:
        seen.append((fd, os.read(fd, 64), threading.current_thread().name))
        os.close(fd)
        called.set()

    read, write = os.pipe()
    one.when_readable(read, callback)
    assert not called.wait(0.05)  # nothing to read yet
    os.write(write, b"4242")
    os.close(write)
    assert called.wait(DEADLOCK_NET)
    assert seen[0][:2] == (read, b"4242")
    assert seen[0][2].startswith("goforkpy-")


HAS_CHILDREN = """
import os
from goforkpy._process.platform import linux, posix

before = linux.has_children()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # ended, and left unreaped
ended = linux.has_children()
os.waitpid(pid, 0)
print(before, ended, linux.has_children(), posix.has_children())
"""


@pytest.mark.skipif(not platform.NATIVE, reason="Linux's layer answers with waitid")
def test_has_children_tells_an_unreaped_child_and_reaps_nothing(run_script: RunScript) -> None:
    """A reused worker asks after every task whether the task left a child: Linux's
    layer answers without reaping one, even one that has ended; the portable layer
    cannot tell, so it says yes and the worker looks."""
    done = run_script(HAS_CHILDREN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "False", "True"]
