"""One test in a snapshot child of pytest: the child's side.

It runs the test's phases as pytest does (set-up, call, teardown), but
tears down only the test itself: the wider fixtures are the parent's. Each
report is written to the parent's file the moment it is made, so a crash in
the call still leaves the set-up's report behind. A process the test left
running fails its teardown, named.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import sys
from typing import Any

import pytest
from _pytest.nodes import Node
from _pytest.runner import call_and_report

from .._child.orphans import own_helpers
from .._process import platform


class Above:
    """Stands for the test in pytest's set-up and teardown of the collectors above it
    (session, package, module, class): it is their chain, without the test."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = item.listchain()[:-1]

    def listchain(self) -> list[Node]:
        return self._chain


def run_phases(item: pytest.Item, path: str) -> None:
    """Set up, call and tear down ``item``, writing each report to ``path``."""
    adopted = platform.adopt_orphans()  # a daemon the test double-forks is still ours
    # the stack where a timeout's SIGTERM finds the test, for its report
    with open(path, "ab", buffering=0) as out, open(path + _STACK, "w") as stack:
        faulthandler.register(signal.SIGTERM, stack, all_threads=True, chain=True)

        def send(report: pytest.TestReport) -> None:
            data = item.config.hook.pytest_report_to_serializable(config=item.config, report=report)
            out.write(_pickled(data))

        setup = call_and_report(item, "setup", log=False)
        send(setup)
        if setup.passed and not item.config.getoption("setuponly", False):
            send(call_and_report(item, "call", log=False))
        teardown = call_and_report(item, "teardown", log=False, nextitem=Above(item))
        left, helpers = _left_running()
        if left:
            _fail_for_leaving(teardown, left, adopted)
            from .._child.orphans import end_children

            # before the test's process exits: a process in a session of its own is
            # ended even where the OS has no subreapers
            end_children(helpers, GRACE)
        send(teardown)


def stack_at_sigterm(path: str) -> str:
    """What faulthandler wrote if a SIGTERM ended the child (empty if none did)."""
    try:
        with open(path + _STACK) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def remove_files(path: str) -> None:
    """Remove the reports file and the stack file the child wrote beside it."""
    for name in (path, path + _STACK):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


_STACK = ".stack"


def read_reports(config: pytest.Config, path: str) -> list[pytest.TestReport]:
    """The reports the child wrote, up to where it stopped (a crash may cut the last)."""
    reports: list[pytest.TestReport] = []
    try:
        with open(path, "rb") as f:
            while True:
                data = pickle.load(f)
                reports.append(
                    config.hook.pytest_report_from_serializable(config=config, data=data)
                )
    except FileNotFoundError:
        pass  # the child ended before it opened it
    except (EOFError, pickle.UnpicklingError):
        pass  # the end of what it wrote
    return reports


def _pickled(data: dict[str, Any]) -> bytes:
    try:
        return pickle.dumps(data)
    except Exception:  # a user property that does not pickle travels as its repr
        properties = [(name, repr(value)) for name, value in data.get("user_properties", ())]
        return pickle.dumps({**data, "user_properties": properties})


def _left_running() -> tuple[list[str], set[int]]:
    """The processes the test started that still run, each named, and the helpers
    among our children (goforkpy's and multiprocessing's), which stay. Ours are our
    children, orphans among them where the OS has subreapers."""
    children = platform.children_of(os.getpid())
    if not children:
        return [], set()
    import psutil

    helpers = own_helpers(children, set()) | _multiprocessing_helpers()
    left = []
    for pid in children:
        if pid in helpers:
            continue
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                continue  # ended, not yet waited for: not running
            command = " ".join(process.cmdline()) or process.name()
        except psutil.Error:
            continue  # gone meanwhile
        left.append(f"pid {pid}: {command[:200]}")
    return left, helpers


GRACE = 5.0  # seconds from SIGTERM to SIGKILL for what a test left running


def _multiprocessing_helpers() -> set[int]:
    """multiprocessing's resource tracker and forkserver, which live as long as the
    process that started them, as goforkpy's helpers do."""
    pids = set()
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None:
        pids.add(getattr(tracker._resource_tracker, "_pid", None))
    server = sys.modules.get("multiprocessing.forkserver")
    if server is not None:
        pids.add(getattr(server._forkserver, "_forkserver_pid", None))
    return {pid for pid in pids if pid is not None}


def _fail_for_leaving(teardown: pytest.TestReport, left: list[str], adopted: bool) -> None:
    """Fail the teardown, naming what the test left running."""
    text = "\n".join(
        [
            "the test left processes running; goforkpy ended them, with all they started "
            f"(SIGTERM, then SIGKILL after {GRACE:g} s):",
            *(f"    {line}" for line in left),
            "End what a test starts before it returns (a fixture's teardown is a good place).",
        ]
    )
    if not adopted:
        text += "\n(Without subreapers, a daemon the test double-forked is not listed here.)"
    if teardown.passed:
        teardown.outcome = "failed"
        teardown.longrepr = text
    else:
        teardown.sections.append(("goforkpy: processes left running", text))
