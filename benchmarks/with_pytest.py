"""The pytest plugin beside pytest-forked: trivial tests, plain, ``--goforkpy`` and
``--forked``, side by side in one run.

pytest-forked does not run under pytest 9 (its reports no longer marshal), so
all three run in a venv of their own with pytest 8 (``.venv-pytest8``, made
once and kept). Each mode runs the same file of trivial tests in turn, round
by round; the overhead per test is a mode's time less plain pytest's, divided
by the number of tests.

The floor printed beside it: what forking the pytest process costs per test,
once (all ``--forked`` does) and twice (a goforkpy snapshot hangs from an
intermediate process that ends whatever the test left, however it ended).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-pytest8"
PYTHON = VENV / "bin" / "python"

TESTS = """
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_trivial(n):
    assert n >= 0
"""

# Run in the bench venv's Python, pytest imported as in a pytest run.
FLOOR = """
import os, time
import pytest, _pytest.runner, _pytest.python, _pytest.fixtures, _pytest.capture

def once():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def twice():
    pid = os.fork()
    if pid == 0:
        inner = os.fork()
        if inner == 0:
            os._exit(0)
        os.waitpid(inner, 0)
        os._exit(0)
    os.waitpid(pid, 0)

def measure(fork):
    fork()
    began = time.perf_counter()
    for _ in range(200):
        fork()
    print((time.perf_counter() - began) / 200)

measure(once)
measure(twice)
import goforkpy  # as --goforkpy has it: one snapshot made, its threads and state kept
goforkpy.snapshot(len, ()).result()
measure(twice)
"""


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _timed(base, modes, directory, env, rounds, count, what):
    """Each mode's run of the tests in ``directory``, round by round: its durations, by
    mode (``None``, said, where a mode did not pass)."""
    samples = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode, args in modes.items():
            began = time.perf_counter()
            done = subprocess.run(
                [*base, *args], cwd=directory, env=env, capture_output=True, text=True
            )
            samples[mode].append(time.perf_counter() - began)
            if f"{count} passed" not in done.stdout:
                print(f"\n{what}: {mode} did not pass:\n{done.stdout[-2000:]}")
                return None
    return samples


def _bench_venv():
    """The venv with pytest 8, pytest-forked and goforkpy (made once, then kept)."""
    if not PYTHON.exists():
        print("  (making .venv-pytest8 once: pytest 8, pytest-forked, goforkpy)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(PYTHON),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "pytest>=8,<9",
                "pytest-forked>=1.6",
                "-e",
                str(ROOT),
            ],
            check=True,
        )
    subprocess.run(
        [str(PYTHON), "-m", "compileall", "-q", str(ROOT / "goforkpy")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def bench_pytest(rounds, count=1_000):
    try:
        _bench_venv()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"\npytest plugin: skipped (could not make {VENV.name}: {exc})")
        return
    modes = {"plain": [], "--goforkpy": ["--goforkpy"], "--forked": ["--forked"]}
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "test_trivial.py").write_text(TESTS.format(count=count))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        base = [str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        samples = _timed(base, modes, directory, env, rounds, count, "pytest plugin")
        if samples is None:
            return
        floors = subprocess.run(
            [str(PYTHON), "-c", FLOOR], capture_output=True, text=True, check=True
        ).stdout.split()
    plain = _median(samples["plain"])
    overhead = {
        mode: (_median(samples[mode]) - plain) / count for mode in ("--goforkpy", "--forked")
    }
    once, twice, twice_used = (float(seconds) for seconds in floors)
    print(f"\npytest: {count:,} trivial tests, per-test overhead over plain pytest (medians)")
    print(f"  plain pytest            {plain * 1e3 / count:6.2f} ms per test")
    for mode, seconds in overhead.items():
        print(f"  {mode:<22}  +{seconds * 1e3:5.2f} ms per test")
    ratio = overhead["--goforkpy"] / overhead["--forked"]
    print(f"  --goforkpy / --forked   {ratio:5.2f}x (target <= 1.0x)")
    print(
        f"  floor: one fork and exit of the pytest process {once * 1e3:.2f} ms (all --forked "
        f"does), two {twice * 1e3:.2f} ms (a snapshot and the intermediate that contains it); "
        f"two once goforkpy has made a snapshot there {twice_used * 1e3:.2f} ms (what each "
        "copy's reset at the fork costs: goforkpy's state given up, its threads gone)"
    )


MEASURED = """
def grade(score):
    if score >= 90:
        return "A"
    if score >= 75:
        return "B"
    if score >= 50:
        return "C"
    return "F"


def spread(scores):
    grades = {{}}
    for score in scores:
        grades.setdefault(grade(score), []).append(score)
    return {{key: len(values) for key, values in sorted(grades.items())}}
"""

MEASURED_TESTS = """
import pytest

from measured import spread

@pytest.mark.parametrize("n", range({count}))
def test_spread(n):
    assert sum(spread(range(n % 100)).values()) == n % 100
"""


def bench_pytest_cov(rounds, count=500):
    """pytest-cov's --cov with and without --goforkpy, in this Python's own venv: what
    counting lines costs on top of each, and --goforkpy --cov against plain --cov (the
    target), beside its floor, --goforkpy against plain pytest (the plugin's own cost)."""
    try:
        import pytest_cov  # noqa: F401
    except ImportError:
        print("\npytest --cov: skipped (pytest-cov is not installed here)")
        return
    modes = {
        "plain": [],
        "--cov": ["--cov=measured"],
        "--goforkpy": ["--goforkpy"],
        "--goforkpy --cov": ["--goforkpy", "--cov=measured"],
    }
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "measured.py").write_text(MEASURED.format())
        Path(directory, "test_measured.py").write_text(MEASURED_TESTS.format(count=count))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        samples = _timed(base, modes, directory, env, rounds, count, "pytest --cov")
    if samples is None:
        return
    took = {mode: _median(values) for mode, values in samples.items()}
    print(f"\npytest --cov: {count:,} small tests, whole runs (medians)")
    for mode, seconds in took.items():
        print(f"  {mode:<20} {seconds:6.2f} s")
    print(
        f"  --cov's own cost: plain {took['--cov'] / took['plain']:.2f}x, under --goforkpy "
        f"{took['--goforkpy --cov'] / took['--goforkpy']:.2f}x"
    )
    ratio = took["--goforkpy --cov"] / took["--cov"]
    floor = took["--goforkpy"] / took["plain"]
    print(f"  --goforkpy --cov / --cov  {ratio:5.2f}x (target <= 1.5x; floor, the plugin's "
          f"own per-test fork: --goforkpy / plain {floor:.2f}x)")  # fmt: skip
