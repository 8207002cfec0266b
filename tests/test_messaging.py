"""Messaging by pid: order, groups, early sends, errors, privacy, cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET

import goforkpy as fork
from goforkpy._coordination import messaging
from goforkpy._process import platform
from goforkpy._shared import tmpdir


def test_ten_thousand_messages_arrive_in_order() -> None:
    child = fork.fork("send_many", 10_000)
    got = [fork.receive(timeout=DEADLOCK_NET) for _ in range(10_000)]
    assert [m.data for m in got] == [str(i).encode() for i in range(10_000)]
    assert {m.pid for m in got} == {child.pid} and {m.group for m in got} == {"default"}
    assert child.result() == 10_000


def test_groups_are_separate_queues() -> None:
    child = fork.fork("send_groups")
    assert fork.receive("b", timeout=DEADLOCK_NET).data == b"b1"
    assert [fork.receive("a", timeout=DEADLOCK_NET).data for _ in range(2)] == [b"a1", b"a2"]
    child.result()


def test_a_message_sent_before_the_receiver_listens_waits_for_it() -> None:
    child = fork.fork("receive_then_reply", "early")
    fork.send(child.pid, "hello", group="early", timeout=DEADLOCK_NET)  # child may not listen yet
    reply = fork.receive("reply", timeout=DEADLOCK_NET)
    assert (reply.pid, reply.data) == (child.pid, b"HELLO")
    assert child.result() == "hello"


def test_big_messages_arrive_whole() -> None:
    size = 64 << 20
    child = fork.fork("send_big", size)
    message = fork.receive(timeout=DEADLOCK_NET)
    assert len(message.data) == size and message.data[:256] == bytes(range(256))
    child.result()


def test_sending_to_a_pid_that_does_not_exist() -> None:
    with pytest.raises(fork.IPCError, match="no such process"):
        fork.send(2**22 + 11, b"x", timeout=1)


def test_sending_to_a_process_that_never_receives() -> None:
    child = fork.fork("sleep_for", 300.0)
    with pytest.raises(fork.IPCError, match=r"did not call fork\.receive\(\)"):
        fork.send(child.pid, b"x", timeout=0.2)
    child.kill()


def test_receive_times_out() -> None:
    with pytest.raises(fork.TimeoutExpired, match="no message in group 'quiet'"):
        fork.receive("quiet", timeout=0.05)


@pytest.mark.parametrize(
    ("data", "group", "error"),
    [(123, "default", TypeError), ([b"x"], "default", TypeError), (b"x", 5, TypeError)],
)
def test_bad_messages_are_refused(data: object, group: object, error: type) -> None:
    with pytest.raises(error):
        fork.send(os.getpid(), data, group=group)  # type: ignore[arg-type]


def test_message_value() -> None:
    message = fork.Message(1, "g", b"x")
    assert message == fork.Message(1, "g", b"x") and message != fork.Message(2, "g", b"x")
    assert repr(message) == "Message(pid=1, group='g', data=b'x')"


def test_no_socket_files_left_after_processes_end() -> None:
    children = [fork.fork("receive_then_reply", "bye") for _ in range(3)]
    for child in children:
        fork.send(child.pid, b"x", group="bye", timeout=DEADLOCK_NET)
        assert fork.receive("reply", timeout=DEADLOCK_NET).pid == child.pid
        child.result()
    killed = fork.fork("receive_forever")
    fork.send(killed.pid, b"wake", group="other", timeout=DEADLOCK_NET)  # it listens now
    killed.kill()  # no chance to clean up after itself
    directory = tmpdir.payload_dir()
    pids = {c.pid for c in [*children, killed]}
    assert not [n for n in os.listdir(directory) if int(n.partition("-")[0]) in pids]


OTHER_USER = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused")
else:
    print("connected")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_another_user_cannot_connect() -> None:
    with pytest.raises(fork.TimeoutExpired):
        fork.receive("privacy", timeout=0.01)  # starts this process's inbox
    path = messaging.socket_path(os.getpid())
    assert Path(path).exists()
    out = subprocess.run(
        [sys.executable, "-c", OTHER_USER, path], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "refused"


def test_a_full_receiver_pushes_back_instead_of_dropping() -> None:
    with pytest.raises(fork.TimeoutExpired):
        fork.receive("flood", timeout=0.01)  # listening, but not reading
    sent, error = fork.run("flood", 2000, 64 << 10, 0.5)
    assert 1024 <= sent < 2000, "the queue holds its depth, then the sender waits"
    assert "queue for group 'flood' is full" in error
    received = [fork.receive("flood", timeout=DEADLOCK_NET) for _ in range(sent)]
    assert all(len(m.data) == 64 << 10 for m in received), "nothing dropped or cut"
    with pytest.raises(fork.TimeoutExpired):
        fork.receive("flood", timeout=0.05)


def test_one_full_group_does_not_block_the_others() -> None:
    with pytest.raises(fork.TimeoutExpired):
        fork.receive("a", timeout=0.01)  # listening, but group "a" is not read
    child = fork.fork("flood_then", 1100, "a", "b")
    assert fork.receive("b", timeout=DEADLOCK_NET).data == b"after the flood"
    assert len([fork.receive("a", timeout=DEADLOCK_NET) for _ in range(1100)]) == 1100
    assert child.result(DEADLOCK_NET) == 1100


PEER_CREDENTIALS = pytest.mark.skipif(
    not platform.NATIVE,
    reason="the portable layer has no SO_PEERCRED; macOS and the BSDs use LOCAL_PEERCRED",
)


@PEER_CREDENTIALS
def test_the_sender_pid_comes_from_the_kernel() -> None:
    with pytest.raises(fork.TimeoutExpired):
        fork.receive("forged", timeout=0.01)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(messaging.socket_path(os.getpid()))
        group = b"forged"
        hello = (1).to_bytes(8, "little") + len(group).to_bytes(2, "little") + group
        sock.sendall(hello + (2).to_bytes(8, "little") + b"hi")  # claims to be pid 1
        message = fork.receive("forged", timeout=DEADLOCK_NET)
    assert (message.pid, message.data) == (os.getpid(), b"hi")


FOREIGN_LISTENER = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
print("listening", flush=True)
sys.stdin.read()
"""


@PEER_CREDENTIALS
@pytest.mark.skipif(os.geteuid() != 0, reason="another user's listener needs root")
def test_a_socket_held_by_another_user_is_refused() -> None:
    """Another user's socket put where a receiver's belongs never gets our message."""
    base = os.path.dirname(tmpdir.payload_dir())  # the same file system: a rename moves it
    with tempfile.TemporaryDirectory(dir=base) as shared:
        os.chmod(shared, 0o777)  # where the other user can make its socket
        _refuse_foreign_socket(Path(shared) / "foreign.sock")


def _refuse_foreign_socket(foreign: Path) -> None:
    listener = subprocess.Popen(
        [sys.executable, "-c", FOREIGN_LISTENER, str(foreign)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = fork.spawn("read_line", stdin=fork.PIPE)
    try:
        assert listener.stdout is not None and listener.stdout.readline() == "listening\n"
        os.rename(foreign, messaging.socket_path(child.pid))
        with pytest.raises(fork.IPCError, match="held by uid 65534"):
            fork.send(child.pid, b"secret", timeout=DEADLOCK_NET)
    finally:
        listener.communicate("", timeout=DEADLOCK_NET)
        child.communicate(b"done\n", timeout=DEADLOCK_NET)
    child.result(DEADLOCK_NET)


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: fork.send(-1, b"x"), ValueError, "positive"),
        (lambda: fork.send("1", b"x"), TypeError, "pid"),
        (lambda: fork.send(os.getpid(), b"x", timeout=float("nan")), ValueError, "nan"),
        (lambda: fork.send(os.getpid(), b"x", timeout=-1), ValueError, ">= 0"),
        (lambda: fork.receive(timeout=float("nan")), ValueError, "nan"),
        (lambda: fork.receive(timeout=-2), ValueError, ">= 0"),
    ],
)
def test_odd_pids_and_timeouts_are_refused(call, error: type, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=text):
        call()


def test_order_holds_across_a_timed_out_send_and_the_next() -> None:
    """API.md section 7: the receiver stalls until the sender's sends time out; the
    sender goes on; every message arrives at most once, and none after a later one."""
    with pytest.raises(fork.TimeoutExpired):
        fork.receive("ordered", timeout=0.01)  # listening, but not reading yet
    count = 3000
    child = fork.spawn("send_through_timeouts", (count, 1024), stdout=fork.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"stalled\n"  # its queue and socket are full
    numbers = []
    while (data := fork.receive("ordered", timeout=DEADLOCK_NET).data) != b"end":
        numbers.append(int(data.split()[0]))
    timeouts = child.result(DEADLOCK_NET)
    child.stdout.close()
    assert timeouts >= 1
    assert numbers == sorted(set(numbers)), "in order, none twice"
    assert count - timeouts <= len(numbers) <= count
