"""The cold start: a fresh interpreter per child.

The child re-runs the main script down to ``fork.init()``, or starts from
goforkpy's entry point (see ``plan``), and reads its call from the payload
(``reexec``). It leads its own process group, inherits only the descriptors
named in its markers, and is reaped by this process's reaper.
"""

from __future__ import annotations

from .. import _env
from .._process import lifeline, reaper
from .._process.popen import start_in_group
from . import handover, methods, reexec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._parent.child import Child, Process, Watch
    from .plan import Planned
    from .record import Launch

PICKLES = True


def start(launch: Launch) -> Child:
    """Start ``launch`` in a fresh interpreter."""
    return reexec.start(launch, create)


def create(
    launch: Launch, planned: Planned, env: dict[str, str], handed: list[tuple[str, int]]
) -> tuple[Process, Watch, str]:
    """Run the interpreter: (the process, the reaper's watch, ``"cold"``).

    Also the warm start's fallback, where no zygote serves.
    """
    reaper.prepare()  # a reaper that cannot run stops us before anything starts
    _env.hand_fds(env, handed)
    pass_fds = (*handover.kept_open(env), *(fd for _, fd in handed))
    options = launch.options
    popen = lifeline.from_long_lived_thread(
        lambda: start_in_group(planned.argv, env, pass_fds, options.stdio, options.cwd)
    )
    return popen, reaper.watch, methods.COLD
