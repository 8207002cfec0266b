"""The small script of the cold-start benchmark: `python benchmarks/tiny.py ROUNDS`.

It is both the parent that measures and the script its children re-run, so
it stays small and imports its measuring tools only after ``fork.init()``.
Prints one JSON object: contender -> median seconds.
"""

import goforkpy as fork


@fork.register
def noop():
    return None


def _mp_noop(queue):
    queue.put(None)


def main(rounds):
    import json
    import multiprocessing
    import subprocess
    import sys
    import time

    def mp_start_join(context):
        queue = context.SimpleQueue()
        process = context.Process(target=_mp_noop, args=(queue,))
        process.start()
        queue.get()
        process.join()

    fork.warm_up()
    contenders = {
        "goforkpy fork+result (tiny fn)": lambda: fork.fork("noop").result(),
        "goforkpy warm fork+result": lambda: fork.spawn("noop", start="warm").result(),
        "multiprocessing fork Process": lambda: mp_start_join(multiprocessing.get_context("fork")),
        "python -c pass": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
        "multiprocessing spawn Process": lambda: mp_start_join(
            multiprocessing.get_context("spawn")
        ),
        "multiprocessing forkserver Process": lambda: mp_start_join(
            multiprocessing.get_context("forkserver")
        ),
    }
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, action in contenders.items():
            start = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - start)
    medians = {name: sorted(values)[len(values) // 2] for name, values in samples.items()}
    print(json.dumps(medians))


if __name__ == "__main__":
    fork.init()
    import sys

    main(int(sys.argv[1]))
