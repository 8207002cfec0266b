"""Plain data across a trust boundary: what a sandboxed child sends, decoded without
running its code.

pickle rebuilds objects by calling what the data names, so a result's
``__reduce__`` would run in the parent. This format names no callable: each
value is a one-byte tag and its contents, and the decoder builds only the
types a sandbox sends back (``None``, ``bool``, ``int``, ``float``,
``complex``, ``str``, ``bytes``, ``bytearray``, ``list``, ``tuple``, ``dict``,
``set``, ``frozenset``, ``datetime``'s ``date``, ``time``, ``datetime`` and
``timedelta``, ``Decimal``, ``Fraction``, ``UUID``, numpy arrays of
non-object dtypes through ``numpy.lib.format`` with pickles refused) and the
classes the caller allows, rebuilt from their plain state. A payload larger
than the caller's limit, nested deeper than ``MAX_DEPTH``, cut short or
malformed is a ``PayloadError``; decoding never raises anything else.

    encode(value) -> bytes                       (in the child)
    decode(data, allowed=(), limit=...) -> value (in the parent)
"""

from __future__ import annotations

import struct

from .._errors import PayloadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

KIND = "s"  # how wire names a body in this format (a sandboxed child's result)
MAX_DEPTH = 200
_LENGTH = struct.Struct("<Q")
_FLOAT = struct.Struct("<d")


def encode(value: Any) -> bytes:
    """``value`` as plain data; ``PayloadError`` names the first value of another type
    (an instance of a class the caller may allow is sent by its plain state)."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _sized(tag: bytes, data: bytes) -> bytes:
    return tag + _LENGTH.pack(len(data)) + data


def _encode(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise PayloadError(f"the value is nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if value is None or kind is bool:
        out.append({None: b"N", True: b"T", False: b"F"}[value])
    elif kind is int:
        out.append(_sized(b"i", value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)))
    elif kind is float:
        out.append(b"f" + _FLOAT.pack(value))
    elif kind is complex:
        out.append(b"c" + _FLOAT.pack(value.real) + _FLOAT.pack(value.imag))
    elif kind is str:
        out.append(_sized(b"s", value.encode("utf-8", "surrogatepass")))
    elif kind in (bytes, bytearray):
        out.append(_sized(b"b" if kind is bytes else b"B", bytes(value)))
    elif kind in _CONTAINERS:
        items = [x for pair in value.items() for x in pair] if kind is dict else list(value)
        out.append(_CONTAINERS[kind] + _LENGTH.pack(len(items)))
        for item in items:
            _encode(item, out, depth + 1)
    else:
        out.append(_encode_other(value))


_CONTAINERS: dict[type, bytes] = {list: b"l", tuple: b"t", dict: b"d", set: b"S", frozenset: b"Z"}


def _encode_other(value: Any) -> bytes:
    """The types of the standard library's and numpy's the format carries, and an
    instance by its plain state (``__getstate__``, or its ``__dict__``)."""
    import datetime
    import decimal
    import fractions
    import uuid

    if isinstance(value, datetime.datetime) and type(value) is datetime.datetime:
        key = getattr(value.tzinfo, "key", None)
        if type(value.tzinfo).__module__ == "zoneinfo" and isinstance(key, str):
            naive = value.replace(tzinfo=None).isoformat()  # in a zone: its name travels
            return (
                b"z" + _sized(b"", naive.encode()) + _sized(b"", key.encode()) + b"%d" % value.fold
            )
        return _sized(b"D", _timestamp(value).encode())
    if type(value) is datetime.date:
        return _sized(b"y", value.isoformat().encode())
    if type(value) is datetime.time:
        return _sized(b"h", _timestamp(value).encode())
    if type(value) is datetime.timedelta:
        return b"m" + struct.pack("<qqq", value.days, value.seconds, value.microseconds)
    if type(value) is decimal.Decimal:
        return _sized(b"e", str(value).encode())
    if type(value) is fractions.Fraction:
        return _sized(b"q", f"{value.numerator}/{value.denominator}".encode())
    if type(value) is uuid.UUID:
        return b"u" + value.bytes
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        return _sized(b"a", _array_bytes(value))
    return _instance(value)


def _timestamp(value: Any) -> str:
    """ISO form, with a fixed UTC offset where it has a time zone (a zone's rules do
    not travel: its offset at that moment does)."""
    offset = value.utcoffset()
    if offset is None:
        return str(value.isoformat())
    import datetime

    fixed = value.replace(tzinfo=datetime.timezone(offset))
    return str(fixed.isoformat())


def _array_bytes(array: Any) -> bytes:
    import io

    from numpy.lib import format as npformat

    if array.dtype.hasobject:
        raise PayloadError("a numpy array of Python objects cannot be sent as plain data")
    out = io.BytesIO()
    npformat.write_array(out, array, allow_pickle=False)
    return out.getvalue()


def _instance(value: Any) -> bytes:
    cls = type(value)
    try:
        state = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
        body = encode({} if state is None else state)
    except (PayloadError, TypeError) as exc:
        raise PayloadError(f"a {_named(cls)} holds what is not plain data: {exc}") from None
    name = _named(cls).encode()
    return b"o" + _LENGTH.pack(len(name)) + name + _LENGTH.pack(len(body)) + body


def _named(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- decoding ----------------------------------------------------------------------


def decode(data: bytes, allowed: Iterable[type] = (), limit: int | None = None) -> Any:
    """The value ``encode`` made, built without running the sender's code: instances
    only of ``allowed`` classes, rebuilt from their plain state.

    Raises:
        PayloadError: larger than ``limit`` bytes, malformed, cut short, too deep, or
            naming a class not allowed (named in the error).
    """
    if limit is not None and len(data) > limit:
        raise PayloadError(f"{len(data)} bytes, past the limit of {limit}: refused unread")
    reader = _Reader(memoryview(data), {_named(cls): cls for cls in allowed})
    try:
        value = reader.value(0)
    except PayloadError:
        raise
    except Exception as exc:  # a malformed payload, whatever it broke: never anything else
        raise PayloadError(f"a malformed payload ({type(exc).__name__}: {exc})") from None
    if reader.at != len(data):
        raise PayloadError("a malformed payload (bytes past its end)")
    return value


class _Reader:
    def __init__(self, data: memoryview, allowed: dict[str, Any]) -> None:
        self.data, self.at, self.allowed = data, 0, allowed

    def take(self, size: int) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise PayloadError("a payload cut short")
        taken = bytes(self.data[self.at : self.at + size])
        self.at += size
        return taken

    def length(self) -> int:
        (size,) = _LENGTH.unpack(self.take(8))
        if size > len(self.data) - self.at and size > 0:
            raise PayloadError("a payload cut short")
        return int(size)

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise PayloadError(f"a payload nested deeper than {MAX_DEPTH} levels")
        tag = self.take(1)
        if tag in _SCALARS:
            return _SCALARS[tag]
        if tag in _SIZED:
            return _SIZED[tag](self.take(self.length()))
        if tag == b"f":
            return _FLOAT.unpack(self.take(8))[0]
        if tag == b"c":
            return complex(*struct.unpack("<dd", self.take(16)))
        if tag in _MADE:
            count = self.length()
            items = [self.value(depth + 1) for _ in range(count)]  # a dict's: keys, values
            if tag == b"d":
                return dict(zip(items[::2], items[1::2], strict=False))
            return _MADE[tag](items)
        if tag == b"m":
            import datetime

            return datetime.timedelta(*struct.unpack("<qqq", self.take(24)))
        if tag == b"u":
            import uuid

            return uuid.UUID(bytes=self.take(16))
        if tag == b"z":
            return self.zoned()
        if tag == b"o":
            return self.instance(depth)
        raise PayloadError(f"a malformed payload (tag {tag!r})")

    def zoned(self) -> Any:
        """A datetime in a zone of the time zone database, rebuilt by the zone's name (a
        name that is no zone, or a path, is refused)."""
        import datetime
        import zoneinfo

        naive = datetime.datetime.fromisoformat(self.take(self.length()).decode())
        key, fold = self.take(self.length()).decode(), self.take(1)
        if fold not in (b"0", b"1"):
            raise PayloadError("a malformed payload (a datetime's fold)")
        try:
            zone = zoneinfo.ZoneInfo(key)
        except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
            raise PayloadError(f"a datetime in {key!r}, which is no time zone here") from None
        return naive.replace(tzinfo=zone, fold=int(fold))

    def instance(self, depth: int) -> Any:
        name = self.take(self.length()).decode()
        cls = self.allowed.get(name)
        if cls is None:
            raise PayloadError(
                f"the result holds a {name}, which is not plain data; name the class in "
                "Sandbox(results=[...]) to have it rebuilt here"
            )
        state = _Reader(memoryview(self.take(self.length())), self.allowed).value(depth + 1)
        obj = cls.__new__(cls)
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj


def _datetime(text: bytes) -> Any:
    import datetime

    return datetime.datetime.fromisoformat(text.decode())


def _date(text: bytes) -> Any:
    import datetime

    return datetime.date.fromisoformat(text.decode())


def _time(text: bytes) -> Any:
    import datetime

    return datetime.time.fromisoformat(text.decode())


def _decimal(text: bytes) -> Any:
    import decimal

    return decimal.Decimal(text.decode())


def _fraction(text: bytes) -> Any:
    import fractions

    numerator, denominator = text.decode().split("/")
    return fractions.Fraction(int(numerator), int(denominator))


def _array(data: bytes) -> Any:
    import io

    from numpy.lib import format as npformat

    return npformat.read_array(io.BytesIO(data), allow_pickle=False)


_SCALARS: dict[bytes, Any] = {b"N": None, b"T": True, b"F": False}
_SIZED: dict[bytes, Any] = {
    b"i": lambda data: int.from_bytes(data, "little", signed=True),
    b"s": lambda data: data.decode("utf-8", "surrogatepass"),
    b"b": bytes,
    b"B": bytearray,
    b"D": _datetime,
    b"y": _date,
    b"h": _time,
    b"e": _decimal,
    b"q": _fraction,
    b"a": _array,
}
_MADE: dict[bytes, Any] = {b"l": list, b"t": tuple, b"d": dict, b"S": set, b"Z": frozenset}
