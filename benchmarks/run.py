"""goforkpy against its peers, side by side in one run: `python benchmarks/run.py`.

Each round measures every contender once, in turn, so drift on the machine
hits them all alike; the figures are medians over the rounds. This file is
also the "small script" the fork benchmark re-runs, so its top level imports
only what a child needs.
"""

import os
import sys
import time

import goforkpy as fork


@fork.register
def echo(data):
    return data


@fork.register
def wait_forever():
    """Sleep until ended: a child that costs nothing but its start."""
    time.sleep(3600)


@fork.register
def sleepy_family(size):
    """A child with ``size`` sleeping grandchildren; prints their pids when ready."""
    import subprocess
    import threading

    sleepers = [subprocess.Popen(["sleep", "300"]) for _ in range(size)]
    print(" ".join(str(p.pid) for p in sleepers), flush=True)
    threading.Event().wait()


@fork.register
def forked_family(size):
    """A child with ``size`` goforkpy grandchildren, and two sleepers that left its
    process group (one in a group, one in a session of its own); prints all pids."""
    import subprocess
    import threading

    grandchildren = [fork.spawn("sleepy_family", (0,), stdout=fork.DEVNULL) for _ in range(size)]
    own_group = subprocess.Popen(["sleep", "300"], preexec_fn=os.setpgrp)
    own_session = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pids = [g.pid for g in grandchildren] + [own_group.pid, own_session.pid]
    print(os.getpid(), " ".join(str(pid) for pid in pids), flush=True)
    threading.Event().wait()


def _mp_echo(data):
    return data


def _timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@fork.register
def message_source(count, size):
    parent = fork.ppid()
    fork.send(parent, b"start")
    payload = b"m" * size
    for _ in range(count):
        fork.send(parent, payload)


def _mp_queue_source(queue, count, size):
    queue.put(b"start")
    payload = b"m" * size
    for _ in range(count):
        queue.put(payload)


def _mp_pipe_source(conn, count, size):
    conn.send_bytes(b"start")
    payload = b"m" * size
    for _ in range(count):
        conn.send_bytes(payload)


def _stream(start, receive_one, count):
    """Seconds to receive ``count`` messages after the 'start' one."""
    handle = start()
    receive_one()
    began = time.perf_counter()
    for _ in range(count):
        receive_one()
    elapsed = time.perf_counter() - began
    handle.join() if hasattr(handle, "join") else handle.wait()
    return elapsed


def bench_messaging(rounds):
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")

    def contenders(count, size):
        queue = spawn.Queue()
        reader, writer = spawn.Pipe(duplex=False)
        return {
            "goforkpy send/receive": lambda: _stream(
                lambda: fork.fork("message_source", count, size),
                lambda: fork.receive(timeout=60),
                count,
            ),
            "multiprocessing.Queue": lambda: _stream(
                lambda: _started(spawn.Process(target=_mp_queue_source, args=(queue, count, size))),
                queue.get,
                count,
            ),
            "multiprocessing.Pipe": lambda: _stream(
                lambda: _started(spawn.Process(target=_mp_pipe_source, args=(writer, count, size))),
                reader.recv_bytes,
                count,
            ),
        }

    for title, count, size, unit in [
        ("Messages per second, child to parent (100 bytes each)", 20_000, 100, "msg/s"),
        ("Throughput, child to parent (1 MiB messages)", 128, 1 << 20, "MB/s"),
    ]:
        medians = _measure(contenders(count, size), rounds)
        print(f"\n{title}")
        for name, seconds in medians.items():
            rate = count / seconds if unit == "msg/s" else count * size / seconds / 1e6
            print(f"  {name:<34} {rate:12,.0f} {unit}")


def _started(process):
    process.start()
    return process


def _pool_echo(context, data):
    def create_apply():
        with context.Pool(1) as pool:
            assert len(pool.apply(_mp_echo, (data,))) == len(data)

    return create_apply


def _warm_pool_echo(context, data):
    pool = context.Pool(1)
    pool.apply(_mp_echo, (b"warm",))

    def apply():
        assert len(pool.apply(_mp_echo, (data,))) == len(data)

    return pool, apply


def _interpreter_only(code):
    import subprocess

    return lambda: subprocess.run([sys.executable, "-c", code], check=True)


def _measure(contenders, rounds):
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, action in contenders.items():
            samples[name].append(_timed(action))
    return {name: _median(values) for name, values in samples.items()}


def _report(title, medians, baseline, target=None):
    print(f"\n{title}")
    base = medians[baseline]
    for name, seconds in medians.items():
        print(f"  {name:<34} {seconds * 1e3:9.2f} ms   {seconds / base:6.2f}x")
    if target:
        print(f"  target: {target}")


def bench_start(rounds):
    """Run in benchmarks/tiny.py, so the script the children re-run is a small one."""
    import json
    import subprocess

    tiny = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.py")
    out = subprocess.run([sys.executable, tiny, str(rounds)], capture_output=True, text=True)
    medians = json.loads(out.stdout)
    warm = {name: medians.pop(name) for name in list(medians) if "warm" in name or "fork P" in name}
    _report(
        "Cold start of a tiny function from a small script, with its result",
        medians,
        "python -c pass",
        "goforkpy <= its floor + 1.5 ms (the anatomy below: an interpreter start + "
        "import goforkpy)",
    )
    _report(
        "Warm start of a tiny function from a small script, with its result",
        warm,
        "multiprocessing fork Process",
        "goforkpy warm <= 0.8x multiprocessing fork, and <= its floor + 1 ms (the anatomy "
        "below: a bare fork + exit + wait of the zygote's image)",
    )
    sandboxed = warm.get("goforkpy warm fork+result, sandboxed")
    if sandboxed is None:
        print("  sandboxed: this machine cannot enforce a fork.Sandbox (see sandbox_support())")
    else:
        extra = sandboxed - warm["goforkpy warm fork+result"]
        print(f"  a sandboxed warm call costs {extra * 1e3:+.2f} ms more (target: at most +1 ms)")
        _report_sandbox_floor(rounds)


def _report_sandbox_floor(rounds):
    """What the kernel takes to restrict a process as a sandbox does, in a forked child."""
    import time

    from goforkpy._sandbox import kernel, policy

    kernel.prepare()
    read = policy._readable()
    taken = []
    for _ in range(max(5, rounds)):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            started = time.perf_counter()
            kernel.restrict(read, ["/dev/null"], network=False, ports=None, programs=False)
            os.write(write_end, str(time.perf_counter() - started).encode())
            os._exit(0)
        os.close(write_end)
        taken.append(float(os.read(read_end, 64)))
        os.close(read_end)
        os.waitpid(pid, 0)
    print(
        f"  floor: restricting a process (no_new_privs, capabilities, a Landlock ruleset of "
        f"{len(read) + 1} paths, a seccomp filter) takes {_median(taken) * 1e3:.2f} ms of "
        "the difference; the rest is the scratch directory, the plain result in a sealed "
        "memfd, and the child's own descriptors closed"
    )


def bench_anatomy(rounds):
    """The phases of one cold, warm and snapshot call beside their floors (anatomy.py)."""
    import subprocess

    anatomy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "anatomy.py")
    subprocess.run([sys.executable, anatomy, str(rounds)], check=True)


def bench_warm_heavy(rounds):
    """Run in benchmarks/heavy.py, a script that imports numpy and pandas at the top."""
    import json
    import subprocess

    heavy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heavy.py")
    out = subprocess.run([sys.executable, heavy, str(rounds)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"\nWarm start from a numpy + pandas script: skipped ({out.stderr.strip()[-200:]})")
        print("  (install the benchmark extras: pip install -e '.[bench]')")
        return
    found = json.loads(out.stdout)
    _report(
        "Warm start of a tiny function from a script importing numpy and pandas",
        found["medians"],
        "multiprocessing fork Process",
        "warm <= 1.5x mp fork, <= 0.3x mp forkserver (same modules preloaded), "
        "<= 0.05x goforkpy cold",
    )
    medians = found["medians"]
    warm, bare = medians["goforkpy warm fork+result"], medians["bare os.fork + _exit + waitpid"]
    forkserver = medians["multiprocessing forkserver Process"]
    print(
        f"  warm / forkserver = {warm / forkserver:.2f}x, "
        f"warm / cold = {warm / medians['goforkpy cold fork+result']:.3f}x"
    )
    print(
        f"  floor: a bare fork of the zygote's image whose child exits at once, reaped, takes "
        f"{bare * 1e3:.2f} ms ({bare / forkserver:.2f}x of forkserver): the kernel copies and "
        "then tears down the page tables of every module loaded; a warm start adds one "
        "message each way and the child's taking on its request"
    )
    memory = found["memory"]
    print(
        f"  memory: zygote RSS {memory['zygote RSS'] / 2**20:.1f} MiB; unique memory (USS) of "
        f"a warm child {memory['warm child USS'] / 2**20:.1f} MiB, of a cold child "
        f"{memory['cold child USS'] / 2**20:.1f} MiB"
    )


def bench_many_warm(count=1000):
    """1,000 warm children started, then all terminated and reaped."""
    import signal

    fork.warm_up()
    start, cpu = time.perf_counter(), time.process_time()
    with fork.Manager() as manager:
        for _ in range(count):
            manager.spawn("wait_forever", start="warm")
        started, cpu = time.perf_counter() - start, time.process_time() - cpu
        manager.terminate_all()
        codes = manager.wait_all()
    total = time.perf_counter() - start
    assert set(codes.values()) == {-signal.SIGTERM}, set(codes.values())
    target = 2 * count / 1000
    print(f"\n{count:,} warm children started, all terminated and reaped (target <= {target:g} s)")
    print(f"  started in {started:.2f} s, all ended and reaped {total:.2f} s after the first start")
    print(
        f"  floor: each start costs CPU in three processes (the parent's launch "
        f"{cpu / count * 1e3:.2f} ms here; the zygote's fork; the child taking on its "
        f"request), {started / count * 1e3:.2f} ms of wall time per start on {os.cpu_count()} CPUs"
    )


def bench_snapshot(rounds, size=1 << 30):
    """The caller's pause for a snapshot of ``size`` bytes of live Python data, and a save
    of it."""
    import pickle
    import tempfile

    import psutil

    amount = f"{size >> 30} GiB" if size >= 1 << 30 else f"{size >> 20} MiB"

    data = [bytes(1024) for _ in range(size // 1024)]

    # Both children stay until the pause is measured, as a snapshot's child at work does:
    # while it lives, the caller's first writes after the fork copy pages.
    hold_r, hold_w = os.pipe()

    def snapshot():
        child = fork.snapshot(os.read, hold_r, 1)
        return child, time.perf_counter()

    def bare_fork():
        pid = os.fork()
        if pid == 0:
            os.read(hold_r, 1)
            os._exit(0)
        return pid, time.perf_counter()

    samples = {"fork.snapshot (the caller's pause)": [], "bare os.fork()": []}
    for _ in range(rounds):
        start = time.perf_counter()
        child, done = snapshot()
        samples["fork.snapshot (the caller's pause)"].append(done - start)
        os.write(hold_w, b"!")
        child.wait()
        start = time.perf_counter()
        pid, done = bare_fork()
        samples["bare os.fork()"].append(done - start)
        os.write(hold_w, b"!")
        os.waitpid(pid, 0)
    os.close(hold_r)
    os.close(hold_w)
    medians = {name: _median(values) for name, values in samples.items()}
    medians["pickle.dumps of the data"] = _timed(lambda: pickle.dumps(data, protocol=5))
    _report(
        f"Snapshot of {amount} of live Python data (a list of 1 KiB bytes objects)",
        medians,
        "bare os.fork()",
        "snapshot <= 1.1x a bare fork, <= 0.05x pickling the data",
    )
    snap = medians["fork.snapshot (the caller's pause)"]
    print(f"  snapshot / pickle = {snap / medians['pickle.dumps of the data']:.3f}x")

    def write_all(path, written_w, measured_r):
        with open(path, "wb") as f:
            for chunk in data:
                f.write(chunk)
        os.write(written_w, b"!")
        os.read(measured_r, 1)  # stay, sharing pages, until the parent has measured
        return os.path.getsize(path)

    me = psutil.Process()
    written_r, written_w = os.pipe()
    measured_r, measured_w = os.pipe()
    os.set_blocking(written_r, False)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        child = fork.snapshot(write_all, os.path.join(scratch, "table.bin"), written_w, measured_r)
        shared_at_start = me.memory_full_info().uss
        changed = 0
        while True:  # the parent keeps changing its data meanwhile
            try:
                if os.read(written_r, 1):
                    break
            except BlockingIOError:
                pass
            for _ in range(1000):
                data[changed % len(data)] = bytes(1024)
                changed += 1
        seconds = time.perf_counter() - start
        copied = me.memory_full_info().uss - shared_at_start
        os.write(measured_w, b"!")
        written = child.result()
    for fd in (written_r, written_w, measured_r, measured_w):
        os.close(fd)
    print(
        f"\nSnapshot of {amount} written to a file while the parent keeps changing it: "
        f"{written / 2**30:.2f} GiB in {seconds:.2f} s; the parent replaced {changed:,} "
        f"objects meanwhile, and {copied / 2**20:.0f} MiB of pages were copied for it (the "
        "pages it wrote to; the child kept the old ones)"
    )


def bench_import(rounds):
    contenders = {
        "python -c pass": _interpreter_only("pass"),
        "python -c 'import goforkpy'": _interpreter_only("import goforkpy"),
    }
    medians = _measure(contenders, rounds)
    _report("Import cost", medians, "python -c pass")
    extra = (medians["python -c 'import goforkpy'"] - medians["python -c pass"]) * 1e3
    print(f"  import goforkpy adds {extra:.2f} ms (target <= 1.5 ms)")


def bench_big_echo(rounds):
    import multiprocessing

    data = os.urandom(1 << 20) * 64
    spawn = multiprocessing.get_context("spawn")
    pool, warm_apply = _warm_pool_echo(spawn, data)
    contenders = {
        "goforkpy echo 64 MiB": lambda: fork.run("echo", data),
        "mp.Pool(spawn) create+apply 64 MiB": _pool_echo(spawn, data),
        "mp.Pool(spawn) warm apply 64 MiB": warm_apply,
    }
    with pool:
        medians = _measure(contenders, rounds)
    _report(
        "A 64 MiB bytes argument echoed back",
        medians,
        "mp.Pool(spawn) create+apply 64 MiB",
        "goforkpy <= 0.3x",
    )
    _report_echo_floor(data, rounds, medians["mp.Pool(spawn) create+apply 64 MiB"])


def _report_echo_floor(data, rounds, pool_seconds):
    """What the round trip cannot go below on this machine, measured in this run.

    On Linux the data travels in sealed memfds: each way it is written into
    one and read out of it into the other side's object (no hashing), and a
    child interpreter has to start. Elsewhere it goes through files with a
    full integrity tag: two copies and two SHA-256 passes each way.
    """
    import hashlib
    import subprocess

    def memfd_trip():
        fd = os.memfd_create("floor")
        try:
            os.write(fd, data)
            os.pread(fd, len(data), 0)
        finally:
            os.close(fd)

    floor = _measure(
        {
            "memfd": memfd_trip,
            "start": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
            "copy": lambda: bytearray(data),
            "sha256": lambda: hashlib.sha256(data).digest(),
        },
        rounds,
    )
    sealed = 2 * floor["memfd"] + floor["start"]
    print(
        f"  floor, sealed memfds (Linux): 2 x (write into a memfd + read it out: "
        f"{floor['memfd'] * 1e3:.0f} ms) + an interpreter start ({floor['start'] * 1e3:.0f} ms) "
        f"= {sealed * 1e3:.0f} ms = {sealed / pool_seconds:.2f}x of the pool"
    )
    cpu = 4 * floor["copy"] + 4 * floor["sha256"]
    cpus = os.cpu_count() or 1
    print(
        f"  floor, tagged files (other systems): 4 copies ({floor['copy'] * 1e3:.0f} ms each) "
        f"+ 4 SHA-256 passes ({floor['sha256'] * 1e3:.0f} ms each) = {cpu * 1e3:.0f} ms of CPU, "
        f">= {cpu / cpus * 1e3:.0f} ms on {cpus} CPUs however well it overlaps"
    )


def _seconds_until_gone(pids, start):
    """Poll until every pid is gone; the seconds since ``start`` (a perf_counter)."""
    while not _gone(pids):
        time.sleep(0.0005)
    return time.perf_counter() - start


def _gone(pids):
    import psutil

    def dead(pid):
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(dead(pid) for pid in pids)


def bench_terminate(rounds):
    import subprocess

    def goforkpy_terminate():
        child = fork.spawn("sleepy_family", (10,), stdout=fork.PIPE)
        pids = [int(p) for p in child.stdout.readline().split()]
        start = time.perf_counter()
        child.terminate()
        elapsed = _seconds_until_gone(pids, start)
        child.stdout.close()
        return elapsed

    def shell_killpg():
        script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 300 & done; echo ready; wait"
        shell = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, process_group=0)
        shell.stdout.readline()
        pids = [p.pid for p in __import__("psutil").Process(shell.pid).children()]
        start = time.perf_counter()
        os.killpg(shell.pid, 15)
        shell.wait()
        elapsed = _seconds_until_gone(pids, start)
        shell.stdout.close()
        return elapsed

    samples = {"goforkpy terminate() of 1+10": [], "sh + killpg(SIGTERM) + wait": []}
    for _ in range(rounds):
        samples["goforkpy terminate() of 1+10"].append(goforkpy_terminate())
        samples["sh + killpg(SIGTERM) + wait"].append(shell_killpg())
    medians = {name: _median(values) for name, values in samples.items()}
    _report(
        "From terminate() to a reaped tree of a child and 10 grandchildren",
        medians,
        "sh + killpg(SIGTERM) + wait",
    )


def bench_orphans(rounds):
    import subprocess

    samples = []
    for _ in range(rounds):
        parent = subprocess.Popen(
            [sys.executable, "-c", _ORPHAN_PARENT], stdout=subprocess.PIPE, text=True
        )
        pids = [int(p) for p in parent.stdout.readline().split()]
        start = time.perf_counter()
        parent.kill()
        parent.wait()
        samples.append(_seconds_until_gone(pids, start))
        parent.stdout.close()
    print(
        "\nFrom parent SIGKILL to the last of its child, 10 goforkpy grandchildren and "
        "2 sleepers in a group and a session of their own gone"
    )
    print(
        f"  median {_median(samples) * 1e3:.1f} ms, worst {max(samples) * 1e3:.1f} ms "
        f"over {rounds} rounds (target: under 1000 ms)"
    )


_ORPHAN_PARENT = f"""
import sys
sys.path[:0] = {[os.path.dirname(os.path.abspath(__file__))]!r}
import goforkpy as fork
import run
child = fork.spawn("forked_family", (10,))
child.wait()
"""


def _tiny(x):
    return x


def _warm_up(seconds):
    time.sleep(seconds)


def _cpu_bound(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def _echo(data):
    return data


def bench_executor_health(rounds, tasks=10_000):
    """Per-task overhead with output captured, and with worker memory watched, beside plain."""
    import concurrent.futures as cf

    cores = len(os.sched_getaffinity(0))
    pools = {
        "goforkpy Executor (plain)": fork.Executor(max_workers=cores),
        "capture_output=True": fork.Executor(max_workers=cores, capture_output=True),
        "max_worker_memory='1G'": fork.Executor(max_workers=cores, max_worker_memory="1G"),
        "ProcessPoolExecutor": cf.ProcessPoolExecutor(max_workers=cores),
    }
    samples = {name: [] for name in pools}
    try:
        for pool in pools.values():
            cf.wait([pool.submit(_tiny, i) for i in range(cores * 10)])  # workers up
        for _ in range(rounds):
            for name, pool in pools.items():
                start = time.perf_counter()
                cf.wait([pool.submit(_tiny, i) for i in range(tasks)])
                samples[name].append((time.perf_counter() - start) / tasks)
    finally:
        for pool in pools.values():
            pool.shutdown()
    _report(
        f"Executor per-task overhead, {tasks:,} tiny tasks, with the health options",
        {name: _median(values) for name, values in samples.items()},
        "goforkpy Executor (plain)",
        "each option <= 1.3x plain, and <= ProcessPoolExecutor",
    )


def _report_executor_floor(cores, rounds, pool_seconds):
    import executor_floor

    floor = _median([executor_floor.per_task(cores, 10_000) for _ in range(rounds)])
    print(
        f"  floor: {floor * 1e6:.1f} us/task ({floor / pool_seconds:.2f}x): each task a pickled "
        f"frame down a pipe to one of {cores} bare forked workers, and one back "
        "(executor_floor.py: no futures, no threads, no health checks)"
    )


def bench_executor(rounds):
    import concurrent.futures as cf
    import multiprocessing

    executors = {
        "goforkpy Executor": lambda workers: fork.Executor(max_workers=workers),
        "ProcessPoolExecutor": lambda workers: cf.ProcessPoolExecutor(max_workers=workers),
    }
    if multiprocessing.get_start_method() != "forkserver":  # Python 3.14's default on Linux
        forkserver = multiprocessing.get_context("forkserver")
        executors["ProcessPoolExecutor (forkserver)"] = lambda workers: cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=forkserver
        )
    if hasattr(cf, "InterpreterPoolExecutor"):  # Python 3.14: subinterpreters, one process
        executors["InterpreterPoolExecutor"] = lambda workers: cf.InterpreterPoolExecutor(
            max_workers=workers
        )
    try:
        import loky

        executors["loky"] = lambda workers: loky.ProcessPoolExecutor(max_workers=workers)
    except ImportError:
        print("\n(loky is not installed: the executor comparison goes without it)")
    cores = len(os.sched_getaffinity(0))
    overhead, big = _per_task_and_big(executors, cores, rounds)
    speedup = {name: _scaling(make, cores) for name, make in executors.items()}
    print("\nPer-task overhead, 10,000 tiny tasks submitted at once (warm pool)")
    for name, seconds in overhead.items():
        ratio = seconds / overhead["ProcessPoolExecutor"]
        print(f"  {name:<34} {seconds * 1e6:9.1f} us/task   {ratio:5.2f}x")
    print("  target: goforkpy Executor <= 0.7x ProcessPoolExecutor")
    _report_executor_floor(cores, rounds, overhead["ProcessPoolExecutor"])
    print(f"\nSpeed-up of a CPU-bound job on {cores} workers over 1 (target >= {0.9 * cores:.1f}x)")
    for name, factor in speedup.items():
        print(f"  {name:<34} {factor:9.2f}x")
    _report("A 64 MiB argument round trip (warm pool)", big, "ProcessPoolExecutor")


def _per_task_and_big(executors, cores, rounds):
    """Per-task overhead of 10,000 tiny tasks, and a 64 MiB round trip, for each executor:
    all kept open, the rounds taken in turn (the machine's drift falls on each alike)."""
    import concurrent.futures as cf
    import contextlib

    data = os.urandom(1 << 20) * 64
    with contextlib.ExitStack() as stack:
        pools = {name: stack.enter_context(make(cores)) for name, make in executors.items()}
        for pool in pools.values():
            cf.wait([pool.submit(_tiny, i) for i in range(cores * 10)])  # workers up
        per_task = {name: [] for name in pools}
        for _ in range(rounds):
            for name, pool in pools.items():
                start = time.perf_counter()
                cf.wait([pool.submit(_tiny, i) for i in range(10_000)])
                per_task[name].append((time.perf_counter() - start) / 10_000)
        big = {
            name: _median([_round_trip(pool, data) for _ in range(3)])
            for name, pool in pools.items()
        }
    return {name: _median(values) for name, values in per_task.items()}, big


def _round_trip(pool, data):
    return _timed(lambda: pool.submit(_echo, data).result())


def _scaling(make, cores):
    """Median over three runs of: time on one worker / time on ``cores`` workers."""
    jobs = [3_000_000] * (4 * cores)

    def run(workers):
        with make(workers) as ex:
            # Every worker up, with this module imported, before timing.
            list(ex.map(_warm_up, [0.2] * workers))
            return _timed(lambda: list(ex.map(_cpu_bound, jobs)))

    return _median([run(1) / run(cores) for _ in range(3)])


def _compile_goforkpy():
    """Measure goforkpy as installed: bytecode cached, whatever PYTHONDONTWRITEBYTECODE says."""
    import compileall

    compileall.compile_dir(os.path.dirname(fork.__file__), quiet=1)


def main():
    _compile_goforkpy()
    rounds = int(os.environ.get("BENCH_ROUNDS", "15"))
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPUs, {rounds} rounds, medians")
    import on_dask  # here, not at the top: a re-run of this script imports no more than it needs
    import web
    import with_joblib
    import with_pytest

    if os.environ.get("BENCH_QUICK") == "1":  # CI: every ratio, on smaller work, in minutes
        print("quick pass (BENCH_QUICK=1): smaller work; `make bench` gives the figures")
        bench_start(rounds)
        bench_anatomy(rounds)
        bench_many_warm(200)
        bench_snapshot(rounds, size=64 << 20)
        bench_import(rounds)
        bench_terminate(rounds)
        bench_executor(rounds)
        on_dask.bench_dask(rounds, tasks=200, crashing=None)
        with_joblib.bench_joblib(rounds, tasks=2_000)
        with_pytest.bench_pytest(2, count=200)
        with_pytest.bench_pytest_cov(2, count=200)
        return
    bench_start(rounds)
    bench_anatomy(rounds)
    bench_warm_heavy(max(5, rounds // 3))
    bench_many_warm()
    bench_snapshot(max(7, rounds // 2))
    bench_import(rounds)
    bench_big_echo(max(3, rounds // 3))
    bench_terminate(rounds)
    bench_orphans(rounds)
    bench_messaging(max(3, rounds // 3))
    bench_executor(max(3, rounds // 3))
    bench_executor_health(max(3, rounds // 3))
    on_dask.bench_dask(max(3, rounds // 5))
    with_joblib.bench_joblib(max(5, rounds // 3))
    with_pytest.bench_pytest(max(3, rounds // 5))
    with_pytest.bench_pytest_cov(max(3, rounds // 5))
    web.bench_web()


if __name__ == "__main__":
    fork.init()
    main()
