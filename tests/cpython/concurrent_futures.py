"""CPython's own process-pool tests (``test.test_concurrent_futures``) run against
``fork.Executor``: ``python tests/cpython/concurrent_futures.py [MODULE...]``.

``concurrent.futures.ProcessPoolExecutor`` is replaced by ``fork.Executor``
before the tests are imported (and in every interpreter they start, through
``shim/sitecustomize.py``), so each process-pool test class (contexts fork,
forkserver and spawn: goforkpy's snapshot, warm and cold workers) runs
against it.

Skipped, each with its reason (``SKIPS``): tests that reach into
``ProcessPoolExecutor``'s internals, that need multiprocessing primitives of
``mp_context``, or that assume its eager dispatch. Of the rest, some fail on
purpose, where goforkpy decides otherwise (``DIFFERENCES``: a task that will
not load fails alone instead of breaking the pool). The run passes when at
least 90% of the rest pass; a failure that is not a known difference is
named as such.
"""

from __future__ import annotations

import os
import re
import sys
import unittest
from typing import Any

import goforkpy as fork

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim")
MODULES = [
    "test_process_pool",
    "test_shutdown",
    "test_wait",
    "test_as_completed",
    "test_init",
    "test_deadlock",
]
PASS_RATE = 0.9

_INSIDE = "reaches into ProcessPoolExecutor's internals"
# (a pattern on "Class.test_name", why)
SKIPS = [
    (r"\.test_killed_child$", f"{_INSIDE} (_processes, to kill a worker)"),
    (r"\.test_idle_process_reuse_(one|multiple)$", f"{_INSIDE} (counts _processes)"),
    (r"\.test_max_tasks_per_child$", f"{_INSIDE} (counts _processes)"),
    (r"\.test_max_tasks_per_child_defaults_to_spawn_context$", f"{_INSIDE} (_mp_context)"),
    (
        r"\.test_python_finalization_error$",
        f"{_INSIDE}: it breaks the start of its manager and queue-feeder threads",
    ),
    (
        r"\.test_(processes_terminate|context_manager_shutdown|del_shutdown|shutdown_no_wait"
        r"|shutdown_deadlock_pickle)$",
        f"{_INSIDE} (_processes, _call_queue, _executor_manager_thread)",
    ),
    (
        r"\.test_saturation$",
        f"{_INSIDE} (_processes), and submits a Semaphore of mp_context (multiprocessing "
        "primitives pickle only while a process is spawned)",
    ),
    (
        r"FailingInitializer.*\.test_initializer$",
        "passes a Queue of mp_context to the initializer (multiprocessing primitives "
        f"pickle only while a process is spawned), and {_INSIDE[0].lower()}{_INSIDE[1:]} "
        "(_broken)",
    ),
    # Python 3.14's tests
    (
        r"\.test_(broken_process_pool_traceback|force_shutdown_workers(_stops_pool)?)$",
        f"{_INSIDE} (_processes, to reach a worker process)",
    ),
    (
        r"\.test_(terminate_workers|kill_workers|force_shutdown_workers_invalid_op)$",
        f"{_INSIDE}: it mocks _force_shutdown to see the call (goforkpy's suite tests "
        "terminate_workers() and kill_workers() on the workers themselves)",
    ),
    (
        r"\.test_(shutdown_no_wait_max_tasks_gh119592|gc_during_max_tasks_worker_exit_gh152967"
        r"|force_shutdown_during_max_tasks_worker_exit|failed_worker_replacement_breaks_pool"
        r"|shutdown_gh_132969_case_[12])$",
        f"{_INSIDE} (_executor_manager_thread, _force_shutting_down, _spawn_worker), and "
        "passes a Queue and an Event of mp_context's Manager to its tasks",
    ),
    (
        r"\.test_cancel_futures$",
        "assumes its eager dispatch: ProcessPoolExecutor marks tasks running as it queues "
        "them for its workers, so shutdown(cancel_futures=True) leaves some to finish; "
        "goforkpy's run only once a worker reaches them",
    ),
    (
        r"\.test_error_at_task_pickle$",
        "assumes its dispatch: ProcessPoolExecutor pickles a task in a feeder thread and "
        "fails its future; goforkpy pickles in submit(), which raises PayloadError at once",
    ),
]
# (a pattern, why goforkpy does otherwise): these fail, and count as failures
DIFFERENCES = [
    (
        r"\.test_error_at_task_unpickle$",
        "a task that will not load in its worker fails alone (PayloadError); "
        "ProcessPoolExecutor breaks the whole pool",
    ),
    (
        r"\.test_(error|exit)_during_result_unpickle_in_result_handler$",
        "a result that will not load fails its task alone (PayloadError); "
        "ProcessPoolExecutor breaks the whole pool",
    ),
    (
        r"\.test_error_during_result_pickle_on_worker$",
        "a result that will not pickle fails with PayloadError, which names what would not "
        "pickle (the pickling error is its cause), not with the pickling error itself",
    ),
]


def main(modules: list[str]) -> int:
    sys.path.insert(0, SHIM)
    import goforkpy_as_ppe

    goforkpy_as_ppe.install()
    _in_every_interpreter()
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for name in modules or MODULES:
        module = __import__(f"test.test_concurrent_futures.{name}", fromlist=["*"])
        suite.addTests(loader.loadTestsFromModule(module))
    tests = _process_pool_tests(suite)
    for test in tests:
        reason = _matching(SKIPS, test)
        if reason is not None:
            method = getattr(test, test._testMethodName)
            setattr(test, test._testMethodName, unittest.skip(reason)(method))
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=_TellingAtOnce)
    result = runner.run(unittest.TestSuite(tests))
    return _summary(result)


def _in_every_interpreter() -> None:
    """The tests' own interpreters (``python -c ...``) get the shim too."""
    from test.support import script_helper

    run = script_helper.run_python_until_end

    def with_the_shim(*args: Any, **env_vars: Any) -> Any:
        return run(*args, PYTHONPATH=SHIM, **env_vars)

    script_helper.run_python_until_end = with_the_shim


def _process_pool_tests(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    found = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            found += _process_pool_tests(test)
        elif "ProcessPool" in type(test).__name__:
            found.append(test)
    return found


def _matching(table: list[tuple[str, str]], test: unittest.TestCase) -> str | None:
    name = f"{type(test).__name__}.{test._testMethodName}"
    return next((why for pattern, why in table if re.search(pattern, name)), None)


class _TellingAtOnce(unittest.TextTestResult):
    """Print each failure's traceback as it happens, not at the end of the run."""

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self.stream.write(self.errors[-1][1])

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self.stream.write(self.failures[-1][1])


def _summary(result: unittest.TestResult) -> int:
    """Print the counts, the known differences and anything else that failed; 0 if at
    least ``PASS_RATE`` of the tests that ran passed."""
    failed = [test for test, _ in (*result.failures, *result.errors)]
    failed += list(result.unexpectedSuccesses)
    unknown = [test for test in failed if _matching(DIFFERENCES, test) is None]
    ran = result.testsRun - len(result.skipped)
    passed = ran - len(failed)
    rate = passed / ran if ran else 0.0
    print(f"\n{result.testsRun} tests; {len(result.skipped)} skipped, each with its reason")
    print(f"passed {passed} of the other {ran}: {rate:.1%} (needed: {PASS_RATE:.0%})")
    for test in failed:
        why = _matching(DIFFERENCES, test) or "NOT A KNOWN DIFFERENCE"
        print(f"  failed: {type(test).__name__}.{test._testMethodName}: {why}")
    if unknown:
        print(f"{len(unknown)} failed that goforkpy does not mean to fail: see above")
    return 0 if rate >= PASS_RATE else 1


if __name__ == "__main__":
    fork.init()
    sys.exit(main(sys.argv[1:]))
