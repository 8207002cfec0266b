"""What an attack on goforkpy broke, one regression test each (issue: reliability and security).

Faults that fit the table of ``test_faults.py`` are there; these need a
process of their own, another user, or a hostile file system.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import DEADLOCK_NET, RunScript, children

import goforkpy as fork
from goforkpy._process import platform
from goforkpy._shared import tmpdir, wire

NO_THREAD_SCRIPT = """
import os, threading
import psutil
import goforkpy as fork
from goforkpy._shared import tmpdir

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
    mine = [n for n in os.listdir(tmpdir.payload_dir()) if n.startswith(f"{os.getpid()}-")]
    children = [p for p in psutil.Process().children() if "guardian" not in " ".join(p.cmdline())]
    print("left:", mine, children)
    refuse = False
    print("next:", fork.fork("add", 1, 2).result(timeout=30))
"""


@pytest.mark.parametrize("platform", ["native", "posix"])
def test_a_reaper_thread_that_cannot_start(run_script: RunScript, platform: str) -> None:
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
    from goforkpy._shared import tmpdir

    stem = tmpdir.new_stem()
    monkeypatch.setattr(tmpdir, "new_stem", lambda: stem)
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


def test_a_relative_tmpdir_survives_chdir_and_cwd(run_script: RunScript, tmp_path: Path) -> None:
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
def test_stray_markers_are_ignored_and_named(run_script: RunScript, stray: dict[str, str]) -> None:
    completed = run_script(STRAY_SCRIPT, env=stray)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["is_child: False", "result: 42"]
    assert "ignoring" in completed.stderr and sorted(stray)[0] in completed.stderr


def test_a_complete_stale_set_says_so(run_script: RunScript) -> None:
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


def test_a_child_whose_parent_is_gone_leaves_without_a_word(run_script: RunScript) -> None:
    """A dead parent's guardian clears its files: its child, finding no payload, ends as
    its lifeline's EOF would end it, without a word on the stderr it shares (the watcher
    thread is left out: a spawner's child, "tied", has none)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    lifeline, parent_end = os.pipe()
    os.close(parent_end)
    markers = {
        "GOFORKPY_PAYLOAD": "/nowhere/1-x.in",
        "GOFORKPY_KEY": "00" * 32,
        "GOFORKPY_PARENT": str(gone.pid),
        "GOFORKPY_DEPTH": "1",
        "GOFORKPY_LIFELINE": str(lifeline),
        "GOFORKPY_TIED": "1",
    }
    try:
        completed = run_script(STRAY_SCRIPT, env=markers, pass_fds=(lifeline,))
    finally:
        os.close(lifeline)
    assert completed.returncode != 0
    assert completed.stderr == "" and completed.stdout == ""


# --- hostile or odd inputs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        pytest.param(
            lambda: fork.fork("echo", open(os.devnull, "rb")),  # noqa: SIM115
            fork.PayloadError, "argument 0 of 'echo' is an open file", id="file-argument",
        ),
        pytest.param(
            lambda: fork.fork("echo", x=socket.socket()), fork.PayloadError,
            "keyword argument 'x' of 'echo' is a socket", id="socket-argument",
        ),
        pytest.param(
            lambda: fork.fork("echo", [open(os.devnull)]), fork.PayloadError,  # noqa: SIM115
            "cannot send an open file", id="nested-file",
        ),
        pytest.param(lambda: fork.kill_tree(1), ValueError, "1 is init", id="kill-tree-init"),
        pytest.param(lambda: fork.kill_tree(0), ValueError, "process group", id="kill-tree-0"),
        pytest.param(lambda: fork.kill_tree(-5), ValueError, "process group", id="kill-tree-neg"),
        pytest.param(
            lambda: fork.kill_tree(os.getpid()), ValueError, "this process", id="kill-tree-self"
        ),
        pytest.param(
            lambda: fork.kill_tree(os.getppid()), ValueError, "ancestors", id="kill-tree-parent"
        ),
        pytest.param(
            lambda: fork.Limits(memory="99999999T"), ValueError, "too large", id="huge-limit"
        ),
        pytest.param(
            lambda: fork.shell("true", timeout=float("nan")), ValueError, "nan", id="shell-nan"
        ),
        pytest.param(lambda: fork.shell("true", grace=-1), ValueError, "grace", id="shell-grace"),
    ],
)  # fmt: skip
def test_refused_before_anything_starts(call, error: type, text: str) -> None:  # type: ignore[no-untyped-def]

    with pytest.raises(error, match=text):
        call()
    assert children() == []


@pytest.mark.parametrize(
    "act",
    [
        pytest.param(lambda c: c.wait(float("nan")), id="wait-nan"),
        pytest.param(lambda c: c.result(-1), id="result-negative"),
        pytest.param(lambda c: c.communicate(timeout=float("nan")), id="communicate-nan"),
        pytest.param(lambda c: c.terminate(grace=-5), id="terminate-negative-grace"),
        pytest.param(lambda c: c.terminate(grace="5"), id="terminate-text-grace"),
    ],
)
def test_odd_waits_on_a_child_are_refused(act) -> None:  # type: ignore[no-untyped-def]
    child = fork.spawn("read_line", stdin=fork.PIPE)
    try:
        with pytest.raises(ValueError):
            act(child)
        assert child.is_alive()
    finally:
        child.communicate(b"done\n", timeout=DEADLOCK_NET)
    child.result(DEADLOCK_NET)


def test_result_timeout_covers_unpickling() -> None:
    child = fork.fork("slow_to_unpickle", 2.0)
    child.wait(DEADLOCK_NET)
    with pytest.raises(fork.TimeoutExpired, match="still being unpickled"):
        child.result(timeout=0.1)
    assert child.result(timeout=DEADLOCK_NET) == "patience"


def test_crashed_children_free_their_pipes_without_the_garbage_collector() -> None:
    import gc

    gc.disable()
    try:
        fds = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            child = fork.spawn("segfault", stdout=fork.PIPE, stderr=fork.PIPE)
            with pytest.raises(fork.ChildCrashed):
                child.result(DEADLOCK_NET)
        del child
        # The thread that recorded the last exit may still be leaving its callback.
        deadline = time.monotonic() + DEADLOCK_NET
        while len(os.listdir("/proc/self/fd")) != fds and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(os.listdir("/proc/self/fd")) == fds
    finally:
        gc.enable()


def test_a_payload_copied_over_another_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same user, same key: the tag still binds each file to its own child."""
    real_write = wire.write_assembled
    copied: list[bytes] = []

    def write_then_swap(path: str, *args: object) -> None:
        real_write(path, *args)  # type: ignore[arg-type]
        if not copied:  # small: written before its child starts, so it is still there
            copied.append(Path(path).read_bytes())
        else:  # the second child's payload becomes a copy of the first one's
            Path(path).write_bytes(copied[0])

    monkeypatch.setattr(wire, "write_assembled", write_then_swap)
    first = fork.fork("echo", "first")
    second = fork.fork("echo", "second")
    monkeypatch.undo()
    with pytest.raises(fork.PayloadError, match="integrity"):
        second.result(DEADLOCK_NET)
    assert first.result(DEADLOCK_NET) == (("first",), {})


SEALED = pytest.mark.skipif(
    not platform.sealed_memory_supported(), reason="sealed memfds are a Linux feature"
)


@SEALED
def test_big_payloads_and_results_travel_sealed(monkeypatch: pytest.MonkeyPatch) -> None:
    """No file is written for them: a file write of a big payload would fail the test."""
    real_write = wire.write_assembled

    def small_files_only(path: str, key: bytes, assembled: Any) -> None:
        assert assembled[1] < wire.SEALED_FROM, "a big payload went to a file"
        real_write(path, key, assembled)

    monkeypatch.setattr(wire, "write_assembled", small_files_only)
    blob = os.urandom(1 << 20) * 3
    child = fork.fork("echo", blob)
    (back,), _ = child.result(DEADLOCK_NET)
    assert back == blob
    assert not [n for n in os.listdir(tmpdir.payload_dir()) if n.startswith(f"{os.getpid()}-")]


@SEALED
def test_a_sealed_payload_is_checked() -> None:
    assembled = wire.assemble(("head",), [b"body"], [])
    key = wire.new_key()
    unsealed = platform.new_sealable("test")
    sealed = wire.write_sealed("1-a.in", key, assembled)
    try:
        with pytest.raises(fork.PayloadError, match="not sealed"):
            wire.read_sealed(unsealed, key, "1-a.in")
        with pytest.raises(fork.PayloadError, match="integrity"):
            wire.read_sealed(sealed, key, "2-b.in")  # another child's
        meta, body, _ = wire.read_sealed(sealed, key, "1-a.in")
        assert (meta, bytes(body)) == (("head",), b"body")
        with pytest.raises(OSError):
            os.pwrite(sealed, b"changed", 0)  # the kernel keeps it as it is
    finally:
        os.close(unsealed)
        os.close(sealed)
