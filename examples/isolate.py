"""Isolate risky code: crashes, runaway memory and endless loops stay in their child.

Each risky call runs in its own process under resource limits and a deadline;
the parent keeps working and reports what happened to each.
"""

import time

import goforkpy as fork


@fork.register
def parse_untrusted(blob):
    """Stands in for a native parser that dereferences garbage."""
    import ctypes

    return ctypes.string_at(len(blob))  # reads address len(blob): a segfault


@fork.register
def leaky_model(n):
    """Grows without bound."""
    hoard = []
    while True:
        hoard.append(bytearray(n))


@fork.register
def never_converges():
    x = 0
    while True:
        x += 1


@fork.register
def well_behaved(n):
    return sum(range(n))


RISKY = [
    ("parse_untrusted", (b"\x00" * 16,)),
    ("leaky_model", (10 << 20,)),
    ("never_converges", ()),
    ("well_behaved", (10**6,)),
]


def main():
    limits = fork.Limits(memory="512M", cpu_seconds=10)
    started = time.monotonic()
    children = [
        fork.spawn(name, args, limits=limits, timeout=2.0, grace=0.5) for name, args in RISKY
    ]
    print(f"started {len(children)} risky calls; the parent carries on meanwhile")
    for child in children:
        try:
            print(f"  {child.name}: returned {child.result()!r}")
        except fork.ChildCrashed as exc:
            print(
                f"  {child.name}: crashed ({exc.reason}: {exc.signal or exc.returncode}), ", end=""
            )
            print(f"peak memory {exc.rusage.max_rss >> 20} MiB; the parent is unharmed")
        except fork.TimeoutExpired as exc:
            print(f"  {child.name}: ran past {exc.timeout} s and its tree was ended")
    print(f"all settled in {time.monotonic() - started:.1f} s; no process left behind")


if __name__ == "__main__":
    fork.init()
    main()
