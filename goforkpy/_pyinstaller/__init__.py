"""PyInstaller finds goforkpy's hook here (the ``pyinstaller40`` entry point), so a frozen
application bundles every module a goforkpy child or helper may load."""

from __future__ import annotations

import os


def get_hook_dirs() -> list[str]:
    """The directories holding goforkpy's PyInstaller hooks."""
    return [os.path.dirname(__file__)]
