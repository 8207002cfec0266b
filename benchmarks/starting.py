"""What the start-up benchmarks (tiny.py, heavy.py) share: a multiprocessing
contender and the measuring loop. Imported after ``fork.init()``, so children
that re-run those scripts never load it."""

import os
import time


def _mp_noop(queue):
    queue.put(None)


def mp_start_join(context):
    """Start a multiprocessing Process of ``context``, take its result, join it."""
    queue = context.SimpleQueue()
    process = context.Process(target=_mp_noop, args=(queue,))
    process.start()
    queue.get()
    process.join()


def medians(contenders, rounds):
    """Each contender once per round, in turn; the median seconds of each."""
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, action in contenders.items():
            start = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - start)
    return {name: sorted(values)[len(values) // 2] for name, values in samples.items()}


def bare_fork_median(rounds):
    """Median seconds of a bare fork of this process whose child exits at once, reaped:
    the floor of any fork-based start from this image."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
