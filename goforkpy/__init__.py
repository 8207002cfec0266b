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

from __future__ import annotations

from ._boot import init as init
from ._boot import is_child as is_child
from ._boot import pid as pid
from ._boot import ppid as ppid
from ._errors import ChildCrashed as ChildCrashed
from ._errors import ForkError as ForkError
from ._errors import InitError as InitError
from ._errors import IPCError as IPCError
from ._errors import PayloadError as PayloadError
from ._errors import RegistryError as RegistryError
from ._errors import ShellError as ShellError
from ._errors import TimeoutExpired as TimeoutExpired
from ._registry import register as register
from ._registry import register_func as register_func
from ._registry import registered as registered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._child import Child as Child
    from ._executor import Executor as Executor
    from ._ipc import Message as Message
    from ._ipc import receive as receive
    from ._ipc import send as send
    from ._launch import fork as fork
    from ._launch import run as run
    from ._launch import run_async as run_async
    from ._launch import spawn as spawn
    from ._limits import Limits as Limits
    from ._manager import Manager as Manager
    from ._shell import shell as shell
    from ._shell import shell_exec as shell_exec
    from ._shell import shell_run as shell_run
    from ._stdio import DEVNULL as DEVNULL
    from ._stdio import PIPE as PIPE
    from ._stdio import STDOUT as STDOUT
    from ._tree import kill_tree as kill_tree
del TYPE_CHECKING  # not a public name

__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
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
    "ShellError",
    "TimeoutExpired",
    "fork",
    "init",
    "is_child",
    "kill_tree",
    "pid",
    "ppid",
    "receive",
    "register",
    "register_func",
    "registered",
    "run",
    "run_async",
    "send",
    "shell",
    "shell_exec",
    "shell_run",
    "spawn",
]

# public name -> private module that defines it, imported on first access
_LAZY = {
    "Child": "_child",
    "fork": "_launch",
    "run": "_launch",
    "spawn": "_launch",
    "run_async": "_launch",
    "Limits": "_limits",
    "Executor": "_executor",
    "Manager": "_manager",
    "kill_tree": "_tree",
    "Message": "_ipc",
    "send": "_ipc",
    "receive": "_ipc",
    "shell": "_shell",
    "shell_exec": "_shell",
    "shell_run": "_shell",
    "PIPE": "_stdio",
    "DEVNULL": "_stdio",
    "STDOUT": "_stdio",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'goforkpy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
