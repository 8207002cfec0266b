"""Payload and result files: serialisation, framing and the integrity tag.

A file is ``MAGIC | section count | section lengths | sections | tag`` where the
sections are a marshalled ``meta`` tuple, the body (the serialised object) and
the body's out-of-band pickle buffers, and ``tag`` is HMAC-SHA256 over
everything before it, keyed with the parent's random key. Nothing is
unpickled before the tag checks out.

Bodies are marshalled where the object is plain data (exact builtin types):
``marshal`` is built in, so a child with simple arguments never imports
``pickle``. Anything else is pickled with protocol 5, large buffers kept out of
band and large bytes written straight from the object, so a big payload is
never copied into an intermediate stream. Objects that refer to ``__main__``
or are otherwise not picklable by reference go through ``cloudpickle``, by
value, and only then is it imported (unpickling its output imports it in the
child the same way).

This module is on the child's start-up path: it imports only builtins.
"""

from __future__ import annotations

import marshal
import os
import stat
from _operator import _compare_digest  # what hmac.compare_digest is, without hmac

from ._errors import PayloadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Sequence, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]
    Decoded = Tuple[Any, memoryview, List[memoryview]]

MAGIC = b"GFPY\x01"
TAG_SIZE = 32
KEY_SIZE = 32
MARSHAL = "m"
PICKLE = "p"

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
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def new_key() -> bytes:
    """A fresh random key for a parent's payloads."""
    return os.urandom(KEY_SIZE)


def integrity_tag(key: bytes, chunks: Sequence[Buffer], total: int) -> bytes:
    """The tag of the concatenated ``chunks`` (``total`` bytes): HMAC-SHA256 under ``key``.

    Large files are cut into fixed segments whose SHA-256 digests are computed
    on all CPUs (hashlib releases the GIL); the HMAC then covers the length
    and the digest list, which binds every byte just as tightly.
    """
    if total < _PARALLEL:
        return hmac_sha256(key, chunks, total)
    digests = _segment_digests(chunks)
    return hmac_sha256(key, [_SEGMENTED, total.to_bytes(8, "little"), *digests], 0)


def hmac_sha256(key: bytes, chunks: Sequence[Buffer], total: int) -> bytes:
    """HMAC-SHA256 (RFC 2104) of the concatenated ``chunks``, ``total`` bytes long."""
    sha = _sha256_for(total)
    padded = key.ljust(64, b"\0")
    inner = sha(padded.translate(_pad_table(0x36)))
    for chunk in chunks:
        inner.update(chunk)
    outer = sha(padded.translate(_pad_table(0x5C)))
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def _segment_digests(chunks: Sequence[Buffer]) -> list[bytes]:
    import hashlib
    import threading

    from ._platform import usable_cpus

    segments: list[list[memoryview]] = [[]]
    room = _SEGMENT
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            piece = view[:room]
            segments[-1].append(piece)
            room -= len(piece)
            view = view[len(piece) :]
            if room == 0:
                segments.append([])
                room = _SEGMENT
    if not segments[-1]:
        segments.pop()
    digests = [b""] * len(segments)
    workers = max(1, min(usable_cpus(), len(segments), 8))

    def hash_every_nth(first: int) -> None:
        for i in range(first, len(segments), workers):
            sha = hashlib.sha256()
            for piece in segments[i]:
                sha.update(piece)
            digests[i] = sha.digest()

    threads = [threading.Thread(target=hash_every_nth, args=(i,)) for i in range(1, workers)]
    for thread in threads:
        thread.start()
    hash_every_nth(0)
    for thread in threads:
        thread.join()
    return digests


def _pad_table(pad: int) -> bytes:
    return bytes(x ^ pad for x in range(256))


def _sha256_for(total: int) -> Callable[[bytes], Any]:
    if total < _LARGE:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            try:
                from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
            except ImportError:  # an interpreter built without its own hashes
                from hashlib import sha256
        return sha256  # type: ignore[no-any-return,unused-ignore]
    import hashlib

    return hashlib.sha256


# --- serialisation -----------------------------------------------------------


def encode(obj: Any, *, main_is_shared: bool) -> tuple[str, list[Buffer], list[memoryview]]:
    """Serialise ``obj`` into (kind, body chunks, out-of-band buffers).

    Args:
        obj: what to send.
        main_is_shared: the receiver runs the sender's ``__main__`` (a re-run
            script), so objects from ``__main__`` may go by reference.

    Raises:
        PayloadError: ``obj`` cannot be pickled, even by value.
    """
    if _is_plain(obj):
        try:
            return MARSHAL, [marshal.dumps(obj)], []
        except ValueError:  # unmarshallable after all (a too-deep nesting)
            pass
    return _pickle(obj, main_is_shared)


def decode(kind: str, body: memoryview, buffers: Sequence[memoryview]) -> Any:
    """The object ``encode`` serialised; ``PayloadError`` if it will not load."""
    try:
        if kind == MARSHAL:
            return marshal.loads(body)
        import pickle

        return pickle.loads(body, buffers=buffers)
    except Exception as exc:
        raise PayloadError(f"could not unpickle: {type(exc).__name__}: {exc}") from exc


def dumps(obj: Any, *, main_is_shared: bool) -> bytes:
    """``encode`` into one buffer, for streams (the executor's pipes): kind byte + body."""
    return b"".join(dumps_parts(obj, main_is_shared=main_is_shared))


def dumps_parts(obj: Any, *, main_is_shared: bool) -> list[Buffer]:
    """``dumps`` as the pieces to write one after the other, big ones uncopied."""
    kind, chunks, buffers = encode(obj, main_is_shared=main_is_shared)
    if buffers:  # fold out-of-band buffers back in: a stream has no side channel
        kind, chunks = PICKLE, [_pickle_in_band(obj, main_is_shared)]
    return [kind.encode(), *chunks]


def loads(data: bytes | bytearray | memoryview) -> Any:
    """The object ``dumps`` serialised."""
    view = memoryview(data)
    return decode(chr(view[0]), view[1:], ())


def _pickle_in_band(obj: Any, main_is_shared: bool) -> bytes:
    import io
    import pickle

    out = io.BytesIO()
    pickler_class = pickle.Pickler if main_is_shared else _main_guard_pickler()
    try:
        pickler_class(out, protocol=5).dump(obj)
    except Exception:
        import cloudpickle  # type: ignore[import-untyped,unused-ignore]

        out = io.BytesIO()
        cloudpickle.Pickler(out, protocol=5).dump(obj)
    return out.getvalue()


def _is_plain(obj: Any) -> bool:
    """True where marshal round-trips ``obj`` exactly (builtin types, no subclasses)."""
    budget = _PLAIN_BUDGET
    stack = [obj]
    while stack:
        budget -= 1
        if budget < 0:
            return False  # too big to check cheaply, or cyclic: pickle knows best
        item = stack.pop()
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            if kind in (str, bytes) and len(item) > _BIG_SCALAR:
                return False  # pickle writes big ones uncopied; marshal would copy
            continue
        if kind in _PLAIN_CONTAINERS:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            return False
    return True


class _NeedsByValue(Exception):
    """Raised inside pickling when an object can only travel by value."""


class _Chunks(list):  # type: ignore[type-arg]
    """A pickle 'file' that keeps what it is given, uncopied."""

    write = list.append


def _pickle(obj: Any, main_is_shared: bool) -> tuple[str, list[Buffer], list[memoryview]]:
    import pickle

    pickler_class = pickle.Pickler if main_is_shared else _main_guard_pickler()
    chunks, buffers = _Chunks(), list[pickle.PickleBuffer]()
    try:
        pickler_class(chunks, protocol=5, buffer_callback=buffers.append).dump(obj)
    except Exception:
        # By reference failed (a lambda, a closure, something from __main__):
        # by value is the last resort.
        return _cloudpickle(obj)
    return PICKLE, list(chunks), [pickle.PickleBuffer(b).raw() for b in buffers]


def _cloudpickle(obj: Any) -> tuple[str, list[Buffer], list[memoryview]]:
    import pickle

    import cloudpickle  # type: ignore[import-untyped,unused-ignore]

    chunks, buffers = _Chunks(), list[pickle.PickleBuffer]()
    try:
        cloudpickle.Pickler(chunks, protocol=5, buffer_callback=buffers.append).dump(obj)
    except Exception as exc:
        raise PayloadError(
            f"cannot pickle {_describe(obj)}: {type(exc).__name__}: {exc}; "
            "pass picklable data (plain values, module-level functions and classes)"
        ) from exc
    return PICKLE, list(chunks), [pickle.PickleBuffer(b).raw() for b in buffers]


_guard_class: type | None = None


def _main_guard_pickler() -> type:
    """A Pickler that refuses (so we go by value) anything living in ``__main__``."""
    global _guard_class
    if _guard_class is None:
        import pickle

        class MainGuardPickler(pickle.Pickler):
            def reducer_override(self, obj: Any) -> Any:
                owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
                if getattr(owner, "__module__", None) == "__main__":
                    raise _NeedsByValue
                return NotImplemented

        _guard_class = MainGuardPickler
    return _guard_class


def _describe(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__} object"


# --- files -------------------------------------------------------------------


def write_file(
    path: str, key: bytes, meta: Any, body: Sequence[Buffer], buffers: Sequence[Buffer]
) -> None:
    """Write a new private (0600, O_EXCL, no symlinks) tagged file at ``path``."""
    meta_bytes = marshal.dumps(meta)
    body_views = [memoryview(chunk).cast("B") for chunk in body]
    lengths = [len(meta_bytes), sum(v.nbytes for v in body_views)]
    lengths += [memoryview(b).nbytes for b in buffers]
    head = MAGIC + len(lengths).to_bytes(4, "little")
    head += b"".join(n.to_bytes(8, "little") for n in lengths)
    chunks: list[Buffer] = [head, meta_bytes, *body_views, *buffers]
    tag = integrity_tag(key, chunks, len(head) + sum(lengths))
    fd = os.open(path, _OPEN_NEW, 0o600)
    try:
        for chunk in chunks:
            _write_all(fd, chunk)
        _write_all(fd, tag)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data).cast("B")
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
    try:
        fd = os.open(path, _OPEN_READ)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PayloadError(f"cannot open payload file {path!r}: {exc.strerror}") from exc
    try:
        if unlink:
            os.unlink(path)
        data = _read_private(fd, path)
    finally:
        os.close(fd)
    return _unframe(data, key, path)


def is_private(st: os.stat_result, is_kind: Callable[[int], bool]) -> bool:
    """True for a file of the right kind that only this user can reach."""
    return is_kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _read_private(fd: int, path: str) -> memoryview:
    st = os.fstat(fd)
    if not is_private(st, stat.S_ISREG):
        raise PayloadError(
            f"refusing payload file {path!r}: it must be a regular file owned by "
            f"uid {os.geteuid()} with mode 0600 (found uid {st.st_uid}, "
            f"mode {stat.filemode(st.st_mode)})"
        )
    if st.st_size >= _LARGE:
        import mmap

        # Map rather than read: no fresh copy of a big payload. Copy-on-write
        # keeps out-of-band buffers (numpy arrays) writable, as pickled.
        return memoryview(mmap.mmap(fd, st.st_size, access=mmap.ACCESS_COPY))
    data = bytearray(st.st_size)
    view = memoryview(data)
    with open(fd, "rb", buffering=0, closefd=False) as f:
        pos = 0
        while pos < len(data):
            n = f.readinto(view[pos:])
            if not n:
                break
            pos += n
    return view[:pos]


def _unframe(data: memoryview, key: bytes, path: str) -> Decoded:
    def corrupt(why: str) -> PayloadError:
        return PayloadError(f"payload file {path!r} failed its integrity check: {why}")

    if len(data) < len(MAGIC) + 4 + TAG_SIZE or data[: len(MAGIC)] != MAGIC:
        raise corrupt("not a goforkpy payload (bad header)")
    body_end = len(data) - TAG_SIZE
    expected = integrity_tag(key, [data[:body_end]], body_end)
    if not _compare_digest(expected, data[body_end:]):
        raise corrupt("the HMAC tag does not match (tampered, truncated or another key)")
    pos = len(MAGIC) + 4
    count = int.from_bytes(data[len(MAGIC) : pos], "little")
    sections = []
    offset = pos + 8 * count
    for i in range(count):
        length = int.from_bytes(data[pos + 8 * i : pos + 8 * i + 8], "little")
        sections.append(data[offset : offset + length])
        offset += length
    if count < 2 or offset != body_end:
        raise corrupt("section lengths do not add up")
    return marshal.loads(sections[0]), sections[1], sections[2:]
