"""A child that signals its OS parent harms no other child (API.md section 4).

A cold child's OS parent is the spawner, a warm child's the zygote, a
snapshot's its intermediate: goforkpy's helpers. They hear none of the
signals a child can send them but SIGKILL; and when one is killed anyway,
everything below it is still ended, own-session descendants included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from helpers import DEADLOCK_NET, wait_gone
from test_containment import holders

import goforkpy as fork
from goforkpy._process import platform

# Other tests leave threads behind (Dask's): the snapshot's warning about them is expected.
pytestmark = pytest.mark.filterwarnings("ignore:fork.snapshot.*threads of its own:RuntimeWarning")

CATCHABLE = ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGTSTP"]


def keep_a_daemon(token: str, path: str) -> None:
    """Start a ``sleep`` in a session of its own, say so, then wait to be ended."""
    subprocess.Popen(["sleep", token], start_new_session=True, stdout=subprocess.DEVNULL)
    with open(path, "w") as f:
        f.write("ready")
    signal.pause()


def signal_the_parent(name: str, caller: int) -> str:
    if os.getppid() == caller:
        return "no helper"  # the portable layer's cold child: its parent is the caller
    os.kill(os.getppid(), getattr(signal, name))
    time.sleep(0.2)  # whatever the signal did to the parent, it has done it by now
    return f"{name} sent"


fork.register(keep_a_daemon)
fork.register(signal_the_parent)


def _started(start: str, tmp_path: object, token: str) -> fork.Child:
    path = os.path.join(str(tmp_path), "ready")
    victim = fork.spawn("keep_a_daemon", (token, path), start=start)
    deadline = time.monotonic() + DEADLOCK_NET
    while not (os.path.exists(path) and holders(token)):
        assert time.monotonic() < deadline and victim.is_alive(), "the victim never got ready"
        time.sleep(0.01)
    return victim


@pytest.mark.parametrize("name", CATCHABLE)
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_a_catchable_signal_to_a_helper_harms_nobody(
    start: str, name: str, tmp_path: object
) -> None:
    token = f"300.{os.getpid()}{CATCHABLE.index(name)}{start == 'warm':d}"
    victim = _started(start, tmp_path, token)
    me = os.getpid()
    sent = fork.spawn("signal_the_parent", (name, me), start=start).result(DEADLOCK_NET)
    if sent == "no helper":
        victim.kill()
        victim.wait()
        pytest.skip("without subreapers, a cold child's parent is the caller, not a helper")
    assert sent == f"{name} sent"
    assert fork.spawn("signal_the_parent", ("SIGTERM", me), start=start).result(DEADLOCK_NET)
    assert victim.is_alive(), "the other child lives on"
    victim.terminate(grace=DEADLOCK_NET)
    assert victim.returncode == -signal.SIGTERM, "and still hears its own SIGTERM"
    assert wait_gone(holders(token), DEADLOCK_NET) == []


@pytest.mark.skipif(not platform.NATIVE, reason="the helpers of the native layer")
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_a_helper_killed_anyway_takes_all_below_it(start: str, tmp_path: object) -> None:
    token = f"300.{os.getpid()}9{start == 'warm':d}"
    victim = _started(start, tmp_path, token)
    with pytest.raises(fork.ChildCrashed) as killer:
        fork.spawn("signal_the_parent", ("SIGKILL", os.getpid()), start=start).result(60)
    assert killer.value.reason == "lost-parent"
    with pytest.raises(fork.ChildCrashed) as other:
        victim.result(DEADLOCK_NET)
    assert other.value.reason == "lost-parent"
    assert wait_gone(holders(token), DEADLOCK_NET) == [], "its daemon went with it"
    assert fork.spawn("add", (1, 2), start=start).result(DEADLOCK_NET) == 3, "a new helper"


def kill_own_intermediate(token: str) -> str:
    subprocess.Popen(["sleep", token], start_new_session=True, stdout=subprocess.DEVNULL)
    while not holders(token):
        time.sleep(0.01)
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(DEADLOCK_NET)  # ended by the caller, with its daemon
    return "outlived its intermediate"


@pytest.mark.skipif(not platform.NATIVE, reason="an intermediate only where there are subreapers")
@pytest.mark.parametrize("name", [*CATCHABLE, "SIGKILL"])
def test_a_snapshot_that_signals_its_intermediate_stays_contained(name: str) -> None:
    token = f"300.{os.getpid()}8{[*CATCHABLE, 'SIGKILL'].index(name)}"
    if name == "SIGKILL":
        with pytest.raises(fork.ChildCrashed):
            fork.snapshot(kill_own_intermediate, token).result(DEADLOCK_NET)
    else:
        sent = fork.snapshot(signal_the_parent, name, os.getpid()).result(DEADLOCK_NET)
        assert sent == f"{name} sent"
    assert wait_gone(holders(token), DEADLOCK_NET) == []
