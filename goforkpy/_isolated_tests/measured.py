"""Coverage of isolated tests: the lines each test's child ran, counted by pytest's.

pytest-cov (or ``coverage run -m pytest``) measures pytest's process. A
test's child is a fork of it that leaves with ``os._exit``, so what the test
ran would be lost, or, with coverage's own fork support, saved to a data
file per test that coverage then combines (slow on a large suite). Instead
the child goes on measuring with the tracer it inherited and sends what it
traced back with its reports (``Lines``), and pytest adds it to what its own
tracer holds (``add``), as if pytest had run the test itself. Nothing to
configure beyond ``--cov``, and no file per test.

Coverage's collector is private: its ``data`` (file name -> the lines or
arcs traced there, kept until the next flush) and ``use_data`` are what this
relies on, as coverage's own after-fork code relies on its internals. Where
the tests switch coverage's context (``--cov-context=test``), the child's
data are flushed per context into memory of its own, and travel as
coverage's own dump, added at the end (``hand_over``).
"""

from __future__ import annotations

import sys
from typing import Any


def current() -> Any:
    """The coverage measuring this process, if one is (``None`` if none is)."""
    if "coverage" not in sys.modules:
        return None  # never imported: nothing measures
    from coverage import Coverage

    coverage = Coverage.current()
    return coverage if getattr(coverage, "_collector", None) is not None else None


class Lines:
    """In the child: what the test runs, traced as pytest's coverage traces it."""

    def __init__(self, collector: Any, flushed: Any) -> None:
        self._collector, self._flushed = collector, flushed

    @staticmethod
    def start(coverage: Any) -> Lines | None:
        """From now on, keep what is traced to send it; ``None`` where pytest's
        coverage (``coverage``, taken before the fork) does not measure this process,
        as under coverage's own ``patch = fork``, which starts one of its own here."""
        if coverage is None or current() is not coverage:
            return None
        try:
            from coverage import CoverageData

            collector = coverage._collector
            for traced in list(collector.data.values()):
                traced.clear()  # pytest's own, which pytest keeps: only the test's travel
            # a switch of context flushes: into memory, never into pytest's data file
            flushed = CoverageData(no_disk=True)
            collector.use_data(flushed, collector.static_context)
        except Exception as exc:  # a coverage whose insides moved: say so, never fail
            _cannot_count(exc)
            return None
        return Lines(collector, flushed)

    def taken(self) -> dict[str, Any] | None:
        """What the test ran: as traced, or where contexts were switched, as flushed."""
        collector = self._collector
        try:
            if self._flushed.measured_files():
                collector.flush_data()
                return {"dumped": self._flushed.dumps()}
            traced = {name: set(lines) for name, lines in collector.data.items() if lines}
            return {"traced": traced, "file_tracers": dict(collector.file_tracers)}
        except Exception as exc:
            _cannot_count(exc)
            return None


def _cannot_count(error: Exception) -> None:
    """A warning in the test's report: its lines are not counted (never a silent gap)."""
    import warnings

    try:
        warnings.warn(
            f"goforkpy could not count the lines this test ran in its child ({error!r}); "
            "the coverage report misses them. Please report it with your coverage version.",
            RuntimeWarning,
            stacklevel=2,
        )
    except Warning:
        pass  # -W error: the test must not fail for what its coverage could not do


class Sum:
    """In pytest: what the tests' children ran, added to pytest's own coverage."""

    def __init__(self) -> None:
        self._dumped: list[bytes] = []  # added one by one at the end: coverage before 7.11
        # cannot update an in-memory data set from another more than once

    def add(self, taken: dict[str, Any]) -> None:
        coverage = current()
        if coverage is None:
            return  # stopped meanwhile
        if "traced" in taken:
            collector = coverage._collector
            for name, lines in taken["traced"].items():
                collector.data.setdefault(name, set()).update(lines)
            collector.file_tracers.update(taken["file_tracers"])
            return
        self._dumped.append(taken["dumped"])

    def hand_over(self) -> None:
        """Add what came flushed to pytest's coverage, before it saves."""
        coverage, dumped, self._dumped = current(), self._dumped, []
        if coverage is None or not dumped:
            return
        from coverage import CoverageData

        data = coverage.get_data()
        for each in dumped:
            part = CoverageData(no_disk=True)
            part.loads(each)
            data.update(part)
