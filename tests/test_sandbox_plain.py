"""Plain data from a sandboxed child (``goforkpy._sandbox.plain``): what may come back
comes back equal, and nothing that comes back runs code in the parent."""

from __future__ import annotations

import datetime
import decimal
import fractions
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import goforkpy as fork
from goforkpy._sandbox import plain

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    # past int <-> str's digit limit would break hypothesis's own reports: one example
    # below goes past it
    | st.integers(min_value=-(10**4000), max_value=10**4000)
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
    | st.binary().map(bytearray)
    | st.datetimes()
    | st.datetimes(timezones=st.timezones())
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals(allow_nan=False)
    | st.fractions()
    | st.uuids()
)
HASHABLE = st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.uuids()
PLAIN = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner)
        | st.lists(inner).map(tuple)
        | st.dictionaries(HASHABLE, inner)
        | st.sets(HASHABLE)
        | st.frozensets(HASHABLE)
    ),
    max_leaves=30,
)


@given(PLAIN)
@example(-(10**5000))
@example(datetime.datetime(1999, 4, 4, 2, 0, tzinfo=zoneinfo.ZoneInfo("America/Boise")))
@example(datetime.datetime(2021, 11, 7, 1, 30, 0, 0, zoneinfo.ZoneInfo("America/New_York"), fold=1))
def test_plain_data_comes_back_equal(value: Any) -> None:
    """A datetime in a zone keeps its zone (by name) and fold: in a gap or a fold, one
    with a fixed offset instead would not be equal to it."""
    back = plain.decode(plain.encode(value))
    assert back == value and type(back) is type(value)


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_value_or_a_payload_error(data: bytes) -> None:
    try:
        plain.decode(data)
    except fork.PayloadError:
        pass


def test_numpy_arrays_travel_without_pickles() -> None:
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(12, dtype="float32").reshape(3, 4)
    back = plain.decode(plain.encode({"array": array}))["array"]
    assert back.dtype == array.dtype and (back == array).all()
    with pytest.raises(fork.PayloadError, match="objects"):
        plain.encode(numpy.array([object()], dtype=object))


class Written:
    """Writes a file in the process that unpickles it: what a hostile result would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(self.path), "the sender's code ran here"))


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_an_instance_comes_back_only_where_its_class_is_allowed(tmp_path: Path) -> None:
    hostile = tmp_path / "written"
    data = plain.encode({"result": Written(str(hostile))})
    with pytest.raises(fork.PayloadError, match=r"test_sandbox_plain\.Written.*Sandbox"):
        plain.decode(data)
    assert not hostile.exists(), "its __reduce__ never ran"
    assert plain.decode(plain.encode(Point(1, 2)), allowed=[Point]) == Point(1, 2)
    with pytest.raises(fork.PayloadError, match="Point, which is not plain data"):
        plain.decode(plain.encode(Point(1, 2)))


def test_a_payload_past_the_limit_is_refused_unread() -> None:
    data = plain.encode(b"x" * 1000)
    with pytest.raises(fork.PayloadError, match="past the limit of 100"):
        plain.decode(data, limit=100)
    assert plain.decode(data, limit=2000) == b"x" * 1000


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"l" + (10**15).to_bytes(8, "little"), "cut short"),  # a huge count, no items
        (b"s" + (1 << 62).to_bytes(8, "little") + b"abc", "cut short"),
        (b"l\x01" + bytes(7) + b"?", "tag"),
        (b"NN", "past its end"),
        (b"l\x01" + bytes(7), "cut short"),
        (b"d\x01" + bytes(7) + b"l" + bytes(8) + b"N", "malformed"),  # a list as a key
    ],
)
def test_malformed_payloads_are_payload_errors(data: bytes, words: str) -> None:
    with pytest.raises(fork.PayloadError, match=words):
        plain.decode(data)


def test_too_deep_is_refused_both_ways() -> None:
    deep: Any = []
    for _ in range(plain.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(fork.PayloadError, match="deeper"):
        plain.encode(deep)
    data = b"l\x01" + bytes(7)
    with pytest.raises(fork.PayloadError, match="deeper"):
        plain.decode(data * (plain.MAX_DEPTH + 5) + b"N")


def test_other_types_are_named() -> None:
    import threading

    # refused as it is sent (Python < 3.11: no state to send) or as it comes back
    with pytest.raises(fork.PayloadError, match=r"_thread\.lock.*not plain data"):
        plain.decode(plain.encode({"lock": threading.Lock()}))
    assert plain.decode(plain.encode(datetime.timedelta(days=-1, seconds=5))) == (
        datetime.timedelta(days=-1, seconds=5)
    )
    assert plain.decode(plain.encode(decimal.Decimal("1.10"))) == decimal.Decimal("1.10")
    assert plain.decode(plain.encode(fractions.Fraction(-3, 4))) == fractions.Fraction(-3, 4)
    assert plain.decode(plain.encode(uuid.UUID(int=5))) == uuid.UUID(int=5)


@pytest.mark.parametrize("key", [b"../../etc/passwd", b"America", b"/etc/localtime", b""])
def test_a_zone_that_is_no_zone_is_refused(key: bytes) -> None:
    zoned = b"z" + plain._sized(b"", b"2000-01-01T00:00:00") + plain._sized(b"", key) + b"0"
    with pytest.raises(fork.PayloadError, match="which is no time zone here"):
        plain.decode(zoned)
