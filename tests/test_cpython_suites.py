"""CPython's own test_concurrent_futures, process-pool tests, against fork.Executor.

Slow (about two minutes): marker ``cpython``, run in CI's Python 3.14 and 3.15
passes. The runner, ``cpython/concurrent_futures.py``, says what it skips and
why, and which tests fail on purpose.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).parent / "cpython" / "concurrent_futures.py"


@pytest.mark.cpython
@pytest.mark.timeout(1200)
def test_cpythons_process_pool_tests_pass_against_the_executor() -> None:
    if importlib.util.find_spec("test.test_concurrent_futures") is None:
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        pytest.skip(
            f"CPython's test package is not installed (Debian: libpython{version}-testsuite)"
        )
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, str(RUNNER)],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=1100,
    )
    summary = done.stdout[done.stdout.rfind("\n\n") :]
    assert done.returncode == 0, summary + done.stderr[-3000:]
    assert "passed" in summary
