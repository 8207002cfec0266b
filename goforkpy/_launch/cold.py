"""The cold start: a fresh interpreter per child.

The child re-runs the main script down to ``fork.init()``, or starts from
goforkpy's entry point (see ``plan``), and reads its call from the payload
(``reexec``). It leads its own process group and inherits only the
descriptors named in its markers.

Where the OS has subreapers (Linux), a spawner runs the command line: a
zygote that never imports anything of the program's, which forks, makes the
fork a subreaper tied to itself and execs the interpreter in it. So the child
is a subreaper from its first instruction, and whatever it leaves when it
ends, however it ends, comes to the spawner, which ends it (``_child.orphans``).
The spawner is the child's ``os.getppid()`` (``fork.ppid()`` stays this
process) and reports its exit and resource use, as a zygote does. Elsewhere,
or where no spawner can start, this process starts the interpreter itself
and its reaper reaps it.
"""

from __future__ import annotations

from .. import _env
from .._process import lifeline, platform, reaper, starting
from .._process.popen import start_in_group
from .._shared.protocol import VALUE
from . import handover, kept_zygotes, methods, plan, reexec
from .zygote import SPAWN_PATH, Gone, Unusable

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
    """Run the interpreter: (the process, what watches its exit, ``"cold"``).

    Also the warm start's fallback, where no zygote serves.
    """
    options = launch.options
    for _ in range(2 if platform.NATIVE else 0):  # a spawner found dead is replaced once
        with starting.no_child_yet():  # the spawner may have to start
            spawner = kept_zygotes.ready(SPAWN_PATH, VALUE, plan.boot_command(), launch.key)
        if spawner is None:
            break
        try:
            process = spawner.start_child(env, handed, options, None, None, planned.argv)
        except Gone:
            continue
        except Unusable as exc:  # pragma: no cover - it imports nothing that starts a thread
            kept_zygotes.give_up(spawner, str(exc))
            break
        return process, spawner.watch, methods.COLD
    reaper.prepare()  # a reaper that cannot run stops us before anything starts
    _env.hand_fds(env, handed)
    pass_fds = (*handover.kept_open(env), *(fd for _, fd in handed))
    popen = lifeline.from_long_lived_thread(
        lambda: start_in_group(planned.argv, env, pass_fds, **options.popen_arguments())
    )
    return popen, reaper.watch, methods.COLD
