"""goforkpy in one page: run functions in fresh interpreters, isolated from this one.

Run it with `make demo` (or `python examples/quickstart.py` inside the venv).
"""

import os

import goforkpy as fork


@fork.register
def crunch(n):
    """CPU-bound work, offloaded to a child process."""
    return sum(i * i for i in range(n))


@fork.register
def fails(item):
    raise ValueError(f"cannot process {item!r}")


@fork.register
def segfaults():
    """Risky native code: this would take the whole program down if run in-process."""
    import ctypes

    ctypes.string_at(0)


def main():
    print(f"parent pid {os.getpid()}")

    # fork() returns at once with a handle; result() waits for the return value.
    child = fork.fork("crunch", 1_000_000)
    print(f"started {child}")
    print(f"crunch(1_000_000) = {child.result()}  ({child})")

    # run() is fork + result; decorated functions have .run and .fork too.
    print(f"crunch.run(10) = {crunch.run(10)}")

    # An exception in the child comes back with its type and remote traceback.
    try:
        fork.run("fails", "order-17")
    except ValueError as exc:
        print(f"the child raised: {exc!r}")

    # A crash kills only the child; the parent carries on.
    try:
        segfaults.run()
    except fork.ChildCrashed as exc:
        print(f"isolated crash: {exc} (signal={exc.signal}, returncode={exc.returncode})")

    print("parent still running: done")


if __name__ == "__main__":
    fork.init()  # in a child, this runs the requested function and exits
    main()
