"""The zygotes of this process, by launch path: started on first need, replaced when
they die, given up on (with one warning) where they cannot serve.

Three launch paths have one each: ``main`` (a zygote that re-ran the main
script down to ``fork.init()``), ``boot`` (one started from goforkpy's entry
point, for functions in modules or sent by value) and ``spawn`` (one that
never imports anything of the program's, and runs cold children's command
lines: their subreaper, see ``cold``).
"""

from __future__ import annotations

import logging
import threading

from .._shared import protocol
from .._state import Local
from .zygote import BOOT_PATH, MAIN_PATH, SPAWN_PATH, Unusable, Zygote, describe

_log = logging.getLogger("goforkpy")


class _Zygotes:
    """This process's zygotes by launch path, and the paths that start cold from now on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.serving: dict[str, Zygote] = {}
        self.given_up: dict[str, str] = {}  # launch path -> why it starts cold from now on

    def disown(self, handing: bool) -> None:
        """In a forked copy: close (never shut down) the original's zygote sockets, or a
        zygote it lets go of would go on waiting for the end of its requests."""
        for zygote in self.serving.values():
            zygote._requests.close()
            zygote._notices.close()


_zygotes: Local[_Zygotes] = Local(_Zygotes, _Zygotes.disown)


def path_of(mode: str) -> str:
    """The launch path (and so the zygote) that children of launch ``mode`` take."""
    return MAIN_PATH if mode == protocol.MAIN else BOOT_PATH


def ready(
    path: str, mode: str, argv: list[str], key: bytes, timeout: float | None = None
) -> Zygote | None:
    """The serving zygote of launch ``path``, started (or replaced) if need be.

    ``mode`` and ``argv`` say how it starts. ``None`` where this launch path
    starts cold (logged once, with the reason).

    Raises:
        TimeoutExpired: a starting zygote was not ready within ``timeout``.
    """
    zygotes = _zygotes.get()
    with zygotes.lock:
        if path in zygotes.given_up:
            return None
        zygote = zygotes.serving.get(path)
        if zygote is None or zygote.dead:
            if zygote is not None:
                _log.debug("zygote %d is gone; starting another", zygote.pid)
                zygote.discard()
            try:
                zygote = zygotes.serving[path] = Zygote.start(path, mode, argv, key)
            except OSError as exc:
                _give_up(zygotes, path, f"the zygote could not start ({exc})")
                return None
    try:
        zygote.wait_ready(timeout)
    except Unusable as exc:
        give_up(zygote, str(exc))
        return None
    return zygote


def give_up(zygote: Zygote, why: str) -> None:
    """Start ``zygote``'s launch path cold from now on, saying why once."""
    zygotes = _zygotes.get()
    with zygotes.lock:
        if zygotes.serving.get(zygote.path) is zygote and zygote.path not in zygotes.given_up:
            _give_up(zygotes, zygote.path, why)


def _give_up(zygotes: _Zygotes, path: str, why: str) -> None:
    zygotes.given_up[path] = why
    if path == SPAWN_PATH:
        _log.warning(
            "cold children start without a spawner, so what they leave running when they "
            "end can outlive them: %s",
            why,
        )
    else:
        _log.warning("warm starts for %s fall back to cold: %s", describe(path), why)


def shutdown() -> None:
    """Let every zygote go, and forget why any path fell back to cold (for tests)."""
    zygotes = _zygotes.take()
    for zygote in [] if zygotes is None else zygotes.serving.values():
        zygote.close()


def pids() -> list[int]:
    """The pids of this process's zygotes, and of the spare children they hold."""
    zygotes = _zygotes.get()
    with zygotes.lock:
        live = [zygote for zygote in zygotes.serving.values() if not zygote.dead]
    return [pid for zygote in live for pid in (zygote.pid, zygote.spare) if pid is not None]
