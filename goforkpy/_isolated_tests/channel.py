"""What an isolated test's child sends pytest: its reports, warnings and coverage.

Each is a record, sent two ways, for two endings::

    child (the test's process)                  pytest
    --------------------------                  ------
    each record as it is made -- frames ---->   the stream file: read only when the
      (keyed: a crash leaves what came            child did not end normally (a crash,
       before, garbage stops the reading)         a timeout)
    all records, at the end   -- result ---->   the child's result, on goforkpy's own
                                                  channel: read when it ended normally

A test runs in the same process as the sender, so nothing can stop a test
that means to forge its reports; what this stops is the accident. A frame
carries a keyed hash (the key is made for each test before the fork), so a
byte the test writes into the stream file ends the reading there; a write
to a descriptor the test closed and reopened as its own file is not made
(the stream's file is checked before each write); and pytest checks that
the child sent every phase a test has (``missing_phases``).

Records: ``(PHASE, data)`` for a phase's report (set-up, call, teardown),
``(REPORT, data)`` for any other report the test logs (subtests),
``(WARNING, fields)`` for each warning it raised, and ``(COVERAGE, data)``
for the lines it ran under coverage.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import warnings
from typing import Any

PHASE, REPORT, WARNING, COVERAGE = "phase", "report", "warning", "coverage"

Record = tuple[str, Any]

_MAGIC = b"GFPR"
_HEADER = struct.Struct(">4sI16s")  # magic, length of the payload, its keyed hash
_LARGEST = 1 << 30  # a length past this is garbage, not a record


def new_key() -> bytes:
    """A key for one test's stream, made in pytest before the fork."""
    return os.urandom(16)


def _digest(key: bytes, payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=key, digest_size=16).digest()


class Stream:
    """The child's end: appends framed records to ``path``, a file only pytest and this
    test's process know of."""

    def __init__(self, path: str, key: bytes, plain: bool = False) -> None:
        self._key, self._plain = key, plain  # plain: a sandboxed test's (no pickles)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        stat = os.fstat(self._fd)
        self._identity = (stat.st_dev, stat.st_ino)

    def send(self, record: Record) -> None:
        if self._fd is None:
            return
        payload = _plain(record) if self._plain else _pickled(record)
        frame = _HEADER.pack(_MAGIC, len(payload), _digest(self._key, payload)) + payload
        try:
            stat = os.fstat(self._fd)
            if (stat.st_dev, stat.st_ino) != self._identity:
                raise OSError("the test closed the stream and reused its descriptor")
            view = memoryview(frame)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._fd = None  # the test closed it: the records still come in the result


def read_stream(path: str, key: bytes, plain: bool = False) -> list[Record]:
    """The records the child framed into ``path``, up to the first that is cut short or
    that the child did not write (a crash, or bytes the test wrote there); ``plain``:
    a sandboxed test's, decoded as plain data only."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []  # the child ended before it opened it
    records: list[Record] = []
    at = 0
    while at + _HEADER.size <= len(data):
        magic, length, digest = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if magic != _MAGIC or length > _LARGEST or len(payload) != length:
            break
        if _digest(key, payload) != digest:
            break
        try:
            record = _from_plain(payload) if plain else pickle.loads(payload)
        except Exception:
            break
        if checked([record]) is None:
            break
        records.append(record)
        at += _HEADER.size + length
    return records


def _pickled(record: Record) -> bytes:
    try:
        return pickle.dumps(record)
    except Exception:  # a user property that does not pickle travels as its repr
        kind, data = record
        if kind not in (PHASE, REPORT):
            raise
        properties = [(name, repr(value)) for name, value in data.get("user_properties", ())]
        return pickle.dumps((kind, {**data, "user_properties": properties}))


def _plain(record: Record) -> bytes:
    from .._sandbox import plain

    return plain.encode(plainly(record))


def _from_plain(payload: bytes) -> Any:
    from .._sandbox import plain

    return plain.decode(payload)


_PLAIN = (type(None), bool, int, float, str, bytes)


def plainly(value: Any) -> Any:
    """``value`` as plain data: containers kept, any other object as its ``repr`` (what
    a report carries is for showing)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {str(key): plainly(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(plainly(item) for item in value)
    return repr(value)


def checked(value: object) -> list[Record] | None:
    """The child's result, if it is the list of records it should be."""
    if not isinstance(value, list):
        return None
    for record in value:
        if not (isinstance(record, tuple) and len(record) == 2 and isinstance(record[0], str)):
            return None
    return value


def warning(fields: dict[str, Any]) -> warnings.WarningMessage:
    """A warning the child sent, rebuilt; one whose category did not travel (a class
    made in a function, say) gets a stand-in of the same name."""
    message, category = fields["message"], fields.get("category")
    if category is None:
        base = fields["base"]
        if isinstance(base, str):  # a sandboxed test's: a built-in category, by name
            import builtins

            found = getattr(builtins, base, Warning)
            base = found if isinstance(found, type) and issubclass(found, Warning) else Warning
        category = type(fields["name"], (base,), {})
        message = category(message)
    return warnings.WarningMessage(
        message, category, fields["filename"], fields["lineno"], None, fields["line"]
    )


def missing_phases(records: list[Record], setup_only: bool) -> list[str]:
    """The phases of a test whose report is not among ``records``: set-up and teardown
    always, the call where the set-up passed (and ``--setup-only`` is not given)."""
    phases = {data["when"]: data for kind, data in records if kind == PHASE}
    expected = ["setup"]
    setup = phases.get("setup")
    if setup is not None and setup["outcome"] == "passed" and not setup_only:
        expected.append("call")
    expected.append("teardown")
    return [when for when in expected if when not in phases]
