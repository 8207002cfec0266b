"""Descriptors passed over Unix sockets (SCM_RIGHTS): packing them, finding them.

The report socket (a child's big result), the zygote's requests (a warm
child's streams and pipes) and their replies all carry descriptors this way.
"""

from __future__ import annotations

import _socket as socket  # the C module: a child reporting its result loads no more
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

FD_SIZE = 4  # a descriptor in SCM_RIGHTS is a C int


def pack(fds: Sequence[int]) -> bytes:
    """The SCM_RIGHTS data that passes ``fds``."""
    return b"".join(fd.to_bytes(FD_SIZE, sys.byteorder) for fd in fds)


def room(count: int) -> int:
    """Ancillary buffer bytes for receiving up to ``count`` descriptors."""
    return socket.CMSG_SPACE(count * FD_SIZE)


def received(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors a ``recvmsg`` got: they are open in this process now."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % FD_SIZE
            fds += [
                int.from_bytes(data[i : i + FD_SIZE], sys.byteorder)
                for i in range(0, usable, FD_SIZE)
            ]
    return fds
