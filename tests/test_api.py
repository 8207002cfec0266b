"""The public surface: exports, errors, registry, and what importing costs."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types

import pytest

import goforkpy as fork


def test_all_matches_the_exports() -> None:
    public = {name for name in dir(fork) if not name.startswith("_")} - {"annotations"}
    public -= {name for name in public if isinstance(getattr(fork, name), types.ModuleType)}
    assert public == set(fork.__all__)
    for name in fork.__all__:
        assert getattr(fork, name) is not None


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fork.nope  # noqa: B018


ERRORS = [
    fork.ForkError("root"),
    fork.RegistryError("dup"),
    fork.InitError("too deep"),
    fork.PayloadError("bad"),
    fork.ChildCrashed("died", pid=4, returncode=-9, signal="SIGKILL", stderr_tail="x", name="f"),
    fork.TimeoutExpired("late", timeout=1.5, pid=3, name="g"),
    fork.IPCError("no peer"),
    fork.ShellError("failed", returncode=2, output="oops", cmd="false"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_intact(error: fork.ForkError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and back.args == error.args
    assert vars(back) == vars(error)
    assert isinstance(back, fork.ForkError)


def test_timeout_expired_is_a_builtin_timeout_error() -> None:
    assert issubclass(fork.TimeoutExpired, TimeoutError)


def test_registered_is_a_read_only_live_view() -> None:
    view = fork.registered()
    with pytest.raises(TypeError):
        view["x"] = print  # type: ignore[index]

    @fork.register("api-probe")
    def probe() -> int:
        return 1

    assert view["api-probe"] is probe


def test_reregistering_the_same_function_is_allowed() -> None:
    def same() -> None: ...

    fork.register_func("api-same", same)
    fork.register_func("api-same", same)
    assert fork.registered()["api-same"] is same


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: fork.register_func("", print), "non-empty string"),
        (lambda: fork.register_func("x", 42), "needs a function"),
        (lambda: fork.register(42), "no __name__"),
    ],
)
def test_bad_registrations_name_the_problem(call, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(fork.RegistryError, match=text):
        call()


def test_import_is_lean() -> None:
    """A re-executed child pays for every import: keep the heavy ones lazy."""
    code = "import sys, goforkpy; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(out.stdout))
    heavy = {"typing", "subprocess", "pickle", "cloudpickle", "psutil", "threading", "asyncio"}
    assert not heavy & loaded
