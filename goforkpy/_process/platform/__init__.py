"""Everything that differs between operating systems, behind one door.

The rest of goforkpy imports OS-specific behaviour from here and never tests
``sys.platform`` itself. ``posix`` holds what any POSIX system does, with
nothing but ``waitpid``, ``kill`` and process groups; ``linux`` overrides it
where Linux offers more (a RAM-backed /dev/shm, pidfds, ``waitid``, a
parent-death signal, ``SO_PEERCRED``, /proc).

``GOFORKPY_PLATFORM=posix`` picks the portable layer on Linux too, so the
test suite can run the path macOS and the BSDs take and it cannot rot.
"""

import os
import sys

from ..._env import PLATFORM

_chosen = os.environ.get(PLATFORM, "")
if _chosen not in ("", "posix", "native"):
    raise ImportError(f"{PLATFORM}={_chosen!r}: set it to 'posix' or 'native', or unset it")
if sys.platform == "win32":
    raise ImportError(
        "goforkpy needs a POSIX system (Linux, macOS, BSD): it relies on "
        "process groups and fork/exec semantics that Windows lacks"
    )
NATIVE = sys.platform.startswith("linux") and _chosen != "posix"

from .posix import pid_exists as pid_exists  # noqa: E402

if NATIVE:
    from .linux import adopt_orphans as adopt_orphans
    from .linux import anonymous_file as anonymous_file
    from .linux import children_of as children_of
    from .linux import descendant_pids as descendant_pids
    from .linux import group_and_tie_preexec as group_and_tie_preexec
    from .linux import has_children as has_children
    from .linux import has_exited as has_exited
    from .linux import is_sealed as is_sealed
    from .linux import max_rss_bytes as max_rss_bytes
    from .linux import new_sealable as new_sealable
    from .linux import note_oom_kills as note_oom_kills
    from .linux import oom_counter_readable as oom_counter_readable
    from .linux import oom_kills_since_last_look as oom_kills_since_last_look
    from .linux import peer_credentials as peer_credentials
    from .linux import prepare_tie as prepare_tie
    from .linux import ram_tmpdir as ram_tmpdir
    from .linux import resident_bytes as resident_bytes
    from .linux import seal as seal
    from .linux import sealed_memory_supported as sealed_memory_supported
    from .linux import subreaper_supported as subreaper_supported
    from .linux import thread_ids as thread_ids
    from .linux import thread_libraries as thread_libraries
    from .linux import thread_name as thread_name
    from .linux import thread_started as thread_started
    from .linux import tie_to_parent as tie_to_parent
    from .linux import usable_cpus as usable_cpus
    from .linux import wait_unreaped as wait_unreaped
    from .linux import watch_exit_supported as watch_exit_supported
else:
    from .posix import adopt_orphans as adopt_orphans
    from .posix import anonymous_file as anonymous_file
    from .posix import children_of as children_of
    from .posix import descendant_pids as descendant_pids
    from .posix import group_and_tie_preexec as group_and_tie_preexec
    from .posix import has_children as has_children
    from .posix import has_exited as has_exited
    from .posix import is_sealed as is_sealed
    from .posix import max_rss_bytes as max_rss_bytes
    from .posix import new_sealable as new_sealable
    from .posix import note_oom_kills as note_oom_kills
    from .posix import oom_counter_readable as oom_counter_readable
    from .posix import oom_kills_since_last_look as oom_kills_since_last_look
    from .posix import peer_credentials as peer_credentials
    from .posix import prepare_tie as prepare_tie
    from .posix import ram_tmpdir as ram_tmpdir
    from .posix import resident_bytes as resident_bytes
    from .posix import seal as seal
    from .posix import sealed_memory_supported as sealed_memory_supported
    from .posix import subreaper_supported as subreaper_supported
    from .posix import thread_ids as thread_ids
    from .posix import thread_libraries as thread_libraries
    from .posix import thread_name as thread_name
    from .posix import thread_started as thread_started
    from .posix import tie_to_parent as tie_to_parent
    from .posix import usable_cpus as usable_cpus
    from .posix import wait_unreaped as wait_unreaped
    from .posix import watch_exit_supported as watch_exit_supported
