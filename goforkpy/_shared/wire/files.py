"""Payload and result files: their layout, writing them, and reading them verified.

A file is ``MAGIC | section count | section lengths | section flags | sections
| tag`` where the sections are a marshalled head (a ``protocol`` record), the
body (``codec``'s output) and the body's out-of-band pickle buffers, and
``tag`` is ``tag``'s HMAC over everything before it. Nothing is unpickled
before the tag checks out. Files are made and opened relative to their
directory, checked private through its descriptor, never through a symlink
and never as a FIFO.

On the child's start-up path: builtins only.
"""

import marshal
import os
import stat
from _operator import _compare_digest  # what hmac.compare_digest is, without hmac

from ..._errors import PayloadError
from ..._process import quiet
from .tag import LARGE, PARALLEL, TAG_SIZE, Digests, bound_name, hmac_sha256, segmented_tag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Sequence, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]
    Decoded = Tuple[Any, memoryview, List[Buffer]]
    Assembled = Tuple[List[Buffer], int]  # a file's chunks, tag aside, and their total size

MAGIC = b"GFPY\x02"
SEALED_MAGIC = b"GFPY\x03"  # the same layout, in a sealed memfd, its tag over the head only
# From this size on, where the platform has sealed memfds, payloads and results
# travel in one: no name in any filesystem, and no pass of the tag over the bulk.
SEALED_FROM = 1 << 20
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Never blocks, even on a FIFO planted where a file should be (refused once open).
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A section read into a ``bytes`` object of its own rather than mapped: big
# ``bytes``, which the receiver then keeps as they are (flag of a section).
_OWN_BYTES = 1


def write_file(
    path: str, key: bytes, meta: "Any", body: "Sequence[Buffer]", buffers: "Sequence[Buffer]"
) -> None:
    """Write a new private (0600, O_EXCL, no symlinks) tagged file at ``path``."""
    write_assembled(path, key, assemble(meta, body, buffers))


def assemble(meta: "Any", body: "Sequence[Buffer]", buffers: "Sequence[Buffer]") -> "Assembled":
    """What ``write_file`` writes, laid out but not yet tagged or written."""
    meta_bytes = marshal.dumps(meta)
    body_views = [memoryview(chunk).cast("B") for chunk in body]
    buffer_views = [memoryview(b) for b in buffers]
    lengths = [len(meta_bytes), sum(v.nbytes for v in body_views)]
    lengths += [v.nbytes for v in buffer_views]
    flags = bytes([0, 0, *(_OWN_BYTES if v.readonly else 0 for v in buffer_views)])
    head = MAGIC + len(lengths).to_bytes(4, "little")
    head += b"".join(n.to_bytes(8, "little") for n in lengths) + flags
    return [head, meta_bytes, *body_views, *buffers], len(head) + sum(lengths)


def write_assembled(path: str, key: bytes, assembled: "Assembled") -> None:
    """Write ``assembled`` and its tag to a new private file at ``path`` (see ``write_file``)."""
    chunks, total = assembled
    name = bound_name(path)
    fd = _open_in_private_dir(path, _OPEN_NEW, unlink=False)
    try:
        if total < PARALLEL:
            tag = hmac_sha256(key, [name, *chunks], total)
            _write_all(fd, chunks)
        else:
            digests = Digests.of_chunks(chunks, total)  # hashed on the other CPUs meanwhile
            try:
                _write_all(fd, chunks)
            except BaseException:
                digests.abandon()
                raise
            tag = segmented_tag(key, name, total, digests.finish())
        _write_all(fd, [tag])
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def _write_all(fd: int, chunks: "Sequence[Buffer]") -> None:
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            view = view[os.write(fd, view) :]


def read_file(path: str, key: bytes, *, unlink: bool) -> "Decoded":
    """Read and verify a file ``write_file`` wrote: (meta, body, buffers).

    With ``unlink``, the file is removed as soon as it is open.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        PayloadError: the file cannot be opened, is not private to this user,
            is truncated or fails its integrity check.
    """
    fd = _open_in_private_dir(path, _OPEN_READ, unlink=unlink)
    size = 0
    try:
        st = os.fstat(fd)
        if not is_private(st, stat.S_ISREG):
            raise PayloadError(
                f"refusing payload file {path!r}: it must be a regular file owned by "
                f"uid {os.geteuid()} with mode 0600 (found uid {st.st_uid}, "
                f"mode {stat.filemode(st.st_mode)})"
            )
        size = st.st_size
        return _read_verified(fd, size, key, bound_name(path))
    except _Corrupt as exc:
        raise PayloadError(f"payload file {path!r} failed its integrity check: {exc}") from None
    finally:
        if unlink and size >= LARGE:
            _close_in_background(fd)
        else:
            os.close(fd)


def _open_in_private_dir(path: str, flags: int, *, unlink: bool) -> int:
    """Open ``path`` (never through a symlink) relative to its directory, checked private.

    The directory is opened without following symlinks and checked through
    that descriptor, so nobody can swap it for one of theirs between the
    check and the use. With ``unlink``, the file is removed once open.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        OSError: a new file cannot be made (it exists, the disk is full).
        PayloadError: the directory is not private, or the file cannot be opened.
    """
    directory, name = os.path.split(path)
    try:
        dir_fd = open_private_dir(directory or ".")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PayloadError(f"cannot open the directory of {path!r}: {exc.strerror}") from exc
    if dir_fd is None:
        raise PayloadError(
            f"refusing {path!r}: its directory must be owned by uid {os.geteuid()} with mode 0700"
        )
    try:
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if flags & os.O_CREAT:
                raise  # the writer says what it could not write
            raise PayloadError(f"cannot open payload file {path!r}: {exc.strerror}") from exc
        if unlink:
            os.unlink(name, dir_fd=dir_fd)
        return fd
    finally:
        os.close(dir_fd)


def open_private_dir(path: str) -> "int | None":
    """An fd of the directory ``path`` (never through a symlink) if only we can reach it.

    ``None`` where it is a directory others can reach or another user owns.

    Raises:
        OSError: it cannot be opened as a directory (missing, a file, a symlink).
    """
    fd = os.open(path, _OPEN_DIR)
    if is_private(os.fstat(fd), stat.S_ISDIR):
        return fd
    os.close(fd)
    return None


def is_private(st: "os.stat_result", is_kind: "Callable[[int], bool]") -> bool:
    """True for a file of the right kind that only this user can reach."""
    return is_kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


class _Corrupt(Exception):
    """Why a file failed its integrity check."""


def _read_verified(fd: int, size: int, key: bytes, name: bytes) -> "Decoded":
    """The sections of the open file ``fd`` (``size`` bytes), after checking its tag.

    A small file is read whole into one writable buffer. In a large one,
    sections flagged ``_OWN_BYTES`` (big bytes) are read into ``bytes`` objects
    of their own, which the receiver keeps as they are; other big sections are
    mapped copy-on-write, so out-of-band buffers (numpy arrays) stay writable
    and uncopied; small ones are read. Meanwhile the other CPUs hash the file
    for the tag. (Only a process of this uid could change the file between
    the hashing and the reading, and such a process could as well ptrace us.)
    """
    whole = _read_whole(fd, size) if size < LARGE else None

    def read(length: int, offset: int) -> "Buffer":
        if whole is not None:
            return whole[offset : offset + length]
        return _pread_all(fd, length, offset)

    head, lengths, flags = _layout(read, size)
    total = size - TAG_SIZE
    digests = Digests.of_file(fd, total) if total >= PARALLEL else None
    try:
        sections = _sections(fd, size, read, (len(head), lengths, flags), whole is not None)
        tag = read(TAG_SIZE, total)
    except BaseException:
        if digests is not None:
            digests.abandon()
        raise
    if digests is not None:
        expected = segmented_tag(key, name, total, digests.finish())
    else:
        expected = hmac_sha256(key, [name, head, *sections], total)
    if not _compare_digest(expected, bytes(tag)):
        raise _Corrupt("the HMAC tag does not match (tampered, truncated or another key)")
    meta, body, *buffers = sections
    return marshal.loads(meta), memoryview(body), buffers


def _sections(
    fd: int,
    size: int,
    read: "Callable[[int, int], Buffer]",
    layout: tuple[int, list[int], bytes],
    in_memory: bool,
) -> "list[Buffer]":
    """Each section of the file, read or mapped as ``_read_verified`` says."""
    offset, lengths, flags = layout
    sections: list[Buffer] = []
    mapping: memoryview | None = None
    for length, flag in zip(lengths, flags, strict=False):
        if in_memory or flag & _OWN_BYTES:
            sections.append(read(length, offset))
        elif length < LARGE:
            sections.append(bytearray(read(length, offset)))
        else:
            if mapping is None:
                import mmap

                # Copy-on-write: writable for the receiver, never written back.
                mapping = memoryview(mmap.mmap(fd, size, access=mmap.ACCESS_COPY))
            sections.append(mapping[offset : offset + length])
        offset += length
    return sections


def write_sealed(name: str, key: bytes, assembled: "Assembled", fd: "int | None" = None) -> int:
    """Write ``assembled`` into a memfd and seal it; return the fd (the caller's to close).

    Nobody can change a sealed memfd, and it has no name anyone could open,
    so the tag covers only the head and the first section (the ``protocol``
    record): it proves which parent (key) and which child (``name``) it is
    for. ``fd``: a memfd made earlier (``platform.new_sealable``), still empty,
    which stays the caller's whatever happens.
    """
    from ..._process import platform

    chunks = assembled[0]
    head = SEALED_MAGIC + bytes(chunks[0])[len(MAGIC) :]
    tag = hmac_sha256(key, [bound_name(name), head, chunks[1]], 0)
    made = fd is None
    if fd is None:
        fd = platform.new_sealable("goforkpy")
    try:
        _write_all(fd, [head, *chunks[1:], tag])
        platform.seal(fd)
        os.lseek(fd, 0, os.SEEK_SET)  # the reader moves it on: how the writer knows it read
    except BaseException:
        if made:
            os.close(fd)
        raise
    return fd


def read_sealed(fd: int, key: bytes, name: str) -> "Decoded":
    """Read what ``write_sealed`` wrote to ``fd``, after checking its seals and its tag.

    Raises:
        PayloadError: ``fd`` is not sealed, or its layout or tag is wrong.
    """
    from ..._process import platform

    if not platform.is_sealed(fd):
        raise PayloadError("refusing a payload memfd that is not sealed against changes")
    size = os.fstat(fd).st_size

    def read(length: int, offset: int) -> "Buffer":
        return _pread_all(fd, length, offset)

    try:
        head, lengths, flags = _layout(read, size, SEALED_MAGIC)
        meta = read(lengths[0], len(head))
        tag = read(TAG_SIZE, size - TAG_SIZE)
        if not _compare_digest(hmac_sha256(key, [bound_name(name), head, meta], 0), tag):
            raise _Corrupt("the HMAC tag does not match (another parent, or another child's)")
        layout = (len(head) + lengths[0], lengths[1:], flags[1:])
        body, *buffers = _sections(fd, size, read, layout, in_memory=False)
    except _Corrupt as exc:
        raise PayloadError(f"a sealed payload failed its integrity check: {exc}") from None
    return marshal.loads(meta), memoryview(body), buffers


def _layout(
    read: "Callable[[int, int], Buffer]", size: int, magic: bytes = MAGIC
) -> tuple[bytes, list[int], bytes]:
    """(head, section lengths, section flags) of a file, checked to add up to ``size``."""
    fixed = len(magic) + 4
    start = bytes(read(fixed, 0)) if size >= fixed + TAG_SIZE else b""
    if not start.startswith(magic):
        raise _Corrupt("not a goforkpy payload (bad header)")
    count = int.from_bytes(start[len(magic) :], "little")
    if count < 2 or fixed + 9 * count > size - TAG_SIZE:
        raise _Corrupt("section lengths do not add up")
    table = bytes(read(9 * count, fixed))
    lengths = [int.from_bytes(table[8 * i : 8 * i + 8], "little") for i in range(count)]
    if fixed + len(table) + sum(lengths) != size - TAG_SIZE:
        raise _Corrupt("section lengths do not add up")
    return start + table, lengths, table[8 * count :]


def _close_in_background(fd: int) -> None:
    """Close a big unlinked file on a thread of its own: freeing its pages takes a while."""
    import threading

    try:
        quiet.start(threading.Thread(target=os.close, args=(fd,), daemon=True).start)
    except RuntimeError:  # no new threads at interpreter shutdown
        os.close(fd)


def _read_whole(fd: int, size: int) -> memoryview:
    data = bytearray(size)
    view = memoryview(data)
    with open(fd, "rb", buffering=0, closefd=False) as f:
        pos = 0
        while pos < size:
            n = f.readinto(view[pos:])
            if not n:
                raise _Corrupt("the file is shorter than it was")
            pos += n
    return view


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset``: one read straight into the ``bytes`` returned."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts, done = [data], len(data)  # past what one read returns (2 GiB on Linux)
    while done < length:
        part = os.pread(fd, length - done, offset + done)
        if not part:
            raise _Corrupt("the file is shorter than it was")
        parts.append(part)
        done += len(part)
    return b"".join(parts)
