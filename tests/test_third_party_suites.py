"""Real projects' own test suites, plainly and under ``pytest --goforkpy`` (API.md
section 17): the same report for every test and subtest, the same counts, the same
exit code and the same coverage.

more-itertools brings unittest's subtests (21,194 of them); arrow brings class-scoped
fixtures that set attributes on the test class, pytest-mock, and its own configuration
(``--cov-branch --cov-fail-under=99 --junitxml``). Their sdists are downloaded once per
machine into ``GOFORKPY_SUITES`` (default ``~/.cache/goforkpy/suites``); their own
dependencies come with the test extra. Slow: marker ``host``, one CI pass.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# Each test runs a whole suite twice, each run bounded at 900 s (``_run``): arrow's, under
# coverage, takes two minutes on a quiet two-CPU machine, past the suite's 120 s net.
pytestmark = [pytest.mark.host, pytest.mark.timeout(1800)]

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("GOFORKPY_SUITES", Path.home() / ".cache" / "goforkpy" / "suites"))


def _unpacked(project: str, version: str, into: Path) -> Path:
    """The project's sdist (from the cache, or PyPI the first time), unpacked into ``into``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"{project.replace('-', '_')}-{version}"
    sdist = CACHE / f"{stem}.tar.gz"
    if not sdist.exists():
        download = CACHE / "download"
        shutil.rmtree(download, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "--dest", str(download), f"{project}=={version}"],
            check=True,
            timeout=600,
        )  # fmt: skip
        (downloaded,) = download.iterdir()
        downloaded.replace(sdist)  # whole, or not at all
        download.rmdir()
    with tarfile.open(sdist) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(into, **safe)  # type: ignore[arg-type]
    return into / stem


def _run(source: Path, tests: str, *args: str) -> tuple[subprocess.CompletedProcess[str], list]:
    """pytest on ``tests`` in ``source`` (whose modules it imports, being the working
    directory): the run and the reports it logged, one (nodeid, phase, outcome, subtest,
    xfail) each."""
    record = source / "outcomes.jsonl"
    record.unlink(missing_ok=True)
    env = {
        **os.environ,
        "RECORD_OUTCOMES": str(record),
        "PYTHONPATH": os.pathsep.join([str(HERE / "suites"), str(HERE.parent)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "record_outcomes",
         "-q", tests, *args],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    return done, [json.dumps(line) for line in map(json.loads, record.read_text().splitlines())]


def _counts(done: subprocess.CompletedProcess[str]) -> str:
    """The summary line's counts, without the time."""
    (line,) = [line for line in done.stdout.splitlines() if re.search(r" in [\d.]+s", line)]
    return re.sub(r" in [\d.]+s.*", "", line).strip("= ")


def _compare(source: Path, tests: str, *args: str) -> tuple[str, str]:
    plain, plain_reports = _run(source, tests, *args)
    isolated, isolated_reports = _run(source, tests, "--goforkpy", *args)
    assert isolated.returncode == plain.returncode, isolated.stdout[-3000:]
    assert _counts(isolated) == _counts(plain)
    assert len(plain_reports) > 1000
    assert collections.Counter(isolated_reports) == collections.Counter(plain_reports)
    return plain.stdout, isolated.stdout


def test_more_itertools_with_its_subtests(tmp_path: Path) -> None:
    source = _unpacked("more-itertools", "11.2.1", tmp_path)
    plain, _ = _compare(source, "tests")
    assert re.search(r"\d+ passed, \d{5} subtests passed", plain), plain[-500:]


def test_arrow_with_its_class_fixtures_and_coverage(tmp_path: Path) -> None:
    """arrow's tox.ini asks for branch coverage of at least 99%: both runs reach it, with
    the same total."""
    source = _unpacked("arrow", "1.4.0", tmp_path)
    plain, isolated = _compare(source, "tests")
    total = re.compile(r"Total coverage: ([\d.]+)%")
    assert total.findall(isolated) == total.findall(plain) and total.findall(plain)
    assert "passed" in plain
