"""Everything that differs between operating systems, behind one door.

The rest of goforkpy imports OS-specific behaviour from here and never tests
``sys.platform`` itself. ``_posix`` holds what any POSIX system does;
``_linux`` overrides it where Linux offers more (a RAM-backed /dev/shm, pidfds,
a parent-death signal).
"""

from __future__ import annotations

import sys

from ._posix import pid_exists as pid_exists

if sys.platform.startswith("linux"):
    from ._linux import descendant_pids as descendant_pids
    from ._linux import group_and_tie_preexec as group_and_tie_preexec
    from ._linux import peer_uid as peer_uid
    from ._linux import ram_tmpdir as ram_tmpdir
    from ._linux import tie_to_parent as tie_to_parent
    from ._linux import usable_cpus as usable_cpus
    from ._linux import watch_exit_supported as watch_exit_supported
else:
    if sys.platform == "win32":
        raise ImportError(
            "goforkpy needs a POSIX system (Linux, macOS, BSD): it relies on "
            "process groups and fork/exec semantics that Windows lacks"
        )
    from ._posix import descendant_pids as descendant_pids
    from ._posix import group_and_tie_preexec as group_and_tie_preexec
    from ._posix import peer_uid as peer_uid
    from ._posix import ram_tmpdir as ram_tmpdir
    from ._posix import tie_to_parent as tie_to_parent
    from ._posix import usable_cpus as usable_cpus
    from ._posix import watch_exit_supported as watch_exit_supported
