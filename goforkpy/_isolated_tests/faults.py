"""The report of an isolated test whose child did not live to report: a crash, an
``os._exit``, a timeout, or a stop from the parent (pytest-timeout)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from .._errors import ChildCrashed

if TYPE_CHECKING:
    from .._errors import TimeoutExpired
    from .settings import Settings


@dataclass(frozen=True)
class Fault:
    """What ended the test's process, in words, and the Python stack at the fault."""

    what: str
    stack: str | None = None
    stack_is: str = "at the fault (faulthandler)"
    phase: str | None = None  # the phase it fails, where that is known


def describe(exc: ChildCrashed | TimeoutExpired, settings: Settings, terminated: str) -> Fault:
    """``exc`` in words, with the stack faulthandler wrote at a fatal signal, or at the
    SIGTERM that ended the test (``terminated``, empty if none came)."""
    if isinstance(exc, ChildCrashed):
        what = f"the test's process ended before it could report: {exc}"
        if exc.traceback:
            return Fault(what, exc.traceback)
        return Fault(what, terminated, "when SIGTERM came")
    return Fault(
        f"Timeout: the test ran past {settings.timeout:g} s ({settings.timeout_from}); "
        "goforkpy ended its process and every process it started",
        terminated,
        "when the timeout came",
    )


def unreported(missing: list[str]) -> Fault:
    """The child ended normally, but without sending the reports of ``missing`` phases."""
    return Fault(
        f"the test's process ended, but the report of its {' and '.join(missing)} never "
        "reached pytest: the test closed, wrote to or reused descriptors it did not open "
        "(os.closerange, say), which goforkpy's own channels are among; leave those alone",
        phase=missing[0],
    )


def stopped(exc: BaseException) -> Fault:
    """pytest-timeout (or another plugin) failed the test from pytest's own process."""
    return Fault(
        f"{exc}\n(the test ran in a goforkpy child, which was killed with every process it started)"
    )


def complete(
    item: pytest.Item,
    reports: list[pytest.TestReport],
    fault: Fault,
    output: list[tuple[str, str]],
    started: float,
) -> list[pytest.TestReport]:
    """``reports`` with the phase the child died in (or ``fault.phase``) failed by
    ``fault``, and a passed teardown after it where the child wrote none."""
    done = [report.when for report in reports]
    later: list[pytest.TestReport] = []
    if fault.phase is not None:
        when = fault.phase
        later = [report for report in reports if _ORDER[report.when] > _ORDER[when]]
        reports = [report for report in reports if _ORDER[report.when] < _ORDER[when]]
    elif "teardown" in done:  # it died after its last report: fail that report
        failed = reports.pop()
        when = failed.when
    else:
        when = "setup" if not done else "call" if done == ["setup"] else "teardown"
    if when == "call" and not reports[0].passed:
        when = "teardown"  # a failed set-up has no call
    text = fault.what
    if fault.stack:
        stack = _above_pytest(fault.stack)
        text += f"\n\nThe Python stack {fault.stack_is}:\n{stack}"
    sections = [(f"Captured {name} {when}", captured) for name, captured in output]
    now = time.time()
    reports.append(_report(item, when, "failed", text, sections, started, now))
    reports.extend(later)
    if reports[-1].when != "teardown":
        reports.append(_report(item, "teardown", "passed", None, [], now, now))
    return reports


_ORDER = {"setup": 0, "call": 1, "teardown": 2}


def _above_pytest(stack: str) -> str:
    """faulthandler's stack of each thread, down to where pytest called the test or
    fixture (the rest, pytest's and goforkpy's own, is the same for every test)."""
    kept: list[str] = []
    cut, frames = False, 0
    for line in stack.rstrip().splitlines():
        if not line.startswith("  File "):
            cut, frames = False, 0  # a new thread's stack, or the list of extension modules
        elif cut:
            continue
        elif frames and any(part in line for part in _PYTEST):
            kept.append("  ... (pytest's and goforkpy's own frames)")
            cut = True
            continue
        else:
            frames += 1
        kept.append(line)
    return "\n".join(kept)


_PYTEST = (f"{os.sep}_pytest{os.sep}", f"{os.sep}pluggy{os.sep}")


def _report(
    item: pytest.Item,
    when: str,
    outcome: str,
    longrepr: str | None,
    sections: list[tuple[str, str]],
    start: float,
    stop: float,
) -> pytest.TestReport:
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        outcome,  # type: ignore[arg-type]
        longrepr,
        when,  # type: ignore[arg-type]
        sections,
        stop - start,
        user_properties=item.user_properties,
    )
