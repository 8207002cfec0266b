"""Snapshots: a ``fork(2)`` of the calling process, running one function on a copy of it.

The child sees the caller's whole memory as it was at the call (copy-on-write,
so nothing is copied up front and nothing is pickled on the way in) while the
caller goes on at once. Redis saves its data set this way; like its
``rdbSaveBackground``, the child does one job and leaves with ``os._exit``,
and the parent only records the child and reaps it later.

A fork copies only the calling thread. Other threads' locks stay as they
were at that instant, so the child touches none it can avoid: it writes its
result with plain system calls, gets fresh ``sys.stdout``/``sys.stderr``
objects on the same descriptors (never the parent's buffers, which another
thread may hold, or which may hold the parent's unflushed output), runs no
``atexit`` handler and none of the caller's goforkpy threads. It may start
children of its own, as a copy forked by its host may: goforkpy's state in it
starts empty (``_state``), and what it leaves running ends with it.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from .. import _env
from .._child import run
from .._parent.child import Child
from .._process import platform, quiet, reaper, starting, threads
from .._process.handle import ForkedProcess, RelayedFork
from .._state import Lock, handing_over
from . import handover, methods

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Callable, NoReturn

    from .._child.takeon import InCopy
    from .._parent.child import Process, Watch
    from .._process.reaper import OnExit, OnZombie
    from .record import Launch

    Later = Callable[[Callable[[], None]], None]

PICKLES = False  # the child runs on a copy of our memory: nothing travels


def start(launch: Launch) -> Child:
    """Fork this process to run ``launch``'s function on a copy of its memory."""
    options = launch.options
    _load_what_the_child_runs()
    markers = handover.markers(launch.key, payload="", faults=launch.faults_path)
    _env.hand_fds(markers, [(_env.PASSED, fd) for fd in options.pass_fds])  # same numbers
    reaper.prepare()
    with handover.Pipes() as pipes, options.in_copy() as (copy, ours):
        started = None
        if options.timed:
            started, tell = pipes.make()
            _env.hand_fds(markers, [(_env.STARTED, tell)])
        with starting.child() as made:
            process, watch, later = _fork_contained(launch, markers, copy, ours)
            taken = None if started is None else pipes.take(started)
            how = (watch, methods.SNAPSHOT)
            child = Child._started(launch, process, taken, how, later=later)
            made.append(child)
            return child


def _fork_contained(
    launch: Launch,
    markers: dict[str, str],
    copy: InCopy,
    streams: list[IO[bytes] | None],
) -> tuple[Process, Watch, Later | None]:
    """Fork the child: (its process record, what watches its exit, when watching begins).

    Where the OS has subreapers, the child hangs from an intermediate: a
    subreaper that forks it, waits for it, ends what it left (``orphans``)
    and then exits as it did, so this process reaps the intermediate and
    learns the child's exit status and resource use from it. The caller
    pauses for its own fork only: the intermediate forks the child after,
    and tells its pid on a pipe, which a reaper thread reads to begin the
    watching (or the caller, at its first need of the pid).
    """
    if not platform.NATIVE:
        pid = _fork(launch.name)
        if pid == 0:
            _be_the_child(launch, markers, copy, int(markers[_env.PARENT]))
        return ForkedProcess(pid, streams), reaper.watch, None
    read, write = os.pipe()
    try:
        between = _fork(launch.name)
        if between == 0:
            try:
                os.close(read)
                _be_between(launch, markers, copy, write)
            finally:
                os._exit(1)  # never back into the caller's code, whatever happened
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    process = RelayedFork(between, read, streams)
    forked = time.time()

    def watch(pid: int, on_exit: OnExit, on_zombie: OnZombie) -> None:
        def exited() -> None:
            _end_what_between_left(process, between, forked)
            on_zombie()

        reaper.watch(between, on_exit, exited)

    def later(begin: Callable[[], None]) -> None:
        def told(fd: int) -> None:
            process.pid  # noqa: B018 - read now, if no caller needed it first
            os.close(fd)
            begin()

        reaper.when_readable(read, told)

    return process, watch, later


def _end_what_between_left(process: RelayedFork, between: int, forked: float) -> None:
    """The intermediate has exited: if the child outlived it (the child, or what it
    started, SIGKILLed it), end the child's tree, which the child still holds (it is a
    subreaper), before its daemons could go to init."""
    pid = process.pid
    if pid == between:
        return  # it never forked the child
    try:
        os.kill(pid, 0)
    except OSError:
        return  # gone, as it should be: the intermediate reaped it (the usual end)
    from .._process.tree import end_trees, psutil_process

    child = psutil_process(pid)
    try:  # the same process, not one that took its pid since (created in this window)
        if child is None or not forked - 1.0 <= child.create_time() <= time.time() + 1.0:
            return
    except Exception:
        return  # gone meanwhile
    end_trees([child], signal.SIGKILL, 0.0, groups=(pid,))


def _be_between(launch: Launch, markers: dict[str, str], copy: InCopy, tell: int) -> NoReturn:
    """The intermediate: fork the child, tell its pid on ``tell``, contain it, exit as it did."""
    from .._child.orphans import contain
    from .._process.family import end_family_and_die

    try:
        os.setpgid(0, 0)
        quiet.open_all()
        quiet.deafen()  # Ctrl+C is the caller's to handle, and the child's signals its own
        if not platform.tie_to_parent(int(markers[_env.PARENT]), not markers.get(_env.GUARDED)):
            os._exit(1)
        me = os.getpid()
        with handing_over():
            pid = os.fork()
    except OSError as exc:  # no child: this process stands for it, and says why
        from .._errors import ForkError

        _tell(tell, os.getpid())
        error = ForkError(f"cannot fork the snapshot of {launch.name}: {exc}")
        run.leave_with(launch.result_path, launch.key, error)
    if pid == 0:
        os.close(tell)
        _be_the_child(launch, markers, copy, me)
    try:
        _tell(tell, pid)
        for fd in {fd for fd in copy.ends if fd is not None and fd > 2}:
            os.close(fd)  # the caller sees EOF on the child's pipes when the child exits
        status = contain(pid, launch.options.grace, int(markers[_env.LIFELINE]))
    except BaseException:
        end_family_and_die()  # the child never outlives its container
    _exit_as(status)


def _tell(fd: int, pid: int) -> None:
    """Tell the caller the child's pid (this process's own where it stands for the child)
    in one line, and close ``fd``: not by EOF, which a copy of the caller forked by
    another thread while the pipe was open would hold off for as long as it lived."""
    try:
        os.write(fd, b"%d\n" % pid)
    except OSError:
        pass  # EPIPE: the caller died; contain() sees its lifeline's end and ends all
    os.close(fd)


def _exit_as(status: int) -> NoReturn:
    """Leave with the wait status ``status``: the same exit code, or the same signal."""
    import resource
    import signal

    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the child's core, not ours
        if number not in (signal.SIGKILL, signal.SIGSTOP):  # the two that cannot be caught
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 1)


_loaded = False


def _load_what_the_child_runs() -> None:
    """Import now, once, what the child will run: an import in it could wait for ever on
    the module lock of an import another thread of ours was in at the fork (a reaper
    thread checking a result's tag, say)."""
    global _loaded
    if _loaded:
        return
    import _pickle  # noqa: F401 - results that do not marshal
    import faulthandler  # noqa: F401 - the crash stacks
    import fcntl  # noqa: F401
    import hashlib  # noqa: F401 - the tag of a big result
    import io  # noqa: F401
    import resource  # noqa: F401
    import select  # noqa: F401
    import traceback

    from .._child import orphans, telling  # noqa: F401 - the intermediate's part too
    from .._process import family, platform, streams  # noqa: F401
    from .._process.limits import apply  # noqa: F401
    from .._shared import hooks  # noqa: F401
    from .._shared.wire import tag

    tag.load_hash()
    traceback.format_exception(ValueError())  # what formatting loads (3.15: _colorize, lazily)
    telling.load_what_reporting_needs()
    platform.prepare_tie()
    _loaded = True


def _fork(name: str) -> int:
    """``os.fork()``, saying once why other threads of the caller's make it delicate.

    Python 3.12+ warns about any fork in a process with threads. goforkpy's
    own threads wait in system calls and hold nothing the child takes, so
    that warning is silenced here; where the caller has threads of its own,
    a ``RuntimeWarning`` names them instead. A fork that one of goforkpy's
    threads makes for the program (an Executor's snapshot workers) is not
    warned of at each worker: the Executor's documentation says it once.
    """
    import warnings

    ours = threading.current_thread().name.startswith("goforkpy-")
    others = [] if ours else threads.unvouched()
    if others:
        warnings.warn(
            f"fork.snapshot({name}) in a process with threads of its own "
            f"({threads.described(others)}): "
            "the child has only the calling thread, and a lock another one held at this "
            "instant stays locked in it; keep the function away from what they lock",
            RuntimeWarning,
            stacklevel=4,
        )
    pid = -1
    _one_fork_at_a_time.acquire()  # catch_warnings() is not thread-safe: no two at once
    try:
        with warnings.catch_warnings(), handing_over():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    finally:
        if pid != 0:  # the child's copy of the lock is a new one, never held
            _one_fork_at_a_time.release()
    return pid


_one_fork_at_a_time = Lock()


def _be_the_child(launch: Launch, markers: dict[str, str], copy: InCopy, parent: int) -> NoReturn:
    """In the child: take on the options, run the function, write the result, leave.

    ``parent`` forked it (the caller, or the intermediate). Never returns.
    """
    try:
        quiet.hear()  # what the intermediate did not hear, the child does
        os.setpgid(0, 0)
        run.become_snapshot(markers, parent)  # first: a set-up that hangs says where
        copy.take_on()
    except BaseException as exc:
        run.leave_with(launch.result_path, launch.key, exc)
    run.run_and_leave(launch.fn, launch.args, launch.kwargs, launch.result_path, launch.key)
