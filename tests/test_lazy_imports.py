"""Lazy imports (PEP 810, Python 3.15+): a zygote holds what the program imports lazily.

Running a program down to ``fork.init()`` imports none of its lazy imports; a
zygote makes them real before it forks, so each warm child finds them loaded
and shared, as with eager imports, instead of importing them again into its
own memory. These tests run where Python has lazy imports (CI's 3.15 pass).
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from helpers import RunScript

pytestmark = pytest.mark.skipif(
    not hasattr(types, "LazyImportType"), reason="this Python has no lazy imports (3.15+)"
)

# Big enough that importing it again in a child shows in the child's private memory.
HEAVY = """
DATA = [str(n) * 8 for n in range(400_000)]  # about 30 MB of objects
"""

SCRIPT = """
{lazy}import heavy
{lazy}from json import dumps
import sys
import goforkpy as fork
import psutil

@fork.register
def private_memory():
    assert len(heavy.DATA) == 400_000 and dumps([1]) == "[1]"
    return "heavy" in sys.modules, psutil.Process().memory_full_info().uss

if __name__ == "__main__":
    fork.init()
    fork.set_start_method("warm")
    loaded, private = fork.run("private_memory")
    print(loaded, private)
"""


def _private_memory(run_script: RunScript, tmp_path: Path, lazy: str) -> int:
    """The private memory of a warm child that uses what the script imports (``lazy``:
    "lazy " or "")."""
    (tmp_path / "heavy.py").write_text(HEAVY)
    done = run_script(SCRIPT.format(lazy=lazy), name=f"{lazy.strip() or 'eager'}.py")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "warm, as asked: no fall back to cold"
    loaded, private = done.stdout.split()
    assert loaded == "True"
    return int(private)


def test_a_warm_childs_private_memory_stays_as_with_eager_imports(
    run_script: RunScript, tmp_path: Path
) -> None:
    eager = _private_memory(run_script, tmp_path, "")
    lazy = _private_memory(run_script, tmp_path, "lazy ")
    assert lazy < eager + 8 * 2**20, f"lazy {lazy >> 20} MiB, eager {eager >> 20} MiB"


def test_a_lazy_import_that_fails_fails_in_the_child_that_uses_it(run_script: RunScript) -> None:
    done = run_script(
        """
        lazy import no_such_module
        import goforkpy as fork

        @fork.register
        def use():
            return no_such_module.value

        @fork.register
        def other():
            return 1

        if __name__ == "__main__":
            fork.init()
            fork.set_start_method("warm")
            print(fork.run("other"))
            try:
                fork.run("use")
            except ModuleNotFoundError as exc:
                print("raised", exc.name)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "raised", "no_such_module"]
