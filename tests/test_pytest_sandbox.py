"""``@pytest.mark.goforkpy(sandbox=fork.Sandbox(...))``: a test's call and teardown in
a sandbox, its reports as pytest makes them, nothing it sends unpickled in pytest.

Each case runs a small suite in a pytest of its own (``pytester``, in a
subprocess) and asserts its counts, report texts and the files around it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import goforkpy as fork

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(
    not fork.sandbox_support()["available"], reason="this layer has no sandbox"
)

SANDBOXED = """
import os, pickle, socket, warnings
import pytest
import goforkpy as fork

BOX = fork.Sandbox()
OUTSIDE = os.environ["OUTSIDE"]

@pytest.fixture
def opened(tmp_path):
    yield (tmp_path / "made").write_text("in set-up, before the sandbox")
    (tmp_path / "gone").write_text("in teardown, inside it: tmp_path is allowed")

@pytest.mark.goforkpy(sandbox=BOX)
def test_reads_nothing_outside():
    with pytest.raises(PermissionError):
        open(os.path.join(OUTSIDE, "secret")).read()
    with pytest.raises(PermissionError):
        socket.create_connection(("127.0.0.1", 9))

@pytest.mark.goforkpy(sandbox=BOX)
def test_tmp_path_and_temporary_files_work(opened, tmp_path):
    import tempfile
    with tempfile.TemporaryFile() as f:
        f.write(b"x")
    warnings.warn("from inside", UserWarning)
    assert (tmp_path / "made").read_text().startswith("in set-up")

@pytest.mark.goforkpy(sandbox=BOX)
def test_fails_on_what_it_cannot_reach():
    open(os.path.join(OUTSIDE, "secret")).read()

@pytest.mark.goforkpy(sandbox=BOX)
def test_crashes():
    os.abort()

class Hostile:
    def __reduce__(self):
        return (open, (os.path.join(OUTSIDE, "pwned"), "w"))

@pytest.mark.goforkpy(sandbox=BOX)
def test_properties_come_back_as_text(record_property):
    record_property("hostile", Hostile())

@pytest.mark.goforkpy(sandbox=BOX)
def test_forges_a_pickle_and_crashes():
    import gc
    from goforkpy._isolated_tests import channel
    # what a hostile test could do: find the stream and its key in its memory, frame its
    # own pickle into it, then crash so that pytest reads the stream
    stream = next(o for o in gc.get_objects() if isinstance(o, channel.Stream))
    payload = pickle.dumps(("phase", Hostile()))
    digest = channel._digest(stream._key, payload)
    os.write(stream._fd, channel._HEADER.pack(channel._MAGIC, len(payload), digest) + payload)
    os.abort()
"""

SUBTESTS = (
    """
@pytest.mark.goforkpy(sandbox=BOX)
def test_subtests_are_reported(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i != 1
"""
    if int(pytest.__version__.split(".")[0]) >= 9  # the subtests fixture came with pytest 9
    else ""
)


def test_a_sandboxed_test_reports_as_pytest_does(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("the session's secret")
    monkeypatch.setenv("OUTSIDE", str(outside))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makepyfile(test_boxed=SANDBOXED + SUBTESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=120)
    expected = [
        "PASSED test_boxed.py::test_reads_nothing_outside",
        "PASSED test_boxed.py::test_tmp_path_and_temporary_files_work",
        "FAILED test_boxed.py::test_fails_on_what_it_cannot_reach - PermissionError*",
        "FAILED test_boxed.py::test_crashes*",
        "PASSED test_boxed.py::test_properties_come_back_as_text",
        "FAILED test_boxed.py::test_forges_a_pickle_and_crashes*",
        "*from inside*",
    ]
    if SUBTESTS:  # a failed subtest counts as a failure, and its test fails too
        result.assert_outcomes(passed=3, failed=5, warnings=1)
        expected += [
            "SUBFAILED(i=1) test_boxed.py::test_subtests_are_reported - assert 1 != 1",
            "FAILED test_boxed.py::test_subtests_are_reported - contains 1 failed subtest",
        ]
    else:
        result.assert_outcomes(passed=3, failed=3, warnings=1)
    result.stdout.fnmatch_lines_random(expected)
    assert sorted(os.listdir(outside)) == ["secret"], "nothing of the tests' got out"


def test_a_bad_sandbox_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.goforkpy(sandbox={"network": False})
        def test_it():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*goforkpy(sandbox={'network': False}): pass a fork.Sandbox*"])
