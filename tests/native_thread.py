"""A native thread, as a library in C starts one: no Python code runs in it, ``threading``
does not know it. It sleeps for an hour, named, with every signal blocked."""

from __future__ import annotations

import ctypes
import signal


def start(name: str) -> int:
    """Start a native thread named ``name``; its pthread id."""
    libc = ctypes.CDLL(None, use_errno=True)
    thread = ctypes.c_ulong()
    sleep = ctypes.cast(libc.sleep, ctypes.c_void_p)  # its start routine: sleep(3600)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # it inherits them
    try:
        if libc.pthread_create(ctypes.byref(thread), None, sleep, ctypes.c_void_p(3600)) != 0:
            raise OSError(ctypes.get_errno(), "pthread_create failed")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    libc.pthread_setname_np(thread, name.encode())
    return thread.value


def stop(thread: int) -> None:
    """End the thread ``start`` gave (``sleep`` is a cancellation point) and join it."""
    libc = ctypes.CDLL(None)
    libc.pthread_cancel(ctypes.c_ulong(thread))
    libc.pthread_join(ctypes.c_ulong(thread), None)
