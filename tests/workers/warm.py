"""Functions for warm-start tests: where their module was imported, and by whom."""

from __future__ import annotations

import os
import sys

import goforkpy as fork

IMPORTED_IN = os.getpid()  # the zygote's pid, for every warm child of this module


@fork.register
def where_imported() -> tuple[int, int, int | None]:
    """(the pid that imported this module, ours, the pid that asked for us)."""
    return IMPORTED_IN, os.getpid(), fork.ppid()


@fork.register
def shout_env_and_cwd() -> int:
    """Upper-case stdin to stdout, then a test variable and the working directory."""
    data = sys.stdin.buffer.read()
    print(data.decode().upper(), os.environ.get("GOFORKPY_TEST_VALUE"), os.getcwd())
    return len(data)


@fork.register
def descriptors() -> dict[int, str]:
    """What each of our descriptors is (its /proc link: a file, "socket:[...]", ...)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, closed since
            pass
    return found
