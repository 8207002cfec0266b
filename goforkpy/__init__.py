"""goforkpy: run registered functions in fresh interpreters, go-fork style.

    import goforkpy as fork

    @fork.register
    def crunch(n):
        return sum(range(n))

    if __name__ == "__main__":
        fork.init()                      # a child runs crunch() here and exits
        print(fork.run("crunch", 10**6))

Importing this package is cheap: a re-executed child pays for every import,
so everything not needed to reach ``init()`` loads on first use, through the
module ``__getattr__`` below.
"""

from ._child.boot import init as init
from ._child.boot import is_child as is_child
from ._child.boot import pid as pid
from ._child.boot import ppid as ppid
from ._shared import registry as _registry
from ._shared.registry import register as register
from ._shared.registry import register_func as register_func
from ._shared.registry import registered as registered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._coordination.inbox import Message as Message
    from ._coordination.manager import Adopted as Adopted
    from ._coordination.manager import Manager as Manager
    from ._coordination.messaging import receive as receive
    from ._coordination.messaging import send as send
    from ._coordination.shell import shell as shell
    from ._coordination.shell import shell_exec as shell_exec
    from ._coordination.shell import shell_run as shell_run
    from ._errors import ChildCrashed as ChildCrashed
    from ._errors import ForkError as ForkError
    from ._errors import InitError as InitError
    from ._errors import IPCError as IPCError
    from ._errors import PayloadError as PayloadError
    from ._errors import RegistryError as RegistryError
    from ._errors import SandboxedError as SandboxedError
    from ._errors import SandboxUnavailable as SandboxUnavailable
    from ._errors import ShellError as ShellError
    from ._errors import TimeoutExpired as TimeoutExpired
    from ._executor.executor import Executor as Executor
    from ._executor.isolated import isolated as isolated
    from ._launch.api import fork as fork
    from ._launch.api import run as run
    from ._launch.api import run_async as run_async
    from ._launch.api import snapshot as snapshot
    from ._launch.api import spawn as spawn
    from ._launch.methods import get_start_method as get_start_method
    from ._launch.methods import set_start_method as set_start_method
    from ._launch.warm import warm_up as warm_up
    from ._parent.child import Child as Child
    from ._process.limits import Limits as Limits
    from ._process.stdio import DEVNULL as DEVNULL
    from ._process.stdio import PIPE as PIPE
    from ._process.stdio import STDOUT as STDOUT
    from ._process.tree import kill_tree as kill_tree
    from ._sandbox.policy import Sandbox as Sandbox
    from ._sandbox.policy import sandbox_support as sandbox_support
del TYPE_CHECKING  # not a public name

__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "Adopted",
    "Child",
    "ChildCrashed",
    "Executor",
    "ForkError",
    "IPCError",
    "InitError",
    "Limits",
    "Manager",
    "Message",
    "PayloadError",
    "RegistryError",
    "Sandbox",
    "SandboxUnavailable",
    "SandboxedError",
    "ShellError",
    "TimeoutExpired",
    "fork",
    "get_start_method",
    "init",
    "is_child",
    "isolated",
    "kill_tree",
    "pid",
    "ppid",
    "receive",
    "register",
    "register_func",
    "registered",
    "run",
    "run_async",
    "sandbox_support",
    "send",
    "set_start_method",
    "shell",
    "shell_exec",
    "shell_run",
    "snapshot",
    "spawn",
    "warm_up",
]

# public name -> private module that defines it, imported on first access
_LAZY = {
    "ChildCrashed": "_errors",
    "ForkError": "_errors",
    "InitError": "_errors",
    "IPCError": "_errors",
    "PayloadError": "_errors",
    "RegistryError": "_errors",
    "SandboxedError": "_errors",
    "SandboxUnavailable": "_errors",
    "ShellError": "_errors",
    "TimeoutExpired": "_errors",
    "Child": "_parent.child",
    "fork": "_launch.api",
    "run": "_launch.api",
    "spawn": "_launch.api",
    "run_async": "_launch.api",
    "warm_up": "_launch.warm",
    "set_start_method": "_launch.methods",
    "get_start_method": "_launch.methods",
    "snapshot": "_launch.api",
    "isolated": "_executor.isolated",
    "Limits": "_process.limits",
    "Executor": "_executor.executor",
    "Manager": "_coordination.manager",
    "Adopted": "_coordination.manager",
    "kill_tree": "_process.tree",
    "Sandbox": "_sandbox.policy",
    "sandbox_support": "_sandbox.policy",
    "Message": "_coordination.inbox",
    "send": "_coordination.messaging",
    "receive": "_coordination.messaging",
    "shell": "_coordination.shell",
    "shell_exec": "_coordination.shell",
    "shell_run": "_coordination.shell",
    "PIPE": "_process.stdio",
    "DEVNULL": "_process.stdio",
    "STDOUT": "_process.stdio",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'goforkpy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def _start_by_name(
    how: str, name: str, args: tuple[object, ...], kwargs: dict[str, object]
) -> object:
    """``fn.fork(...)`` and ``fn.run(...)`` of registered functions land here."""
    start = __getattr__(how)
    return start(name, *args, **kwargs)  # type: ignore[operator]


_registry.starter = _start_by_name


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
