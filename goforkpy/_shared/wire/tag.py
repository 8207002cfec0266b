"""The integrity tag of payload and result files: HMAC-SHA256 with the parent's key.

A small file's tag is one HMAC pass over its name and contents. A big file
(``PARALLEL`` bytes or more) is hashed in fixed segments on all CPUs while it
is written or read (``Digests``), and its tag is the HMAC of its name, its
length and the list of segment digests, which binds every byte as tightly.
The name is part of every tag, so a file copied over another child's (or a
result over its payload) fails its check although the key is the same.

On the child's start-up path: builtins only, until a big file needs hashlib.
"""

import os

from ..._process import quiet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence, Union

    Buffer = Union[bytes, bytearray, memoryview]

TAG_SIZE = 32
KEY_SIZE = 32
# Below this size OpenSSL's load time outweighs its speed: hash with the
# interpreter's built-in SHA-256; above it, with hashlib's (OpenSSL, SHA-NI).
LARGE = 1 << 20
# Files past PARALLEL are tagged segment by segment, on all CPUs.
PARALLEL = 8 << 20
_SEGMENT = 4 << 20
_SEGMENTED = b"goforkpy segmented v1"


def new_key() -> bytes:
    """A fresh random key for a parent's payloads."""
    return os.urandom(KEY_SIZE)


def segmented_tag(key: bytes, name: bytes, total: int, digests: list[bytes]) -> bytes:
    """The tag of a file of ``PARALLEL`` bytes or more, from its segments' digests.

    The HMAC covers the file's name, its length and the list of the segments'
    SHA-256 digests (see ``Digests``), which binds every byte just as
    tightly as one pass.
    """
    return hmac_sha256(key, [_SEGMENTED, name, total.to_bytes(8, "little"), *digests], 0)


def bound_name(path: str) -> bytes:
    """What ties a tag to its file: the name, unique per child and direction.

    A file copied over another child's (or its result over its payload)
    fails its check, though both were tagged with the same key.
    """
    return os.path.basename(path).encode() + b"\0"


def hmac_sha256(key: bytes, chunks: "Sequence[Buffer]", total: int) -> bytes:
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


class Digests:
    """The SHA-256 digests of a file's fixed ``_SEGMENT``-byte segments.

    Helper threads (one fewer than the usable CPUs) start hashing at once, so
    the caller can write or read the file meanwhile; ``finish`` then has the
    caller hash what is left. hashlib releases the GIL, so this runs on all CPUs.
    """

    def __init__(self, count: int, digest_of: "Callable[[int], bytes]") -> None:
        import threading

        from ..._process.platform import usable_cpus

        self._digest_of = digest_of
        self._todo = iter(range(count))
        self._lock = threading.Lock()
        self._digests = [b""] * count
        self._error: BaseException | None = None
        helpers = max(0, min(usable_cpus() - 1, count, 7))
        self._helpers = [threading.Thread(target=self._work, daemon=True) for _ in range(helpers)]
        try:
            for helper in self._helpers:
                quiet.start(helper.start)
        except RuntimeError:  # no new threads at interpreter shutdown: hash alone
            self._helpers = [helper for helper in self._helpers if helper.ident is not None]

    @classmethod
    def of_chunks(cls, chunks: "Sequence[Buffer]", total: int) -> "Digests":
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
    def of_file(cls, fd: int, total: int) -> "Digests":
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


_small_sha256: "Callable[[bytes], Any] | None" = None


def load_hash() -> None:
    """Find now the hash a small tag needs, for a process that is about to fork (an
    import after the fork could wait for ever on a lock another thread held)."""
    _sha256_for(0)


def _sha256_for(total: int) -> "Callable[[bytes], Any]":
    global _small_sha256
    if total >= LARGE:
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
