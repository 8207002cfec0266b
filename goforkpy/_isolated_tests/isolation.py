"""One test in a snapshot child of pytest: the parent's side.

Wider fixtures first, here (class, module, package and session scope, and
the collectors' own set-up, so their finalizers run here too); then the
child runs the test's phases and sends what it made (``channel``); then the
reports and warnings are logged here, as pytest logs its own, with one for
whatever the child did not live to report (a crash, a timeout, a report
lost), and what it ran is added to pytest's coverage; then the wider
fixtures the next test does not share are torn down here.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.outcomes import TEST_OUTCOME
from _pytest.runner import runtestprotocol

from .._errors import ChildCrashed, PayloadError, SandboxUnavailable, TimeoutExpired
from .._launch.api import launch
from .._launch.record import Options
from .._process.limits import Limits
from .._sandbox import policy
from .._shared import tmpdir
from . import channel, child, faults, measured, timer
from .channel import COVERAGE, PHASE, WARNING, Record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    from .measured import Sum
    from .settings import Settings

    Logged = list[tuple[str, Any]]  # (kind, a report or a warnings.WarningMessage)


def run(item: pytest.Item, nextitem: pytest.Item | None, settings: Settings, lines: Sum) -> None:
    """pytest's run of one test (``pytest_runtest_protocol``), with the test in a child;
    what it ran under coverage is added to ``lines``."""
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    if hasattr(item, "_request") and not item._request:
        item._initrequest()  # type: ignore[attr-defined]  # a test run again (pytest-rerunfailures)
    try:
        if _set_up_wider_fixtures(item):
            *logged, (_, teardown) = _logged(item, _in_child(item, settings), lines)
            for kind, value in logged:
                _log(item, kind, value)
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


@dataclass(frozen=True)
class _Sent:
    """What the test's child sent, and what went wrong if it did not send it all."""

    records: list[Record]
    fault: faults.Fault | None
    started: float  # when the child was started


def _in_child(item: pytest.Item, settings: Settings) -> _Sent:
    """The test's phases in a snapshot child."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()  # or the child's copy of the buffer is written again
    # in goforkpy's private directory, named for this process: swept if pytest dies
    path = tmpdir.new_stem() + ".reports"
    started = time.time()
    sandbox = settings.sandbox
    try:
        try:
            rules = None if sandbox is None else policy.rules(sandbox, path, None)
        except SandboxUnavailable as exc:  # the test does not run, unsandboxed or at all
            return _Sent([], faults.Fault(str(exc), phase="setup"), started)
        key = channel.new_key()
        with timer.moved_to_child(item.config) as arm_timer:
            records, fault = _run_phases(item, settings, path, (key, rules), arm_timer)
    finally:
        child.remove_files(path)
        if sandbox is not None:
            policy.remove(path)
    return _Sent(records, fault, started)


def _run_phases(
    item: pytest.Item,
    settings: Settings,
    path: str,
    sealing: tuple[bytes, tuple[Any, ...] | None],
    arm_timer: Callable[[], None],
) -> tuple[list[Record], faults.Fault | None]:
    """Start the child, and take what it sent: (its records, what went wrong if anything).

    ``sealing``: the records' key, and the sandbox's rules (``None``: no sandbox).
    """
    coverage, forwarder = measured.current(), child.Forwarder.registered(item.config)
    key, rules = sealing

    def phases() -> list[Record]:
        arm_timer()
        return child.run_phases(item, path, key, coverage, forwarder, rules)

    phases.__name__ = phases.__qualname__ = item.name  # the child's name in errors
    limits = None if settings.memory is None else Limits(memory=settings.memory)
    options = Options(start="snapshot", timeout=settings.timeout, limits=limits)
    options.sandbox = settings.sandbox  # entered by the test's process: what it sends is plain
    process = launch(phases, (), None, options)
    fault = None
    try:
        records = channel.checked(process.result())
    except (ChildCrashed, TimeoutExpired) as exc:
        fault = faults.describe(exc, settings, child.stack_at_sigterm(path))
    except PayloadError as exc:  # a sandboxed test's process sent what is refused
        fault = faults.Fault(f"the test's process sent back {exc}")
    except BaseException as exc:
        process.kill()
        process.wait()
        if not isinstance(exc, TEST_OUTCOME):
            raise  # Ctrl+C, pytest.exit(), an error of the plugin's own
        fault = faults.stopped(exc)  # pytest-timeout's, in this process
    else:
        if records is not None:
            missing = channel.missing_phases(records, item.config.getoption("setuponly", False))
            return records, faults.unreported(missing) if missing else None
    return channel.read_stream(path, key, plain=rules is not None), fault


def _logged(item: pytest.Item, sent: _Sent, lines: Sum) -> Logged:
    """What to log of the child's records, in the order it made them, with a failed
    report for what it did not live to report; its coverage goes into ``lines``."""
    config = item.config
    logged: Logged = []
    for kind, data in sent.records:
        if kind == COVERAGE:
            lines.add(data)
        elif kind == WARNING:
            logged.append((kind, channel.warning(data)))
        else:
            report = config.hook.pytest_report_from_serializable(config=config, data=data)
            logged.append((kind, _as_made(report, data)))
    if sent.fault is None:
        return logged
    phases = [report for kind, report in logged if kind == PHASE]
    completed = faults.complete(item, list(phases), sent.fault, _output(item), sent.started)
    kept, had = {id(report) for report in completed}, {id(report) for report in phases}
    logged = [(kind, value) for kind, value in logged if kind != PHASE or id(value) in kept]
    return logged + [(PHASE, report) for report in completed if id(report) not in had]


def _log(item: pytest.Item, kind: str, value: Any) -> None:
    """Log what the child sent here, as pytest logs its own reports and warnings."""
    if kind != WARNING:
        item.ihook.pytest_runtest_logreport(report=value)
        return
    warned = {"warning_message": value, "nodeid": item.nodeid, "when": "runtest", "location": None}
    item.ihook.pytest_warning_recorded.call_historic(kwargs=warned)


def _as_made(report: pytest.TestReport, data: dict[str, Any]) -> pytest.TestReport:
    """``report`` as the child made it: pytest rebuilds a subtest's parameters from
    their text by quoting that text again (``i='1'`` for ``i=1``)."""
    context = getattr(report, "context", None)
    made = data.get("_subtest.context")
    if context is not None and isinstance(made, dict) and isinstance(made.get("kwargs"), dict):
        object.__setattr__(context, "kwargs", made["kwargs"])  # a frozen dataclass
    return report


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
