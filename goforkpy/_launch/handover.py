"""What a parent hands each new child, whatever its start method: the process's key,
its markers, and the pipes made for one start."""

from __future__ import annotations

import os

from .. import _env
from .._shared import wire
from .._state import Local

_key: Local[bytes] = Local(wire.new_key)  # a forked copy's children get another


def parent_key() -> bytes:
    """This process's key, which tags every payload and result between it and its children."""
    return _key.get()


def markers(
    key: bytes, *, payload: str, faults: str = "", zygote: tuple[int, int] | None = None
) -> dict[str, str]:
    """The markers of a child of this process (or of a zygote, given its sockets).

    The one writer of them; ``_env.Markers`` in the child reads them back.
    """
    from .._child import boot
    from .._parent import reports
    from .._process import guardian, lifeline
    from .._shared import tmpdir

    return _env.write_markers(
        payload=payload,
        key=key,
        parent=os.getpid(),
        depth=boot.depth() + 1,
        lifeline=lifeline.read_end(),
        report=reports.write_end(),
        private_dir=tmpdir.payload_dir(),
        guarded=guardian.ensure_started(),
        faults=faults,
        zygote=zygote,
    )


def kept_open(written: dict[str, str]) -> tuple[int, ...]:
    """The descriptors ``markers`` named, which the new process must inherit."""
    return int(written[_env.LIFELINE]), int(written[_env.REPORT])


class Pipes:
    """Pipes made for one start: the parent keeps one end of each, the other
    end goes to the child and is closed here once it has started (or failed)."""

    def __init__(self) -> None:
        self._close: list[int] = []

    def add(self, fd: int) -> int:
        """Close ``fd`` too at the end of the block, unless taken."""
        self._close.append(fd)
        return fd

    def make(self) -> tuple[int, int]:
        """A new pipe: (read end, write end)."""
        read, write = os.pipe()
        self._close += [read, write]
        return read, write

    def take(self, fd: int) -> int:
        """Keep ``fd`` open past the end of the block: the caller owns it now."""
        self._close.remove(fd)
        return fd

    def __enter__(self) -> Pipes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in self._close:
            os.close(fd)
