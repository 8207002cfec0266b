"""One test in a snapshot child of pytest: the parent's side.

Wider fixtures first, here (class, module, package and session scope, and
the collectors' own set-up, so their finalizers run here too); then the
child runs the test's phases and writes each report as it is made; then the
reports are logged here, as pytest logs its own, with one for whatever the
child did not live to report (a crash, a timeout); then the wider fixtures
the next test does not share are torn down here.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.outcomes import TEST_OUTCOME
from _pytest.runner import runtestprotocol

from .._errors import ChildCrashed, TimeoutExpired
from .._launch.api import spawn
from .._process.limits import Limits
from .._shared import tmpdir
from . import child, faults

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from .settings import Settings


def run(item: pytest.Item, nextitem: pytest.Item | None, settings: Settings) -> None:
    """pytest's run of one test (``pytest_runtest_protocol``), with the test in a child."""
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    if hasattr(item, "_request") and not item._request:
        item._initrequest()  # type: ignore[attr-defined]  # a test run again (pytest-rerunfailures)
    try:
        if _set_up_wider_fixtures(item):
            *reports, teardown = _in_child(item, settings)
            for report in reports:
                ihook.pytest_runtest_logreport(report=report)
            teardown = _tear_down_wider_fixtures(item, nextitem, teardown)
            ihook.pytest_runtest_logreport(report=teardown)
        else:
            runtestprotocol(item, nextitem=nextitem)  # the failure, reported as pytest would
    finally:
        if hasattr(item, "_request"):
            item._request = False
            item.funcargs = None  # type: ignore[attr-defined]
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _set_up_wider_fixtures(item: pytest.Item) -> bool:
    """Set up, in pytest's process, the collectors above the test and the fixtures of
    wider scope than function it uses; False if one of them failed."""
    state = item.session._setupstate
    with _capturing("setup", item):
        try:
            state.setup(child.Above(item))  # type: ignore[arg-type]
            request = getattr(item, "_request", None)
            info = getattr(item, "_fixtureinfo", None)
            if request is None or info is None:
                return True  # an item without fixtures (a doctest file, a plugin's own)
            # the test is active while its wider fixtures are requested for it; its own
            # set-up (function-scoped fixtures) is the child's
            state.stack[item] = ([], None)
            try:
                funcargs = item.funcargs  # type: ignore[attr-defined]
                for name in item.fixturenames:  # type: ignore[attr-defined]
                    definitions = info.name2fixturedefs.get(name)
                    wider = definitions and definitions[-1].scope != "function"
                    if wider and name not in funcargs:
                        funcargs[name] = request.getfixturevalue(name)
            finally:
                del state.stack[item]
        except TEST_OUTCOME:
            return False
    return True


def _in_child(item: pytest.Item, settings: Settings) -> list[pytest.TestReport]:
    """The test's phases in a snapshot child: the reports it made, and one for what it
    did not live to report."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()  # or the child's copy of the buffer is written again
    # in goforkpy's private directory, named for this process: swept if pytest dies
    path = tmpdir.new_stem() + ".reports"
    started = time.time()
    try:
        limits = None if settings.memory is None else Limits(memory=settings.memory)

        def phases() -> None:
            child.run_phases(item, path)

        phases.__name__ = phases.__qualname__ = item.name  # the child's name in errors
        process = spawn(
            phases,
            start="snapshot",
            timeout=settings.timeout,
            limits=limits,
        )
        try:
            process.result()
            fault = None
        except (ChildCrashed, TimeoutExpired) as exc:
            fault = faults.describe(exc, settings, child.stack_at_sigterm(path))
        except BaseException as exc:
            process.kill()
            process.wait()
            if not isinstance(exc, TEST_OUTCOME):
                raise  # Ctrl+C, pytest.exit(), an error of the plugin's own
            fault = faults.stopped(exc)  # pytest-timeout's, in this process
        reports = child.read_reports(item.config, path)
    finally:
        child.remove_files(path)
    if fault is not None:
        reports = faults.complete(item, reports, fault, _output(item), started)
    return reports


def _tear_down_wider_fixtures(
    item: pytest.Item, nextitem: pytest.Item | None, teardown: pytest.TestReport
) -> pytest.TestReport:
    """Tear down what the next test does not share: the test's teardown report, failed
    by an error in it, as it would be without the plugin."""
    session = item.session
    if session.shouldfail or session.shouldstop:
        nextitem = None  # the session ends: everything is torn down now
    with _capturing("teardown", item):
        call = pytest.CallInfo.from_call(
            lambda: session._setupstate.teardown_exact(nextitem), when="teardown"
        )
    if call.excinfo is None or not teardown.passed:
        return teardown
    report: pytest.TestReport = item.ihook.pytest_runtest_makereport(item=item, call=call)
    return report


def _capturing(when: str, item: pytest.Item) -> AbstractContextManager[None]:
    """pytest's output capture around set-up or teardown done here, outside its hooks."""
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return nullcontext()
    captured: Iterator[None] = capture.item_capture(when, item)
    return captured  # type: ignore[return-value]


def _output(item: pytest.Item) -> list[tuple[str, str]]:
    """What a child that did not finish its phase had written to the captured output."""
    capture: Any = item.config.pluginmanager.getplugin("capturemanager")
    if capture is None or not capture.is_globally_capturing():
        return []
    out, err = capture.read_global_capture()
    return [(name, text) for name, text in (("stdout", out), ("stderr", err)) if text]
