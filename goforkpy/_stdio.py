"""Standard stream redirection for children: the ``spawn(stdin=..., ...)`` values."""

from __future__ import annotations

import contextlib
import os
import subprocess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Iterator, Tuple, Union

    Redirect = Union[None, int, IO[Any], str, "os.PathLike[str]"]
    Resolved = Union[None, int, IO[Any]]

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
_SPECIAL = {PIPE: "PIPE", STDOUT: "STDOUT", DEVNULL: "DEVNULL"}


@contextlib.contextmanager
def open_redirects(
    stdin: Redirect, stdout: Redirect, stderr: Redirect
) -> Iterator[Tuple[Resolved, Resolved, Resolved]]:
    """Resolve the three redirects for Popen, opening paths and closing them after."""
    with contextlib.ExitStack() as opened:
        yield (
            _resolve("stdin", stdin, "rb", opened),
            _resolve("stdout", stdout, "wb", opened),
            _resolve("stderr", stderr, "wb", opened),
        )


def _resolve(stream: str, value: Redirect, mode: str, opened: contextlib.ExitStack) -> Resolved:
    if value is None or hasattr(value, "fileno"):
        return value  # type: ignore[return-value]
    if isinstance(value, (str, os.PathLike)):
        return opened.enter_context(open(value, mode))
    if isinstance(value, int) and not isinstance(value, bool):
        if value == STDOUT and stream != "stderr":
            raise ValueError(f"{stream}=fork.STDOUT only makes sense for stderr")
        if value in _SPECIAL or value >= 0:
            return value
    raise TypeError(
        f"{stream}={value!r} is not a redirect; pass None, fork.PIPE, fork.DEVNULL, "
        "fork.STDOUT (stderr only), a file object, a file descriptor or a path"
    )
