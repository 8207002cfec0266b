"""A batch on a Dask cluster where some inputs crash the parser, and the workers stay up.

    python examples/dask_cluster.py                   # a LocalCluster on 127.0.0.1
    python examples/dask_cluster.py tcp://host:8786   # an existing scheduler

Without goforkpy, a segfault in a task kills its Dask worker: the nanny
restarts it, the scheduler retries the task elsewhere (killing that worker
too) and finally fails it with ``KilledWorker``, and the other tasks on those
workers are lost and recomputed. With ``fork.isolated`` the crash stays in a
child: the task fails with ``ChildCrashed`` and nothing else notices.
Needs ``pip install 'goforkpy[dask]'``.
"""

import logging
import sys

from dask.distributed import Client, LocalCluster

import goforkpy as fork
import goforkpy.dask


@fork.isolated(timeout=30)
def parse(record):
    """A parser with a native bug: records starting with '!' crash it."""
    if record.startswith("!"):
        import ctypes

        ctypes.string_at(0)  # a segfault, as a buggy C extension would give
    return len(record.split(","))


def run(client):
    client.register_plugin(goforkpy.dask.Isolation())  # a warm zygote per worker
    workers_before = client.run(lambda: __import__("os").getpid())
    records = [f"{i},{i * i},{i % 7}" if i % 10 else f"!corrupt-{i}" for i in range(1, 51)]
    futures = client.map(parse, records)
    parsed, crashed = 0, []
    for record, future in zip(records, futures, strict=True):
        try:
            parsed += future.result() == 3
        except fork.ChildCrashed as exc:
            crashed.append((record, exc.reason, exc.signal))
    print(f"{parsed} records parsed, {len(crashed)} crashed the parser:")
    for record, reason, signal in crashed:
        print(f"  {record}: {reason} ({signal})")
    same = client.run(lambda: __import__("os").getpid()) == workers_before
    print(f"workers restarted: {'none' if same else 'some'}")


def main():
    if len(sys.argv) > 1:
        with Client(sys.argv[1]) as client:
            run(client)
        return
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,  # the workers log each failed task otherwise
        ) as cluster,
        Client(cluster) as client,
    ):
        run(client)


if __name__ == "__main__":
    main()
