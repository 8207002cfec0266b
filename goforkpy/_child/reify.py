"""Lazy imports (PEP 810, Python 3.15+) made real in a zygote, before it forks.

A zygote is there to pay a program's imports once for all its children. Where
they are lazy (``lazy import x``, ``__lazy_modules__``, ``-X
lazy_imports=all``), running the program down to ``fork.init()`` imports
nothing, and each warm child would import them again at its first use, into
memory of its own. So the zygote makes them real first: each lazy binding of
every loaded module, and of each module that doing so loads, as the program
would have with eager imports. One that fails to import stays lazy: the child
that uses it raises, as it would have.
"""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable


def reify_lazy_imports(modules: Iterable[Any] | None = None) -> int:
    """Make real the lazy bindings of ``modules`` (default: every loaded module) and of
    the modules that loads; how many were made real (0 where Python has no lazy imports).
    """
    lazy = getattr(types, "LazyImportType", None)
    if lazy is None:
        return 0
    pending = list(sys.modules.values() if modules is None else modules)
    seen = {id(module) for module in pending}
    made = 0
    while pending:
        module = pending.pop()
        before = set(sys.modules)
        names = [name for name, value in _globals(module) if type(value) is lazy]
        for name in names:
            try:
                getattr(module, name)  # a module attribute's access reifies its binding
                made += 1
            except Exception:
                continue
        for name in set(sys.modules) - before:
            loaded = sys.modules[name]
            if id(loaded) not in seen:
                seen.add(id(loaded))
                pending.append(loaded)
    return made


def _globals(module: Any) -> list[tuple[str, Any]]:
    try:
        return list(vars(module).items())
    except TypeError:  # not a module (sys.modules may hold anything)
        return []
