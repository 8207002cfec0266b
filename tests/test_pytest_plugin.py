"""The pytest plugin (API.md section 17): each test in a snapshot child of pytest.

Each test here runs a small suite in a pytest of its own (``pytester``, in a
subprocess) and asserts its counts and report texts: that suite's pytest
process is what the plugin forks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from goforkpy._process import platform
from goforkpy._shared import tmpdir

pytest_plugins = ["pytester"]

# Each test writes "<what> <pid>" lines to the file named by LOG, to say which process
# ran what: the plugin's promise is where each part of a test runs.
LOGGING = """
import os

def log(what):
    with open(os.environ["LOG"], "a") as f:
        f.write(f"{what} {os.getpid()}\\n")
"""

# one of each way a test can end, as the issue names them
EVERY_ENDING = (
    LOGGING
    + """
import ctypes
import subprocess
import sys

import pytest

@pytest.fixture(scope="session")
def shared():
    log("session-setup")
    yield 42
    log("session-teardown")

def test_passes(shared):
    log("test")
    assert shared == 42

def test_fails_an_assertion():
    assert 1 + 1 == 3

def test_segfaults():
    print("about to crash")
    ctypes.string_at(0)

def test_exits():
    os._exit(3)

def test_loops():
    while True:
        pass

def test_leaves_a_process():
    subprocess.Popen(["sleep", os.environ["SECONDS"]], start_new_session=True)

def test_also_uses_the_session_fixture(shared):
    log("test")
"""
)


# each run's pytest logs its own pid first
CONFTEST = (
    LOGGING
    + """
def pytest_configure(config):
    log("pytest")
"""
)


def _lines(log: Path) -> list[tuple[str, int]]:
    """The (what, pid) lines of the log."""
    return [(what, int(pid)) for what, pid in map(str.split, log.read_text().splitlines())]


def _line_of(source: str, text: str) -> int:
    """The number of the line of ``source`` (a test module's text) that holds ``text``."""
    (number,) = [n for n, line in enumerate(source.splitlines(), 1) if text in line]
    return number


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("LOG", str(pytester.path / "log"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    # the seconds a test's `sleep` is told: a number no other process has on its command line
    monkeypatch.setenv("SECONDS", f"300.{os.getpid()}{id(pytester)}")
    pytester.makeconftest(CONFTEST)
    return pytester


def _run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def _running_with(word: str) -> list[str]:
    """The processes whose command line has ``word``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if word in cmdline:
            found.append(" ".join(cmdline))
    return found


def test_each_ending_fails_alone_with_its_reason(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_endings=EVERY_ENDING)
    result = _run(suite, "--goforkpy", "--goforkpy-timeout=2")

    result.assert_outcomes(passed=3, failed=4, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            # (pytest 8 shows no message beside a report whose text is not a traceback's)
            "FAILED test_endings.py::test_fails_an_assertion - assert (1 + 1) == 3",
            "FAILED test_endings.py::test_segfaults*",
            "FAILED test_endings.py::test_exits*",
            "FAILED test_endings.py::test_loops*",
            "ERROR test_endings.py::test_leaves_a_process*",
        ]
    )
    text = result.stdout.str()
    # the segfault: its reason, signal, the test's own line in the stack, its output
    segfault = text[text.index("_ test_segfaults _") : text.index("_ test_exits _")]
    assert "child 'test_segfaults' (pid" in segfault and "was killed by SIGSEGV" in segfault
    assert "The Python stack at the fault (faulthandler):" in segfault
    source = (suite.path / "test_endings.py").read_text()
    crash_line = _line_of(source, "ctypes.string_at(0)")
    assert f'test_endings.py", line {crash_line} in test_segfaults' in segfault
    assert "Captured stdout call" in segfault and "about to crash" in segfault
    assert "exited with code 3" in text
    loop = text[text.index("_ test_loops _") :]
    assert "The Python stack when the timeout came:" in loop
    line = _line_of(source, "while True:")  # where the timeout found it: the loop or its body
    assert any(f'test_endings.py", line {n} in test_loops' in loop for n in (line, line + 1))
    # the process left behind is named, and gone once the session is
    assert f"sleep {os.environ['SECONDS']}" in text
    assert _running_with(os.environ["SECONDS"]) == []
    # the session fixture: set up once in pytest, before the fork, torn down there
    lines = _lines(suite.path / "log")
    pytest_pid = lines[0][1]
    assert [what for what, pid in lines if pid == pytest_pid] == [
        "pytest",
        "session-setup",
        "session-teardown",
    ]
    tests = [pid for what, pid in lines if what == "test"]
    assert len(tests) == 2 and pytest_pid not in tests
    # nothing of the tests' reports and stacks is left in goforkpy's directory
    ours = [name for name in os.listdir(tmpdir.payload_dir()) if name.startswith(f"{pytest_pid}-")]
    assert ours == []


def test_wider_fixtures_live_in_pytest_and_the_test_in_a_child(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_scopes=LOGGING
        + """
import pytest

@pytest.fixture(scope="session")
def session_value():
    log("session-setup")
    yield
    log("session-teardown")

@pytest.fixture(scope="module")
def module_value():
    log("module-setup")
    yield
    log("module-teardown")

@pytest.fixture
def function_value():
    log("function-setup")
    yield
    log("function-teardown")

def setup_module():
    log("setup_module")

class TestTogether:
    @pytest.fixture(scope="class")
    def class_value(self):
        log("class-setup")
        yield
        log("class-teardown")

    @pytest.mark.parametrize("n", [1, 2])
    def test_one(self, n, session_value, module_value, class_value, function_value):
        log("test")

def test_two(session_value, module_value, function_value):
    log("test")
"""
    )
    result = _run(suite, "--goforkpy")
    result.assert_outcomes(passed=3)
    lines = _lines(suite.path / "log")
    pytest_pid = lines[0][1]
    in_pytest = [what for what, pid in lines if pid == pytest_pid]
    assert in_pytest == [
        "pytest",
        "session-setup",
        "setup_module",
        "module-setup",
        "class-setup",
        "class-teardown",
        "module-teardown",
        "session-teardown",
    ]
    children = [pid for what, pid in lines if pid != pytest_pid]
    assert len(set(children)) == 3  # one child per test
    for child in set(children):
        assert [what for what, pid in lines if pid == child] == [
            "function-setup",
            "test",
            "function-teardown",
        ]


def test_without_the_option_only_marked_tests_are_isolated(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_marked=LOGGING
        + """
import pytest

def test_plain():
    log("plain")

@pytest.mark.goforkpy
def test_marked():
    log("marked")

@pytest.mark.goforkpy(timeout=1)
def test_marked_with_a_timeout():
    while True:
        pass
"""
    )
    result = _run(suite)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*Timeout: the test ran past 1 s (@pytest.mark.goforkpy(timeout=...))*"]
    )
    pids = dict(_lines(suite.path / "log"))
    assert pids["plain"] == pids["pytest"] != pids["marked"]


def test_the_plugin_is_inert_unless_asked(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_inert=LOGGING + "\ndef test_any():\n    log('test')\n")
    _run(suite).assert_outcomes(passed=1)
    _run(suite, "--goforkpy").assert_outcomes(passed=1)
    pytest_pid, plain, _, isolated = _lines(suite.path / "log")
    assert plain[1] == pytest_pid[1] and isolated[1] != plain[1]
    _run(suite, "--help").stdout.fnmatch_lines(["*--goforkpy *run each test in a snapshot child*"])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--goforkpy-timeout=soon"], "--goforkpy-timeout: 'soon' is not a number of seconds*"),
        (["--goforkpy-timeout=0"], "--goforkpy-timeout: '0' is not a number of seconds above 0*"),
        (["--goforkpy-memory=lots"], "*--goforkpy-memory: 'lots' is no size*"),
    ],
)
def test_bad_options_are_named(suite: pytest.Pytester, args: list[str], says: str) -> None:
    suite.makepyfile(test_any="def test_any():\n    pass\n")
    result = _run(suite, "--goforkpy", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{says}"])


def test_a_bad_marker_is_named(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_marker="""
import pytest

@pytest.mark.goforkpy(timeout=1, retries=3)
def test_any():
    pass
"""
    )
    result = _run(suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*test_any: @pytest.mark.goforkpy takes only timeout=, memory= and sandbox= "
            "(got retries)*"
        ]
    )


TOGETHER = (
    LOGGING
    + """
import pytest

@pytest.mark.parametrize("n", [1, 2, 3])
def test_numbers(n):
    print(f"printed by {n}")
    log(f"number-{n}")
    assert n != 2

def test_words():
    log("words")
"""
)


def test_x_stops_the_session_after_the_first_failure(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_together=TOGETHER)
    result = _run(suite, "--goforkpy", "-x")
    result.assert_outcomes(passed=1, failed=1)
    assert [what for what, _ in _lines(suite.path / "log")] == ["pytest", "number-1", "number-2"]


def test_last_failed_reruns_only_what_failed(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_together=TOGETHER)
    suite.runpytest_subprocess("--goforkpy", timeout=120).assert_outcomes(passed=3, failed=1)
    (suite.path / "log").unlink()
    result = suite.runpytest_subprocess("--goforkpy", "--lf", timeout=120)
    result.assert_outcomes(failed=1)
    assert [what for what, _ in _lines(suite.path / "log")] == ["pytest", "number-2"]


def test_k_selects_and_capture_shows_a_failures_output(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_together=TOGETHER)
    result = _run(suite, "--goforkpy", "-k", "numbers")
    result.assert_outcomes(passed=2, failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*Captured stdout call*", "printed by 2"])
    assert "printed by 1" not in result.stdout.str()  # a passing test's output stays hidden


def test_s_shows_the_tests_output_as_it_comes(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_together=TOGETHER)
    result = _run(suite, "--goforkpy", "-s", "-k", "numbers")
    result.assert_outcomes(passed=2, failed=1, deselected=1)
    assert "Captured stdout call" not in result.stdout.str()
    for n in (1, 2, 3):
        assert result.stdout.str().count(f"printed by {n}") == 1


def test_xdist_workers_each_isolate_their_own_tests(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="the test extra installs pytest-xdist")
    suite.makepyfile(test_endings=EVERY_ENDING)
    result = _run(suite, "--goforkpy", "--goforkpy-timeout=2", "-n", "2")
    result.assert_outcomes(passed=3, failed=4, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "*test_segfaults*SIGSEGV*",
            "*Timeout: the test ran past 2 s*",
            "*the test left processes running*",
        ]
    )
    assert _running_with(os.environ["SECONDS"]) == []
    workers = {pid for what, pid in _lines(suite.path / "log") if what == "pytest"}
    tests = {pid for what, pid in _lines(suite.path / "log") if what == "test"}
    assert len(workers) == 3 and not tests & workers  # the controller, 2 workers; tests apart


def test_pytest_timeout_ends_the_child_and_shows_the_tests_stack(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_slow="""
import time

def test_sleeps():
    time.sleep(300)

def test_quick():
    pass
"""
    )
    result = _run(suite, "--goforkpy", "--timeout=1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Timeout: the test ran past 1 s (pytest-timeout)*",
            "The Python stack when the timeout came:",
            '*test_slow.py", line 4 in test_sleeps',
        ]
    )


def test_memory_limit_fails_the_test_that_passes_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_memory="""
def test_greedy():
    hoard = bytearray(2 * 1024**3)

def test_modest():
    data = bytearray(10 * 1024**2)
"""
    )
    result = _run(suite, "--goforkpy", "--goforkpy-memory=1G")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_greedy*MemoryError*"])


def test_a_daemon_the_test_double_forked_is_named_and_ended(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_daemon="""
import os, subprocess

def test_leaves_a_daemon():
    # the shell exits at once: the sleep is an orphan
    subprocess.run(f"sleep {os.environ['SECONDS']} &", shell=True, check=True)
"""
    )
    result = _run(suite, "--goforkpy")
    if platform.NATIVE:
        result.assert_outcomes(passed=1, errors=1)
        # the sleep, or the shell's fork of it not yet turned into the sleep
        result.stdout.fnmatch_lines([f"*pid *: *sleep {os.environ['SECONDS']}*"])
    else:  # no subreapers: the orphan is init's, unseen, but still in the test's group
        result.assert_outcomes(passed=1)
    assert _running_with(os.environ["SECONDS"]) == []


def test_a_third_party_suite_gives_the_same_outcomes_isolated() -> None:
    """toolz's own tests (installed from PyPI with the test extra), with and without
    --goforkpy: the same outcome, test by test."""
    pytest.importorskip("toolz", reason="the test extra installs toolz, for its test suite")
    pytest_toolz = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q"]
    outcomes = []
    for isolate in ([], ["--goforkpy"]):
        done = subprocess.run(
            [*pytest_toolz, "--pyargs", "toolz", *isolate],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:]
        words = ("PASSED", "SKIPPED", "FAILED", "ERROR", "XFAIL", "XPASS")
        outcomes.append(sorted(line for line in done.stdout.splitlines() if line.startswith(words)))
    plain, isolated = outcomes
    assert len(plain) > 100 and isolated == plain


def test_the_guides_example_reports_as_the_guide_shows(suite: pytest.Pytester) -> None:
    """docs/guides/testing.md shows its example's report: the same lines come out."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "testing.md").read_text()
    source = guide.split('```python title="test_risky.py"\n', 1)[1].split("```", 1)[0]
    shown = guide.split("$ pytest --goforkpy -q test_risky.py\n", 1)[1].split("```", 1)[0]
    suite.makepyfile(test_risky=source)
    result = _run(suite, "--goforkpy", "-q")
    result.assert_outcomes(passed=2, failed=2, errors=1)
    for line in shown.splitlines():
        if line.startswith(("FAILED", "ERROR", "The Python stack", "the test left")):
            result.stdout.fnmatch_lines([f"{line.split(' - ')[0]}*"])
    result.stdout.fnmatch_lines(["*in test_parser_on_bad_input", "parsing a truncated file"])
