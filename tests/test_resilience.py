"""What an attack on goforkpy broke, one regression test each (issue: reliability and security).

Faults that fit the table of ``test_faults.py`` are there; these need a
process of their own, another user, or a hostile file system.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import goforkpy as fork

DEADLOCK_NET = 60.0

NO_THREAD_SCRIPT = """
import os, threading
import psutil
import goforkpy as fork
from goforkpy import _tmpdir

@fork.register
def add(a, b):
    return a + b

real_start = threading.Thread.start
refuse = True

def start(self):
    if refuse and self.name.startswith("goforkpy-reaper"):
        raise RuntimeError("can't start new thread")
    return real_start(self)

if __name__ == "__main__":
    fork.init()
    threading.Thread.start = start
    try:
        fork.fork("add", 1, 2)
    except fork.ForkError as exc:
        print("refused:", "out of threads" in str(exc))
    mine = [n for n in os.listdir(_tmpdir.payload_dir()) if n.startswith(f"{os.getpid()}-")]
    children = [p for p in psutil.Process().children() if "guardian" not in " ".join(p.cmdline())]
    print("left:", mine, children)
    refuse = False
    print("next:", fork.fork("add", 1, 2).result(timeout=30))
"""


@pytest.mark.parametrize("platform", ["native", "posix"])
def test_a_reaper_thread_that_cannot_start(run_script, platform: str) -> None:  # type: ignore[no-untyped-def]
    """A typed ForkError, nothing started or left behind, and the next fork works."""
    completed = run_script(NO_THREAD_SCRIPT, env={"GOFORKPY_PLATFORM": platform})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["refused: True", "left: [] []", "next: 3"]
