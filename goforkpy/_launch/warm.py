"""The warm start: a fork of a zygote that already ran the child's start-up.

Warm children come from two zygotes (``kept_zygotes``): one that re-ran the main
script down to ``fork.init()``, for functions defined there, and one started
from goforkpy's entry point, for functions in modules (which it imports on
request and keeps) and functions sent by value. Each starts on first need
(or by ``fork.warm_up()``) and is replaced if it dies. Where one
cannot serve (it could not start, or the program's imports started a thread
in it), its launch path starts cold from then on, with one warning; a zygote
that refuses one request makes that child start cold.
"""

from __future__ import annotations

from .. import _checks
from .._child import boot
from .._errors import TimeoutExpired
from .._process import starting
from .._shared import protocol
from .._shared.registry import registered
from . import cold, handover, kept_zygotes, methods, plan, reexec
from .zygote import BOOT_PATH, SANDBOXED, Gone, Unusable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._parent.child import Child, Process, Watch
    from .plan import Planned
    from .record import Launch

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
        path = kept_zygotes.path_of(planned.mode) + (SANDBOXED if options.sandbox else "")
        with starting.no_child_yet():  # the zygote may have to start, which takes long
            zygote = kept_zygotes.ready(
                path, planned.mode, planned.argv, launch.key, options.start_timeout
            )
        if zygote is None:
            break
        try:
            process = zygote.start_child(env, handed, options, planned.module, planned.sys_path)
        except Gone:
            continue
        except Unusable as exc:  # it refuses: an import started a thread in it
            kept_zygotes.give_up(zygote, str(exc))
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
        wanted.setdefault(kept_zygotes.path_of(planned.mode), (planned.mode, planned.argv))
    if not wanted:
        wanted[BOOT_PATH] = (protocol.VALUE, plan.boot_command())
    key = handover.parent_key()
    for path, (mode, argv) in wanted.items():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            kept_zygotes.ready(path, mode, argv, key, left)
        except TimeoutExpired as exc:
            raise TimeoutExpired(
                f"{str(exc).partition(' was not ready')[0]} was not ready after {timeout} s; "
                "it goes on starting (what runs before fork.init() is slow, or stuck?)",
                timeout=timeout,
                pid=exc.pid,
            ) from None
