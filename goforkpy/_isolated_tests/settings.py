"""How an isolated test runs: its timeout and memory limit, from the options, its
marker and pytest-timeout, each checked as it is given."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest


@dataclass(frozen=True)
class Settings:
    """How each isolated test runs: its timeout in seconds and its memory in bytes."""

    timeout: float | None = None
    memory: int | None = None
    timeout_from: str = ""  # where the timeout was given, for the report
    sandbox: Any = None  # a fork.Sandbox the test's call and teardown run in

    @staticmethod
    def checked(timeout_from: str, timeout: object, memory_from: str, memory: object) -> Settings:
        """Settings from the options' or a marker's values, each checked; ``*_from``
        names where a value came from, in the error that a bad one raises."""
        return Settings(_seconds(timeout_from, timeout), _bytes(memory_from, memory), timeout_from)

    def with_marker(self, marker: pytest.Mark, nodeid: str) -> Settings:
        """These settings, with what ``@pytest.mark.goforkpy(...)`` says instead."""
        unknown = sorted(set(marker.kwargs) - {"timeout", "memory", "sandbox"})
        if marker.args or unknown:
            given = ", ".join([*map(repr, marker.args), *unknown])
            raise pytest.UsageError(
                f"{nodeid}: @pytest.mark.goforkpy takes only timeout=, memory= and sandbox= "
                f"(got {given})"
            )
        if "sandbox" in marker.kwargs:
            self = replace(self, sandbox=_sandbox(nodeid, marker.kwargs["sandbox"]))
        if "timeout" in marker.kwargs:
            where = "@pytest.mark.goforkpy(timeout=...)"
            self = replace(self, timeout=_seconds(where, marker.kwargs["timeout"]))
            self = replace(self, timeout_from=where)
        if "memory" in marker.kwargs:
            where = "@pytest.mark.goforkpy(memory=...)"
            self = replace(self, memory=_bytes(where, marker.kwargs["memory"]))
        return self

    def with_pytest_timeout(self, seconds: float) -> Settings:
        """These settings, with pytest-timeout's timeout where it is the shorter."""
        if seconds <= 0 or (self.timeout is not None and self.timeout <= seconds):
            return self  # pytest-timeout's 0 is no timeout
        return replace(self, timeout=seconds, timeout_from="pytest-timeout")


def _seconds(where: str, value: object) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise pytest.UsageError(
            f"{where}: {value!r} is not a number of seconds above 0; give one such as 30 or 2.5"
        )
    return seconds


def _bytes(where: str, value: object) -> int | None:
    if value is None:
        return None
    from .._process.limits import parse_size

    try:
        return parse_size(where, value)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None


def _sandbox(nodeid: str, value: object) -> Any:
    from .._sandbox.policy import Sandbox

    if value is not None and not isinstance(value, Sandbox):
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.goforkpy(sandbox={value!r}): pass a fork.Sandbox(...)"
        )
    return value
