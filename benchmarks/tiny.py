"""The small script of the cold-start benchmark: `python benchmarks/tiny.py ROUNDS`.

It is both the parent that measures and the script its children re-run, so
it stays small and imports its measuring tools only after ``fork.init()``.
Prints one JSON object: contender -> median seconds.
"""

import goforkpy as fork


@fork.register
def noop():
    return None


def main(rounds):
    import json
    import multiprocessing
    import subprocess
    import sys

    from starting import medians, mp_start_join

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
    if fork.sandbox_support()["available"]:
        box = fork.Sandbox()
        fork.spawn("noop", start="warm", sandbox=box).result()  # its zygote, started once
        contenders["goforkpy warm fork+result, sandboxed"] = lambda: fork.spawn(
            "noop", start="warm", sandbox=box
        ).result()
    print(json.dumps(medians(contenders, rounds)))


if __name__ == "__main__":
    fork.init()
    import sys

    main(int(sys.argv[1]))
