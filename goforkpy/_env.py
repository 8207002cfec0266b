"""Environment markers and configuration, named and read in one place.

The markers are how a parent tells a re-executed interpreter that it is a
goforkpy child and where its payload is. They are read once, when goforkpy is
first imported, so ``is_child()`` holds from the child's first line on;
``init()`` then removes them from ``os.environ`` so that grandchildren and shell
commands do not inherit them.

This module is on the child's start-up path: it imports nothing but ``os``.
"""

from __future__ import annotations

import os

# Markers the parent sets for its child.
PAYLOAD = "GOFORKPY_PAYLOAD"  # path of the private payload file
KEY = "GOFORKPY_KEY"  # hex of the parent's HMAC key
PARENT = "GOFORKPY_PARENT"  # pid of the forking process
DEPTH = "GOFORKPY_DEPTH"  # how many forks deep this child is
LIFELINE = "GOFORKPY_LIFELINE"  # fd of the pipe whose EOF means the parent died
READY = "GOFORKPY_READY"  # fd that yields a byte once a big payload file is written
PYTHONPATH_SAVED = "GOFORKPY_PYTHONPATH"  # the PYTHONPATH to restore, where we changed it
UNSET = "\0unset"  # PYTHONPATH_SAVED's value when there was no PYTHONPATH

MARKERS = (PAYLOAD, KEY, PARENT, DEPTH, LIFELINE, READY, PYTHONPATH_SAVED)

# Configuration users may set.
MAX_DEPTH = "GOFORKPY_MAX_DEPTH"
TMPDIR = "GOFORKPY_TMPDIR"
DEFAULT_MAX_DEPTH = 8


class Markers:
    """What the parent told this process, as read at import time."""

    __slots__ = ("payload", "key", "parent", "depth", "lifeline", "ready")

    def __init__(self, environ: os._Environ[str]) -> None:
        self.payload = environ.get(PAYLOAD)
        self.key = environ.get(KEY)
        parent = environ.get(PARENT)
        self.parent = int(parent) if parent and parent.isdigit() else None
        depth = environ.get(DEPTH, "0")
        self.depth = int(depth) if depth.isdigit() else 0
        self.lifeline = _fd(environ.get(LIFELINE))
        self.ready = _fd(environ.get(READY))

    @property
    def is_child(self) -> bool:
        return self.payload is not None


def _fd(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


MARKED = Markers(os.environ)


def _start_cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # started in a directory that has since been removed
        return "/"


# Where this process started, to resolve a relative script path after a chdir.
START_CWD = _start_cwd()


def remove_markers() -> None:
    """Take the markers out of ``os.environ`` (restoring a PYTHONPATH we changed)."""
    saved = os.environ.get(PYTHONPATH_SAVED)
    if saved is not None:
        if saved == UNSET:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    for name in MARKERS:
        os.environ.pop(name, None)


def max_depth() -> int:
    """The recursion limit for forks, from ``GOFORKPY_MAX_DEPTH``."""
    raw = os.environ.get(MAX_DEPTH)
    if raw is None:
        return DEFAULT_MAX_DEPTH
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 1:
        from ._errors import InitError

        raise InitError(
            f"{MAX_DEPTH}={raw!r} is not a positive whole number; "
            f"set it to the deepest fork nesting you allow (default {DEFAULT_MAX_DEPTH})"
        )
    return value
