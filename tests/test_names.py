"""Every name the maps mention exists: module docstrings and docs/architecture.md.

A module docstring or the architecture page that names ``boot.tell_parent`` or
``_reaper`` after that code moved sends a newcomer looking for nothing. Each
name in double backticks (docstrings) or backticks (the page) whose first part
is goforkpy's own (a module, the package, or a name in the module itself)
must resolve; names of the standard library and other projects are not
checked here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest
from helpers import RunScript

import goforkpy
from goforkpy._process import platform

ROOT = Path(goforkpy.__file__).parent
_DOTTED = re.compile(r"^_?[A-Za-z]\w*(\.\w+)*(\(\))?$")
_FILES = (".py", ".sock", ".in", ".out", ".faults", ".md", ".yml", ".toml")


def _modules() -> dict[str, ModuleType]:
    """Every goforkpy module, by its full name (goforkpy.dask only with distributed)."""
    found = {"goforkpy": goforkpy}
    for info in pkgutil.walk_packages([str(ROOT)], "goforkpy."):
        try:
            found[info.name] = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            pass
    return found


MODULES = _modules()


def _by_last_part(part: str) -> list[object]:
    if part in ("fork", "goforkpy"):
        return [goforkpy]
    return [module for name, module in MODULES.items() if name.rpartition(".")[2] == part]


def _get(start: object, rest: list[str]) -> object | None:
    """Follow ``rest`` from ``start`` (a module's submodules too); ``None`` where it breaks."""
    found = start
    for part in rest:
        if hasattr(found, part):
            found = getattr(found, part)
        elif isinstance(found, ModuleType) and f"{found.__name__}.{part}" in MODULES:
            found = MODULES[f"{found.__name__}.{part}"]
        else:
            return None
    return found


def _ours(name: str, home: ModuleType | None) -> list[object]:
    """Where ``name``'s first part may come from, among goforkpy's own things."""
    first = name.split(".")[0]
    starts = _by_last_part(first)
    if first[:1].isupper():  # a class: ``Child._started``, ``Zygote.watch``
        starts += [vars(module)[first] for module in MODULES.values() if first in vars(module)]
    if home is not None and hasattr(home, first):
        value = getattr(home, first)
        if getattr(value, "__module__", getattr(value, "__name__", "")).startswith("goforkpy"):
            starts.append(value)  # ours (``sys`` imported here is the standard library's)
    if home is not None and "." not in name:  # ``_exited``: a member of a class here
        starts += [
            getattr(value, first)
            for value in vars(home).values()
            if isinstance(value, type) and hasattr(value, first)
        ]
    return starts


def _stdlib(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def unresolved(names: list[str], home: ModuleType | None) -> list[str]:
    missing = []
    for raw in names:
        name = raw.removesuffix("()")
        if not _DOTTED.match(raw) or name.endswith(_FILES) or name.isupper():
            continue
        first, *rest = name.split(".")
        starts = _ours(name, home)
        if not starts:
            if first.startswith("_") and home is not None and not _stdlib(first):
                missing.append(raw)  # a private name of ours that is nowhere
            continue
        if "." not in name and home is not None and starts:
            continue
        if all(_get(start, rest) is None for start in starts):
            missing.append(raw)
    return missing


def _docstring_names(module: ModuleType) -> list[str]:
    source = Path(module.__file__ or "").read_text()
    doc = ast.get_docstring(ast.parse(source)) or ""
    return re.findall(r"``([^`]+)``", doc)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_docstrings_name_what_exists(name: str) -> None:
    module = MODULES[name]
    assert unresolved(_docstring_names(module), module) == []


def test_the_architecture_page_names_what_exists() -> None:
    """In backticks, and the dotted names in its sequence diagrams."""
    page = (ROOT.parent / "docs" / "architecture.md").read_text()
    names = re.findall(r"`([^`\n]+)`", page)
    for diagram in re.findall(r"```text\n(.*?)```", page, re.S):
        names += re.findall(r"\b_?[A-Za-z]\w*(?:\.\w+)+", diagram)
    assert unresolved(names, None) == []


def test_a_stale_name_is_caught() -> None:
    """The check itself can fail: names of modules that moved away are reported."""
    names = ["boot.tell_parent", "warm.zygote", "_launch.cold", "Child._exited", "Child.gone"]
    assert unresolved(names, None) == ["boot.tell_parent", "warm.zygote", "Child.gone"]


def test_each_start_method_is_a_module_and_a_line_of_the_table() -> None:
    """docs/architecture.md: a start method is its unit's module and its line in
    ``methods.TABLE``; nothing outside the table asks a method by its name what it is."""
    from goforkpy._launch import methods, units

    for name in methods.TABLE:
        unit = units.unit(name)
        assert isinstance(unit.PICKLES, bool) and callable(unit.start), name
    package = ROOT / "_launch"
    for path in sorted(ROOT.rglob("*.py")):
        if path == package / "methods.py":
            continue
        asked = [
            line.strip()
            for line in path.read_text().splitlines()
            if re.search(r"\bstart\b\s*(?:==|!=|(?:not\s+)?in\b)", line)
            and re.search(r"""["'](?:cold|warm|snapshot)["']|methods\.[A-Z]""", line)
        ]
        assert asked == [], f"{path.relative_to(ROOT)} asks a start method by its name"


def test_one_at_fork_hook_resets_what_a_forked_copy_gets_anew() -> None:
    """docs/architecture.md: "one at-fork hook" (``_state``'s) gives a forked copy its
    fresh state; no other module registers one of its own."""
    hooks = [
        path.relative_to(ROOT).as_posix()
        for path in sorted(ROOT.rglob("*.py"))
        if "register_at_fork(" in path.read_text()
    ]
    assert hooks == ["_state.py"]
    page = (ROOT.parent / "docs" / "architecture.md").read_text()
    assert "One at-fork hook" in page


# What `import goforkpy` and `init()` load in a parent: every program pays for each
# (the architecture page lists them); a child's start-up path adds the rest of boot's.
# No standard-library module beyond those the interpreter has loaded already: not
# typing, not __future__ (each such annotation module on the path would be imported by
# every child and every program).
IN_A_PARENT = {
    "goforkpy",
    "goforkpy._child",
    "goforkpy._child.boot",
    "goforkpy._env",
    "goforkpy._shared",
    "goforkpy._shared.registry",
    "goforkpy._state",
}
START_UP_PATH = IN_A_PARENT | {
    "goforkpy._child.run",
    "goforkpy._errors",
    "goforkpy._process",
    "goforkpy._process.family",
    "goforkpy._process.quiet",
}


def test_import_goforkpy_loads_its_start_up_path_and_nothing_else() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; b = set(sys.modules); import goforkpy; goforkpy.init(); "
        "print(*set(sys.modules) - b)"
    )
    root = str(Path(goforkpy.__file__).parent.parent)
    env = {name: value for name, value in os.environ.items() if not name.startswith("GOFORKPY_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env, check=True
    )
    assert set(done.stdout.split()) == IN_A_PARENT, done.stdout
    assert set(goforkpy.spawn("identity", start="cold").result()["modules"]) >= START_UP_PATH


# What a child's dispatch loads before its function runs, for reading its payload and
# writing its result (loaded then, so that a function's Limits(open_files=...) cannot
# keep them from loading on the way out).
TO_THE_FUNCTION = {
    "goforkpy._child.telling",
    "goforkpy._shared.hooks",
    "goforkpy._shared.protocol",
    "goforkpy._shared.wire",
    "goforkpy._shared.wire.codec",
    "goforkpy._shared.wire.files",
    "goforkpy._shared.wire.tag",
}

LOADED_ON_THE_WAY = """
import sys
before = set(sys.modules)
import goforkpy as fork

@fork.register
def loaded():
    new = set(sys.modules) - before
    ours = {name for name in new if name.startswith("goforkpy")}
    source = {name: str(getattr(sys.modules[name], "__file__", "")) for name in new - ours}
    python = {name for name, path in source.items() if path.endswith(".py")}
    return sorted(ours), sorted(python)

if __name__ == "__main__":
    fork.init()
    print(fork.spawn("loaded", start="cold").result())
"""


def test_a_cold_child_loads_no_standard_library_module_on_its_way_to_the_function(
    run_script: RunScript,
) -> None:
    """From its interpreter's start to its function, a cold child loads goforkpy's
    start-up path and what reads its payload: no module of Python's own (not
    ``__future__``, not ``typing``), which every child would pay for."""
    done = run_script(LOADED_ON_THE_WAY)
    assert done.returncode == 0, done.stderr
    ours, python = ast.literal_eval(done.stdout)
    # On the portable layer no helper ties the child to its parent: it watches it itself
    watcher = {"goforkpy._process.platform", "goforkpy._process.platform.posix"}
    if platform.NATIVE:
        watcher = set()
    assert set(ours) == START_UP_PATH | TO_THE_FUNCTION | watcher
    assert python == []
