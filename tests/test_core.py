"""Results, arguments, process options, threads and reaping, in-process (module mode)."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import psutil
import pytest
import workers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import goforkpy as fork


def test_result_and_returncode() -> None:
    child = fork.fork("add", 2, 3)
    assert child.result(timeout=60) == 5
    assert child.returncode == 0 and child.poll() == 0 and not child.is_alive()
    assert child.result() == 5, "result() can be asked again"
    assert repr(child) == f"<Child 'add' pid={child.pid} exited with code 0>"


def test_args_and_kwargs_arrive_unchanged() -> None:
    assert fork.run("echo", 1, "two", name="kw", values=[3.5]) == (
        (1, "two"),
        {"name": "kw", "values": [3.5]},
    )


def test_shortcuts_attached_by_register() -> None:
    assert workers.add.run(20, 22) == 42
    assert workers.add.fork(1, 1).result() == 2


def test_identity_and_markers_in_a_child() -> None:
    info = fork.run("identity")
    assert info["is_child"] and info["ppid"] == os.getpid() != info["pid"]
    assert info["markers"] == [], "init() must remove the markers"
    assert fork.ppid() is None and not fork.is_child() and fork.pid() == os.getpid()
    # A big payload is written while the child starts, through a pipe of its own.
    big = fork.run("identity", b"\0" * (2 << 20))
    assert big["markers"] == [] and big["pipes"] == info["pipes"], "the pipe must be closed"


def test_module_child_stays_lean() -> None:
    # A cold child's own imports; a warm one has what its zygote preloaded.
    modules = fork.spawn("identity", start="cold").result()["modules"]
    assert "cloudpickle" not in modules and "psutil" not in modules
    assert "pytest" not in modules, "the main program must not be re-run"


def test_grandchildren() -> None:
    middle, leaf_parent, leaf = fork.run("grandchild_pids")
    assert leaf_parent == middle != leaf


def test_nesting_within_the_depth_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOFORKPY_MAX_DEPTH", "3")
    assert fork.run("recurse", 2) == 2


@pytest.mark.parametrize("bad", ["0", "-2", "lots"])
def test_bad_max_depth_is_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("GOFORKPY_MAX_DEPTH", bad)
    with pytest.raises(fork.InitError, match="GOFORKPY_MAX_DEPTH"):
        fork.fork("add", 1, 1)


def test_env_and_cwd(tmp_path: Path) -> None:
    child = fork.spawn("identity", env={"GOFORKPY_TEST_PROBE": "here"}, cwd=tmp_path)
    info = child.result()
    assert info["env_probe"] == "here" and info["cwd"] == str(tmp_path)


def test_stdout_to_a_path_and_pipes(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    fork.spawn("ready_then_sleep", stdout=out, stderr=fork.DEVNULL).kill()
    child = fork.spawn("ready_then_sleep", stdout=fork.PIPE, stderr=fork.STDOUT)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    child.kill()
    child.stdout.close()
    assert child.returncode == -9


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"stdin": "not-a-file-anywhere/x"}, FileNotFoundError, "not-a-file-anywhere"),
        ({"stdout": 3.5}, TypeError, "stdout=3.5 is not a redirect"),
        ({"stdin": fork.STDOUT}, ValueError, "only makes sense for stderr"),
    ],
)
def test_bad_redirects_are_refused(kwargs: dict, error: type, text: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=text):
        fork.spawn("add", (1, 2), **kwargs)


def test_context_manager_terminates_a_running_child() -> None:
    with fork.spawn("ready_then_sleep", stdout=fork.PIPE) as child:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        child.stdout.close()
    assert child.returncode == -15


def test_wait_timeout_leaves_the_child_running() -> None:
    child = fork.spawn("ready_then_sleep", stdout=fork.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    with pytest.raises(fork.TimeoutExpired) as caught:
        child.wait(timeout=0.01)
    assert isinstance(caught.value, TimeoutError) and caught.value.pid == child.pid
    assert child.is_alive() and "running" in repr(child)
    child.kill()
    child.stdout.close()
    assert "exited with SIGKILL" in repr(child)


def test_child_has_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        fork.Child()


def test_reaped_without_anybody_waiting() -> None:
    pid = fork.fork("add", 1, 1).pid
    gc.collect()
    deadline = time.monotonic() + 60  # a deadlock net: reaping takes milliseconds
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not psutil.pid_exists(pid), f"pid {pid} was left a zombie"


def test_fork_from_many_threads_at_once() -> None:
    results: dict[int, int] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        try:
            for j in range(4):
                results[i * 10 + j] = fork.run("add", i, j)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {i * 10 + j: i + j for i in range(8) for j in range(4)}


def test_large_payloads_round_trip() -> None:
    blob = os.urandom(1 << 20) * 64  # 64 MiB
    mutable = bytearray(b"\x01" * (8 << 20))  # travels out of band
    (back_blob, back_mutable), _ = fork.run("echo", blob, mutable)
    assert back_blob == blob and back_mutable == mutable
    assert type(back_mutable) is bytearray
    (first, again), named = fork.run("echo", blob, blob, also=blob)  # plain data: blobs
    assert first == blob and first is again is named["also"]


def test_lambda_and_closure_arguments_go_by_value() -> None:
    offset = 3
    (fn,), _ = fork.run("echo", lambda x: x + offset)
    assert fn(1) == 4


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=2**200)
    | st.floats(allow_nan=True)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.frozensets(st.integers(), max_size=4)
    ),
    max_leaves=20,
)


def _same(a: object, b: object) -> bool:
    """Equality that counts nan as equal to itself and checks exact types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a != a and b != b) or (a == b and str(a) == str(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined,index]
    return a == b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(plain, max_size=4))
def test_arbitrary_arguments_round_trip_through_a_child(args: list[object]) -> None:
    back_args, _ = fork.run("echo", *args)
    assert _same(list(back_args), args)


@pytest.mark.parametrize("repeat", range(5))
def test_dropped_handles_after_a_threaded_burst_are_all_reaped(repeat: int) -> None:
    """The order that once left one of twenty a zombie: forks from 8 threads, then 20 dropped."""
    test_fork_from_many_threads_at_once()
    pids = [fork.fork("add", i, 1).pid for i in range(20)]
    gc.collect()
    deadline = time.monotonic() + 60  # a deadlock net: reaping takes milliseconds
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [p for p in pids if psutil.pid_exists(p)] == [], "left as zombies"
