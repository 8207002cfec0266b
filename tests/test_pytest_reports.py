"""The pytest plugin reports what pytest reports (API.md section 17): every report a
test's child makes, and nothing the test can lose or forge on the way.

Each test runs a small suite twice in pytests of their own (``pytester``, in
subprocesses), plainly and with ``--goforkpy``, and compares what they say.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester


def _run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def _both(suite: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, pytest.RunResult]:
    """The suite run plainly, then isolated."""
    return _run(suite, *args), _run(suite, "--goforkpy", *args)


def _summary(result: pytest.RunResult) -> str:
    """The last line's counts, without the time they took."""
    return re.sub(r" in [\d.]+s.*", "", result.stdout.lines[-1]).strip("= ")


def _short(result: pytest.RunResult) -> list[str]:
    """The short test summary's lines (``-rA``). (Plain pytest logs a unittest subtest
    while the test's output is captured, so its progress marks can show in a captured
    section; such a line is not one of these.)"""
    summary = re.compile(r"(SUB)?(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\S* (\(.*\) )?\S+::")
    return sorted(line for line in result.stdout.lines if summary.match(line) and "%]" not in line)


SUBTESTS = """
import unittest

class Numbers(unittest.TestCase):
    def test_each(self):
        for i in range(3):
            with self.subTest(i=i):
                print("unittest subtest", i)
                self.assertNotEqual(i, 1)

def test_fixture(subtests):
    for i in range(3):
        with subtests.test(msg="case", i=i):
            assert i != 2

def test_plain():
    pass
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["", "xdist"])
def test_subtests_are_reported_as_pytest_reports_them(
    suite: pytest.Pytester, xdist: list[str]
) -> None:
    """A failing unittest subTest and a failing case of pytest's subtests fixture fail
    the run, with the same reports and counts as without the plugin (under xdist too)."""
    if int(pytest.__version__.split(".")[0]) < 9:
        pytest.skip("the subtests fixture came with pytest 9")
    suite.makepyfile(test_subtests=SUBTESTS)
    plain, isolated = _both(suite, "-rA", "-v", *xdist)
    assert plain.ret == isolated.ret == pytest.ExitCode.TESTS_FAILED
    assert _summary(isolated) == _summary(plain)
    assert "3 failed" in _summary(plain) and "subtests passed" in _summary(plain)
    assert _short(isolated) == _short(plain)
    if not xdist:  # (xdist quotes a subtest's parameters again: i='1')
        assert any(line.startswith("SUBFAILED(i=1)") for line in _short(plain))
    failure = isolated.stdout.str().split("_ Numbers.test_each", 1)[1]
    assert "unittest subtest 1" in failure and not re.search(r"^[u.]+$", failure, re.M)


WARNINGS_AND_PROPERTIES = """
import warnings

import pytest

class Careful(UserWarning):
    pass

def test_warns(record_property):
    warnings.warn("careful now", Careful)
    record_property("answer", 42)
    record_property("unpicklable", lambda: None)

@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_filtered():
    warnings.warn("old", DeprecationWarning)

def test_a_warning_class_of_its_own():
    class Local(UserWarning):
        pass
    warnings.warn("made here", Local)

def test_sections(request):
    print("to stdout")
    request.node.add_report_section("call", "custom", "a section of its own")
    assert False
"""


def test_warnings_properties_and_sections_reach_pytest(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_reports=WARNINGS_AND_PROPERTIES)
    junit = ("-o", "junit_family=xunit1", "--junitxml=out.xml")
    plain = _run(suite, *junit)
    plain_xml = _xml(suite)
    isolated = _run(suite, "--goforkpy", *junit)
    assert isolated.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    assert _summary(isolated) == _summary(plain) == "1 failed, 3 passed, 2 warnings"
    for text in ("Careful: careful now", "Local: made here", "a section of its own"):
        assert text in isolated.stdout.str()
    assert _warnings_section(isolated) == _warnings_section(plain)
    assert _xml(suite) == plain_xml
    assert '<property name="answer" value="42"' in plain_xml


def _warnings_section(result: pytest.RunResult) -> str:
    text = result.stdout.str()
    return text[text.index("warnings summary") : text.index("-- Docs")]


def _xml(suite: pytest.Pytester) -> str:
    """The JUnit XML, without what differs from run to run (times, host, addresses)."""
    xml = (suite.path / "out.xml").read_text()
    return re.sub(r'(time|timestamp|hostname)="[^"]*"|0x[0-9a-f]+', "", xml)


TAMPERING = """
import os

def _reports_descriptors():
    for fd in range(3, 256):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".reports"):
                yield fd
        except OSError:
            pass

def test_closes_every_descriptor_then_opens_files(tmp_path):
    os.closerange(3, 4096)
    opened = [open(tmp_path / f"file{i}", "w") for i in range(20)]
    assert False, "fails after closing"

def test_writes_a_nul_into_the_reports():
    for fd in _reports_descriptors():
        os.write(fd, b"\\0" * 64)
    assert False, "fails after the NUL"

def test_writes_garbage_then_dies():
    for fd in _reports_descriptors():
        os.write(fd, b"\\x80\\x04garbage" * 64)
    os._exit(0)

def test_after_them():
    pass
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds descriptors in /proc")
def test_a_test_that_tampers_with_descriptors_still_fails(suite: pytest.Pytester) -> None:
    """Closing every descriptor, writing a NUL or garbage where the reports go: each test
    still fails with its own reason, and the session goes on."""
    suite.makepyfile(test_tampering=TAMPERING)
    result = _run(suite, "--goforkpy", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()  # pytest 8's capture errors in the teardown too
    assert (outcomes["passed"], outcomes["failed"]) == (1, 3), outcomes
    result.stdout.fnmatch_lines_random(
        [
            # (pytest 8's capture fails first on the closed descriptors: an OSError)
            "FAILED test_tampering.py::test_closes_every_descriptor_then_opens_files - *",
            "FAILED test_tampering.py::test_writes_a_nul_into_the_reports - AssertionError*",
            "FAILED test_tampering.py::test_writes_garbage_then_dies*",  # pytest 8: no message
            "PASSED test_tampering.py::test_after_them",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    text = result.stdout.str()
    for reason in ("fails after the NUL", "code 0 without a result"):
        assert reason in text


def test_a_child_that_ends_without_a_phases_report_fails_its_test(
    suite: pytest.Pytester,
) -> None:
    """Here a fixture tells the child's copy of pytest to skip the call: its report never
    comes, and the test fails, saying so, where it would otherwise pass unrun."""
    suite.makepyfile(
        test_lost="""
import pytest

@pytest.fixture
def lose_the_call(request):
    request.config.option.setuponly = True

def test_never_called(lose_the_call):
    pass
"""
    )
    result = _run(suite, "--goforkpy")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the report of its call never reached pytest*"])


USES_GOFORKPY = """
import os
import signal

import pytest

import goforkpy as fork

def double(x):
    return 2 * x

@pytest.mark.parametrize("start", ["cold", "warm"])
def test_isolated(start):
    assert fork.isolated(double, start=start)(3) == 6

@pytest.mark.parametrize("start", ["cold", "warm"])
def test_executor(start):
    with fork.Executor(max_workers=2, start=start) as executor:
        assert list(executor.map(double, range(4))) == [0, 2, 4, 6]

def note_and_wait(path):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\\n")
    signal.pause()

@pytest.mark.parametrize("start", ["cold", "warm"])
def test_leaves_a_worker_running(start):
    path = os.environ["LEFT"] + start
    fork.Executor(max_workers=1, start=start).submit(note_and_wait, path)
    while not os.path.exists(path) or not open(path).read().endswith("\\n"):
        os.sched_yield()  # the worker says it runs (a deadlock net: pytest's timeout)
"""


def test_tests_that_use_goforkpy_run_isolated(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fork.isolated and an Executor, cold and warm, inside tests run under --goforkpy; a
    worker a test leaves running (a child of goforkpy's helpers, not of the test's
    process) is ended with the test's process, as it would be with any program's."""
    from helpers import DEADLOCK_NET, wait_gone

    monkeypatch.setenv("LEFT", str(suite.path / "left-"))
    suite.makepyfile(test_uses=USES_GOFORKPY)
    result = _run(suite, "--goforkpy", "--timeout=60")
    result.assert_outcomes(passed=6)
    pids = [int((suite.path / f"left-{start}").read_text()) for start in ("cold", "warm")]
    assert wait_gone(pids, within=DEADLOCK_NET) == []


COVERED_MODULE = """
def used(x):
    if x > 0:
        return "positive"
    return "not positive"

def unused():
    return "never called"
"""

COVERING_TESTS = """
import pytest

from measured import used

def test_positive():
    assert used(1) == "positive"

@pytest.mark.parametrize("x", [0, -1])
def test_others(x):
    assert used(x) == "not positive"
"""


@pytest.mark.parametrize("extra", [[], ["--cov-branch"], ["--cov-context=test"]])
def test_cov_counts_what_the_tests_ran_in_their_children(
    suite: pytest.Pytester, extra: list[str]
) -> None:
    """pytest-cov's --cov and nothing more: the same report, line by line."""
    pytest.importorskip("pytest_cov", reason="the test extra installs pytest-cov")
    suite.makepyfile(measured=COVERED_MODULE, test_measured=COVERING_TESTS)
    args = ["--cov=measured", "--cov-report=term-missing", *extra]
    plain, isolated = _both(suite, *args)
    assert plain.ret == isolated.ret == pytest.ExitCode.OK
    assert _coverage_table(isolated) == _coverage_table(plain)
    (row, _) = _coverage_table(plain)
    assert row.split()[-1] == "7", "only unused() is missed"


def _coverage_table(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("Name"))
    return [line for line in lines[start:] if line.startswith(("measured", "TOTAL"))]


def test_the_plugin_keeps_pytest_exit_codes(suite: pytest.Pytester) -> None:
    """Passed, failed, no tests: the same exit code as plain pytest."""
    suite.makepyfile(test_one="def test_ok():\n    pass\n")
    for args in ([], ["-k", "nothing_matches"]):
        plain, isolated = _both(suite, *args)
        assert plain.ret == isolated.ret, args


FAULTHANDLER_TIMER = """
import time

def test_fails():
    assert 1 == 2

def test_slow_then_passes():
    time.sleep(1.0)
"""


def test_faulthandler_timeout_is_kept_in_the_tests_process(suite: pytest.Pytester) -> None:
    """With pytest's ``faulthandler_timeout`` a failing test hung in its child (pytest's
    cancel of the timer waits there for a thread the copy does not have): the reports
    are plain pytest's, and the timer dumps the stacks of the test that overran it."""
    suite.makepyfile(test_timer=FAULTHANDLER_TIMER)
    plain, isolated = _both(suite, "-rA", "-o", "faulthandler_timeout=0.3")
    assert _short(isolated) == _short(plain)
    assert _summary(isolated) == _summary(plain) == "1 failed, 1 passed"
    for result in (plain, isolated):
        dumped = "\n".join(result.stderr.lines)
        assert "Timeout (0:00:00.300000)!" in dumped and "in test_slow_then_passes" in dumped


def test_a_coverage_whose_insides_moved_is_a_warning_not_a_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where coverage's collector is not as goforkpy knows it, the test's report says
    its lines were not counted, and the test runs on."""
    from goforkpy._isolated_tests import measured

    class Moved:
        _collector = object()  # no traced data where goforkpy reads it

    moved = Moved()
    monkeypatch.setattr(measured, "current", lambda: moved)
    with pytest.warns(RuntimeWarning, match="could not count the lines this test ran"):
        assert measured.Lines.start(moved) is None
