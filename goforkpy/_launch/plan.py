"""Where a function lives decides how its child starts: launch mode, command line, environment.

- ``MAIN``: defined in the main script, which the child re-runs with the
  interpreter's flags and the original command line (``sys.orig_argv``,
  or rebuilt where a script rewrote ``sys.argv``), so ``fork.init()`` in it dispatches.
- ``MODULE``: importable by its module and qualified name; the child starts
  from goforkpy's entry point and imports that module.
- ``VALUE``: neither (REPL, ``python -c``, notebooks, closures); the child
  starts from goforkpy's entry point and the function travels by value.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .. import _env
from .._errors import ForkError
from .._shared import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .record import Options

# The folder holding the goforkpy package: a child imports this very copy of it.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT_CODE = ";".join(
    [
        "import sys",
        f"sys.path.insert(0,{_PACKAGE_PARENT!r})",
        "from goforkpy._child.boot import main",
        "main()",
    ]
)


class Planned:
    """How a child of one function starts: its launch mode, the command line that starts
    it, the module and qualified name the child finds the function by, and (from
    goforkpy's entry point) the ``sys.path`` it takes (``child_sys_path``)."""

    __slots__ = ("argv", "mode", "module", "qualname", "sys_path")

    def __init__(self, mode: str, argv: list[str], module: str | None, qualname: str) -> None:
        self.mode, self.argv, self.module, self.qualname = mode, argv, module, qualname
        self.sys_path = None if mode == protocol.MAIN else child_sys_path(module)


def plan(fn: Callable[..., Any], *, rerun_main: bool = True) -> Planned:
    """How to start ``fn``.

    ``rerun_main``: a function of the main script may start by re-running the
    script up to ``fork.init()``, which only finds registered functions.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if module == "__main__":
        argv = _main_command() if rerun_main else None
        if argv is not None:
            return Planned(protocol.MAIN, argv, None, qualname)
    elif module is not None and importable(fn, module, qualname):
        return Planned(protocol.MODULE, boot_command(), module, qualname)
    return Planned(protocol.VALUE, boot_command(), None, qualname)


def child_sys_path(module: str | None) -> list[str]:
    """The ``sys.path`` of a child started from goforkpy's entry point: ours, absolute, and
    the directory ``module`` was imported from where it is no longer on it.

    Hosts such as Celery and plugin loaders put an application's directory on
    ``sys.path`` only while they import it; the child must find the module
    where we did.
    """
    path = _absolute_sys_path()
    root = _imported_from(module) if module is not None else None
    if root is not None and root not in path:
        path.append(root)
    return path


def root_off_path(module: str) -> str | None:
    """The directory ``module`` was imported from, where it is no longer on ``sys.path``
    (``None`` where it is, or where that is not known)."""
    root = _imported_from(module)
    return None if root is None or root in _absolute_sys_path() else root


def _absolute_sys_path() -> list[str]:
    cwd = os.getcwd()
    return [os.path.join(cwd, entry) if entry else cwd for entry in sys.path]


def _imported_from(module: str) -> str | None:
    """The ``sys.path`` entry under which ``module`` was found (``None`` if unknown)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    origin = getattr(spec, "origin", None)
    if spec is None or not origin or not os.path.isabs(origin):
        return None  # built in, frozen, or from a zip: nothing to add
    levels = module.count(".") + (2 if spec.submodule_search_locations else 1)
    root = origin
    for _ in range(levels):
        root = os.path.dirname(root)
    return str(root)


def importable(fn: object, module: str, qualname: str) -> bool:
    """True where importing ``module`` in the child finds ``fn`` at ``qualname``."""
    found: Any = sys.modules.get(module)
    if getattr(found, "__spec__", None) is None or "<locals>" in qualname:
        return False
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is fn


def _interpreter() -> str:
    if not sys.executable:
        raise ForkError(
            "sys.executable is empty, so there is no interpreter to re-run; "
            "goforkpy needs a normal Python, or a frozen application (PyInstaller) "
            "whose binary is sys.executable"
        )
    return sys.executable


def _interpreter_flags() -> list[str]:
    """The running interpreter's flags (-O, -X dev, -W ...) as command-line options."""
    # The stdlib's own helper, which multiprocessing uses for the same job.
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return flags


def boot_command() -> list[str]:
    """The command line of goforkpy's entry point. In a frozen application the binary
    itself, whose ``fork.init()`` becomes the entry point (``child_env`` says so)."""
    if _env.FROZEN:
        return [_interpreter()]
    return [_interpreter(), *_interpreter_flags(), "-c", _BOOT_CODE]


def _main_command() -> list[str] | None:
    """The command line that re-runs the main script, or ``None`` if there is none."""
    if _env.FROZEN:  # the binary is the script; it takes no interpreter flags
        return [_interpreter(), *sys.argv[1:]]
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None) or "<none>"
    if main_file.startswith("<") or not sys.argv or sys.argv[0] in ("", "-", "-c"):
        return None  # REPL, -c, stdin (<stdin>), Jupyter: nothing to re-run
    spec = getattr(main, "__spec__", None)
    orig: list[str] | None = getattr(sys, "orig_argv", None)
    at = len(orig) - len(sys.argv) if orig is not None else -1
    if orig is not None and 1 <= at < len(orig):
        if spec is not None and orig[at - 1] == "-m":
            return [_interpreter(), *orig[1:at], orig[at], *orig[at + 1 :]]
        if spec is None:
            return [_interpreter(), *orig[1:at], _script_path(orig[at]), *orig[at + 1 :]]
    # a script that rewrote sys.argv: rebuilt from the interpreter's flags
    flags = _interpreter_flags()
    target = ["-m", spec.name] if spec is not None else [_script_path(sys.argv[0])]
    return [_interpreter(), *flags, *target, *sys.argv[1:]]


def _script_path(arg: str) -> str:
    """``arg`` made absolute, so a parent that changed directory still finds it."""
    if os.path.isabs(arg):
        return arg
    main_file = getattr(sys.modules["__main__"], "__file__", "") or ""
    if os.path.isabs(main_file) and main_file.endswith(os.sep + os.path.normpath(arg)):
        return main_file
    return os.path.join(_env.START_CWD, arg)


def child_env(
    mode: str, options: Options, markers: dict[str, str], stem: str = ""
) -> dict[str, str]:
    """The environment of a child (or zygote) of ``mode``: ours (a sandbox's short list
    instead, see ``_sandbox.policy``), ``options.env``, ``markers``."""
    extra = options.env
    if options.sandbox is not None:
        from .._sandbox import policy

        env = policy.environment(extra, policy.scratch_of(stem) if stem else "")
    else:
        env = _our_environ()
    if extra:
        env.update(extra)
    if mode == protocol.MAIN and getattr(sys.modules["__main__"], "__spec__", None) is not None:
        _keep_module_findable(env)
    if os.environ.get(_env.TMPDIR) and not (extra and _env.TMPDIR in extra):
        from .._shared import tmpdir

        env[_env.TMPDIR] = tmpdir.base()  # absolute: the child may start elsewhere (cwd=)
    if _env.FROZEN and mode != protocol.MAIN:
        env[_env.HELPER] = "boot"  # its fork.init() is goforkpy's entry point
    env.update(markers)
    return env


# os.environ as it keeps it (bytes), and its text without the markers, when last copied.
_copied: tuple[dict[bytes, bytes], dict[str, str]] = ({}, {})


def _our_environ() -> dict[str, str]:
    """A copy of ``os.environ`` without goforkpy's markers. Decoding it costs 20
    microseconds a start; it is decoded again only when it changed, which comparing the
    bytes it keeps tells at a fraction of that."""
    global _copied
    data = _env.environ_data()
    if data is None:  # pragma: no cover - CPython keeps its bytes there on POSIX
        return _env.without_markers(dict(os.environ))
    if data != _copied[0]:
        _copied = (dict(data), _env.without_markers(dict(os.environ)))
    return dict(_copied[1])


def _keep_module_findable(env: dict[str, str]) -> None:
    """``python -m pkg.mod`` finds pkg through the start directory; keep it on the path."""
    start = sys.path[0] if sys.path else ""
    if not start or not os.path.isabs(start) or start == os.getcwd():
        return
    old = env.get("PYTHONPATH")
    env[_env.PYTHONPATH_SAVED] = _env.UNSET if old is None else old
    env["PYTHONPATH"] = start if not old else start + os.pathsep + old
