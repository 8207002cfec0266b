"""The anatomy of one call: where a cold, a warm and a snapshot call spend their time.

`python benchmarks/anatomy.py ROUNDS` (run by benchmarks/run.py). For each start
method it prints the median of each phase of a call of a function that does
nothing, the CPU the parent and the child used, and beside it the floor the
method cannot go below, measured in the same run:

- cold: an interpreter start plus `import goforkpy`, and, beside it, a call through
  the files of a re-executing protocol alone (cold_floor.py);
- warm: a bare fork + exit + wait of the zygote's own image (measured in a
  warm child, which is that image), and, beside it, a call through the zygote
  protocol alone (protocol_floor.py);
- snapshot: the caller's pause for a bare `os.fork()` of the same process.

Then the system calls of one call of each kind (`strace -f -c`), where strace
is installed. A regression shows in the phase where it lives.

This file is also the script the cold and warm children re-run, so its top level
imports only goforkpy.
"""

import os
import time

import goforkpy as fork


@fork.register
def stamp():
    """When the function ran, on the clock every process shares."""
    return time.monotonic()


@fork.register
def fork_floor(rounds):
    """The median seconds of a bare fork + exit + wait of this process's image."""
    from starting import bare_fork_median

    return bare_fork_median(rounds)


@fork.register
def protocol_floor(rounds):
    """The median seconds of a call through the zygote protocol alone, from this image."""
    import protocol_floor

    return protocol_floor.protocol_floor(rounds)


def _one_call(start):
    """(launch, start-up, back, parent CPU, child CPU) of one call, in seconds."""
    import resource

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    child = fork.spawn(stamp if start == "snapshot" else "stamp", start=start)
    launched = time.monotonic()
    ran = child.result()
    back = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = child.rusage
    child_cpu = used.user_time + used.system_time if used is not None else float("nan")
    parent_cpu = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return launched - began, ran - launched, back - ran, parent_cpu, child_cpu


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _floor_round():
    """One measure of each floor, taken in the same round as the calls (the machine's
    speed drifts: a floor measured apart from its calls would compare other moments)."""
    import subprocess
    import sys

    import cold_floor

    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import goforkpy"], check=True)
    cold = time.perf_counter() - began
    began = time.perf_counter()
    cold_floor.call("_nothing")
    cold_protocol = time.perf_counter() - began
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pause = time.perf_counter() - began
    os.waitpid(pid, 0)
    return {
        "cold": cold,
        "warm": fork.spawn("fork_floor", (5,), start="warm").result(),
        "snapshot": pause,
        "protocol": fork.spawn("protocol_floor", (5,), start="warm").result(),
        "cold protocol": cold_protocol,
    }


# The most a call may add to its floor (the speed targets; a snapshot's is its pause's ratio
# to a bare fork, in run.py's snapshot benchmark).
TARGETS = {"cold": 1.5e-3, "warm": 1.0e-3}

FLOORS = {
    "cold": "an interpreter start + import goforkpy",
    "warm": "a bare fork + exit + wait of the zygote's image",
    "snapshot": "the caller's pause for a bare os.fork()",
}


def main(rounds):
    fork.warm_up()
    for start in ("cold", "warm", "snapshot"):
        _one_call(start)  # the spawner, the zygote and the guardian are up before timing
    samples = {start: [] for start in FLOORS}
    measured = []
    for _ in range(rounds):
        for start in samples:
            samples[start].append(_one_call(start))
        measured.append(_floor_round())
    floors = {name: _median([round_[name] for round_ in measured]) for name in measured[0]}
    totals = {start: _median([sum(call[:3]) for call in calls]) for start, calls in samples.items()}
    print("\nThe anatomy of a call (medians; ms)")
    print(
        f"  {'':9} {'launch':>8} {'start-up':>9} {'back':>8} {'total':>8}   "
        f"{'parent CPU':>10} {'child CPU':>9}   floor"
    )
    for start, calls in samples.items():
        launch, startup, back, parent_cpu, child_cpu = (
            _median(c) for c in zip(*calls, strict=True)
        )
        print(
            f"  {start:9} {launch * 1e3:8.2f} {startup * 1e3:9.2f} {back * 1e3:8.2f} "
            f"{totals[start] * 1e3:8.2f}   {parent_cpu * 1e3:10.2f} {child_cpu * 1e3:9.2f}   "
            f"{floors[start] * 1e3:.2f} ({FLOORS[start]})"
        )
    print(
        "  launch: until spawn() returns (snapshot: the caller's pause); start-up: until "
        "the function's first line; back: until result() returns (result, exit, reap)"
    )
    for start, most in TARGETS.items():
        print(
            f"  target: {start} total <= floor + {most * 1e3:.2f} ms; "
            f"now floor + {(totals[start] - floors[start]) * 1e3:.2f} ms"
        )
    print(
        f"  cold: re-running a short script with the call's files alone (cold_floor.py: a "
        f"tagged call read, the function run, a tagged result written, the exit waited for) "
        f"takes {floors['cold protocol'] * 1e3:.2f} ms; goforkpy's own work (options, the "
        f"spawner, the child's start-up path, its handle, and compiling this longer script) adds "
        f"{(totals['cold'] - floors['cold protocol']) * 1e3:.2f} ms"
    )
    print(
        f"  warm: the zygote protocol alone (protocol_floor.py: a spare handed the request, "
        f"the exit held until the caller releases it, then reaped) takes "
        f"{floors['protocol'] * 1e3:.2f} ms; goforkpy's own work (options, checks, the "
        f"child's set-up, its handle) adds {(totals['warm'] - floors['protocol']) * 1e3:.2f} ms"
    )
    _system_calls()


def _system_calls():
    """Count the system calls of one call: strace attaches to a process that is all set
    up (its zygotes, spawner and threads included), which then makes the call."""
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile

    if shutil.which("strace") is None:
        print("\nSystem calls: strace is not installed")
        return
    print("\nSystem calls of one call: the caller, its spawner or zygote, the child (top five)")
    for start in FLOORS:
        argv = [sys.executable, os.path.abspath(__file__), "one", start]
        caller = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        tids = caller.stdout.readline().split()  # every thread of it and of its helpers
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
            attach = [arg for tid in tids for arg in ("-p", tid)]
            strace = subprocess.Popen(
                ["strace", "-f", "-c", "-o", out.name, *attach], stderr=subprocess.PIPE
            )
            strace.stderr.readline()  # "Process N attached": it watches
            caller.stdin.write("go\n")
            caller.stdin.flush()
            caller.stdout.readline()  # the call is done
            strace.send_signal(signal.SIGINT)
            strace.communicate()
            rows = [line.split() for line in out.read().splitlines()[2:] if line[:1] == " "]
        caller.stdin.close()
        caller.wait()
        counts = sorted(((int(row[3]), row[-1]) for row in rows if len(row) >= 5), reverse=True)
        total = sum(count for count, _ in counts)
        top = ", ".join(f"{name} {count}" for count, name in counts[:5])
        print(f"  {start:9} {total:6d} in all: {top}")


def _tasks(pid):
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


def _only_one(start):
    """The process strace watches: all set up, then (on a line on stdin) one call."""
    import sys

    from goforkpy._launch import kept_zygotes as zygotes

    fork.warm_up()
    _one_call(start)
    pids = [os.getpid(), *zygotes.pids()]
    # a spare may leave as we list (its zygote forks it again once a child is reaped)
    tids = [tid for pid in pids for tid in _tasks(pid)]
    print(" ".join(tids), flush=True)
    sys.stdin.readline()
    _one_call(start)
    print("done", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    fork.init()
    import sys

    if sys.argv[1] == "one":
        _only_one(sys.argv[2])
    else:
        main(int(sys.argv[1]))
