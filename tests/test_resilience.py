"""What an attack on goforkpy broke, one regression test each (issue: reliability and security).

Faults that fit the table of ``test_faults.py`` are there; these need a
process of their own, another user, or a hostile file system.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import goforkpy as fork

DEADLOCK_NET = 60.0

NO_THREAD_SCRIPT = """
import os, threading
import psutil
import goforkpy as fork
from goforkpy import _tmpdir

@fork.register
def add(a, b):
    return a + b

real_start = threading.Thread.start
refuse = True

def start(self):
    if refuse and self.name.startswith("goforkpy-reaper"):
        raise RuntimeError("can't start new thread")
    return real_start(self)

if __name__ == "__main__":
    fork.init()
    threading.Thread.start = start
    try:
        fork.fork("add", 1, 2)
    except fork.ForkError as exc:
        print("refused:", "out of threads" in str(exc))
    mine = [n for n in os.listdir(_tmpdir.payload_dir()) if n.startswith(f"{os.getpid()}-")]
    children = [p for p in psutil.Process().children() if "guardian" not in " ".join(p.cmdline())]
    print("left:", mine, children)
    refuse = False
    print("next:", fork.fork("add", 1, 2).result(timeout=30))
"""


@pytest.mark.parametrize("platform", ["native", "posix"])
def test_a_reaper_thread_that_cannot_start(run_script, platform: str) -> None:  # type: ignore[no-untyped-def]
    """A typed ForkError, nothing started or left behind, and the next fork works."""
    completed = run_script(NO_THREAD_SCRIPT, env={"GOFORKPY_PLATFORM": platform})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["refused: True", "left: [] []", "next: 3"]


# --- the private directory: no swaps, no FIFOs, no lock-out --------------------------------


def test_a_base_others_can_write_is_refused(tmp_path: Path, use_base) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "shared"
    base.mkdir()
    base.chmod(0o777)  # no sticky bit: anyone could swap goforkpy's directory in it
    use_base(base)
    with pytest.raises(fork.PayloadError, match="lets other users rename"):
        fork.fork("add", 1, 2)
    assert not list(base.iterdir())


def test_a_sticky_shared_base_is_fine(tmp_path: Path, use_base) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "sticky"
    base.mkdir()
    base.chmod(0o1777)
    use_base(base)
    assert fork.run("add", 1, 2) == 3


def _plant_fifo(monkeypatch: pytest.MonkeyPatch, suffix: str) -> Path:
    """Make the next child's file ``suffix`` a FIFO before anything is written to it."""
    from goforkpy import _tmpdir

    stem = _tmpdir.new_stem()
    monkeypatch.setattr(_tmpdir, "new_stem", lambda: stem)
    fifo = Path(stem + suffix)
    os.mkfifo(fifo, 0o600)
    return fifo


def test_a_fifo_in_place_of_a_result_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = _plant_fifo(monkeypatch, ".out")
    child = fork.fork("add", 1, 2)
    with pytest.raises(fork.PayloadError, match="regular file"):
        child.result(DEADLOCK_NET)
    assert not fifo.exists()


def test_a_fifo_in_place_of_a_payload_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = _plant_fifo(monkeypatch, ".in")
    with pytest.raises(fork.PayloadError, match="File exists"):
        fork.fork("add", 1, 2)
    fifo.unlink()


def _take_the_name(kind: str, path: Path) -> None:
    if kind == "shared-directory":
        path.mkdir(0o755)
    elif kind == "file":
        path.write_text("")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        (path.parent / "theirs").mkdir(0o700)
        path.symlink_to(path.parent / "theirs")


@pytest.mark.parametrize("kind", ["shared-directory", "file", "fifo", "symlink"])
def test_a_taken_directory_name_does_not_lock_us_out(  # type: ignore[no-untyped-def]
    tmp_path: Path, use_base, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    base = tmp_path / "base"
    base.mkdir(0o1777)
    base.chmod(0o1777)
    taken = base / f"goforkpy-{os.geteuid()}"
    _take_the_name(kind, taken)
    use_base(base)
    with caplog.at_level("WARNING", logger="goforkpy"):
        assert fork.run("add", 1, 2) == 3
        assert fork.run("add", 2, 2) == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "goforkpy"]
    assert len(warnings) == 1 and str(taken) in warnings[0], warnings
    if kind == "symlink":
        assert not list((base / "theirs").iterdir()), "nothing went through their symlink"


def test_a_relative_tmpdir_survives_chdir_and_cwd(run_script, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "rel").mkdir(0o700)
    (tmp_path / "elsewhere").mkdir()
    source = """
    import os
    import goforkpy as fork

    @fork.register
    def where():
        return os.getcwd()

    if __name__ == "__main__":
        fork.init()
        os.chdir("elsewhere")
        print(fork.run("where") == os.getcwd())
        print(fork.spawn("where", cwd="/").result() == "/")
    """
    completed = run_script(source, env={"GOFORKPY_TMPDIR": "rel"})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["True", "True"]


# --- stray markers --------------------------------------------------------------------


STRAY_SCRIPT = """
import goforkpy as fork

@fork.register
def work():
    return 42

if __name__ == "__main__":
    fork.init()
    print("is_child:", fork.is_child())
    print("result:", fork.run("work"))
"""


@pytest.mark.parametrize(
    "stray",
    [
        {"GOFORKPY_READY": "5"},
        {"GOFORKPY_PAYLOAD": "/nowhere/x.in", "GOFORKPY_KEY": "00" * 32},
        {"GOFORKPY_STARTED": "7", "GOFORKPY_DEPTH": "3"},
    ],
    ids=["ready", "payload-and-key", "started-and-depth"],
)
def test_stray_markers_are_ignored_and_named(run_script, stray: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    completed = run_script(STRAY_SCRIPT, env=stray)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["is_child: False", "result: 42"]
    assert "ignoring" in completed.stderr and sorted(stray)[0] in completed.stderr


def test_a_complete_stale_set_says_so(run_script) -> None:  # type: ignore[no-untyped-def]
    stale = {
        "GOFORKPY_PAYLOAD": "/nowhere/1-x.in",
        "GOFORKPY_KEY": "00" * 32,
        "GOFORKPY_PARENT": "1",
        "GOFORKPY_DEPTH": "1",
        "GOFORKPY_LIFELINE": "999",
    }
    completed = run_script(STRAY_SCRIPT, env=stale)
    assert completed.returncode == 1
    assert "stale" in completed.stderr and "unset the GOFORKPY_* variables" in completed.stderr
