"""Plain Dask against isolated tasks, side by side on one LocalCluster (127.0.0.1).

The task functions live here, importable, so both kinds of task send them by
reference: the workers import this module (their ``sys.path`` is the parent's).
"""

import os
import time

import goforkpy as fork


def burn(seconds):
    """Spin the CPU for ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return seconds


def parse(record):
    """A parser with a native bug: records starting with '!' crash it."""
    if record.startswith("!"):
        import ctypes

        ctypes.string_at(0)
    return len(record.split(","))


isolated_burn = fork.isolated(burn)
isolated_parse = fork.isolated(parse, timeout=60)


class _CountWorkers:
    """A scheduler plugin counting workers that join (a restart is one more)."""

    name = "count-workers"

    def __init__(self):
        self.joined = 0

    def add_worker(self, scheduler=None, worker=None, **kwargs):
        self.joined += 1


def _joined(client):
    return client.run_on_scheduler(
        lambda dask_scheduler: dask_scheduler.plugins["count-workers"].joined
    )


def bench_dask(rounds, tasks=1000, crashing=(200, 20)):
    """Throughput of 10 ms tasks, and a batch in which some tasks segfault."""
    try:
        from dask.distributed import Client, LocalCluster, SchedulerPlugin
    except ImportError:
        print("\nDask: distributed is not installed (pip install 'goforkpy[dask]'); skipped")
        return
    import logging

    import goforkpy.dask

    counter = type("CountWorkers", (_CountWorkers, SchedulerPlugin), {})()
    cores = len(os.sched_getaffinity(0))
    with (
        LocalCluster(
            n_workers=cores,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(goforkpy.dask.Isolation())
        client.register_plugin(counter)
        _throughput(client, rounds, tasks, cores)
        _crashes(client, *crashing)


def _throughput(client, rounds, tasks, cores):
    from dask.distributed import wait

    contenders = {"plain Dask submit": burn, "fork.isolated": isolated_burn}
    for fn in contenders.values():
        wait(client.map(fn, [0.01] * (4 * cores), pure=False))  # imports and zygotes up
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            futures = client.map(fn, [0.01] * tasks, pure=False)
            wait(futures)
            assert all(f.status == "finished" for f in futures)
            samples[name].append(tasks / (time.perf_counter() - start))
            del futures
    rates = {name: sorted(values)[len(values) // 2] for name, values in samples.items()}
    base = rates["plain Dask submit"]
    print(f"\nDask throughput, {tasks:,} tasks of 10 ms CPU on {cores} workers x 1 thread")
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:9.1f} tasks/s {rate / base:6.2f}x")
    print("  target: fork.isolated >= 0.8x plain")
    print(
        f"  floor: each isolated task is also a warm start (a fork of the worker's zygote,"
        f" ~2.5 ms of CPU on {cores} CPUs): at most {10 / 12.5:.2f}x for 10 ms tasks"
    )


def _crashes(client, total, bad):
    from dask.distributed import wait

    every = total // bad
    records = [f"!{i}" if i % every == 0 else f"{i},{i},{i}" for i in range(total)]
    print(f"\nDask, {total} tasks of which {bad} segfault")
    for name, fn in [("fork.isolated", isolated_parse), ("plain Dask", parse)]:
        joined = _joined(client)
        start = time.perf_counter()
        futures = client.map(fn, records, pure=False)
        wait(futures)
        elapsed = time.perf_counter() - start
        good = sum(f.status == "finished" and f.result() == 3 for f in futures)
        errors = {}
        for f in futures:
            if f.status == "error":
                kind = type(f.exception()).__name__
                errors[kind] = errors.get(kind, 0) + 1
        restarts = _joined(client) - joined
        failed = ", ".join(f"{n} {kind}" for kind, n in sorted(errors.items()))
        print(
            f"  {name:<14} {elapsed:7.2f} s  {good}/{total - bad} good results  "
            f"failed: {failed or 'none'}  worker restarts: {restarts}"
        )
        del futures
        client.wait_for_workers(len(client.scheduler_info()["workers"]) or 1)
