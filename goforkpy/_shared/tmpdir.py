"""The private directory payload, result and socket files live in.

``GOFORKPY_TMPDIR`` (made absolute once, against the directory goforkpy
started in) or a RAM-backed filesystem (``/dev/shm``) or the system temp dir
is the base. It must be one that other users cannot rename things in: only
we may write to it, or it has the sticky bit (as ``/tmp`` and ``/dev/shm``
do). In it, each user has one directory, ``goforkpy-<uid>``, mode 0700.

That directory is opened without following symlinks and checked (a
directory, ours, 0700) through the open descriptor, and so is it again each
time a file in it is made or opened, relative to that descriptor
(``wire.files``), so swapping the path between check and use changes nothing.
If the name is taken by something that is not our private directory
(another user made it first, to lock us out), a fresh private directory with
an unpredictable name is made instead, and a warning logged once. A child
works in its parent's directory (``GOFORKPY_DIR``), so a whole tree of
processes shares one.

Files are named ``<parent pid>-<random>.in`` (payload), ``.out`` (result)
and ``.faults`` (crash stacks); the first use in a process sweeps away files
whose parent is dead, and at exit, once its children are ended, a process
removes what is left of its own.
"""

from __future__ import annotations

import os
import stat

from .. import _env
from .._errors import PayloadError
from .._process import lifeline, platform
from .._process.platform import pid_exists
from .._state import Local, close_quietly
from .wire.files import open_private_dir

_base_dir: str | None = None


class _Private:
    """The private directory, opened and checked, and swept of what dead processes left."""

    def __init__(self) -> None:
        inherited = _env.MARKED.private_dir
        self.path, self.fd = _open_inherited(inherited) if inherited else _open_own()
        _sweep(self.fd)

    def disown(self, handing: bool) -> None:
        close_quietly(self.fd)  # a forked copy opens, checks and sweeps for itself


_private: Local[_Private] = Local(_Private, _Private.disown)


def _remove_own_files() -> None:
    """At exit, once the children are ended: whatever files of theirs are still here.

    The reaper collects a child's files as it reaps it, but at exit some may
    not have been reaped yet (their files would otherwise wait for the next
    process's sweep).
    """
    private = _private.peek()
    if private is None:
        return
    prefix = f"{os.getpid()}-"
    for entry in os.listdir(private.fd):
        if entry.startswith(prefix):
            try:
                os.unlink(entry, dir_fd=private.fd)
            except FileNotFoundError:
                pass


lifeline.after_children(_remove_own_files)


def payload_dir() -> str:
    """The private directory's path, created and checked on first use."""
    return _private.get().path


def new_stem() -> str:
    """A fresh, unguessable path without suffix for one child's files."""
    return os.path.join(payload_dir(), f"{os.getpid()}-{os.urandom(12).hex()}")


def base() -> str:
    """The absolute base directory (``GOFORKPY_TMPDIR``, /dev/shm or the temp dir)."""
    global _base_dir
    if _base_dir is None:
        _base_dir = _choose_base()
    return _base_dir


def forget() -> None:
    """Close the directory and forget the choice: the next use chooses and checks again."""
    global _base_dir
    private = _private.take()
    if private is not None:
        os.close(private.fd)
    _base_dir = None


def _open_inherited(path: str) -> tuple[str, int]:
    """The parent's directory, checked again here (it is ours: same user)."""
    fd = _open_private(path)
    return (path, fd) if fd >= 0 else _open_own()


def _open_own() -> tuple[str, int]:
    root = base()
    path = os.path.join(root, f"goforkpy-{os.geteuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PayloadError(
            f"cannot create the payload directory {path!r}: {exc.strerror}; "
            f"set {_env.TMPDIR} to a writable directory"
        ) from exc
    fd = _open_private(path)
    if fd >= 0:
        return path, fd
    return _fall_back(root, path)


def _open_private(path: str) -> int:
    """An fd of ``path`` if it is a private directory of ours (no symlink), else -1."""
    try:
        fd = open_private_dir(path)
    except OSError:
        return -1  # a symlink (ELOOP), a file (ENOTDIR), gone, or not ours to open
    return -1 if fd is None else fd


def _fall_back(root: str, taken: str) -> tuple[str, int]:
    """A fresh private directory with an unpredictable name, when ``taken`` is not ours."""
    import tempfile

    try:
        path = tempfile.mkdtemp(prefix=f"goforkpy-{os.geteuid()}-", dir=root)
    except OSError as exc:
        raise PayloadError(
            f"cannot create a private payload directory in {root!r}: {exc.strerror}; "
            f"set {_env.TMPDIR} to a directory only you can write to"
        ) from exc
    fd = _open_private(path)
    if fd < 0:  # pragma: no cover - mkdtemp makes it 0700 and ours
        raise PayloadError(f"the new payload directory {path!r} is not private")
    import logging

    logging.getLogger("goforkpy").warning(
        "%s is not a private directory of uid %d (another user may have made it); "
        "using %s instead. Remove %s, or set %s to a directory only you can write to",
        taken,
        os.geteuid(),
        path,
        taken,
        _env.TMPDIR,
    )
    return path, fd


def _choose_base() -> str:
    configured = os.environ.get(_env.TMPDIR)
    if configured:
        root = os.path.join(_env.START_CWD, configured)  # a relative path, made absolute once
        if not os.path.isdir(root):
            raise PayloadError(
                f"{_env.TMPDIR}={configured!r} is not a directory; "
                "point it at an existing directory or unset it"
            )
    else:
        ram = platform.ram_tmpdir()
        if ram is None:
            import tempfile

            ram = tempfile.gettempdir()
        root = ram
    root = os.path.abspath(root)
    _refuse_shared(root)
    return root


def _refuse_shared(root: str) -> None:
    """Refuse a base others can write to without the sticky bit: they could swap our directory."""
    st = os.stat(root)
    others_write = st.st_mode & 0o022
    owner_is_safe = st.st_uid in (0, os.geteuid())
    if (others_write and not st.st_mode & stat.S_ISVTX) or not owner_is_safe:
        raise PayloadError(
            f"the payload base directory {root!r} (mode {stat.filemode(st.st_mode)}, "
            f"owner uid {st.st_uid}) lets other users rename what is in it; set "
            f"{_env.TMPDIR} to a directory only you can write to, or a sticky one like /tmp"
        )


def _remove_tree(name: str, dir_fd: int) -> None:
    """Remove directory ``name`` (in ``dir_fd``) and all in it, following no link."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        for entry in os.listdir(fd):
            try:
                os.unlink(entry, dir_fd=fd)
            except IsADirectoryError:
                _remove_tree(entry, fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _sweep(dir_fd: int) -> None:
    """Remove files left by parents that died before they could."""
    swept = 0
    for entry in os.listdir(dir_fd):
        owner, dash, _ = entry.partition("-")
        if dash and owner.isdigit() and not pid_exists(int(owner)):
            try:
                try:
                    os.unlink(entry, dir_fd=dir_fd)
                except IsADirectoryError:  # a sandboxed child's scratch directory
                    _remove_tree(entry, dir_fd)
                swept += 1
            except FileNotFoundError:
                pass  # another process swept it first
    if swept:
        import logging

        logging.getLogger("goforkpy").debug("swept %d files left by dead processes", swept)
