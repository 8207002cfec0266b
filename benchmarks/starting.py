"""What the start-up benchmarks (tiny.py, heavy.py) share: a multiprocessing
contender and the measuring loop. Imported after ``fork.init()``, so children
that re-run those scripts never load it."""

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
