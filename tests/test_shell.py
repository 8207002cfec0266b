"""Shell helpers: output, errors, stdin, and timeouts that end the whole tree."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import psutil
import pytest

import goforkpy as fork


def test_shell_exec_returns_stdout_and_stderr_together() -> None:
    assert fork.shell_exec("echo out; echo err >&2") == "out\nerr\n"


def test_shell_exec_raises_with_status_and_output() -> None:
    with pytest.raises(fork.ShellError) as caught:
        fork.shell_exec("echo partial; echo broken >&2; exit 3")
    error = caught.value
    assert error.returncode == 3 and error.output == "partial\nbroken\n"
    assert error.cmd is not None and "exit 3" in error.cmd
    assert "status 3" in str(error) and "broken" in str(error)


@pytest.mark.parametrize(
    "stdin", [b"bytes in", "text in", "file"], ids=["bytes", "str", "file-object"]
)
def test_stdin_takes_bytes_str_or_a_file(stdin: object, tmp_path: Path) -> None:
    if stdin == "file":
        source = tmp_path / "in.txt"
        source.write_text("from a file")
        with open(source, "rb") as f:
            assert fork.shell_exec("tr a-z A-Z", stdin=f) == "FROM A FILE"
    else:
        expected = stdin.decode() if isinstance(stdin, bytes) else stdin  # type: ignore[union-attr]
        assert fork.shell_exec("cat", stdin=stdin) == expected  # type: ignore[arg-type]


def test_megabytes_of_output_without_deadlock() -> None:
    output = fork.shell_exec(
        "head -c 5000000 /dev/zero | tr '\\0' a; head -c 5000000 /dev/zero >&2"
    )
    assert len(output) == 10_000_000


def test_shell_status_and_redirects(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    assert fork.shell("echo to-file; exit 4", stdout=out) == 4
    assert out.read_text() == "to-file\n"
    assert fork.shell("kill -9 $$") == -9
    assert fork.shell("echo $PROBE > probe; pwd >> probe", env={"PROBE": "set"}, cwd=tmp_path) == 0
    assert (tmp_path / "probe").read_text() == f"set\n{tmp_path}\n"


def test_shell_run_streams_through_python_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert fork.shell_run("echo one; echo two >&2; exit 5") == 5
    assert (out.getvalue(), err.getvalue()) == ("one\n", "two\n")


def _sleeps(duration: str) -> list[psutil.Process]:
    """Live ``sleep <duration>`` processes (a duration no other test uses)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        alive = process.info["status"] != psutil.STATUS_ZOMBIE
        if process.info["cmdline"] == ["sleep", duration] and alive:
            found.append(process)
    return found


@pytest.mark.parametrize(
    ("helper", "duration"),
    [(fork.shell, "301.1"), (fork.shell_exec, "301.2"), (fork.shell_run, "301.3")],
    ids=["shell", "shell_exec", "shell_run"],
)
def test_timeout_leaves_no_grandchild_alive(helper, duration: str) -> None:  # type: ignore[no-untyped-def]
    # this process's own duration: CI runs two suites side by side on one machine
    duration = f"{duration}{os.getpid()}"
    with pytest.raises(fork.TimeoutExpired) as caught:
        helper(f"sleep {duration} & sleep {duration}; wait", timeout=0.5, grace=0.5)
    assert isinstance(caught.value, TimeoutError) and caught.value.timeout == 0.5
    assert _sleeps(duration) == []


def test_cmd_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="shell command line"):
        fork.shell(["echo", "hi"])  # type: ignore[arg-type]


def test_shell_from_a_forked_child() -> None:
    assert fork.run("shell_in_child", "echo inside") == "inside\n"


def test_process_ids_in_shell_are_own_group() -> None:
    pgid = int(fork.shell_exec("ps -o pgid= -p $$").strip())
    assert pgid != os.getpgid(0)
