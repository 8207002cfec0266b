"""``goforkpy.dask``: isolated tasks on a real Dask ``LocalCluster`` (127.0.0.1 only).

Each test starts its own cluster of two worker processes, so the autouse
fixture checks that closing it leaves no worker, zygote or child behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DEADLOCK_NET, gone, wait_gone
from workers import isolation
from workers.isolation import double, parse

import goforkpy as fork

pytest.importorskip(
    "distributed", reason="Dask distributed is not installed (pip install 'goforkpy[dask]')"
)
from distributed import Client, LocalCluster

import goforkpy.dask


@contextlib.contextmanager
def _cluster(workers: int, plugin: goforkpy.dask.Isolation) -> Iterator[Client]:
    """A real LocalCluster on 127.0.0.1 (two threads a worker), ``plugin`` registered."""
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(plugin)
        yield client


@pytest.fixture
def client() -> Iterator[Client]:
    with _cluster(2, goforkpy.dask.Isolation()) as client:
        yield client


def _wait_for(path: Path) -> list[int]:
    """The pids a ``hold`` task wrote once it is running (the readiness handshake)."""
    deadline = time.monotonic() + DEADLOCK_NET
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return [int(pid) for pid in path.read_text().split()]


def _zygotes(client: Client) -> dict[str, list[int]]:
    from goforkpy._launch import kept_zygotes as zygote

    return client.run(zygote.pids)  # type: ignore[no-any-return]


def test_results_come_back_from_children_of_the_workers(client: Client) -> None:
    workers = client.run(os.getpid)
    results = client.gather(client.map(double, range(8)))
    assert [value for value, _, _ in results] == [2 * i for i in range(8)]
    assert {pid for _, pid, _ in results}.isdisjoint(workers.values())
    assert all(zygotes for zygotes in _zygotes(client).values()), "every worker has a zygote"


def test_a_segfault_fails_the_task_and_the_worker_stays(client: Client) -> None:
    before = client.run(os.getpid)
    futures = client.map(parse, ["1", "crash", "2", "3", "crash", "4"])
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(DEADLOCK_NET))
        except fork.ChildCrashed as exc:
            outcomes.append(exc.reason)
    assert outcomes == [1, "signal", 2, 3, "signal", 4]
    assert client.run(os.getpid) == before  # no worker died or restarted


def test_a_timeout_fails_the_task_and_ends_its_tree(client: Client, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    future = client.submit(fork.isolated(isolation.hold, timeout=1, grace=0.2), str(ready))
    with pytest.raises(fork.TimeoutExpired):
        future.result(DEADLOCK_NET)
    assert wait_gone(_wait_for(ready), DEADLOCK_NET) == []


def test_cancel_ends_the_running_child(client: Client, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    before = client.run(os.getpid)
    future = client.submit(fork.isolated(isolation.hold), str(ready))
    pids = _wait_for(ready)  # the child and its grandchild: they would wait for ever
    client.cancel(future)
    assert wait_gone(pids, DEADLOCK_NET) == []
    assert client.run(os.getpid) == before
    assert client.submit(double, 5).result(DEADLOCK_NET)[0] == 10  # the thread came back


def test_a_memory_limit_fails_the_task_alone(client: Client) -> None:
    allocate = fork.isolated(isolation.allocate, limits=fork.Limits(memory="300M"))
    assert client.submit(allocate, 10).result(DEADLOCK_NET) == 10 << 20
    with pytest.raises(fork.ChildCrashed) as caught:
        client.submit(allocate, 2048).result(DEADLOCK_NET)
    assert caught.value.reason == "memory-limit"
    # the Dask guide's example: a segfault under a memory limit it never came near
    segfault = fork.isolated(isolation.segfault, limits=fork.Limits(memory="1G"))
    with pytest.raises(fork.ChildCrashed) as caught:
        client.submit(segfault).result(DEADLOCK_NET)
    assert caught.value.reason == "signal" and "string_at" in (caught.value.traceback or "")


def test_a_killed_worker_leaves_no_child(client: Client, tmp_path: Path) -> None:
    workers = client.run(os.getpid)
    zygotes = _zygotes(client)
    held, futures = {}, []  # a future let go of would cancel its task
    for number, address in enumerate(workers):
        ready = tmp_path / f"ready-{number}"
        hold = fork.isolated(isolation.hold)
        futures.append(client.submit(hold, str(ready), workers=[address], pure=False))
        held[address] = _wait_for(ready)
    victim = next(iter(workers))
    os.kill(workers[victim], signal.SIGKILL)
    assert wait_gone([*held[victim], *zygotes[victim]], DEADLOCK_NET) == []
    survivor = [pid for address, pids in held.items() if address != victim for pid in pids]
    assert not any(gone(pid) for pid in survivor)  # the other worker's task runs on


def test_a_closing_worker_ends_the_children_it_abandons(tmp_path: Path) -> None:
    """In-process workers: the process lives on, so only the plugin can end the child."""
    ready = tmp_path / "ready"
    start_method = fork.get_start_method()
    try:
        with (
            LocalCluster(
                n_workers=1,
                processes=False,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.register_plugin(goforkpy.dask.Isolation(start="cold"))
            future = client.submit(fork.isolated(isolation.hold), str(ready))
            pids = _wait_for(ready)
            assert not future.done()
        assert wait_gone(pids, DEADLOCK_NET) == []
    finally:
        fork.set_start_method(start_method)


def test_the_cluster_leaves_nothing_when_it_closes() -> None:
    import psutil

    with (
        LocalCluster(
            n_workers=2, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(goforkpy.dask.Isolation())
        assert client.gather(client.map(double, range(4)))[3][0] == 6
        workers = list(client.run(os.getpid).values())
        started = [p.pid for w in workers for p in psutil.Process(w).children(recursive=True)]
        assert len(started) >= 2  # each worker's zygote, at least
    assert wait_gone([*workers, *started], DEADLOCK_NET) == []


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"start": "snapshot"}, "'warm' or 'cold'"),
        ({"grace": -1}, "grace"),
        ({"warm_up_timeout": -1}, "warm_up_timeout"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        goforkpy.dask.Isolation(**settings)


@pytest.mark.parametrize("where", ["own cluster", "scheduler address"])
def test_the_example(where: str, client: Client) -> None:
    import subprocess
    import sys

    example = Path(fork.__file__).parent.parent / "examples" / "dask_cluster.py"
    address = [client.scheduler.address] if where == "scheduler address" else []
    done = subprocess.run(
        [sys.executable, str(example), *address],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(example.parent.parent)},
        timeout=DEADLOCK_NET,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "45 records parsed, 5 crashed the parser:"
    assert lines[1:6] == [f"  !corrupt-{i}: signal (SIGSEGV)" for i in range(10, 51, 10)]
    assert lines[-1] == "workers restarted: none"


@pytest.fixture
def reusing_client() -> Iterator[Client]:
    """A cluster whose isolated calls run in reused isolated workers (isolate="worker")."""
    with _cluster(1, goforkpy.dask.Isolation(isolate="worker")) as client:
        yield client


def test_reused_workers_run_calls_crash_alone_and_time_out(
    reusing_client: Client, tmp_path: Path
) -> None:
    client = reusing_client
    before = client.run(os.getpid)
    results = client.gather(client.map(double, range(8)))
    assert [value for value, _, _ in results] == [2 * i for i in range(8)]
    assert len({pid for _, pid, _ in results}) < 8, "calls share their workers"
    outcomes = []
    for future in client.map(parse, ["1", "crash", "2"]):
        try:
            outcomes.append(future.result(DEADLOCK_NET))
        except fork.ChildCrashed as exc:
            outcomes.append(exc.reason)
    assert outcomes == [1, "signal", 2]
    ready = tmp_path / "ready"
    future = client.submit(fork.isolated(isolation.hold, timeout=1, grace=0.2), str(ready))
    with pytest.raises(fork.TimeoutExpired):
        future.result(DEADLOCK_NET)
    _worker, grandchild = _wait_for(ready)
    assert wait_gone([grandchild], DEADLOCK_NET) == [], "what the call started ends with it"
    assert client.run(os.getpid) == before


def test_cancel_ends_a_reused_worker_tree(reusing_client: Client, tmp_path: Path) -> None:
    client = reusing_client
    ready = tmp_path / "ready"
    future = client.submit(fork.isolated(isolation.hold), str(ready))
    pids = _wait_for(ready)  # the reused worker and the call's grandchild
    client.cancel(future)
    assert wait_gone(pids, DEADLOCK_NET) == []
    assert client.submit(double, 5).result(DEADLOCK_NET)[0] == 10


def _read_outside(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return type(exc).__name__


@pytest.mark.skipif(not fork.sandbox_support()["available"], reason="no sandbox on this layer")
@pytest.mark.parametrize("isolate", ["task", "worker"])
def test_isolation_with_a_sandbox_runs_each_isolated_call_inside(
    isolate: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("the worker's secret")
    plugin = goforkpy.dask.Isolation(isolate=isolate, sandbox=fork.Sandbox())
    with _cluster(1, plugin) as client:
        wrapped = fork.isolated(_read_outside)
        assert client.submit(wrapped, str(secret)).result(DEADLOCK_NET) == "PermissionError"
        assert client.submit(_read_outside, str(secret)).result() == "the worker's secret"
