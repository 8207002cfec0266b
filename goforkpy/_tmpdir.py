"""The private directory payload and result files live in.

``GOFORKPY_TMPDIR`` or a RAM-backed filesystem (``/dev/shm``) or the system
temp dir holds one directory per user, ``goforkpy-<uid>``, mode 0700. Files
are named ``<parent pid>-<random>.in`` (payload) and ``.out`` (result); the
first use in a process sweeps away files whose parent is dead.
"""

from __future__ import annotations

import os
import stat
import threading

from . import _env, _platform
from ._errors import PayloadError
from ._platform import pid_exists
from ._wire import is_private

_lock = threading.Lock()
_dir: str | None = None
_dir_pid = -1  # a forked copy of this process sweeps and checks again


def payload_dir() -> str:
    """The private directory, created and checked on first use."""
    global _dir, _dir_pid
    with _lock:
        if _dir is None or _dir_pid != os.getpid():
            _dir = _make_private(os.path.join(_base(), f"goforkpy-{os.geteuid()}"))
            _dir_pid = os.getpid()
            _sweep(_dir)
        return _dir


def new_stem() -> str:
    """A fresh, unguessable path without suffix for one child's files."""
    return os.path.join(payload_dir(), f"{os.getpid()}-{os.urandom(12).hex()}")


def _base() -> str:
    configured = os.environ.get(_env.TMPDIR)
    if configured:
        if not os.path.isdir(configured):
            raise PayloadError(
                f"{_env.TMPDIR}={configured!r} is not a directory; "
                "point it at an existing directory or unset it"
            )
        return configured
    ram = _platform.ram_tmpdir()
    if ram is not None:
        return ram
    import tempfile

    return tempfile.gettempdir()


def _make_private(path: str) -> str:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PayloadError(
            f"cannot create the payload directory {path!r}: {exc.strerror}; "
            f"set {_env.TMPDIR} to a writable directory"
        ) from exc
    if not is_private(os.lstat(path), stat.S_ISDIR):
        raise PayloadError(
            f"the payload directory {path!r} is not private (it must be a directory "
            f"owned by uid {os.geteuid()} with mode 0700); remove it, or set "
            f"{_env.TMPDIR} elsewhere"
        )
    return path


def _sweep(directory: str) -> None:
    """Remove files left by parents that died before they could."""
    for entry in os.listdir(directory):
        owner, dash, _ = entry.partition("-")
        if dash and owner.isdigit() and not pid_exists(int(owner)):
            try:
                os.unlink(os.path.join(directory, entry))
            except FileNotFoundError:
                pass  # another process swept it first
