"""Functions whose children send and receive messages."""

from __future__ import annotations

import threading

import goforkpy as fork


@fork.register
def send_many(count: int, group: str = "default") -> int:
    parent = fork.ppid()
    assert parent is not None
    for i in range(count):
        fork.send(parent, f"{i}", group=group)
    return count


@fork.register
def send_groups() -> None:
    parent = fork.ppid()
    assert parent is not None
    fork.send(parent, b"a1", group="a")
    fork.send(parent, b"b1", group="b")
    fork.send(parent, b"a2", group="a")


@fork.register
def send_big(size: int) -> None:
    parent = fork.ppid()
    assert parent is not None
    fork.send(parent, bytes(range(256)) * (size // 256))


@fork.register
def receive_then_reply(group: str) -> str:
    message = fork.receive(group, timeout=60)
    fork.send(message.pid, message.data.upper(), group="reply")
    return message.data.decode()


@fork.register
def receive_forever() -> None:
    fork.receive("never-sent")


@fork.register
def flood(count: int, size: int, timeout: float) -> tuple[int, str]:
    """Send until the parent's queue pushes back; (messages sent, the error)."""
    parent = fork.ppid()
    assert parent is not None
    payload = b"f" * size
    for sent in range(count):
        try:
            fork.send(parent, payload, group="flood", timeout=timeout)
        except fork.IPCError as exc:
            return sent, str(exc)
    return count, ""


@fork.register
def flood_then(count: int, flooded: str, other: str) -> int:
    """``count`` messages to a group nobody reads yet (from a thread, which blocks
    once the receiver's queue and socket are full), then one to another group."""
    parent = fork.ppid()
    assert parent is not None

    def flood() -> None:
        for i in range(count):
            fork.send(parent, f"{i}", group=flooded, timeout=60)

    flooding = threading.Thread(target=flood)
    flooding.start()
    fork.send(parent, "after the flood", group=other, timeout=60)
    flooding.join()
    return count


@fork.register
def send_through_timeouts(count: int, size: int) -> int:
    """Send ``count`` numbered messages with a short timeout, going on after each that
    times out (a receiver that stalls); print ``stalled`` at the first, send ``end`` after
    the last. Returns how many timed out."""
    parent = fork.ppid()
    assert parent is not None
    padding, timeouts = b"." * size, 0
    for number in range(count):
        try:
            fork.send(parent, b"%d " % number + padding, group="ordered", timeout=0.2)
        except fork.IPCError:
            timeouts += 1
            if timeouts == 1:
                print("stalled", flush=True)
    fork.send(parent, b"end", group="ordered", timeout=60)
    return timeouts
