"""Payload and result files: serialisation, framing and the integrity tag.

A file is ``MAGIC | section count | section lengths | section flags | sections
| tag`` where the sections are a marshalled ``meta`` tuple, the body (the
serialised object) and the body's out-of-band pickle buffers, and ``tag`` is
HMAC-SHA256 over everything before it, keyed with the parent's random key.
Nothing is unpickled before the tag checks out.

Bodies are marshalled where the object is plain data (exact builtin types):
``marshal`` is built in, so a child with simple arguments never imports
``pickle``. Anything else is pickled with protocol 5, large buffers kept out of
band and large bytes written straight from the object, so a big payload is
never copied into an intermediate stream. Big ``bytes`` in plain data go out
of band too, and the reader reads each straight into the ``bytes`` object the
receiver gets: the data is copied once on each side, file to object. Objects
that refer to ``__main__`` or are otherwise not picklable by reference go
through ``cloudpickle``, by value, and only then is it imported (unpickling its
output imports it in the child the same way).

This module is on the child's start-up path: it imports only builtins, and
pickles with the C module ``_pickle`` itself (``pickle`` would also import
``re``, ``struct`` and ``enum``, several milliseconds in a fresh child).
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
from _operator import _compare_digest  # what hmac.compare_digest is, without hmac

from .._errors import PayloadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Sequence, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]
    Decoded = Tuple[Any, memoryview, List[Buffer]]
    Frame = Tuple[List[Buffer], int]  # a file's chunks, tag aside, and their total size

MAGIC = b"GFPY\x02"
TAG_SIZE = 32
KEY_SIZE = 32
MARSHAL = "m"
PICKLE = "p"
BLOBS = "b"  # a pickle stream whose big bytes travel out of band

# Below this size OpenSSL's load time outweighs its speed: hash with the
# interpreter's built-in SHA-256; above it, with hashlib's (OpenSSL, SHA-NI).
_LARGE = 1 << 20
# Files past _PARALLEL are tagged segment by segment, on all CPUs.
_PARALLEL = 8 << 20
_SEGMENT = 4 << 20
_SEGMENTED = b"goforkpy segmented v1"
_PLAIN_BUDGET = 2_000  # containers bigger than this skip the marshal check
_BIG_SCALAR = 1 << 16
_PLAIN_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_PLAIN_CONTAINERS = frozenset({tuple, list, set, frozenset})
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Never blocks, even on a FIFO planted where a file should be (refused once open).
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A section read into a ``bytes`` of its own rather than mapped (a read-only buffer).
_PRIVATE = 1


def new_key() -> bytes:
    """A fresh random key for a parent's payloads."""
    return os.urandom(KEY_SIZE)


def _segmented_tag(key: bytes, name: bytes, total: int, digests: list[bytes]) -> bytes:
    """The tag of a file of ``_PARALLEL`` bytes or more, from its segments' digests.

    The HMAC covers the file's name, its length and the list of the segments'
    SHA-256 digests (see ``_Digests``), which binds every byte just as
    tightly as one pass.
    """
    return hmac_sha256(key, [_SEGMENTED, name, total.to_bytes(8, "little"), *digests], 0)


def _bound_name(path: str) -> bytes:
    """What ties a tag to its file: the name, unique per child and direction.

    A file copied over another child's (or its result over its payload)
    fails its check, though both were tagged with the same key.
    """
    return os.path.basename(path).encode() + b"\0"


def hmac_sha256(key: bytes, chunks: Sequence[Buffer], total: int) -> bytes:
    """HMAC-SHA256 (RFC 2104) of the concatenated ``chunks``, ``total`` bytes long."""
    sha = _sha256_for(total)
    padded = int.from_bytes(key.ljust(64, b"\0"), "big")
    inner = sha((padded ^ _IPAD).to_bytes(64, "big"))
    for chunk in chunks:
        inner.update(chunk)
    outer = sha((padded ^ _OPAD).to_bytes(64, "big"))
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


_IPAD = int.from_bytes(b"\x36" * 64, "big")
_OPAD = int.from_bytes(b"\x5c" * 64, "big")


class _Digests:
    """The SHA-256 digests of a file's fixed ``_SEGMENT``-byte segments.

    Helper threads (one fewer than the usable CPUs) start hashing at once, so
    the caller can write or read the file meanwhile; ``finish`` then has the
    caller hash what is left. hashlib releases the GIL, so this runs on all CPUs.
    """

    def __init__(self, count: int, digest_of: Callable[[int], bytes]) -> None:
        import threading

        from .._process.platform import usable_cpus

        self._digest_of = digest_of
        self._todo = iter(range(count))
        self._lock = threading.Lock()
        self._digests = [b""] * count
        self._error: BaseException | None = None
        helpers = max(0, min(usable_cpus() - 1, count, 7))
        self._helpers = [threading.Thread(target=self._work, daemon=True) for _ in range(helpers)]
        try:
            for helper in self._helpers:
                helper.start()
        except RuntimeError:  # no new threads at interpreter shutdown: hash alone
            self._helpers = [helper for helper in self._helpers if helper.ident is not None]

    @classmethod
    def of_chunks(cls, chunks: Sequence[Buffer], total: int) -> _Digests:
        """Digests of the concatenated ``chunks``, ``total`` bytes long."""
        import hashlib

        segments: list[list[memoryview]] = [[] for _ in range(_segment_count(total))]
        start = 0
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:
                index, skip = divmod(start, _SEGMENT)
                piece = view[: _SEGMENT - skip]
                segments[index].append(piece)
                start += len(piece)
                view = view[len(piece) :]

        def digest_of(index: int) -> bytes:
            sha = hashlib.sha256()
            for piece in segments[index]:
                sha.update(piece)
            return sha.digest()

        return cls(len(segments), digest_of)

    @classmethod
    def of_file(cls, fd: int, total: int) -> _Digests:
        """Digests of the first ``total`` bytes of the open file ``fd``."""
        import hashlib
        import mmap

        def digest_of(index: int) -> bytes:
            start = index * _SEGMENT
            with mmap.mmap(
                fd, min(_SEGMENT, total - start), offset=start, access=mmap.ACCESS_READ
            ) as segment:
                return hashlib.sha256(segment).digest()

        return cls(_segment_count(total), digest_of)

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    index = next(self._todo, None)
                if index is None or self._error is not None:
                    return
                self._digests[index] = self._digest_of(index)
        except BaseException as exc:
            self._error = exc

    def abandon(self) -> None:
        """Stop handing out segments and wait for the helpers."""
        with self._lock:
            self._todo = iter(())
        for helper in self._helpers:
            helper.join()

    def finish(self) -> list[bytes]:
        """Hash what the helpers have not yet taken, wait for them, return the digests."""
        self._work()
        for helper in self._helpers:
            helper.join()
        if self._error is not None:
            raise self._error
        return self._digests


def _segment_count(total: int) -> int:
    return -(-total // _SEGMENT)


_small_sha256: Callable[[bytes], Any] | None = None


def _sha256_for(total: int) -> Callable[[bytes], Any]:
    global _small_sha256
    if total >= _LARGE:
        import hashlib

        return hashlib.sha256
    if _small_sha256 is None:  # found once: a failed import searches sys.path every time
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            try:
                from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
            except ImportError:  # an interpreter built without its own hashes
                from hashlib import sha256
        _small_sha256 = sha256
    return _small_sha256


# --- serialisation -----------------------------------------------------------


def encode(
    obj: Any, *, main_is_shared: bool, blobs: bool = True
) -> tuple[str, list[Buffer], list[memoryview]]:
    """Serialise ``obj`` into (kind, body chunks, out-of-band buffers).

    Args:
        obj: what to send.
        main_is_shared: the receiver runs the sender's ``__main__`` (a re-run
            script), so objects from ``__main__`` may go by reference.
        blobs: plain data may send its big ``bytes`` as out-of-band buffers
            (kind ``BLOBS``); a stream, which has no side channel, says no.

    Raises:
        PayloadError: ``obj`` cannot be pickled, even by value.
    """
    big = _big_scalars(obj)
    if big is not None:
        if not big:
            try:
                return MARSHAL, [marshal.dumps(obj)], []
            except ValueError:  # unmarshallable after all (a too-deep nesting)
                pass
        big_bytes = [item for item in big if type(item) is bytes]
        if blobs and big_bytes:
            try:
                return _pickle_with_blobs(obj, big_bytes)
            except RecursionError:
                pass
    return _pickle(obj, main_is_shared)


def decode(kind: str, body: memoryview, buffers: Sequence[Buffer]) -> Any:
    """The object ``encode`` serialised; ``PayloadError`` if it will not load."""
    try:
        if kind == MARSHAL:
            return marshal.loads(body)
        import _pickle as pickle

        if kind == BLOBS:
            import io

            unpickler = _blob_unpickler()(io.BytesIO(body), buffers=buffers)
            unpickler.loaded = []
            return unpickler.load()
        return pickle.loads(body, buffers=buffers)
    except Exception as exc:
        raise PayloadError(f"could not unpickle: {type(exc).__name__}: {exc}") from exc


def dumps(obj: Any, *, main_is_shared: bool) -> bytes:
    """``encode`` into one buffer, for streams (the executor's pipes): kind byte + body."""
    return b"".join(dumps_parts(obj, main_is_shared=main_is_shared))


def dumps_parts(obj: Any, *, main_is_shared: bool) -> list[Buffer]:
    """``dumps`` as the pieces to write one after the other, big ones uncopied."""
    kind, chunks, buffers = encode(obj, main_is_shared=main_is_shared, blobs=False)
    if buffers:  # fold out-of-band buffers back in: a stream has no side channel
        kind, chunks = PICKLE, [_pickle_in_band(obj, main_is_shared)]
    return [kind.encode(), *chunks]


def loads(data: bytes | bytearray | memoryview) -> Any:
    """The object ``dumps`` serialised."""
    view = memoryview(data)
    return decode(chr(view[0]), view[1:], ())


def _pickle_in_band(obj: Any, main_is_shared: bool) -> bytes:
    import _pickle as pickle
    import io

    out = io.BytesIO()
    pickler_class = pickle.Pickler if main_is_shared else _main_guard_pickler()
    try:
        pickler_class(out, protocol=5).dump(obj)
    except Exception:
        out = io.BytesIO()
        _handle_guard_pickler()(out, protocol=5).dump(obj)
    return out.getvalue()


def _big_scalars(obj: Any) -> list[Any] | None:
    """The big ``str`` and ``bytes`` in ``obj`` if it is plain data, else None.

    Plain data is what marshal round-trips exactly: builtin scalars and
    containers, no subclasses, small enough to walk cheaply. Big strings and
    bytes are left to pickle, which writes them uncopied (marshal would copy).
    """
    budget = _PLAIN_BUDGET
    big = []
    stack = [obj]
    while stack:
        budget -= 1
        if budget < 0:
            return None  # too big to walk cheaply, or cyclic: pickle knows best
        item = stack.pop()
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            if kind in (str, bytes) and len(item) > _BIG_SCALAR:
                big.append(item)
        elif kind in _PLAIN_CONTAINERS:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            return None
    return big


class _NeedsByValue(Exception):
    """Raised inside pickling when an object can only travel by value."""


class _Chunks(list):  # type: ignore[type-arg]
    """A pickle 'file' that keeps what it is given, uncopied."""

    write = list.append


def _pickle(obj: Any, main_is_shared: bool) -> tuple[str, list[Buffer], list[memoryview]]:
    import _pickle as pickle

    pickler_class = pickle.Pickler if main_is_shared else _main_guard_pickler()
    chunks, buffers = _Chunks(), list[pickle.PickleBuffer]()
    try:
        pickler_class(chunks, protocol=5, buffer_callback=buffers.append).dump(obj)
    except Exception:
        # By reference failed (a lambda, a closure, something from __main__):
        # by value is the last resort.
        return _cloudpickle(obj)
    return PICKLE, list(chunks), [pickle.PickleBuffer(b).raw() for b in buffers]


def os_handle_kind(obj: Any) -> str | None:
    """What OS resource ``obj`` holds ("an open file", "a socket"), or None.

    Such objects mean nothing in another process; cloudpickle would copy an
    open file's contents (reading ``/dev/zero`` for ever) rather than refuse.
    """
    io = sys.modules.get("io")
    if io is not None and isinstance(obj, io.IOBase):
        if isinstance(obj, (io.BytesIO, io.StringIO)):
            return None  # in memory: they pickle as their contents
        return "an open file"
    socket = sys.modules.get("socket")
    if socket is not None and isinstance(obj, socket.socket):
        return "a socket"
    mmap = sys.modules.get("mmap")
    if mmap is not None and isinstance(obj, mmap.mmap):
        return "a memory map"
    return None


def _cloudpickle(obj: Any) -> tuple[str, list[Buffer], list[memoryview]]:
    import _pickle as pickle

    chunks, buffers = _Chunks(), list[pickle.PickleBuffer]()
    try:
        _handle_guard_pickler()(chunks, protocol=5, buffer_callback=buffers.append).dump(obj)
    except PayloadError:
        raise
    except Exception as exc:
        raise PayloadError(
            f"cannot pickle {_describe(obj)}: {type(exc).__name__}: {exc}; "
            "pass picklable data (plain values, module-level functions and classes)"
        ) from exc
    return PICKLE, list(chunks), [pickle.PickleBuffer(b).raw() for b in buffers]


_handle_guard_class: type | None = None


def _handle_guard_pickler() -> type:
    """cloudpickle's Pickler, refusing open files and sockets instead of copying them."""
    global _handle_guard_class
    if _handle_guard_class is None:
        import cloudpickle  # type: ignore[import-untyped,unused-ignore]

        class HandleGuardPickler(cloudpickle.Pickler):  # type: ignore[misc,unused-ignore]
            def reducer_override(self, obj: Any) -> Any:
                kind = os_handle_kind(obj)
                if kind is not None:
                    raise PayloadError(
                        f"cannot send {kind} ({obj!r}) to another process; pass its path, "
                        "address or data instead"
                    )
                return super().reducer_override(obj)

        _handle_guard_class = HandleGuardPickler
    return _handle_guard_class


_guard_class: type | None = None


def _main_guard_pickler() -> type:
    """A Pickler that refuses (so we go by value) anything living in ``__main__``."""
    global _guard_class
    if _guard_class is None:
        import _pickle as pickle

        class MainGuardPickler(pickle.Pickler):
            def reducer_override(self, obj: Any) -> Any:
                owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
                if getattr(owner, "__module__", None) == "__main__":
                    raise _NeedsByValue
                return NotImplemented

        _guard_class = MainGuardPickler
    return _guard_class


def _pickle_with_blobs(
    obj: Any, big_bytes: list[bytes]
) -> tuple[str, list[Buffer], list[memoryview]]:
    import _pickle as pickle

    chunks, buffers = _Chunks(), list[pickle.PickleBuffer]()
    pickler = _blob_pickler()(chunks, protocol=5, buffer_callback=buffers.append)
    pickler.blobs = {id(item): item for item in big_bytes}
    pickler.seen = {}
    pickler.dump(obj)
    return BLOBS, list(chunks), [b.raw() for b in buffers]


_blob_classes: tuple[type, type] | None = None


def _blob_pickler() -> type:
    return _blob_pair()[0]


def _blob_unpickler() -> type:
    return _blob_pair()[1]


def _blob_pair() -> tuple[type, type]:
    """A Pickler that sends chosen ``bytes`` out of band, and its Unpickler.

    Such a ``bytes`` becomes a persistent id holding a ``PickleBuffer`` of it
    (so the buffer itself goes out of band), or, met again, the index of its
    first appearance. The reader hands those buffers over as ``bytes`` read
    straight from the file, which the Unpickler returns as they are: the
    receiver's object is the one copy the data needs.
    """
    global _blob_classes
    if _blob_classes is None:
        import _pickle as pickle

        class BlobPickler(pickle.Pickler):
            blobs: dict[int, bytes]  # by id; they outlive the pickling, so ids are unique
            seen: dict[int, int]  # id -> index of the first appearance

            def persistent_id(self, obj: Any) -> Any:
                if id(obj) not in self.blobs:
                    return None
                if id(obj) in self.seen:
                    return self.seen[id(obj)]
                self.seen[id(obj)] = len(self.seen)
                return pickle.PickleBuffer(obj)

        class BlobUnpickler(pickle.Unpickler):
            loaded: list[bytes]

            def persistent_load(self, pid: Any) -> bytes:
                if type(pid) is int and 0 <= pid < len(self.loaded):
                    return self.loaded[pid]
                if type(pid) not in (bytes, memoryview):
                    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.40}")
                blob = pid if type(pid) is bytes else bytes(pid)
                self.loaded.append(blob)
                return blob

        _blob_classes = BlobPickler, BlobUnpickler
    return _blob_classes


def _describe(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__} object"


# --- files -------------------------------------------------------------------


def write_file(
    path: str, key: bytes, meta: Any, body: Sequence[Buffer], buffers: Sequence[Buffer]
) -> None:
    """Write a new private (0600, O_EXCL, no symlinks) tagged file at ``path``."""
    write_frame(path, key, frame(meta, body, buffers))


def frame(meta: Any, body: Sequence[Buffer], buffers: Sequence[Buffer]) -> Frame:
    """What ``write_file`` writes, framed but not yet tagged or written."""
    meta_bytes = marshal.dumps(meta)
    body_views = [memoryview(chunk).cast("B") for chunk in body]
    buffer_views = [memoryview(b) for b in buffers]
    lengths = [len(meta_bytes), sum(v.nbytes for v in body_views)]
    lengths += [v.nbytes for v in buffer_views]
    flags = bytes([0, 0, *(_PRIVATE if v.readonly else 0 for v in buffer_views)])
    head = MAGIC + len(lengths).to_bytes(4, "little")
    head += b"".join(n.to_bytes(8, "little") for n in lengths) + flags
    return [head, meta_bytes, *body_views, *buffers], len(head) + sum(lengths)


def write_frame(path: str, key: bytes, framed: Frame) -> None:
    """Write ``framed`` and its tag to a new private file at ``path`` (see ``write_file``)."""
    chunks, total = framed
    name = _bound_name(path)
    fd = _open_in_private_dir(path, _OPEN_NEW, unlink=False)
    try:
        if total < _PARALLEL:
            tag = hmac_sha256(key, [name, *chunks], total)
            _write_all(fd, chunks)
        else:
            digests = _Digests.of_chunks(chunks, total)  # hashed on the other CPUs meanwhile
            try:
                _write_all(fd, chunks)
            except BaseException:
                digests.abandon()
                raise
            tag = _segmented_tag(key, name, total, digests.finish())
        _write_all(fd, [tag])
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def _write_all(fd: int, chunks: Sequence[Buffer]) -> None:
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            view = view[os.write(fd, view) :]


def read_file(path: str, key: bytes, *, unlink: bool) -> Decoded:
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
        return _read_verified(fd, size, key, _bound_name(path))
    except _Corrupt as exc:
        raise PayloadError(f"payload file {path!r} failed its integrity check: {exc}") from None
    finally:
        if unlink and size >= _LARGE:
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
        dir_fd = os.open(directory or ".", _OPEN_DIR)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PayloadError(f"cannot open the directory of {path!r}: {exc.strerror}") from exc
    try:
        if not is_private(os.fstat(dir_fd), stat.S_ISDIR):
            raise PayloadError(
                f"refusing {path!r}: its directory must be owned by uid {os.geteuid()} "
                "with mode 0700"
            )
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


def is_private(st: os.stat_result, is_kind: Callable[[int], bool]) -> bool:
    """True for a file of the right kind that only this user can reach."""
    return is_kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


class _Corrupt(Exception):
    """Why a file failed its integrity check."""


def _read_verified(fd: int, size: int, key: bytes, name: bytes) -> Decoded:
    """The sections of the open file ``fd`` (``size`` bytes), after checking its tag.

    A small file is read whole into one writable buffer. In a large one,
    sections flagged ``_PRIVATE`` (big bytes) are read into ``bytes`` objects
    of their own, which the receiver keeps as they are; other big sections are
    mapped copy-on-write, so out-of-band buffers (numpy arrays) stay writable
    and uncopied; small ones are read. Meanwhile the other CPUs hash the file
    for the tag. (Only a process of this uid could change the file between
    the hashing and the reading, and such a process could as well ptrace us.)
    """
    whole = _read_whole(fd, size) if size < _LARGE else None

    def read(length: int, offset: int) -> Buffer:
        if whole is not None:
            return whole[offset : offset + length]
        return _pread_all(fd, length, offset)

    head, lengths, flags = _layout(read, size)
    total = size - TAG_SIZE
    digests = _Digests.of_file(fd, total) if total >= _PARALLEL else None
    try:
        sections: list[Buffer] = []
        mapping: memoryview | None = None
        offset = len(head)
        for length, flag in zip(lengths, flags):
            if whole is not None or flag & _PRIVATE:
                sections.append(read(length, offset))
            elif length < _LARGE:
                sections.append(bytearray(read(length, offset)))
            else:
                if mapping is None:
                    import mmap

                    # Copy-on-write: writable for the receiver, never written back.
                    mapping = memoryview(mmap.mmap(fd, size, access=mmap.ACCESS_COPY))
                sections.append(mapping[offset : offset + length])
            offset += length
        tag = read(TAG_SIZE, total)
    except BaseException:
        if digests is not None:
            digests.abandon()
        raise
    if digests is not None:
        expected = _segmented_tag(key, name, total, digests.finish())
    else:
        expected = hmac_sha256(key, [name, head, *sections], total)
    if not _compare_digest(expected, bytes(tag)):
        raise _Corrupt("the HMAC tag does not match (tampered, truncated or another key)")
    meta, body, *buffers = sections
    return marshal.loads(meta), memoryview(body), buffers


def _layout(read: Callable[[int, int], Buffer], size: int) -> tuple[bytes, list[int], bytes]:
    """(head, section lengths, section flags) of a file, checked to add up to ``size``."""
    fixed = len(MAGIC) + 4
    start = bytes(read(fixed, 0)) if size >= fixed + TAG_SIZE else b""
    if not start.startswith(MAGIC):
        raise _Corrupt("not a goforkpy payload (bad header)")
    count = int.from_bytes(start[len(MAGIC) :], "little")
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
        threading.Thread(target=os.close, args=(fd,), daemon=True).start()
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
