"""Native threads: the ones libraries in C start, which ``threading`` does not see.

A fork copies only the calling thread, so a zygote that forks, and a snapshot,
must know every thread of the process: where Linux lists them, they are found
by their name and the library on their stack; the pools of libraries with
at-fork handlers (OpenBLAS) are vouched for, and any other keeps a zygote
from forking and makes a snapshot warn. The portable layer cannot list them
(POSIX has no way): there, only Python's threads are seen, as the docs say.
"""

from __future__ import annotations

import gc
import inspect
import sys
import threading
import warnings
from pathlib import Path

import native_thread
import pytest
from helpers import RunScript

import goforkpy as fork
from goforkpy._process import platform, threads

pytest.importorskip("numpy")  # in the test extra (scikit-learn's); its OpenBLAS pool is tested


def _named(name: str) -> list[threads.Thread]:
    return [thread for thread in threads.others() if thread.name == name]


def test_a_native_thread_is_seen_by_name_and_not_vouched_for() -> None:
    started = native_thread.start("pool-worker")
    try:
        found = _named("pool-worker")
        if not platform.NATIVE:  # POSIX cannot list a process's threads
            assert found == []
            assert not any(thread.name == "pool-worker" for thread in threads.unvouched())
            return
        assert [(t.kind, t.vouched) for t in found] == [(threads.NATIVE, False)]
        assert str(found[0]) == "native thread 'pool-worker'", "its library is libc's only"
        assert found[0] in threads.unvouched()
    finally:
        native_thread.stop(started)
    assert _named("pool-worker") == []


@pytest.mark.skipif(not platform.NATIVE, reason="POSIX cannot list a process's threads")
def test_a_thread_whose_name_says_its_library_is_named_by_it() -> None:
    started = native_thread.start("grpc_global_tim")  # the name gRPC gives its timer thread
    try:
        (found,) = _named("grpc_global_tim")
        assert str(found) == "native thread 'grpc_global_tim' (in gRPC)" and not found.vouched
    finally:
        native_thread.stop(started)


@pytest.mark.skipif(not platform.NATIVE, reason="POSIX cannot list a process's threads")
def test_a_stack_is_read_no_further_than_its_own_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """What lies past the top of a thread's stack is other memory (another thread's stack,
    say): code addresses there would name a library the thread never ran (CI saw numpy's
    _philox named for a thread running libc only). A window far larger than any stack
    must still find only the C library on this thread's."""
    from goforkpy._process.platform import linux

    monkeypatch.setattr(linux, "_STACK_BYTES", 64 << 20)
    started = native_thread.start("stack-bound")
    try:
        (tid,) = [
            tid for tid in platform.thread_ids() if platform.thread_name(tid) == "stack-bound"
        ]
        found = platform.thread_libraries(tid)
        assert found and all(threads._runtime(path) for path in found), found
    finally:
        native_thread.stop(started)


@pytest.mark.skipif(not platform.NATIVE, reason="POSIX cannot list a process's threads")
def test_a_thread_is_not_judged_by_an_earlier_one_with_its_id() -> None:
    """The kernel gives an ended thread's id to a later one: what was found on the
    earlier one's stack (an OpenBLAS pool's, vouched for) is not the later one's."""
    started = native_thread.start("id-reused")
    (tid,) = [t for t in platform.thread_ids() or [] if platform.thread_name(t) == "id-reused"]
    earlier = (tid, "id-reused", (platform.thread_started(tid) or 1) - 1)
    threads._libraries[earlier] = "libscipy_openblas64_.so"  # as an earlier thread left it
    try:
        (found,) = _named("id-reused")
        assert not found.vouched and found.library is None
    finally:
        threads._libraries.pop(earlier)
        native_thread.stop(started)


def test_a_thread_started_with__thread_is_seen_and_not_vouched_for() -> None:
    import _thread

    held, started = _thread.allocate_lock(), _thread.allocate_lock()
    held.acquire()
    started.acquire()

    def wait() -> None:  # Python code, which threading does not know of
        started.release()
        held.acquire()

    def unnamed(found: list[threads.Thread]) -> int:
        return sum(1 for thread in found if thread.kind == threads.NATIVE and not thread.library)

    before = unnamed(threads.others())  # what earlier tests of the session left, if anything
    _thread.start_new_thread(wait, ())
    started.acquire()
    try:
        found = threads.others()
        raw = [thread for thread in found if thread.kind == threads.RAW]
        ours = [thread for thread in raw if thread.name == __name__]
        assert [str(thread) for thread in ours] == [f"thread started with _thread {__name__!r}"]
        assert ours[0] in threads.unvouched()
        assert unnamed(found) == before, "seen once, as the _thread thread it is"
    finally:
        held.release()


def test_goforkpys_own_threads_are_vouched_for_and_the_programs_are_not() -> None:
    with fork.Executor(max_workers=1) as pool:  # its manager thread: "goforkpy-..."
        assert pool.submit(abs, -1).result(60) == 1
        ours = [thread for thread in threads.others() if thread.name.startswith("goforkpy-")]
        assert ours and all(thread.vouched and thread.kind == threads.THREAD for thread in ours)
        assert not any(thread in threads.unvouched() for thread in ours)


NATIVE_BEFORE_INIT = """
import sys
sys.path.insert(0, TESTS)
import goforkpy as fork
import native_thread

if "native" in sys.argv:
    native_thread.start("pool-worker")  # as a library's import would

@fork.register
def where():
    return fork.ppid()

if __name__ == "__main__":
    fork.init()
    fork.set_start_method("warm")
    print(fork.run("where"), fork.run("where"))
"""


@pytest.mark.skipif(not platform.NATIVE, reason="POSIX cannot list a process's threads")
def test_a_zygote_with_a_native_thread_falls_back_to_cold(run_script: RunScript) -> None:
    script = NATIVE_BEFORE_INIT.replace("TESTS", repr(str(Path(__file__).parent)))
    done = run_script(script, args=["native"])
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "fall back to cold" in line]
    assert len(warned) == 1 and "native thread 'pool-worker'" in warned[0], done


NUMPY_SCRIPT = """
import os, warnings
os.environ["OPENBLAS_NUM_THREADS"] = "2"  # a pool of at least one thread, on any machine
import numpy
import goforkpy as fork
from goforkpy._process import threads

@fork.register
def product(n):
    return float((numpy.ones((n, n)) @ numpy.ones((n, n))).sum())

if __name__ == "__main__":
    fork.init()
    warnings.simplefilter("error", RuntimeWarning)  # a snapshot's warning of threads
    native = [t for t in threads.others() if t.kind == threads.NATIVE]
    print(all(t.vouched and "openblas" in t.library.lower() for t in native), len(native))
    fork.set_start_method("warm")
    print(fork.run("product", 100), fork.snapshot(product, 100).result(60))
"""


@pytest.mark.skipif(not platform.NATIVE, reason="POSIX cannot list a process's threads")
def test_openblas_pool_is_seen_and_vouched_for(run_script: RunScript) -> None:
    done = run_script(NUMPY_SCRIPT)
    assert done.returncode == 0, done.stderr
    seen, products = done.stdout.splitlines()
    vouched, count = seen.split()
    assert vouched == "True" and int(count) >= 1, "numpy's OpenBLAS pool, in its library"
    assert products == "1000000.0 1000000.0"
    assert done.stderr == "", "no fall back to cold, no warning"


def test_a_snapshot_warns_of_a_native_thread_it_cannot_vouch_for() -> None:
    started = native_thread.start("pool-worker")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert fork.snapshot(abs, -2).result(60) == 2
    finally:
        native_thread.stop(started)
    # (other tests of the session may have left threads of their own: only ours counts)
    ours = [str(w.message) for w in caught if "threads of its own" in str(w.message)]
    named = [message for message in ours if "native thread 'pool-worker'" in message]
    if platform.NATIVE:
        assert len(ours) == 1 and len(named) == 1, ours
    else:
        assert named == [], "POSIX cannot list a process's threads"


def test_no_collection_runs_while_the_threads_frames_are_listed() -> None:
    """Listing the threads before a fork (``others()``) sets off no collection inside
    ``sys._current_frames()``: one there runs Python code (here a ``gc`` callback)
    while the interpreter's list of threads is locked, and a thread started then
    deadlocks every thread (CPython issue 106883)."""
    inside: list[bool] = []
    source, first = inspect.getsourcelines(threads._current_frames)
    call = first + next(
        n for n, text in enumerate(source) if "return sys._current_frames()" in text
    )

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":  # the Python frame the collection came in, at which line
            caller = sys._getframe(1)  # (3.12+ collect between bytecodes: never in the call)
            inside.append(
                caller.f_code is threads._current_frames.__code__ and caller.f_lineno == call
            )

    stop = threading.Event()
    helpers = [threading.Thread(target=stop.wait) for _ in range(8)]
    for thread in helpers:
        thread.start()
    threshold = gc.get_threshold()
    gc.set_threshold(1)  # a collection at almost every allocation
    gc.callbacks.append(callback)
    try:
        for _ in range(20):
            threads.others()
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
        stop.set()
        for thread in helpers:
            thread.join()
    assert inside and not any(inside), "a collection ran inside the listing"
