"""Payload files: the integrity tag, privacy checks, the private directory, sweeping."""

from __future__ import annotations

import hmac
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from goforkpy import PayloadError
from goforkpy._shared import tmpdir, wire


@pytest.mark.parametrize("size", [0, 100, 5 << 20], ids=["empty", "small", "large"])
def test_hmac_matches_the_standard_library(size: int) -> None:
    key, data = os.urandom(32), os.urandom(size)
    chunks = [data[: size // 3], data[size // 3 :]]
    assert wire.hmac_sha256(key, chunks, size) == hmac.new(key, data, "sha256").digest()


def _write(path: Path, key: bytes, obj: object) -> str:
    kind, body, buffers = wire.encode(obj, main_is_shared=True)
    wire.write_file(str(path), key, ("meta", kind), body, buffers)
    return kind


def _read(path: Path, key: bytes) -> object:
    (_, kind), body, buffers = wire.read_file(str(path), key, unlink=True)
    return wire.decode(kind, body, buffers)


class Shared:
    """Pickles its buffer out of band and keeps what it is given back, uncopied."""

    def __init__(self, data: object) -> None:
        self.view = memoryview(data)  # type: ignore[arg-type]

    def __reduce_ex__(self, protocol: object) -> object:
        return Shared, (pickle.PickleBuffer(self.view),)


HUGE = 9 << 20  # past the size where files are tagged on all CPUs


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"plain": [1, 2.5, None, b"x", "y"]}, wire.MARSHAL),
        ({"big": b"z" * (1 << 17), "text": "t" * (1 << 17)}, wire.BLOBS),
        ({"huge": os.urandom(HUGE), "and": [b"y" * (2 << 20)]}, wire.BLOBS),
        ({"mutable": bytearray(b"q" * 1000)}, wire.PICKLE),
        ({"custom": PayloadError("travels by pickle")}, wire.PICKLE),
        ({"custom": PayloadError("x"), "big": b"b" * HUGE}, wire.PICKLE),
    ],
    ids=["marshal", "blobs", "huge-blobs", "out-of-band", "pickle", "huge-in-band"],
)
def test_write_then_read(tmp_path: Path, obj: object, kind: str) -> None:
    key = wire.new_key()
    assert _write(tmp_path / "f", key, obj) == kind
    assert os.stat(tmp_path / "f").st_mode & 0o777 == 0o600
    back = _read(tmp_path / "f", key)
    assert not (tmp_path / "f").exists()
    assert type(back) is dict and back.keys() == obj.keys()  # type: ignore[attr-defined]
    assert repr(back) == repr(obj)


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(FileExistsError):
        _write(tmp_path / "f", wire.new_key(), 1)
    assert (tmp_path / "f").read_bytes() == b""


def test_a_blob_met_twice_arrives_once() -> None:
    blob = os.urandom(1 << 17)
    kind, body, buffers = wire.encode([blob, {"again": blob}], main_is_shared=True)
    assert kind == wire.BLOBS and len(buffers) == 1
    back = wire.decode(kind, memoryview(b"".join(body)), [bytes(buffers[0])])
    assert back == [blob, {"again": blob}] and back[0] is back[1]["again"]


@pytest.mark.parametrize("size", [1000, HUGE], ids=["small-file", "large-file"])
def test_out_of_band_buffers_arrive_writable_and_blobs_as_bytes(tmp_path: Path, size: int) -> None:
    key = wire.new_key()
    blob = os.urandom(size)
    _write(tmp_path / "f", key, [Shared(bytearray(size)), blob])
    shared, back = _read(tmp_path / "f", key)  # type: ignore[misc]
    assert not shared.view.readonly and shared.view.nbytes == size
    shared.view[0] = 1  # copy-on-write: the receiver may write to it
    assert back == blob and type(back) is bytes


@pytest.mark.parametrize("size", [100, HUGE], ids=["small-file", "large-file"])
@pytest.mark.parametrize(
    ("damage", "text"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "do not add up"),
        (lambda p: p.write_bytes(p.read_bytes()[:20]), "integrity"),
        (lambda p: p.write_bytes(b"nonsense" * 10), "bad header"),
        (lambda p: _flip(p, -40), "HMAC"),
        (lambda p: _flip(p, -1), "HMAC"),
        (lambda p: _flip(p, 20), "do not add up"),
        (lambda p: os.chmod(p, 0o644), "mode 0600"),
    ],
    ids=["truncated", "cut-short", "not-a-payload", "data", "tag", "lengths", "exposed"],
)
def test_damaged_or_exposed_files_are_refused(tmp_path: Path, damage, text: str, size: int) -> None:  # type: ignore[no-untyped-def]
    key = wire.new_key()
    path = tmp_path / "f"
    _write(path, key, [b"\x01" * size])
    damage(path)
    with pytest.raises(PayloadError, match=text):
        wire.read_file(str(path), key, unlink=False)


def _flip(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 1
    path.write_bytes(bytes(data))


def test_another_key_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "f", wire.new_key(), "secret")
    with pytest.raises(PayloadError, match="HMAC"):
        wire.read_file(str(tmp_path / "f"), wire.new_key(), unlink=False)


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    key = wire.new_key()
    _write(tmp_path / "real", key, 1)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(PayloadError, match="cannot open"):
        wire.read_file(str(tmp_path / "link"), key, unlink=False)


def test_directory_is_private_and_configurable(tmp_path: Path, use_base) -> None:  # type: ignore[no-untyped-def]
    use_base(tmp_path)
    directory = Path(tmpdir.payload_dir())
    assert directory.parent == tmp_path and directory.stat().st_mode & 0o777 == 0o700


def test_a_missing_base_is_refused(tmp_path: Path, use_base) -> None:  # type: ignore[no-untyped-def]
    use_base(tmp_path / "missing")
    with pytest.raises(PayloadError, match="is not a directory"):
        tmpdir.payload_dir()


def test_files_of_dead_parents_are_swept(tmp_path: Path, use_base) -> None:  # type: ignore[no-untyped-def]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    use_base(tmp_path)
    private = tmp_path / f"goforkpy-{os.geteuid()}"
    private.mkdir(0o700)
    (private / f"{dead_pid}-abc.in").write_bytes(b"left by a killed parent")
    (private / f"{os.getppid()}-def.in").write_bytes(b"a live parent's")
    scratch = private / f"{dead_pid}-ghi.sandbox"  # a sandboxed child's, with what it made
    (scratch / "deeper").mkdir(parents=True)
    (scratch / "deeper" / "file").write_bytes(b"x")
    (scratch / "link").symlink_to(tmp_path)  # removed, never followed
    tmpdir.payload_dir()
    assert sorted(p.name for p in private.iterdir()) == [f"{os.getppid()}-def.in"]
    assert tmp_path.exists()


def _holding(handle: object) -> list[object]:
    """Functions that reach ``handle`` the ways a function sent by value can."""

    def in_a_cell() -> object:
        return handle

    def in_a_default(x: object = {"deep": [(handle,)]}) -> object:
        return x

    return [in_a_cell, in_a_default, lambda: [handle], [{"f": in_a_cell}]]


class _FileOfOurOwn(io.FileIO):
    """A subclass of an open file: still an open file."""


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        pytest.param(lambda: open(os.devnull, "rb"), "an open file", id="file"),  # noqa: SIM115
        pytest.param(lambda: _FileOfOurOwn(os.devnull), "an open file", id="file-subclass"),
        pytest.param(__import__("socket").socket, "a socket", id="socket"),
    ],
)
def test_a_handle_anywhere_in_what_goes_by_value_is_refused(make, kind: str) -> None:  # type: ignore[no-untyped-def]
    with make() as handle:
        for obj in _holding(handle):
            with pytest.raises(PayloadError, match=f"cannot send {kind}"):
                wire.dumps(obj, main_is_shared=False)


def test_what_goes_by_value_keeps_its_behaviour_and_its_file() -> None:
    scale = 3

    def scaled(x: int) -> tuple[int, str]:
        return x * scale, scaled.__code__.co_filename

    back = wire.loads(wire.dumps((scaled, [((2,), {})]), main_is_shared=False))
    assert back[0](2) == (6, __file__) and back[1] == [((2,), {})]
