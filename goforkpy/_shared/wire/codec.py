"""Turning objects into bytes and back, for payloads, results and the executor's streams.

Bodies are marshalled where the object is plain data (exact builtin types):
``marshal`` is built in, so a child with simple arguments never imports
``pickle``. Anything else is pickled with protocol 5, large buffers kept out of
band and large bytes written straight from the object, so a big payload is
never copied into an intermediate stream. Big ``bytes`` in plain data go out
of band too (kind ``BLOBS``), and the file reader reads each straight into the
``bytes`` object the receiver gets. Objects that refer to ``__main__`` or are
otherwise not picklable by reference go through ``cloudpickle``, by value, and
only then is it imported; open files and sockets are refused rather than
copied.

On the child's start-up path: it pickles with the C module ``_pickle`` itself
(``pickle`` would also import ``re``, ``struct`` and ``enum``, several
milliseconds in a fresh child).
"""

import marshal
import sys

from ..._errors import PayloadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence, Union

    Buffer = Union[bytes, bytearray, memoryview]

MARSHAL = "m"
PICKLE = "p"
BLOBS = "b"  # a pickle stream whose big bytes travel out of band
_PLAIN_BUDGET = 2_000  # containers bigger than this skip the marshal check
_BIG_SCALAR = 1 << 16
_PLAIN_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_PLAIN_CONTAINERS = frozenset({tuple, list, set, frozenset})


def encode(
    obj: "Any", *, main_is_shared: bool, blobs: bool = True
) -> "tuple[str, list[Buffer], list[memoryview]]":
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


def decode(kind: str, body: memoryview, buffers: "Sequence[Buffer]") -> "Any":
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


def dumps(obj: "Any", *, main_is_shared: bool) -> bytes:
    """``encode`` into one buffer, for streams (the executor's pipes): kind byte + body."""
    return b"".join(dumps_parts(obj, main_is_shared=main_is_shared))


def dumps_parts(obj: "Any", *, main_is_shared: bool, by_value: bool = False) -> "list[Buffer]":
    """``dumps`` as the pieces to write one after the other, big ones uncopied.

    ``by_value``: the sender knows ``obj`` holds what the receiver cannot import
    (a function of a ``__main__`` it does not run), so no other way is tried.
    """
    if by_value:
        kind, chunks, buffers = _cloudpickle(obj)
    else:
        kind, chunks, buffers = encode(obj, main_is_shared=main_is_shared, blobs=False)
    if buffers:  # fold out-of-band buffers back in: a stream has no side channel
        kind, chunks = PICKLE, [_pickle_in_band(obj, main_is_shared)]
    return [kind.encode(), *chunks]


def loads(data: "bytes | bytearray | memoryview") -> "Any":
    """The object ``dumps`` serialised."""
    view = memoryview(data)
    return decode(chr(view[0]), view[1:], ())


def _pickle_in_band(obj: "Any", main_is_shared: bool) -> bytes:
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


def _big_scalars(obj: "Any") -> "list[Any] | None":
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


def _pickle(obj: "Any", main_is_shared: bool) -> "tuple[str, list[Buffer], list[memoryview]]":
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


def os_handle_kind(obj: "Any") -> "str | None":
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


def _cloudpickle(obj: "Any") -> "tuple[str, list[Buffer], list[memoryview]]":
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


_handle_guard_class: "type | None" = None


def _handle_guard_pickler() -> type:
    """cloudpickle's Pickler, refusing open files and sockets instead of copying them."""
    global _handle_guard_class
    if _handle_guard_class is None:
        import cloudpickle  # type: ignore[import-untyped,unused-ignore]

        class HandleGuardPickler(cloudpickle.Pickler):  # type: ignore[misc,unused-ignore]
            def reducer_override(self, obj: "Any") -> "Any":
                kind = type(obj)
                if kind in _HANDLE_FREE or (
                    kind is _FunctionType and obj.__module__ in _REBUILDERS_MODULES
                ):
                    return NotImplemented  # pickle's own way, as cloudpickle's would
                if kind is _CodeType and obj.co_filename != _DYNAMIC:
                    # cloudpickle sends code as "<dynamic-code>": keep where it came
                    # from, for the child's tracebacks and coverage measurement
                    return _with_filename, (obj.replace(co_filename=_DYNAMIC), obj.co_filename)
                handle = None if kind in _NOT_HANDLES else os_handle_kind(obj)
                if handle is not None:
                    raise PayloadError(
                        f"cannot send {handle} ({obj!r}) to another process; pass its path, "
                        "address or data instead"
                    )
                return super().reducer_override(obj)

        _handle_guard_class = HandleGuardPickler
    return _handle_guard_class


_DYNAMIC = "<dynamic-code>"  # what cloudpickle names the file of code it sends


def _with_filename(code: "Any", filename: str) -> "Any":
    """In the child: the code object ``code``, back in the file it was written in."""
    return code.replace(co_filename=filename)


_CodeType = type(_with_filename.__code__)
_FunctionType = type(_with_filename)
# Exact types that hold no OS handle and that cloudpickle leaves to pickle: most of
# what a task is made of, let through without the handle check.
_HANDLE_FREE = _PLAIN_SCALARS | _PLAIN_CONTAINERS | {dict}
# Where the functions that rebuild a by-value object live (cloudpickle's and ours):
# always importable in the receiver, so pickled by name without cloudpickle's look.
_REBUILDERS_MODULES = frozenset({"cloudpickle.cloudpickle", __name__})
_NOT_HANDLES = frozenset({_FunctionType, _CodeType, type})


_guard_class: "type | None" = None


def _main_guard_pickler() -> type:
    """A Pickler that refuses (so we go by value) anything living in ``__main__``."""
    global _guard_class
    if _guard_class is None:
        import _pickle as pickle

        class MainGuardPickler(pickle.Pickler):
            def reducer_override(self, obj: "Any") -> "Any":
                owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
                if getattr(owner, "__module__", None) == "__main__":
                    raise _NeedsByValue
                return NotImplemented

        _guard_class = MainGuardPickler
    return _guard_class


def _pickle_with_blobs(
    obj: "Any", big_bytes: list[bytes]
) -> "tuple[str, list[Buffer], list[memoryview]]":
    import _pickle as pickle

    chunks, buffers = _Chunks(), list[pickle.PickleBuffer]()
    pickler = _blob_pickler()(chunks, protocol=5, buffer_callback=buffers.append)
    pickler.blobs = {id(item): item for item in big_bytes}
    pickler.seen = {}
    pickler.dump(obj)
    return BLOBS, list(chunks), [b.raw() for b in buffers]


_blob_classes: "tuple[type, type] | None" = None


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

            def persistent_id(self, obj: "Any") -> "Any":
                if id(obj) not in self.blobs:
                    return None
                if id(obj) in self.seen:
                    return self.seen[id(obj)]
                self.seen[id(obj)] = len(self.seen)
                return pickle.PickleBuffer(obj)

        class BlobUnpickler(pickle.Unpickler):
            loaded: list[bytes]

            def persistent_load(self, pid: "Any") -> bytes:
                if type(pid) is int and 0 <= pid < len(self.loaded):
                    return self.loaded[pid]
                if type(pid) not in (bytes, memoryview):
                    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.40}")
                blob = pid if type(pid) is bytes else bytes(pid)
                self.loaded.append(blob)
                return blob

        _blob_classes = BlobPickler, BlobUnpickler
    return _blob_classes


def _describe(obj: "Any") -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__} object"
