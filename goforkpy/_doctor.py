"""``python -m goforkpy doctor [script [args...]]``: what this machine and a program give
goforkpy, in words.

The machine: the kernel features containment and the sandbox rest on, and the
platform layer in use. The program (a script, run down to its ``fork.init()``
as a zygote runs it, then stopped there): how long its start-up takes, how big
it is then, the threads alive at that point with their libraries, and the
modules known not to survive a fork; from which, the start method that fits it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from . import _env
from ._process import platform, threads
from ._shared.wire.files import SEALED_FROM

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

# A start-up longer than this is worth a zygote: each cold child pays it again.
_SLOW_START = 0.05
_LINE = "  {:<22} {}"
_NEVER = "fork.init()"


def main(argv: list[str]) -> int:
    """Print the report; the exit status (1: the script never reached ``fork.init()``; 2:
    a bad command line or script)."""
    if not argv or argv[0] != "doctor" or argv[1:2] in (["-h"], ["--help"]):
        print("usage: python -m goforkpy doctor [script [args...]]", file=sys.stderr)
        return 0 if argv[1:2] in (["-h"], ["--help"]) else 2
    print("goforkpy doctor: what this machine and this program give goforkpy\n")
    print("This machine")
    for name, finding in machine():
        print(_LINE.format(name, finding))
    if len(argv) < 2:
        print("\nName a script (python -m goforkpy doctor app.py) to hear about a program.")
        return 0
    script, args = argv[1], argv[2:]
    if not os.path.isfile(script):
        print(f"\ngoforkpy doctor: no script {script!r}: name a Python file", file=sys.stderr)
        return 2
    print(f"\nThis program ({script}, run down to fork.init())")
    found = program(script, args)
    for name, finding in found:
        print(_LINE.format(name, finding))
    return 1 if found[0][0] == _NEVER else 0


def machine() -> list[tuple[str, str]]:
    """(feature, what this machine has of it and what that means), in order."""
    from ._sandbox.policy import sandbox_support

    support = sandbox_support()
    abi = support["landlock_abi"]
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    layer = "linux (native)" if platform.NATIVE else "posix (portable)"
    if not platform.NATIVE and sys.platform.startswith("linux"):
        layer += f": {_env.PLATFORM}=posix chose it"
    return [
        ("system", f"{os.uname().sysname} {os.uname().release}, {os.uname().machine}"),
        ("Python", _python(gil)),
        ("platform layer", layer),
        ("subreaper", _yes(platform.subreaper_supported(), _SUBREAPER)),
        ("pidfd", _yes(platform.watch_exit_supported(), _PIDFD)),
        ("Landlock", f"ABI {abi}: {_landlock(abi)}" if abi else "no"),
        ("seccomp", _yes(support["seccomp"], _SECCOMP)),
        ("sandbox=", _sandbox(support)),
        ("sealed memory", _yes(platform.sealed_memory_supported(), _SEALED)),
        ("OOM kill counter", _yes(platform.oom_counter_readable(), _OOM)),
        ("payloads in RAM", _yes(platform.ram_tmpdir() is not None, _RAM)),
    ]


_SUBREAPER = (
    "what a child leaves running stays in its tree and ends with it",
    "a child's double-forked daemons can outlive it (its process group still ends)",
)
_PIDFD = (
    "one thread watches every child, each reaped the moment it exits",
    "a thread per child waits for it",
)
_SECCOMP = (
    "a sandboxed child is refused the system calls it has no use for",
    "no filter of system calls",
)
_SEALED = (
    f"payloads of {SEALED_FROM >> 20} MiB and more travel in sealed memory, never on disk",
    "big payloads are files, tagged in full",
)
_OOM = ("a child ended by the OOM killer says reason='oom-killer'", "such a death is a 'signal'")
_RAM = ("payloads are written to /dev/shm, in memory", "payloads are written to the temp directory")


def _python(gil: bool) -> str:
    import types

    said = sys.version.split()[0] + ("" if gil else ", free-threaded (no GIL)")
    if hasattr(types, "LazyImportType"):
        said += ", lazy imports (a zygote makes them real before it forks)"
    return said


def _yes(has: bool, meanings: tuple[str, str]) -> str:
    return f"yes: {meanings[0]}" if has else f"no: {meanings[1]}"


def _landlock(abi: int) -> str:
    confined = "a sandboxed child is confined to its files"
    if abi >= 6:
        return confined + ", TCP ports, signals and abstract Unix sockets"
    return confined + (" and TCP ports" if abi >= 4 else " (not to ports: Linux 6.7+ does)")


def _sandbox(support: dict[str, Any]) -> str:
    if support["available"]:
        return "enforced: untrusted code can run in a sandboxed child"
    return f"refused (SandboxUnavailable): this machine lacks {'; '.join(support['missing'])}"


def program(script: str, args: list[str]) -> list[tuple[str, str]]:
    """(topic, finding) for ``script`` run down to its ``fork.init()``."""
    bare = min(_started_in([sys.executable, "-c", "pass"])[0] for _ in range(3))
    report, seconds, errors = _run_to_init(script, args)
    if report is None:
        said = f"; it said:\n{errors.rstrip()}" if errors.strip() else ""
        return [(_NEVER, f"never reached: call it early in the script{said}")]
    start_up = max(0.0, seconds - bare)
    size = report["resident"]
    found = [
        ("reaches fork.init() in", f"{seconds:.2f} s (the interpreter alone: {bare:.2f} s)"),
        ("resident then", f"{size / 2**20:.0f} MiB" if size else "unknown"),
    ]
    listed = report["threads"]
    for number, (text, vouched) in enumerate(listed):
        verdict = "vouched for (its library forks safely)" if vouched else "NOT vouched for"
        found.append(("threads then" if number == 0 else "", f"{text}: {verdict}"))
    if not listed:
        found.append(("threads then", "none but the main thread"))
    for module, why in report["unsafe"]:
        found.append(("does not survive fork", f"{module}: {why}"))
    found.append(("start method", _fitting(start_up, size, listed, report["unsafe"])))
    return found


def _fitting(start_up: float, size: int, listed: list[Any], unsafe: list[Any]) -> str:
    """The start method that fits a program, and why, in words."""
    blocking = [text for text, vouched in listed if not vouched]
    if blocking:
        return (
            f"cold: a zygote would fork with {', '.join(blocking)} running, so warm starts "
            "fall back to cold; start threads after fork.init() for warm starts"
        )
    if unsafe:
        modules = ", ".join(module for module, _ in unsafe)
        return (
            f"cold: {modules} would not survive a zygote's forks; import it after "
            "fork.init() (or turn its fork support on) for warm starts"
        )
    mib = f"{size / 2**20:.0f} MiB, shared with its children" if size else "shared"
    if start_up >= _SLOW_START:
        return (
            f"warm: each cold child would pay the {start_up:.2f} s of start-up again; a "
            f"zygote pays it once ({mib}) and a warm child starts in milliseconds"
        )
    return (
        f"cold or warm: the start-up is short ({start_up * 1000:.0f} ms over the "
        "interpreter's); warm saves that and the interpreter's start per child"
    )


def _started_in(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """The seconds ``argv`` takes to run, and the end of what it wrote to stderr."""
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - began, done.stderr.decode(errors="replace")[-2000:]


def _run_to_init(script: str, args: list[str]) -> tuple[dict[str, Any] | None, float, str]:
    """Run ``script`` until its ``fork.init()`` writes what it finds there: (that report,
    or ``None`` where it never got there; the seconds it took, the best of two runs; the
    end of its stderr)."""
    with tempfile.TemporaryDirectory(prefix="goforkpy-doctor-") as place:
        path = os.path.join(place, "report.json")
        env = {**os.environ, _env.HELPER: f"doctor:{os.getpid()}:{path}"}
        argv = [sys.executable, os.path.abspath(script), *args]
        seconds, errors = min(_started_in(argv, env) for _ in range(2))
        try:
            with open(path) as f:
                return json.load(f), seconds, errors
        except (OSError, ValueError):
            return None, seconds, errors


def _cuda_initialised() -> bool:
    cuda = getattr(sys.modules["torch"], "cuda", None)
    return bool(cuda is not None and cuda.is_initialized())


def _without_fork_support() -> bool:
    return os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").lower() not in ("1", "true")


# (module, whether it is in a state a fork breaks, why): checked where it is imported
_UNSAFE: tuple[tuple[str, Callable[[], bool], str], ...] = (
    (
        "grpc",
        _without_fork_support,
        "imported without fork support: a forked child that uses a channel can hang; set "
        "GRPC_ENABLE_FORK_SUPPORT=true before importing it",
    ),
    (
        "torch",
        _cuda_initialised,
        "CUDA is initialised, and a forked child cannot use it; initialise it after "
        "fork.init(), in the children",
    ),
    (
        "tensorflow",
        lambda: True,
        "its runtime's threads do not survive a fork; import it after fork.init()",
    ),
)


def report_here(argument: str) -> None:
    """In a program the doctor runs, at its ``fork.init()``: write what is found here to
    the path ``argument`` names, then leave (the program's code after ``init()`` never
    runs). ``argument`` is "DOCTOR_PID:PATH": a process that is not the doctor's child (one
    the program started before its ``init()``) returns, and goes on as it would have."""
    doctor, _, path = argument.partition(":")
    if str(os.getppid()) != doctor:
        return
    unsafe = []
    for module, broken, why in _UNSAFE:
        try:
            if module in sys.modules and broken():
                unsafe.append((module, why))
        except Exception:
            continue
    listed = [(str(thread), thread.vouched) for thread in threads.others()]
    found = {
        "resident": platform.resident_bytes(os.getpid()) or 0,
        "threads": listed,
        "unsafe": unsafe,
    }
    with open(path, "w") as f:
        json.dump(found, f)
    os._exit(0)
