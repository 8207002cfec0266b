"""A PyInstaller application (one-dir and one-file) using every kind of start works in
full, no helper runs the application past ``fork.init()``, and nothing of it is left
once it exits.

The builds are cached per machine (keyed by goforkpy's sources, the script and the
tools' versions): a build takes seconds to a minute, a run of it under two.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import goforkpy as fork

pytestmark = [
    pytest.mark.host,
    # PyInstaller reads each binary's dependencies with binutils' objdump on Linux
    pytest.mark.skipif(
        sys.platform.startswith("linux") and shutil.which("objdump") is None,
        reason="PyInstaller needs objdump on Linux: install binutils (apt install binutils)",
    ),
]

APP = '''
"""A frozen goforkpy application: every kind of start, then nothing left."""

import os

import goforkpy as fork


@fork.register
def square(x):
    return x * x


def pid_and_square(x):
    return os.getpid(), x * x


if __name__ == "__main__":
    fork.init()  # first thing, as multiprocessing.freeze_support()
    with open(os.environ["APP_LOG"], "a") as log:  # who ran the application past init()
        log.write(f"{os.getpid()}\\n")
    print("run", fork.run("square", 7))
    print("isolated", fork.isolated(pid_and_square)(3)[1])
    with fork.Executor(2) as pool:
        print("map", list(pool.map(square, range(5))))
    print("warm", fork.spawn("square", (5,), start="warm").result())
    with fork.Executor(2, start="warm") as pool:
        print("warm map", [square for _, square in pool.map(pid_and_square, range(3))])
    print("snapshot", fork.snapshot(square, 6).result())
'''
EXPECTED = [
    "run 49",
    "isolated 9",
    "map [0, 1, 4, 9, 16]",
    "warm 25",
    "warm map [0, 1, 4]",
    "snapshot 36",
]


def _built(mode: str) -> Path:
    """The application built with ``--<mode>`` (cached); the path of its binary."""
    pyinstaller = shutil.which("pyinstaller", path=os.path.dirname(sys.executable))
    if pyinstaller is None:
        pytest.fail("PyInstaller is in the test extra: pip install -e '.[test]'")
    package = Path(fork.__file__).parent
    digest = hashlib.sha256(APP.encode())
    for source in sorted(package.rglob("*.py")):
        digest.update(source.read_bytes())
    version = subprocess.run([pyinstaller, "--version"], capture_output=True, text=True)
    digest.update(f"{sys.version} {version.stdout} {mode}".encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    home = cache / "goforkpy-tests" / f"frozen-{mode}-{digest.hexdigest()[:16]}"
    binary = home / "dist" / ("app" if mode == "onefile" else "app/app")
    if binary.exists():
        return binary
    home.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=home.parent))
    (work / "app.py").write_text(APP)
    built = subprocess.run(
        [pyinstaller, "--noconfirm", "--log-level", "WARN", f"--{mode}", "app.py"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    shutil.rmtree(work / "build")
    try:
        work.rename(home)  # whole or not at all: a build cut short is never found
    except OSError:  # another run built it meanwhile
        shutil.rmtree(work)
    return binary


def _running_from(folder: Path) -> list[str]:
    """Processes whose executable or command line is in ``folder``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            found.append(f"{entry}: {cmdline}")
    return found


@pytest.mark.parametrize("mode", ["onedir", "onefile"])
def test_a_frozen_application_works_and_leaves_nothing(tmp_path: Path, mode: str) -> None:
    binary = _built(mode)
    log = tmp_path / "past-init"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFORKPY_")}
    completed = subprocess.run(
        [str(binary)],
        env={**env, "APP_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == EXPECTED, completed.stderr
    assert len(log.read_text().split()) == 1, "a helper or child ran the application"
    deadline = time.monotonic() + 5.0
    while _running_from(binary.parent) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running_from(binary.parent) == []
