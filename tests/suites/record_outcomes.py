"""A pytest plugin for comparing runs: every report pytest logs, one JSON line each,
to the file named by ``RECORD_OUTCOMES`` (``-p record_outcomes``). A subtest is
recorded by the names of its parameters, not their values (tests draw random data)."""

from __future__ import annotations

import json
import os

import pytest


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    context = getattr(report, "context", None)  # a subtest's: its message and parameters'
    subtest = None if context is None else [context.msg, sorted(context.kwargs)]  # names
    line = [report.nodeid, report.when, report.outcome, subtest, hasattr(report, "wasxfail")]
    with open(os.environ["RECORD_OUTCOMES"], "a") as f:
        f.write(json.dumps(line) + "\n")
