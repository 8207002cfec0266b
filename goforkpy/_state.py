"""What belongs to this process alone, and what a forked copy of it gets instead.

Programs fork after using goforkpy: multiprocessing's fork context, gunicorn
``--preload``, Celery's prefork pool, a plain ``os.fork()``. The copy has
only the thread that forked. A lock another thread held at that instant
stays held in it for good, and the helpers, pipes, sockets, zygotes and
children it inherited are the original's, not its own. So everything goforkpy
keeps for "this process" lives in a ``Local``, made on first use, and every
module-level lock is a ``Lock``. One hook, registered here once, gives a
forked copy a fresh, empty set of each, whatever any thread was doing::

    original                          forked copy (after the fork hook)
    --------                          ---------------------------------
    Local(guardian) = <pipe to it>    Local(guardian) = empty, disowned:
    Local(zygotes)  = {main: ...}       the original's ends closed
    Lock (held by a thread)           Lock = a new, unheld one (made at its
                                        first use in the copy)

A ``Local``'s ``disown(value, handing)`` runs in the copy at once, so it
takes no lock and starts no thread (the value itself is kept, never freed: a
copy writes to, and so copies, each page it frees). It closes the original's
descriptors, except, where ``handing`` is true, those that a child is
handed: the copy is then a child being started (a snapshot, or on Python
< 3.11 a cold child between fork and exec, where ``subprocess`` runs these
hooks), and needs them. Such launches fork inside ``handing_over()``.

This module is on every child's start-up path: it imports only ``os`` and
``_thread``.
"""

import _thread
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Generic, Iterator, TypeVar

    T = TypeVar("T")
else:
    T = None

    class Generic:  # typing costs a child's start-up; this is all Local[...] needs
        def __class_getitem__(cls, item: object) -> type:
            return cls


_locals: "list[Local]" = []  # type: ignore[type-arg]
# The forks this process's line has come through. A copy's hook counts one more, and a
# Lock made before it is renewed at its first use after (unheld): the copy writes one
# number at the fork, not the page of every lock.
_forks = 0
_renewing = _thread.allocate_lock()  # one renewal at a time (a new one in each copy)
# launches forking right now that hand descriptors to the new process, by thread: in a
# forked copy only the forking thread's count holds (its blocks exit there too; no
# other thread's ever will)
_handing: dict[int, int] = {}
# In a forked copy, the original's values and locks, disowned and kept, never freed:
# freeing them would write to each page they are on, which the copy then copies (a
# snapshot's start paid 0.2 ms for it).
_originals: list[object] = []


class Lock:
    """A lock for module-level state that a forked copy of the process gets anew, unheld."""

    __slots__ = ("_fork", "_lock")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._fork = _forks

    def acquire(self, timeout: float = -1) -> bool:
        if self._fork != _forks:
            self._renew()
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        if self._fork != _forks:
            self._renew()
        self._lock.release()

    def _renew(self) -> None:
        """In a forked copy, at the first use: a new lock (the original's is kept: never
        freed, see ``_originals``)."""
        with _renewing:
            if self._fork != _forks:
                _originals.append(self._lock)
                self._lock = _thread.allocate_lock()
                self._fork = _forks

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Local(Generic[T]):
    """A value that belongs to this process: made on first use, never seen by a forked copy.

    ``make()`` builds it (under ``lock``); in a forked copy the value is
    handed to ``disown(value, handing)`` (see the module docstring) and the
    next ``get()`` makes a new one.
    """

    __slots__ = ("_disown", "_make", "_value", "lock")

    def __init__(
        self, make: "Callable[[], T]", disown: "Callable[[T, bool], None] | None" = None
    ) -> None:
        self._make, self._disown = make, disown
        self._value: "T | None" = None
        self.lock = Lock()
        _locals.append(self)

    def get(self) -> "T":
        """This process's value, made now if there is none."""
        with self.lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def peek(self) -> "T | None":
        """This process's value if it was made, else ``None``; never makes one."""
        return self._value

    def take(self) -> "T | None":
        """Remove this process's value and return it (``None`` if none was made)."""
        with self.lock:
            value, self._value = self._value, None
            return value

    def _forget_in_copy(self, handing: bool) -> None:
        value = self._value
        if value is None:
            return  # nothing written: the page this is on stays shared
        self._value = None
        _originals.append(value)
        if self._disown is not None:
            try:
                self._disown(value, handing)
            except Exception:
                pass  # nothing may stop the other resets; at worst a descriptor stays open


class handing_over:
    """Fork inside this block where the new process is a child handed our descriptors."""

    def __enter__(self) -> None:
        me = _thread.get_ident()
        _handing[me] = _handing.get(me, 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        me = _thread.get_ident()
        left = _handing.pop(me) - 1
        if left:
            _handing[me] = left


def close_quietly(*fds: int) -> None:
    """Close descriptors of the original in a copy; one already closed is no error."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def close_selector_in_copy(selector: "Any") -> None:
    """Close what a ``selectors`` selector holds in the kernel (an epoll descriptor, say),
    and no more: its own ``close()`` also empties its map, which writes to (and so, in a
    fork, copies) every page the map's keys are on."""
    inner = getattr(selector, "_selector", None)  # the epoll (or kqueue) object inside it
    getattr(inner, "close", selector.close)()  # select, poll: nothing in the kernel


def _after_fork_in_copy() -> None:
    global _forks, _renewing
    _originals.append(_renewing)
    _renewing = _thread.allocate_lock()
    _forks += 1
    me = _thread.get_ident()
    mine = _handing.get(me, 0)
    _handing.clear()
    if mine:
        _handing[me] = mine
    handing = mine > 0
    for local in _locals:
        local._forget_in_copy(handing)


def all_locals() -> "Iterator[Local]":  # type: ignore[type-arg]
    """Every ``Local`` (for tests that check a copy starts empty)."""
    return iter(list(_locals))


os.register_at_fork(after_in_child=_after_fork_in_copy)
