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


def hold(path):
    """Write this process's pid to ``path``, then wait for ever."""
    import threading

    with open(path + ".tmp", "w") as file:
        file.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    threading.Event().wait()


isolated_burn = fork.isolated(burn)
reused_burn = fork.isolated(burn, isolate="worker")
isolated_parse = fork.isolated(parse, timeout=60)
reused_parse = fork.isolated(parse, timeout=60, isolate="worker")


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
        _cancel(client, rounds)
        if crashing is not None:  # plain Dask takes minutes to give up on its workers
            _crashes(client, *crashing)


def _throughput(client, rounds, tasks, cores):
    from dask.distributed import wait

    contenders = {
        "plain Dask submit": burn,
        "fork.isolated, a child per task": isolated_burn,
        'fork.isolated, isolate="worker"': reused_burn,
    }
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
    print("  target: >= 0.7x plain with a child per task, >= 0.9x with reused workers")
    empty = min(client.run(_empty_call).values())
    per_task = cores / base  # wall seconds of one plain task on its worker
    print(
        f"  floor: an empty isolated call takes {empty * 1e3:.2f} ms on a worker (a fork of its"
        f" zygote, the child's exit, a message each way), and a one-thread worker waits for"
        f" it: at most {per_task / (per_task + empty):.2f}x beside {per_task * 1e3:.1f} ms"
        " per plain task"
    )


def _empty_call(calls=200):
    """Seconds of one isolated call that does nothing, on this worker (median of ``calls``)."""
    isolated_burn(0.0)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        isolated_burn(0.0)
        times.append(time.perf_counter() - start)
    return sorted(times)[calls // 2]


def _cancel(client, rounds):
    """From ``client.cancel`` of a running isolated task to its child gone."""
    import tempfile

    import psutil

    samples = []
    with tempfile.TemporaryDirectory() as directory:
        for number in range(rounds):
            path = os.path.join(directory, f"ready-{number}")
            future = client.submit(fork.isolated(hold), path, pure=False)
            while not os.path.exists(path):
                time.sleep(0.001)
            with open(path) as file:
                child = psutil.Process(int(file.read()))
            start = time.perf_counter()
            client.cancel(future)
            child.wait(60)
            samples.append(time.perf_counter() - start)
    median = sorted(samples)[len(samples) // 2]
    print(
        f"\nDask: client.cancel of a running isolated task to its child gone: {median * 1e3:.1f} ms"
    )
    print("  target: < 1 s (plain Dask leaves the task running)")


def _crashes(client, total, bad, deadline=180):
    """Last: plain Dask leaves the cluster's workers in a restart loop."""
    from dask.distributed import wait

    import goforkpy.dask

    every = total // bad
    records = [f"!{i}" if i % every == 0 else f"{i},{i},{i}" for i in range(total)]
    print(f"\nDask, {total} tasks of which {bad} segfault")
    runs = [("fork.isolated", isolated_parse), ("reused workers", reused_parse)]
    for name, fn in [*runs, ("plain Dask", parse)]:
        if fn is parse:  # restarted workers should not start zygotes for plain Dask
            client.unregister_worker_plugin(goforkpy.dask.Isolation.name)
        joined = _joined(client)
        start = time.perf_counter()
        futures = client.map(fn, records, pure=False)
        try:
            wait(futures, timeout=deadline)
        except TimeoutError:
            pass  # plain Dask can wedge with every worker dead: report what it did
        elapsed = time.perf_counter() - start
        good = sum(f.status == "finished" and f.result() == 3 for f in futures)
        outcomes = {}
        for f in futures:
            kind = type(f.exception()).__name__ if f.status == "error" else None
            kind = kind or ("unfinished" if f.status != "finished" else None)
            if kind:
                outcomes[kind] = outcomes.get(kind, 0) + 1
        restarts = _joined(client) - joined
        failed = ", ".join(f"{n} {kind}" for kind, n in sorted(outcomes.items()))
        print(
            f"  {name:<14} {elapsed:7.2f} s  {good}/{total - bad} good results  "
            f"failed: {failed or 'none'}  worker restarts: {restarts}"
        )
        client.cancel(futures)
