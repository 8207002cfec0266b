"""Every Python example in the documentation and the README runs, as the reader would run it.

A page's ``python`` blocks run in order, each as a script, in a directory of
the page's own. A block with a title (```` ```python title="jobs.py" ````) is a
file the others import: it is written there first, not run. Blocks in other
languages (``console``, ``go``) are not Python and are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET

import goforkpy as fork

ROOT = Path(fork.__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
_BLOCK = re.compile(r"^```python(?: title=\"(?P<title>[^\"]+)\")?\n(?P<code>.*?)^```$", re.M | re.S)
# what a block needs that is not in every install
_NEEDS = {"distributed": "dask.distributed", "pebble": "pebble", "loky": "loky", "tqdm": "tqdm"}


def _blocks(page: Path) -> list[tuple[str | None, str]]:
    return [(m["title"], m["code"]) for m in _BLOCK.finditer(page.read_text())]


def _examples() -> list[object]:
    found = []
    for page in PAGES:
        runnable = [code for title, code in _blocks(page) if title is None]
        name = str(page.relative_to(ROOT))
        found += [pytest.param(page, i, id=f"{name}-{i + 1}") for i in range(len(runnable))]
    return found


@pytest.mark.parametrize(("page", "index"), _examples())
def test_the_example_runs(page: Path, index: int, tmp_path: Path) -> None:
    blocks = _blocks(page)
    for title, code in blocks:
        if title is not None:
            (tmp_path / title).write_text(code)
    code = [code for title, code in blocks if title is None][index]
    for package, marker in _NEEDS.items():
        if f"import {marker}" in code or f"from {marker}" in code:
            pytest.importorskip(package, reason=f"the example needs {package}")
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=DEADLOCK_NET,
    )
    assert done.returncode == 0, f"{page.name} example {index + 1} failed:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


def test_the_home_page_leads_to_every_guide() -> None:
    home = (ROOT / "docs" / "index.md").read_text()
    guides = sorted(page.name for page in (ROOT / "docs" / "guides").glob("*.md"))
    assert [name for name in guides if f"(guides/{name})" not in home] == []


def test_every_public_name_is_in_the_reference() -> None:
    reference = (ROOT / "docs" / "reference.md").read_text()
    documented = set(re.findall(r"^::: goforkpy\.[\w.]*?\.?(\w+)$", reference, re.M))
    missing = set(fork.__all__) - documented
    assert not missing, f"docs/reference.md lacks {sorted(missing)}"
    assert "Isolation" in documented


def test_the_changelog_page_is_the_changelog() -> None:
    page = (ROOT / "docs" / "changelog.md").read_text()
    assert '--8<-- "CHANGELOG.md"' in page
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert f"## {version[1]}" in (ROOT / "CHANGELOG.md").read_text()
