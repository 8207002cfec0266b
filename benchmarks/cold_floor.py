"""The floor of a cold call's protocol: re-running a script, and nothing of goforkpy's own.

The caller writes the call (pickled, tagged with HMAC-SHA-256 under a key of its own)
to a private file and starts this script in a new interpreter, the file's path and
the key in its environment; the script imports goforkpy at its top, as the script a
cold child re-runs does, reads the call, checks its tag, runs the function, writes a
tagged result and leaves with ``os._exit``; the caller waits for its exit and reads
the result. No spawner, no options, no set-up of the child, no exit held for the
caller: what any re-executing implementation of a cold call pays on this machine,
measured beside goforkpy's own cold call (anatomy.py). This script is short; the
anatomy's is longer, and compiling it (Python compiles the script it runs, on every
run) is in goforkpy's figure only.

Run by anatomy.py; ``python cold_floor.py ROUNDS`` prints the median by itself.
"""

import os
import sys

import goforkpy  # noqa: F401 - what a cold child's script imports at its top

_CALL = "GOFORKPY_COLD_FLOOR"  # the call's path and key, in the child's environment


def _tag(key, data):
    """HMAC-SHA-256 with the cheapest SHA-256 the interpreter has (hmac imports hashlib)."""
    try:
        from _sha2 import sha256
    except ImportError:  # before Python 3.12
        from _sha256 import sha256
    key = key.ljust(64, b"\0")
    inner = sha256(bytes(k ^ 0x36 for k in key) + data).digest()
    return sha256(bytes(k ^ 0x5C for k in key) + inner).digest()


def _write(path, key, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        out.write(_tag(key, data) + data)


def _read(path, key):
    with open(path, "rb") as source:
        tag, data = source.read(32), source.read()
    os.unlink(path)
    if _tag(key, data) != tag:
        raise ValueError(f"{path}: the tag does not match")
    return data


def _nothing():
    return None


def _be_the_child(marker):
    import _pickle as pickle

    path, key = marker.split(":")
    name, args = pickle.loads(_read(path, bytes.fromhex(key)))
    _write(path + ".out", bytes.fromhex(key), pickle.dumps(globals()[name](*args)))
    os._exit(0)


def call(name, *args):
    """Run ``name(*args)`` in a new interpreter re-running this script; its result."""
    import _pickle as pickle

    key = os.urandom(32)
    path = f"/dev/shm/goforkpy-cold-floor-{os.getpid()}"
    _write(path, key, pickle.dumps((name, args)))
    env = {**os.environ, _CALL: f"{path}:{key.hex()}"}
    pid = os.posix_spawn(sys.executable, [sys.executable, os.path.abspath(__file__)], env)
    os.waitpid(pid, 0)
    return pickle.loads(_read(path + ".out", key))


def cold_floor(rounds):
    """Median seconds of a call of a function that does nothing, through this floor."""
    import statistics
    import time

    call("_nothing")
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        call("_nothing")
        times.append(time.perf_counter() - began)
    return statistics.median(times)


if _CALL in os.environ:
    _be_the_child(os.environ.pop(_CALL))
elif __name__ == "__main__":
    print(f"{cold_floor(int(sys.argv[1])) * 1e3:.2f} ms")
