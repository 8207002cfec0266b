"""pytest's ``faulthandler_timeout``, moved from pytest's process to the test's.

pytest arms faulthandler's timer around each test, and cancels it when the
test fails (``pytest_exception_interact``) and at its end. In a forked copy
that cancel waits for ever: it waits for the timer's thread to stop, and the
copy has no such thread (a failing test hangs so under pytest-forked). So
the timer is stopped in pytest's process before the test's process is
forked, armed anew in that process, which runs the test (its stacks are the
test's), and armed again in pytest's once the test is done.
"""

from __future__ import annotations

import faulthandler
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pytest


@contextmanager
def moved_to_child(config: pytest.Config) -> Iterator[Callable[[], None]]:
    """Fork the test's process inside this block, and call what it yields there first."""
    timeout, exit_too = _settings(config)
    if not timeout:
        yield lambda: None
        return
    file = _file(config)

    def arm() -> None:
        faulthandler.dump_traceback_later(timeout, file=file, exit=exit_too)

    _cancel()
    try:
        yield arm
    finally:
        arm()  # pytest's own cancel at the test's end finds it armed, as it left it


def _cancel() -> None:
    """Stop the timer, and wait (a little) for its thread to be gone: a fork beside it
    would see a native thread it cannot vouch for, and warn."""
    from .._process import platform

    before = platform.thread_ids()
    faulthandler.cancel_dump_traceback_later()  # returns as the thread returns
    if before is None:
        return  # the OS does not list threads: nothing will see it either
    deadline = time.monotonic() + 0.1
    while len(platform.thread_ids() or ()) >= len(before) and time.monotonic() < deadline:
        time.sleep(0.0002)


def _settings(config: pytest.Config) -> tuple[float, bool]:
    """(pytest's faulthandler timeout, 0: none; whether it ends the process)."""
    if not config.pluginmanager.has_plugin("faulthandler"):
        return 0.0, False
    timeout = float(config.getini("faulthandler_timeout") or 0.0)
    try:
        exit_too = bool(config.getini("faulthandler_exit_on_timeout"))
    except ValueError:  # pytest < 9 has no such setting
        exit_too = False
    return timeout, exit_too


def _file(config: pytest.Config) -> int:
    """Where pytest has faulthandler write: its copy of the terminal's stderr, which
    output capture leaves alone (the test's own stderr, on older pytest)."""
    from _pytest import faulthandler as pytest_faulthandler

    key = getattr(pytest_faulthandler, "fault_handler_stderr_fd_key", None)
    fd = None if key is None else config.stash.get(key, None)
    return fd if isinstance(fd, int) else sys.__stderr__.fileno()  # type: ignore[union-attr]
