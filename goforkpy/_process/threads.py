"""This process's threads, Python's and native ones: what a fork would leave behind.

A fork copies only the thread that calls it; a lock another thread held at that
instant stays locked in the child for ever. ``threading`` sees Python's threads
only, but libraries in C start their own: OpenBLAS and OpenMP pools (``import
numpy`` starts one), gRPC, CUDA. Where the OS lists a process's threads (Linux),
each is found here and named: its own name, and the library whose code is on
its stack where that can be told. Then it is vouched for, or not:

- goforkpy's own threads wait in system calls and hold nothing a child takes;
- the pools of libraries that stop or rebuild them around a fork (at-fork
  handlers): OpenBLAS, GNU and LLVM OpenMP;
- execnet's ``_thread`` threads (pytest-xdist's workers), which hold only
  execnet's own locks;
- any other thread, a Python thread of the program's or a native one, is not.
"""

from __future__ import annotations

import gc
import os
import sys
import threading

from . import platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

# Libraries whose thread pools survive a fork: each registers pthread_atfork handlers
# that stop its threads before it (OpenBLAS) or rebuild its pool after it (OpenMP).
_SAFE_LIBRARIES = ("openblas", "libgomp", "libomp", "libiomp")
# Code of these on a thread's stack says nothing of who started it.
_RUNTIME = ("libc.", "libc-", "ld-linux", "ld-musl", "libpthread", "libstdc++", "libgcc_s")
THREAD, NATIVE, RAW = "thread", "native thread", "thread started with _thread"
# Thread names that say their library where the stack cannot (a running thread's).
_NAMED = (("grpc", "gRPC"), ("default-executo", "gRPC"), ("cuda", "CUDA"), ("omp_", "OpenMP"))
# Packages whose _thread threads hold only their own locks, which no child of ours takes:
# execnet's carry pytest-xdist's messages in each of its workers.
_SAFE_PACKAGES = ("execnet",)


class Thread:
    """One thread of this process: its name, its kind (``THREAD``, one of ``threading``'s;
    ``NATIVE``, a library's; ``RAW``, started with ``_thread``, named by the module it
    started in), the library that runs it (where that can be told), and whether a fork
    may leave it behind."""

    __slots__ = ("kind", "library", "name", "vouched")

    def __init__(self, name: str, kind: str, library: str | None, vouched: bool) -> None:
        self.name, self.kind, self.library, self.vouched = name, kind, library, vouched

    def __str__(self) -> str:
        where = f" (in {self.library})" if self.library else ""
        return f"{self.kind} {self.name!r}{where}"

    def __repr__(self) -> str:
        return f"<{self}{', vouched for' if self.vouched else ''}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thread) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


def others() -> list[Thread]:
    """Every thread of this process but the calling one, Python's first."""
    return _others(platform.thread_ids())


def _others(listed: list[int] | None) -> list[Thread]:
    """``others()``, given the ids the OS lists (``None``: it cannot list them)."""
    me = threading.get_ident()
    python = [thread for thread in threading.enumerate() if thread.ident != me]
    found = [Thread(t.name, THREAD, None, t.name.startswith("goforkpy-")) for t in python]
    idents = {thread.ident for thread in python} | {me}
    raw = [_raw(frame) for ident, frame in _current_frames().items() if ident not in idents]
    if listed is None:  # the OS cannot list them: Python's are all there is to see
        return found + raw
    known = {thread.native_id for thread in python} | {threading.get_native_id()}
    natives = [t for t in (_native(tid) for tid in listed if tid not in known) if t is not None]
    # The _thread ones show here too, as native threads that no library runs: once is enough.
    unknown = [thread for thread in natives if thread.library is None]
    for thread in unknown[: len(raw)]:
        natives.remove(thread)
    return found + raw + natives


def _current_frames() -> dict[int, Any]:
    """``sys._current_frames()`` with automatic collection off while it runs.

    It holds the lock of the interpreter's list of threads while it makes frame
    objects; a collection they set off there runs Python code (a ``gc.callbacks``
    entry, a ``__del__``), which lets another thread take the GIL, and a thread that
    then starts a thread waits for that lock with the GIL held: every thread stops
    (CPython issue 106883, seen on 3.11 with hypothesis's gc callback installed).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


def _raw(frame: Any) -> Thread:
    """A thread started with ``_thread``, named by the module its outermost frame is in."""
    while frame.f_back is not None:
        frame = frame.f_back
    module = str(frame.f_globals.get("__name__", "?"))
    return Thread(module, RAW, None, module.partition(".")[0] in _SAFE_PACKAGES)


def unvouched() -> list[Thread]:
    """The threads a fork now could leave one of its locks held by (the caller aside).

    Cheap where this process has one thread, or only Python's: the libraries
    on a thread's stack are looked for only where ``threading`` does not
    know it.
    """
    listed = platform.thread_ids()
    if listed is not None and len(listed) == 1:
        return []
    return [thread for thread in _others(listed) if not thread.vouched]


def described(threads: Iterable[Thread]) -> str:
    """The threads in words, for a message: "thread 'feeder', native thread 'python' (in
    libfoo.so)"."""
    return ", ".join(map(str, threads))


# (thread id, name, start) -> its library: a thread's library does not change, and an id
# may come back for a later thread (the start tells them apart)
_libraries: dict[tuple[int, str, int | None], str | None] = {}


def _native(tid: int) -> Thread | None:
    """A thread ``threading`` does not know: a library's, or one ``_thread`` started
    (``None``: it has ended meanwhile, as a Python thread does a moment after
    ``threading`` lets it go)."""
    name = platform.thread_name(tid)
    if name is None:
        return None
    key = (tid, name, platform.thread_started(tid))
    if key not in _libraries:
        library = _library(tid, name)
        if library is None and platform.thread_name(tid) is None:
            return None  # it ended while its stack was read
        _libraries[key] = library
    library = _libraries[key]
    if name.startswith("goforkpy-"):  # one of ours, named by Python 3.14+
        return Thread(name, THREAD, None, True)
    vouched = library is not None and any(safe in library.lower() for safe in _SAFE_LIBRARIES)
    return Thread(name, NATIVE, library, vouched)


def _library(tid: int, name: str) -> str | None:
    """The library that runs thread ``tid``: the first on its stack that is neither the C
    runtime nor the interpreter, else the one its name says (``None``: not known)."""
    for path in platform.thread_libraries(tid):
        if not _runtime(path):
            return os.path.basename(path)
    return next((library for prefix, library in _NAMED if name.startswith(prefix)), None)


def _runtime(path: str) -> bool:
    """True for the C runtime's and the interpreter's code (libpython, or the binary it
    is linked into): on any thread's stack, they say nothing of who started it."""
    base = os.path.basename(path)
    if base.startswith(_RUNTIME) or base.startswith("libpython"):
        return True
    return bool(sys.executable) and os.path.realpath(sys.executable) == path
