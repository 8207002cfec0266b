"""The heavy script of the warm-start benchmark: `python benchmarks/heavy.py ROUNDS`.

It imports numpy and pandas at the top, as a data script does, so a cold
child pays for them again and a warm one does not. It is both the parent
that measures and the script its children re-run. Prints one JSON object:
contender -> median seconds, and the memory figures.
"""

import numpy  # noqa: F401 - the import bill under test
import pandas  # noqa: F401

import goforkpy as fork


@fork.register
def noop():
    return None


@fork.register
def hold():
    """Stay alive (for a memory reading) until the parent closes our stdin."""
    import sys

    print("ready", flush=True)
    sys.stdin.read()


def _uss_of(start):
    """Unique memory (USS) of a child started with ``start``, once it runs its function."""
    import psutil

    child = fork.spawn("hold", stdin=fork.PIPE, stdout=fork.PIPE, start=start)
    child.stdout.readline()
    uss = psutil.Process(child.pid).memory_full_info().uss
    child.communicate()
    return uss


_BARE_FORKS = """
import sys
import numpy, pandas, goforkpy
sys.path.insert(0, sys.argv[2])
from starting import bare_fork_median
print(bare_fork_median(int(sys.argv[1])))
"""


def _bare_fork_floor(rounds):
    """The floor of any fork-based start from the zygote's image (these modules loaded):
    fork, the child exits at once, reaped; measured in a process holding just that."""
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _BARE_FORKS,
            str(rounds),
            os.path.dirname(os.path.abspath(__file__)),
        ],
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def main(rounds):
    import json
    import multiprocessing
    import os
    import sys

    import psutil
    from starting import medians, mp_start_join

    from goforkpy._launch import kept_zygotes as zygote

    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(["__main__", "numpy", "pandas"])
    mp_start_join(forkserver)  # its server starts (and preloads) outside the timing
    fork.warm_up()
    contenders = {
        "goforkpy warm fork+result": lambda: fork.spawn("noop", start="warm").result(),
        "multiprocessing fork Process": lambda: mp_start_join(multiprocessing.get_context("fork")),
        "multiprocessing forkserver Process": lambda: mp_start_join(forkserver),
        "goforkpy cold fork+result": lambda: fork.spawn("noop", start="cold").result(),
    }
    found = medians(contenders, rounds)
    found["bare os.fork + _exit + waitpid"] = _bare_fork_floor(5 * rounds)
    (zygote_pid,) = [  # the zygote that re-ran this script (not cold children's spawner)
        pid
        for pid in zygote.pids()
        if psutil.Process(pid).ppid() == os.getpid()
        and __file__ in " ".join(psutil.Process(pid).cmdline())
    ]
    memory = {
        "zygote RSS": psutil.Process(zygote_pid).memory_info().rss,
        "warm child USS": _uss_of("warm"),
        "cold child USS": _uss_of("cold"),
    }
    print(json.dumps({"medians": found, "memory": memory}))
    sys.stdout.flush()


if __name__ == "__main__":
    fork.init()
    import sys

    main(int(sys.argv[1]))
