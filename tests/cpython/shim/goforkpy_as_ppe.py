"""``concurrent.futures.ProcessPoolExecutor`` replaced by ``fork.Executor``, for CPython's
tests: in the process that runs them (``install()``) and in each interpreter they start
(``sitecustomize`` here calls it)."""

import concurrent.futures

import goforkpy as fork


class ProcessPoolExecutor(fork.Executor):
    """``fork.Executor`` under the name the tests import."""


def install() -> None:
    concurrent.futures.ProcessPoolExecutor = ProcessPoolExecutor  # type: ignore[misc]
