"""Ending a whole family at once, from inside it: what an orphaned child does.

This runs in a hurry (the parent is gone) and often in a child's hot path, so
it reads the process tree without psutil where the OS makes that cheap
(Linux), rather than waiting for psutil to load.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def end_family_and_die() -> "NoReturn":
    """Stop and kill every descendant of this process, then this process.

    Descendants die before their ancestors: were we stopped halfway (the
    parent's guardian stops whole trees), what is left still hangs from our
    tree, where the guardian finds it, instead of from init. A subreaper
    (a zygote, a spawner) goes on until it has no descendant left, since
    what a dying member orphans comes to it: nothing escapes to init.
    """
    import signal  # here, not at the top: a child's start-up never pays for it

    try:
        for _ in range(50):
            family = _stopped_family(signal.SIGSTOP)
            if not family:
                break
            send_each(family[::-1], signal.SIGKILL)
            _kill_groups(family, signal.SIGKILL)  # members orphaned to init, if any
            _reap_what_we_can()
    finally:
        os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(1)  # pragma: no cover - SIGKILL does not return


def die_at_end_of(lifeline: int) -> None:
    """The lifeline ``fd`` is readable: at EOF (the parent died) end the family and die.

    Nobody writes to a lifeline, so data means nothing and returns; a read
    error (the descriptor was closed under us) counts as EOF.
    """
    try:
        if os.read(lifeline, 4096):
            return
    except OSError:
        pass
    end_family_and_die()


def _stopped_family(stop: int) -> list[int]:
    """Every descendant, each listed after its parent, all stopped: none can fork any more."""
    from .platform import descendant_pids

    family: list[int] = []
    quiet = 0
    for _ in range(20):  # stop what is new until nothing is, twice in a row: a member
        new = [pid for pid in descendant_pids(os.getpid()) if pid not in family]
        quiet = 0 if new else quiet + 1  # dying mid-walk hides its young from one walk
        if quiet == 2:
            break
        send_each(new, stop)
        family += new
    return family


def _reap_what_we_can() -> None:
    """Reap our exited children (orphans come to a subreaper as zombies too)."""
    import time

    time.sleep(0.001)  # SIGKILL is delivered, not acted on, by the time kill() returns
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _kill_groups(leaders: list[int], sig: int) -> None:
    for pgid in leaders:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass  # leads no group, or the group is empty


def send_each(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids``; those gone already are skipped."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass  # already gone
