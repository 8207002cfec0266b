"""One test in a snapshot child of pytest: the child's side.

It runs the test's phases as pytest does (set-up, call, teardown), but
tears down only the test itself: the wider fixtures are the parent's. Every
report the test makes, its subtests' included, and every warning it raises
go to pytest on the ``channel`` (the moment each is made, so a crash in the
call still leaves the set-up's report behind), and to pytest only: this
process's copy of the terminal and of the reporting plugins sees none. A
process the test left running fails its teardown, named.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
import warnings
from typing import Any, Callable

import pytest
from _pytest.nodes import Node
from _pytest.runner import call_and_report

from .._child.orphans import own_helpers
from .._process import platform
from . import measured
from .channel import COVERAGE, PHASE, REPORT, WARNING, Record, Stream, plainly


class Above:
    """Stands for the test in pytest's set-up and teardown of the collectors above it
    (session, package, module, class): it is their chain, without the test."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = item.listchain()[:-1]

    def listchain(self) -> list[Node]:
        return self._chain


def run_phases(
    item: pytest.Item,
    path: str,
    key: bytes,
    coverage: Any,
    forwarder: Forwarder,
    rules: tuple[Any, ...] | None = None,
) -> list[Record]:
    """Set up, call and tear down ``item``; every record it made, each also framed into
    ``path`` as it was made. ``coverage`` is pytest's coverage (``measured.current``);
    ``forwarder`` takes over the reports logged here. ``rules``: a sandbox's
    (``_sandbox.policy.rules``), entered after the set-up; the records are then plain
    data."""
    adopted = platform.adopt_orphans()  # a daemon the test double-forks is still ours
    stream, records = Stream(path, key, plain=rules is not None), []

    def send(record: Record) -> None:
        if rules is not None:
            record = plainly(record)
        records.append(record)
        stream.send(record)

    def send_report(kind: str, report: pytest.TestReport) -> None:
        config = item.config
        # where pytest's subtests fail a passed test that has failed subtests
        config.hook.pytest_report_teststatus(report=report, config=config)
        send((kind, config.hook.pytest_report_to_serializable(config=config, report=report)))

    forwarder.take_over(item.config, lambda report: send_report(REPORT, report))
    # the stack where a timeout's SIGTERM finds the test, for its report
    with open(path + _STACK, "w") as stack, warnings.catch_warnings(record=True) as raised:
        lines = measured.Lines.start(coverage)  # (a warning if it cannot, in the report)
        faulthandler.register(signal.SIGTERM, stack, all_threads=True, chain=True)
        setup = call_and_report(item, "setup", log=False)
        send_report(PHASE, setup)
        if rules is not None:
            _enter_sandbox(item, rules)
        if setup.passed and not item.config.getoption("setuponly", False):
            send_report(PHASE, call_and_report(item, "call", log=False))
        teardown = call_and_report(item, "teardown", log=False, nextitem=Above(item))
        _end_what_was_left(teardown, adopted)
        taken = None if lines is None else lines.taken()
    for message in raised:
        send((WARNING, _warning_fields(message, plain=rules is not None)))
    if taken is not None:
        send((COVERAGE, taken))
    send_report(PHASE, teardown)
    return records


def _end_what_was_left(teardown: pytest.TestReport, adopted: bool) -> None:
    """Fail the teardown for the processes the test left running, and end them, before
    the test's process exits: one in a session of its own is then ended even where the
    OS has no subreapers."""
    left, helpers = _left_running()
    if left:
        _fail_for_leaving(teardown, left, adopted)
        from .._child.orphans import end_children

        end_children(helpers, GRACE)


class Forwarder:
    """pytest's ``pytest_runtest_logreport`` in a test's child: each report logged there
    (a subtest's, say) is sent, and only sent, for the plugins there are copies of
    pytest's, which log it in pytest's process. Registered in pytest's process, once
    (a registration costs a millisecond): there it does nothing."""

    NAME = "goforkpy-forwarder"

    def __init__(self) -> None:
        self.send: Callable[[pytest.TestReport], None] | None = None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.send is not None:
            self.send(report)

    @classmethod
    def registered(cls, config: pytest.Config) -> Forwarder:
        """The one registered with ``config`` (registered now, in pytest's process)."""
        plugin = config.pluginmanager.get_plugin(cls.NAME)
        if plugin is None:
            plugin = cls()
            config.pluginmanager.register(plugin, cls.NAME)
        return plugin

    def take_over(self, config: pytest.Config, send: Callable[[pytest.TestReport], None]) -> None:
        """In the child: from now on, logged reports go to ``send`` and nowhere else."""
        self.send = send
        caller = config.pluginmanager.hook.pytest_runtest_logreport
        caller._hookimpls[:] = [impl for impl in caller.get_hookimpls() if impl.plugin is self]


def _enter_sandbox(item: pytest.Item, rules: tuple[Any, ...]) -> None:
    """Enter the test's sandbox: it may write its ``tmp_path`` too, its temporary files go
    to its scratch directory, and it keeps pytest's descriptors and working directory (a
    test is a copy of pytest's process)."""
    import tempfile

    from .._sandbox import inside

    read, write, network, ports, programs, scratch, own_uid, cap = rules
    made = getattr(item, "funcargs", {}).get("tmp_path")
    if made is not None:
        write = (*write, str(made))
    tempfile.tempdir = os.environ["TMPDIR"] = scratch
    inside.enter((read, write, network, ports, programs, "", own_uid, cap), keep_descriptors=True)


def _warning_fields(message: warnings.WarningMessage, plain: bool = False) -> dict[str, Any]:
    """A warning as it travels: as it is where it pickles, else its text and the name of
    its category (``channel.warning`` makes a stand-in of that name); ``plain``: always
    the text, the name and a built-in base's name (a sandboxed test's)."""
    fields = {"filename": message.filename, "lineno": message.lineno, "line": message.line}
    if plain:
        import builtins

        base = next(c for c in message.category.__mro__ if getattr(builtins, c.__name__, 0) is c)
        name = message.category.__name__
        return {**fields, "message": str(message.message), "name": name, "base": base.__name__}
    import pickle

    try:
        pickle.loads(pickle.dumps((message.message, message.category)))
        return {**fields, "message": message.message, "category": message.category}
    except Exception:
        base = next(cls for cls in message.category.__mro__ if _pickles(cls))
        name = message.category.__name__
        return {**fields, "message": str(message.message), "name": name, "base": base}


def _pickles(cls: type) -> bool:
    import pickle

    try:
        return pickle.loads(pickle.dumps(cls)) is cls
    except Exception:
        return False


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


def _left_running() -> tuple[list[str], set[int]]:
    """The processes the test started that still run, each named, and the helpers
    among our children (goforkpy's and multiprocessing's), which stay. Ours are our
    children, orphans among them where the OS has subreapers. goforkpy's children (an
    Executor's workers, say, which may be a helper's children instead) are not named:
    they end with this process, on every platform alike."""
    children = platform.children_of(os.getpid())
    if not children:
        return [], set()
    import psutil

    from .._process import lifeline

    helpers = own_helpers(children, set()) | _multiprocessing_helpers() | lifeline.live_pids()
    left = []
    for pid in children:
        if pid in helpers:
            continue
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                continue  # ended, not yet waited for: not running
            command = _command(process)
        except psutil.Error:
            continue  # gone meanwhile
        left.append(f"pid {pid}: {command[:200]}")
    return left, helpers


def _command(process: Any) -> str:
    """``process``'s command line: read again for a moment where it is empty, as it is
    while the process is in the middle of an exec; else its name."""
    for _ in range(20):
        command = " ".join(process.cmdline())
        if command:
            return command
        time.sleep(0.001)
    return str(process.name())


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
