"""The three launch paths of API.md section 2, each from a real parent process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import RunScript, unexpected_stderr

SCRIPT = """
import json, os, sys
import goforkpy as fork
from goforkpy import _env

TOP_IS_CHILD = fork.is_child()
EXTRA = ()

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

@fork.register
def info(point, *extra):
    return {
        "extra": [len(item) for item in extra],
        "pid": os.getpid(), "ppid": fork.ppid(), "is_child": fork.is_child(),
        "top_is_child": TOP_IS_CHILD, "sum": point.x + point.y,
        "argv": sys.argv[1:], "cwd": os.getcwd(),
        "markers": sorted(k for k in os.environ if k in _env.MARKERS),
        "heavy": sorted(m for m in ("cloudpickle", "psutil", "typing", "subprocess")
                        if m in sys.modules),
    }

if __name__ == "__main__":
    fork.init()
    BEFORE
    out = fork.run("info", Point(2, 3), *EXTRA)
    out["parent_pid"] = os.getpid()
    print(json.dumps(out))
"""


def _info(completed) -> dict:  # type: ignore[no-untyped-def]
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _check_child(info: dict, interpreter_loads: frozenset[str] = frozenset()) -> None:  # type: ignore[type-arg]
    assert info["sum"] == 5
    assert info["is_child"] and info["top_is_child"]
    assert info["ppid"] == info["parent_pid"] != info["pid"]
    assert info["markers"] == []
    heavy = set(info["heavy"]) - interpreter_loads
    assert not heavy, "a child of a script function must stay lean"


def test_main_script_is_rerun(run_script: RunScript) -> None:
    info = _info(run_script(SCRIPT.replace("BEFORE", "pass"), args=["a", "b"]))
    _check_child(info)
    assert info["argv"] == ["a", "b"]


def test_main_script_with_a_big_payload(run_script: RunScript) -> None:
    """The payload is written while the re-run script starts; the child waits for it."""
    info = _info(run_script(SCRIPT.replace("BEFORE", "EXTRA = (bytes(3 << 20),)")))
    _check_child(info)
    assert info["extra"] == [3 << 20]


def test_relative_script_path_after_chdir(run_script: RunScript, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = f"os.chdir({str(elsewhere)!r})"
    completed = run_script(
        SCRIPT.replace("BEFORE", before),
        name="sub/script.py",
        command=[sys.executable, "sub/script.py", "x"],
    )
    info = _info(completed)
    _check_child(info)
    assert info["cwd"] == str(elsewhere)


def test_python_dash_m(run_script: RunScript, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = f"os.chdir({str(elsewhere)!r})"
    completed = run_script(
        SCRIPT.replace("BEFORE", before),
        name="pkg/mod.py",
        command=[sys.executable, "-m", "pkg.mod", "y"],
    )
    info = _info(completed)
    _check_child(info, interpreter_loads=frozenset({"typing"}))  # runpy's doing on 3.9
    assert info["argv"] == ["y"]


def test_interpreter_flags_are_kept(run_script: RunScript) -> None:
    source = """
    import sys
    import goforkpy as fork

    @fork.register
    def flags():
        return sys.flags.optimize, sys.flags.dont_write_bytecode

    if __name__ == "__main__":
        fork.init()
        print(fork.run("flags"))
    """
    completed = run_script(source, command=[sys.executable, "-O", "-B", "script.py"])
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "(1, 1)"


BY_VALUE = """
import goforkpy as fork
base = 10
@fork.register
def scaled(x):
    import sys
    return x * base, "cloudpickle" in sys.modules
fork.init()
print(fork.run("scaled", 4))
"""


def test_python_dash_c_goes_by_value(run_script: RunScript) -> None:
    completed = run_script("", command=[sys.executable, "-c", BY_VALUE])
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "(40, True)"


def test_stdin_program_goes_by_value(run_script: RunScript) -> None:
    completed = run_script("", command=[sys.executable, "-"], stdin=BY_VALUE)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "(40, True)"


def test_interactive_interpreter_goes_by_value(run_script: RunScript) -> None:
    session = "import goforkpy as fork\nk = 3\ndef triple(x):\n    return x * k\n\n"
    session += "_ = fork.register(triple)\nprint('REPL:', fork.run('triple', 14))\n"
    completed = run_script("", command=[sys.executable, "-i"], stdin=session)
    assert "REPL: 42" in completed.stdout, completed.stderr


def test_fork_before_init_in_child_is_an_init_error(run_script: RunScript) -> None:
    """A script forking from its top must not become a fork bomb."""
    source = """
    import goforkpy as fork

    @fork.register
    def work():
        return 1

    child = fork.fork("work")   # at the top, before init(): re-run in the child too
    fork.init()
    try:
        child.result()
    except fork.InitError as exc:
        print("InitError:", exc)
    """
    completed = run_script(source)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("InitError: ")
    assert "before reaching fork.init()" in completed.stdout
    assert unexpected_stderr(completed.stderr) == "", (
        "one report, in the parent; the child prints nothing"
    )
    assert "fork() was called in a child before fork.init() ran" in completed.stdout


def test_child_without_init_is_an_init_error(run_script: RunScript) -> None:
    source = """
    import goforkpy as fork

    @fork.register
    def work():
        return 1

    if __name__ == "__main__" and not fork.is_child():
        try:
            fork.run("work")
        except fork.InitError as exc:
            print(type(exc).__name__, exc)
    """
    completed = run_script(source)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("InitError ")
    assert "call fork.init()" in completed.stdout


def test_grandchildren_from_a_script(run_script: RunScript) -> None:
    source = """
    import os
    import goforkpy as fork

    @fork.register
    def leaf():
        return os.getpid(), fork.ppid()

    @fork.register
    def middle():
        return os.getpid(), fork.run("leaf")

    if __name__ == "__main__":
        fork.init()
        mid_pid, (leaf_pid, leaf_parent) = fork.run("middle")
        print(leaf_parent == mid_pid != leaf_pid != os.getpid())
    """
    completed = run_script(source)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "True"


def test_init_is_idempotent_and_returns_in_a_parent(run_script: RunScript) -> None:
    source = """
    import goforkpy as fork
    fork.init(); fork.init()
    print(fork.is_child(), fork.ppid())
    """
    completed = run_script(source)
    assert completed.stdout.strip() == "False None", completed.stderr


@pytest.mark.parametrize("via", ["decorator", "register_func"])
def test_register_spellings_and_shortcuts(run_script: RunScript, via: str) -> None:
    register = (
        "@fork.register('twice')\ndef double(x):\n    return 2 * x\n"
        if via == "decorator"
        else "def double(x):\n    return 2 * x\nfork.register_func('twice', double)\n"
    )
    source = (
        "import goforkpy as fork\n" + register + "fork.init()\n"
        "print(double.run(21), double.fork(1).result(), fork.run('twice', 5),"
        " sorted(fork.registered()))\n"
    )
    completed = run_script(source)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "42 2 10 ['twice']"


def test_a_child_takes_the_parents_sys_path_as_a_new_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import in the parent-watching thread walks ``sys.path`` while the child takes
    the parent's; changed in place, the list shifted under it and the walk skipped a
    folder (seen once: ``No module named 'select'`` in that thread)."""
    from types import SimpleNamespace

    from goforkpy._child import run

    walking = sys.path  # the list an import in the other thread is iterating
    before = list(walking)
    monkeypatch.setattr(sys, "path", walking)  # both put back after the test
    monkeypatch.setattr(sys, "argv", ["script.py"])
    meta = SimpleNamespace(sys_path=["/from/the/parent", *before[1:]], argv=["app.py", "-v"])
    run.take_parents_path(meta)  # type: ignore[arg-type]
    assert (sys.path, sys.argv) == (meta.sys_path, ["app.py", "-v"])
    assert walking == before
