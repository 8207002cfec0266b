"""Resource limits: applied in the child, tripped, checked in the parent.

Children signal readiness ("ready" on stdout) before anything is done to them;
timeouts here are deadlock nets, never what a test measures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DEADLOCK_NET, RunScript

import goforkpy as fork


@pytest.mark.parametrize(
    ("limits", "call", "error", "check"),
    [
        pytest.param(
            fork.Limits(memory="256M"),
            ("allocate", (1 << 30,)),
            fork.ChildCrashed,
            lambda e: e.reason == "memory-limit" and "Limits(memory='256M')" in str(e),
            id="memory",
        ),
        pytest.param(
            fork.Limits(cpu_seconds=1),
            ("spin", ()),
            fork.ChildCrashed,
            lambda e: e.signal in ("SIGXCPU", "SIGKILL") and e.reason == "cpu-limit",
            id="cpu",
        ),
        pytest.param(
            fork.Limits(open_files=64),
            ("open_many", (100,)),
            OSError,
            lambda e: "Too many open files" in str(e),
            id="open-files",
        ),
    ],
)
def test_limits_trip(limits: fork.Limits, call: tuple, error: type, check) -> None:  # type: ignore[no-untyped-def,type-arg]
    name, args = call
    child = fork.spawn(name, args, limits=limits)
    with pytest.raises(error) as caught:
        child.result(timeout=DEADLOCK_NET)
    assert check is None or check(caught.value)


def test_a_limit_the_caller_is_told_of_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The caller gets the ChildCrashed; the log says it at INFO, not as a warning."""
    caplog.set_level("DEBUG", logger="goforkpy")
    with pytest.raises(fork.ChildCrashed) as caught:
        fork.spawn("allocate", (1 << 30,), limits=fork.Limits(memory="256M")).result()
    assert caught.value.reason == "memory-limit"
    said = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [level for level, message in said if "memory" in message] == ["INFO"], said


def test_file_size_limit(tmp_path: Path) -> None:
    target = tmp_path / "big"
    limits = fork.Limits(file_size="1M")
    with pytest.raises(OSError, match="File too large"):
        fork.spawn("write_file", (str(target), 2 << 20), limits=limits).result()
    assert fork.spawn("write_file", (str(target), 1000), limits=limits).result() == 1000


def test_every_limit_is_applied_in_the_child() -> None:
    """Including processes (RLIMIT_NPROC), which root is exempt from tripping."""
    limits = fork.Limits(memory="1G", cpu_seconds=30, open_files=200, processes=500, file_size="5M")
    applied = fork.spawn("rlimits", limits=limits).result(timeout=DEADLOCK_NET)
    assert applied == {
        "RLIMIT_AS": (1 << 30, 1 << 30),
        "RLIMIT_CPU": (30, 31),
        "RLIMIT_NOFILE": (200, 200),
        "RLIMIT_NPROC": (500, 500),
        "RLIMIT_FSIZE": (5 << 20, 5 << 20),
    }


def test_limits_within_bounds_let_the_function_run() -> None:
    limits = fork.Limits(memory="1G", cpu_seconds=60, open_files=256, file_size=10 << 20)
    assert fork.spawn("allocate", (10 << 20,), limits=limits).result() == 10 << 20


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"memory": "lots"}, ValueError, "optional unit"),
        ({"memory": -5}, ValueError, "must be positive"),
        ({"cpu_seconds": "10"}, TypeError, "expected an int"),
        ({"open_files": 1.5}, TypeError, "expected an int"),
        ({"open_files": 10**12}, ValueError, "hard limit"),
    ],
)
def test_bad_limits_are_named(kwargs: dict, error: type, text: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=text):
        fork.spawn("add", (1, 2), limits=fork.Limits(**kwargs))


def test_limits_sizes_and_repr() -> None:
    limits = fork.Limits(memory="1.5G", file_size="10KiB")
    assert limits.memory == 3 << 29 and limits.file_size == 10 << 10  # type: ignore[attr-defined]
    assert repr(limits) == f"Limits(memory={3 << 29}, file_size=10240)"
    assert limits == fork.Limits(memory=3 << 29, file_size=10240)
    with pytest.raises(AttributeError, match="immutable"):
        limits.memory = 5  # type: ignore[attr-defined]


PAST_THE_SETTLING = """
import os, sys, time
import goforkpy as fork

def starved():
    sys.path.clear()  # nothing more can be imported, and no descriptor opened
    fds = []
    try:
        while True:
            fds.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    time.sleep(0.3)  # past the settling time, when a child arms its parent-death signal
    for fd in fds:
        os.close(fd)
    return len(fds) > 0

@fork.register
def registered():
    return starved()

if __name__ == "__main__":
    fork.init()
    limits = fork.Limits(open_files=64)
    for start in ("cold", "warm", "snapshot"):
        name = starved if start == "snapshot" else "registered"
        print(start, fork.spawn(name, limits=limits, start=start).result(timeout=60))
"""


@pytest.mark.parametrize("platform", ["native", "posix"])
def test_a_child_out_of_descriptors_and_imports_is_still_watched_quietly(
    run_script: RunScript, platform: str
) -> None:
    """What watches the parent from the child loads before the function runs: a child
    whose function took every descriptor and emptied ``sys.path`` ran past the
    settling time with no error of goforkpy's on its stderr."""
    completed = run_script(PAST_THE_SETTLING, env={"GOFORKPY_PLATFORM": platform})
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout.splitlines() == ["cold True", "warm True", "snapshot True"]
