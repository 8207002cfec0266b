"""The child side: ``init()``, goforkpy's own entry point, and identity.

A child learns what to run from its environment markers and payload file,
runs it, writes its result file and exits. Three launch modes share this path:

- ``main``: the user's script was re-run; its ``fork.init()`` dispatches.
- ``module``: our entry point (``main()``) imports the function's module,
  then runs it; an ``init()`` reached during that import does nothing.
- ``value``: our entry point unpickles the function itself (cloudpickle).

This module is the child's hot path: it imports only builtins until the
payload asks for more; in a parent, where ``import goforkpy`` loads it, it
loads nothing of the child's path (``run``) until a fork needs it.
"""

import _thread
import os
import sys

from .. import _env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_SETTLE = 0.05  # seconds a child runs before it arms the parent-death signal


def is_child() -> bool:
    """True in a process goforkpy started, from its first line on."""
    return _env.MARKED.is_child


def pid() -> int:
    """This process's pid."""
    return os.getpid()


def ppid() -> int | None:
    """The pid of the process that forked this one; ``None`` outside a child."""
    return _env.MARKED.parent


def depth() -> int:
    """How many forks deep this process is (0 in a process goforkpy did not start)."""
    return _env.MARKED.depth


def init() -> None:
    """Dispatch a child to its function; in a parent, return at once.

    In a child started from the main script, this runs the requested function
    and exits the process: it never returns. Call it early, after the
    ``@fork.register`` functions and before side effects. Idempotent; in a
    parent, and in a child whose entry point is goforkpy's own, it does nothing.
    """
    if _env.MARKED.is_child:
        from . import run

        if run.stage == run.WAITING:
            if os.environ.pop(_env.HELPER, None) == "boot":
                run.stage = run.BOOTING  # a frozen application's binary, as our entry point
            run.dispatch()
    if _env.HELPER in os.environ:
        _be_a_helper(os.environ.pop(_env.HELPER))


def _be_a_helper(helper: str) -> None:
    """Be the helper that started this run of the program (a frozen application's binary
    run as the guardian, or any program run by ``python -m goforkpy doctor``), never the
    program itself (the code after ``init()``)."""
    kind, _, argument = helper.partition(":")
    if kind == "guardian":
        from .._process import guardian

        guardian.run_here(argument)
    if kind == "doctor":  # python -m goforkpy doctor runs this program down to here
        from .. import _doctor

        _doctor.report_here(argument)
        return  # a process the program started before init(), which inherited the marker
    raise SystemExit(f"goforkpy: {_env.HELPER}={helper!r} names no helper; unset it")


def main() -> None:
    """goforkpy's own entry point, for functions in modules or sent by value."""
    from . import run

    if run.stage != run.WAITING:
        raise SystemExit("goforkpy's entry point runs only in a child that goforkpy started")
    run.stage = run.BOOTING
    run.dispatch()


def require_can_fork() -> None:
    """Raise ``InitError`` where forking now would be a mistake."""
    from .._errors import InitError
    from . import run

    if run.stage in (run.WAITING, run.BOOTING):
        importing = _module_being_imported()
        if importing is not None:
            raise InitError(
                f"fork() was called while the module {importing!r} was being imported: a "
                "child imports it again, so forking at import time would fork in every "
                "child; move the call into a function, or under "
                "`if __name__ == '__main__':`"
            )
        raise InitError(
            "fork() was called in a child before fork.init() ran; call fork.init() "
            "right after your @fork.register functions, before any other work"
        )
    inside = sys.modules.get("goforkpy._sandbox.inside")
    if inside is not None:
        inside.refuse("starting a child")
    limit = _env.max_depth()
    if depth() + 1 > limit:
        raise InitError(
            f"fork() nesting would reach depth {depth() + 1}, past the limit of {limit}; "
            f"end the recursion sooner, or raise {_env.MAX_DEPTH}"
        )


def _module_being_imported() -> str | None:
    """The module whose top level runs now, below the caller (not ``__main__``), if any."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if frame.f_code.co_name == "<module>" and name != "__main__":
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _guard_parent() -> None:
    """Die with the parent: at once if it is already gone, or the moment it goes."""
    from .._process import quiet
    from .._process.family import end_family_and_die

    _env.MARKED.keep_private()
    marked = _env.MARKED
    _env.record_faults(marked)
    fd = marked.lifeline
    if fd is None or marked.tied:
        return  # a spawner tied us to itself before the exec, and watches the parent
    try:
        os.set_inheritable(fd, False)
    except OSError:
        return  # not open: the parent did not pass one
    if marked.zygote is not None:
        # A zygote stays single-threaded (see serve): a subreaper that ends what
        # its children leave, it watches the lifeline in its own loop, and at
        # its EOF ends its whole family before it dies. No parent-death signal:
        # the kernel would kill it first, and its children's orphans go to init.
        from .._process.platform import tie_to_parent

        if marked.parent is None or not tie_to_parent(marked.parent, die_with_it=False):
            end_family_and_die()
        return
    # A thread, so the child's start does not wait for ctypes to load. What it needs
    # first loads here: an import in the thread, run late, could meet the function's
    # Limits(open_files=...) or sandbox, or a sys.path the function is changing.
    import select  # noqa: F401

    from .._process import platform  # noqa: F401

    watch = (fd, marked.parent, not marked.guarded)
    quiet.start(lambda: _thread.start_new_thread(_watch_parent, watch))


def _watch_parent(fd: int, parent: int | None, die_with_it: bool) -> None:
    # Arming the parent-death signal loads ctypes; a child that is done within
    # the settling time never pays for it. Meanwhile the lifeline is watched,
    # and a parent that died just before the arming fails the pid check after.
    import select  # loaded by _guard_parent

    from .._process.family import end_family_and_die

    poller = select.poll()  # not select(): a snapshot's lifeline may be past 1023
    poller.register(fd, select.POLLIN)
    if poller.poll(_SETTLE * 1000):
        end_family_and_die()  # EOF already: nobody ever writes to the lifeline
    from .._process.platform import tie_to_parent  # loaded by _guard_parent

    try:
        if parent is not None and not tie_to_parent(parent, die_with_it):
            end_family_and_die()
    except Exception:  # ctypes would not load (out of descriptors, say): the lifeline
        pass  # still ends this process with its parent
    try:
        while os.read(fd, 4096):
            pass  # nobody writes: only EOF, when the parent's end closes, ends this
    except OSError:
        return  # user code closed the fd; the parent-death signal still stands
    end_family_and_die()


def _failed_before_init(kind: type[BaseException], exc: BaseException, tb: "Any") -> None:
    """``sys.excepthook`` of a re-run script: an error before ``init()`` goes to the parent.

    The parent raises it as one ``InitError`` (with this traceback as its
    cause) instead of the child printing a traceback and the parent then
    saying, separately, that init() was never reached.
    """
    from .._errors import InitError
    from . import run

    if run.stage != run.WAITING:
        sys.__excepthook__(kind, exc, tb)
        return
    if _env.MARKED.zygote is not None:
        run.exit_now(1)  # the parent starts a cold child instead, which reports the error
    import traceback

    text = "".join(traceback.format_exception(kind, exc, tb))
    if isinstance(exc, InitError):
        error = InitError(f"the child stopped before reaching fork.init(): {exc}")
    else:
        error = InitError(
            f"the child's script raised {kind.__name__}: {exc} before reaching "
            "fork.init(); the main script runs again from the top in each child, so "
            "keep the code before fork.init() free of work that can fail (or move "
            "forked functions into a module)"
        )
    run.report_early(error, text)


def _warn_stale_markers() -> None:
    names = ", ".join(_env.MARKED.stale)
    _env.remove_markers()
    import logging

    logging.getLogger("goforkpy").warning(
        "ignoring %s in the environment: goforkpy did not start this process (the "
        "set of markers is incomplete, perhaps exported by hand or left by a tool); "
        "remove them from the environment",
        names,
    )


if _env.MARKED.is_child:  # from its first line on; a parent loads no more of this path
    from .._process import quiet

    quiet.open_all()  # whichever thread of the parent's started us, block nothing
    _guard_parent()
    sys.excepthook = _failed_before_init
elif _env.MARKED.stale:
    _warn_stale_markers()
