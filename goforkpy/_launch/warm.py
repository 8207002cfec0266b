"""The warm start: a fork of a zygote that already ran the child's start-up.

This process has at most two zygotes (``zygote.Zygote``): one that re-ran the
main script down to ``fork.init()``, for functions defined there, and one
started from goforkpy's entry point, for functions in modules (which it
imports on request and keeps) and functions sent by value. Each starts on
first need (or by ``fork.warm_up()``) and is replaced if it dies. Where one
cannot serve (it could not start, or the program's imports started a thread
in it), its launch path starts cold from then on, with one warning; a zygote
that refuses one request makes that child start cold.
"""

from __future__ import annotations

import logging
import threading

from .. import _checks
from .._child import boot
from .._errors import TimeoutExpired
from .._shared import protocol
from .._shared.registry import registered
from .._state import Local
from . import cold, handover, methods, plan, reexec
from .zygote import BOOT_PATH, MAIN_PATH, Gone, Unusable, Zygote, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._parent.child import Child, Process, Watch
    from .plan import Planned
    from .record import Launch

_log = logging.getLogger("goforkpy")
PICKLES = True


def start(launch: Launch) -> Child:
    """Start ``launch`` as a fork of its zygote (cold where none serves)."""
    return reexec.start(launch, create)


def create(
    launch: Launch, planned: Planned, env: dict[str, str], handed: list[tuple[str, int]]
) -> tuple[Process, Watch, str]:
    """Have the zygote fork the child: (the process, the zygote's watch, ``"warm"``)."""
    options = launch.options
    for _ in range(2):  # a zygote found dead at the fork is replaced once
        zygote = ready(planned.mode, planned.argv, launch.key, options.start_timeout)
        if zygote is None:
            break
        try:
            process = zygote.start_child(env, handed, options, planned.module, planned.sys_path)
        except Gone:
            continue
        except Unusable as exc:  # it refuses: an import started a thread in it
            give_up(zygote, str(exc))
            break
        return process, zygote.watch, methods.WARM
    return cold.create(launch, planned, env, handed)


def warm_up(timeout: float | None = None) -> None:
    """Start the zygotes that warm starts of the registered functions need, and wait for them.

    Otherwise each starts at the first warm fork of its kind: one for
    functions in the main script, one for functions in modules or sent by
    value. Where a zygote cannot serve, its functions start cold (logged).

    Raises:
        TimeoutExpired: a zygote was not ready within ``timeout`` seconds (it
            goes on starting).
    """
    import time

    boot.require_can_fork()
    limit = _checks.seconds("timeout", timeout)
    deadline = None if limit is None else time.monotonic() + limit
    wanted: dict[str, tuple[str, list[str]]] = {}
    for fn in registered().values():
        planned = plan.plan(fn)
        wanted.setdefault(path_of(planned.mode), (planned.mode, planned.argv))
    if not wanted:
        wanted[BOOT_PATH] = (protocol.VALUE, plan.boot_command())
    key = handover.parent_key()
    for mode, argv in wanted.values():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready(mode, argv, key, left)
        except TimeoutExpired as exc:
            raise TimeoutExpired(
                f"{str(exc).partition(' was not ready')[0]} was not ready after {timeout} s; "
                "it goes on starting (what runs before fork.init() is slow, or stuck?)",
                timeout=timeout,
                pid=exc.pid,
            ) from None


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


def ready(mode: str, argv: list[str], key: bytes, timeout: float | None = None) -> Zygote | None:
    """The serving zygote for children of ``mode``, started (or replaced) if need be.

    ``None`` where this launch path starts cold (logged once, with the reason).

    Raises:
        TimeoutExpired: a starting zygote was not ready within ``timeout``.
    """
    path, zygotes = path_of(mode), _zygotes.get()
    with zygotes.lock:
        if path in zygotes.given_up:
            return None
        zygote = zygotes.serving.get(path)
        if zygote is None or zygote.dead:
            if zygote is not None:
                _log.debug("zygote %d is gone; starting another", zygote.pid)
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
