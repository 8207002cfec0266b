"""Starting an interpreter (a cold child, a zygote) in a process group of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from .._state import handing_over
from .stdio import open_redirects

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .stdio import Redirect


def start_in_group(
    argv: list[str],
    env: dict[str, str],
    pass_fds: tuple[int, ...],
    stdio: tuple[Redirect, Redirect, Redirect] = (None, None, None),
    **more: Any,
) -> subprocess.Popen[bytes]:
    """Run ``argv`` leading its own process group, with only ``pass_fds`` inherited;
    ``more`` are ``Popen``'s (a child's options: ``Options.popen_arguments``)."""
    with open_redirects(*stdio) as (stdin, stdout, stderr), handing_over():
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            close_fds=True,
            pass_fds=pass_fds,
            **_own_group(),
            **more,
        )


def _own_group() -> dict[str, Any]:
    """Popen arguments that make the child lead its own process group."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}  # keeps Popen on its fast vfork path
    # 3.9/3.10 have no process_group argument; with a preexec_fn, subprocess runs the
    # at-fork hooks in the child before the exec, hence handing_over() above.
    return {"preexec_fn": os.setpgrp}
