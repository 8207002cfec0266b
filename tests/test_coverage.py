"""coverage.py and pytest-cov measure the code goforkpy children run (API.md section 16):
cold, warm and snapshot children and Executor workers, with the configuration the docs
show (``[run] patch = subprocess, _exit, fork``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET

import goforkpy as fork

pytest.importorskip("coverage", reason="the test extra installs coverage")

CONFIG = """
[run]
patch = subprocess, _exit, fork
"""

# Each function's body runs in a child only: a line of it measured is a child measured.
WORK = """
import goforkpy as fork


@fork.register
def in_cold(x):
    return x + 1


@fork.register
def in_warm(x):
    return x + 2


def in_snapshot(x):
    return x + 3


def in_cold_worker(x):
    return x + 4


def in_warm_worker(x):
    return x + 5


def run_all():
    assert fork.spawn("in_cold", (1,), start="cold").result() == 2
    assert fork.spawn("in_warm", (1,), start="warm").result() == 3
    assert fork.snapshot(in_snapshot, 1).result() == 4
    with fork.Executor(1, start="cold") as pool:
        assert pool.submit(in_cold_worker, 1).result() == 5
    with fork.Executor(1, start="warm") as pool:
        assert pool.submit(in_warm_worker, 1).result() == 6


if __name__ == "__main__":
    fork.init()
    run_all()
"""


def _bodies() -> dict[str, int]:
    """The line of each function's body in work.py, by function name."""
    found, name = {}, ""
    for number, line in enumerate(WORK.splitlines(), 1):
        if line.startswith("def "):
            name = line[4:].partition("(")[0]
        elif line.strip().startswith("return x"):
            found[name] = number
    return found


BODIES = _bodies()


def _project(tmp_path: Path) -> dict[str, str]:
    (tmp_path / ".coveragerc").write_text(CONFIG)
    (tmp_path / "work.py").write_text(WORK)
    root = str(Path(fork.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": root + os.pathsep + str(tmp_path)}


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=DEADLOCK_NET
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _executed(tmp_path: Path, env: dict[str, str], *, combine: bool) -> set[int]:
    """The lines of work.py the combined data says ran (``combine`` first, where the
    tool did not)."""
    coverage = [sys.executable, "-m", "coverage"]
    if combine:
        _run([*coverage, "combine", "-q"], tmp_path, env)
    _run([*coverage, "json", "-q", "-o", "cov.json", "--include=*work.py"], tmp_path, env)
    files = json.loads((tmp_path / "cov.json").read_text())["files"]
    (lines,) = [set(data["executed_lines"]) for name, data in files.items() if "work" in name]
    return lines


def test_coverage_run_measures_every_kind_of_child(tmp_path: Path) -> None:
    env = _project(tmp_path)
    _run([sys.executable, "-m", "coverage", "run", "work.py"], tmp_path, env)
    executed = _executed(tmp_path, env, combine=True)
    assert {name for name, line in BODIES.items() if line not in executed} == set()


def test_pytest_cov_measures_every_kind_of_child(tmp_path: Path) -> None:
    pytest.importorskip("pytest_cov", reason="the test extra installs pytest-cov")
    env = _project(tmp_path)
    (tmp_path / "test_work.py").write_text(
        textwrap.dedent(
            """
            import goforkpy as fork
            import work

            def test_children():
                work.run_all()
            """
        )
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cov=work"]
    _run([*argv, "--cov-report=", "test_work.py"], tmp_path, env)
    executed = _executed(tmp_path, env, combine=False)  # pytest-cov combines at its end
    assert {name for name, line in BODIES.items() if line not in executed} == set()
