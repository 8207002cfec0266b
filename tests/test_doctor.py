"""``python -m goforkpy doctor [script]``: the machine's features, and a program's fit.

The program is run down to its ``fork.init()`` and stopped there: what it does
after never runs. Its start-up time, size, threads and the modules known not to
survive a fork decide the start method the doctor names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import DEADLOCK_NET

from goforkpy._process import platform

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "goforkpy", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=DEADLOCK_NET,
    )


def _finding(output: str, topic: str) -> str:
    """The finding printed for ``topic`` (its first line)."""
    for line in output.splitlines():
        if line.strip().startswith(topic):
            return line.strip()[len(topic) :].strip()
    raise AssertionError(f"no {topic!r} in:\n{output}")


def test_the_machine_is_described_as_the_platform_layer_finds_it() -> None:
    done = _doctor("doctor")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert _finding(out, "platform layer").startswith("linux" if platform.NATIVE else "posix")
    yes = "yes" if platform.NATIVE else "no"
    for topic in ("subreaper", "pidfd", "sealed memory"):
        assert _finding(out, topic).startswith(yes + ":"), out
    from goforkpy._sandbox.policy import sandbox_support

    support = sandbox_support()
    landlock = _finding(out, "Landlock")
    assert landlock.startswith(
        f"ABI {support['landlock_abi']}" if support["landlock_abi"] else "no"
    )
    assert _finding(out, "sandbox=").startswith("enforced" if support["available"] else "refused")
    assert "Name a script" in out


SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
import goforkpy as fork

if "slow" in sys.argv:
    time.sleep(0.3)  # the start-up the doctor measures (a web app's imports, say)
if "native" in sys.argv:
    import native_thread
    native_thread.start("pool-worker")
if "grpc" in sys.argv:
    import grpc  # the stand-in of the test's directory

@fork.register
def work():
    return 1

if __name__ == "__main__":
    fork.init()
    open(os.path.join(os.path.dirname(__file__), "main-ran"), "w").close()
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(SCRIPT.format(tests=str(tmp_path)))
    (tmp_path / "native_thread.py").write_text((TESTS / "native_thread.py").read_text())
    (tmp_path / "grpc.py").write_text("'''A stand-in for grpcio: only its name matters.'''\n")
    return path


def test_a_slow_start_up_is_measured_and_warm_named_and_main_never_runs(script: Path) -> None:
    done = _doctor("doctor", str(script), "slow")
    assert done.returncode == 0, done.stdout + done.stderr
    reached = _finding(done.stdout, "reaches fork.init() in")
    assert float(reached.split()[0]) >= 0.3
    assert _finding(done.stdout, "threads then") == "none but the main thread"
    assert _finding(done.stdout, "start method").startswith("warm: each cold child would pay")
    assert not (script.parent / "main-ran").exists(), "the doctor stops the program at init()"


def test_a_quick_start_up_leaves_the_choice(script: Path) -> None:
    """The choice follows the start-up measured (which a loaded machine can stretch past
    the threshold: the run is checked against the figure it printed, the threshold on
    its own below)."""
    from goforkpy import _doctor as doctor

    done = _doctor("doctor", str(script))
    assert done.returncode == 0, done.stdout + done.stderr
    seconds, bare = re.findall(r"\d+\.\d+", _finding(done.stdout, "reaches fork.init() in"))
    start_up = float(seconds) - float(bare)
    fit = _finding(done.stdout, "start method")
    quick = fit.startswith("cold or warm: the start-up is short")
    assert quick or fit.startswith("warm: each cold child would pay"), fit
    # the figures are printed to 0.01 s
    if quick:
        assert start_up < doctor._SLOW_START + 0.01, (start_up, fit)
    else:
        assert start_up > doctor._SLOW_START - 0.01, (start_up, fit)
    assert doctor._fitting(0.01, 0, [], []).startswith("cold or warm: the start-up is short")
    assert doctor._fitting(doctor._SLOW_START, 0, [], []).startswith("warm: each cold child")


@pytest.mark.skipif(not platform.NATIVE, reason="POSIX cannot list a process's threads")
def test_a_native_thread_at_init_is_named_and_makes_cold_the_fit(script: Path) -> None:
    done = _doctor("doctor", str(script), "native")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _finding(done.stdout, "threads then") == "native thread 'pool-worker': NOT vouched for"
    fit = _finding(done.stdout, "start method")
    assert fit.startswith("cold: a zygote would fork with native thread 'pool-worker'"), fit


def test_grpc_without_its_fork_support_is_named(script: Path) -> None:
    done = _doctor("doctor", str(script), "grpc")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GRPC_ENABLE_FORK_SUPPORT=true" in _finding(done.stdout, "does not survive fork")
    assert _finding(done.stdout, "start method").startswith("cold: grpc would not survive")
    done = _doctor("doctor", str(script), "grpc", env={"GRPC_ENABLE_FORK_SUPPORT": "true"})
    assert "does not survive fork" not in done.stdout, done.stdout


def test_a_script_that_never_reaches_init_is_told_so(tmp_path: Path) -> None:
    script = tmp_path / "bare.py"
    script.write_text("import sys\nprint('working', file=sys.stderr)\n")
    done = _doctor("doctor", str(script))
    assert done.returncode == 1
    assert "never reached: call it early in the script; it said:\nworking" in done.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [((), "usage: python -m goforkpy doctor"), (("doctor", "nowhere.py"), "no script")],
)
def test_a_bad_command_line_is_refused_with_the_usage(args: tuple[str, ...], said: str) -> None:
    done = _doctor(*args)
    assert done.returncode == 2 and said in done.stderr


def test_the_platforms_page_shows_what_the_doctor_prints() -> None:
    from goforkpy import _doctor

    page = (ROOT / "docs" / "platforms.md").read_text()
    sample = page.split("$ python -m goforkpy doctor app.py\n")[1].split("```")[0]
    topics = [topic for topic, _ in _doctor.machine()]
    topics += ["reaches fork.init() in", "resident then", "threads then", "start method"]
    for topic in topics:
        assert f"\n  {topic} " in sample, f"the docs' sample lacks {topic!r}"


def test_a_process_the_program_starts_before_init_is_not_stopped(tmp_path: Path) -> None:
    script = tmp_path / "starts.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys
            import goforkpy as fork

            if "inner" not in sys.argv:  # before init(): a helper of the same program
                subprocess.run([sys.executable, __file__, "inner"], check=True)

            if __name__ == "__main__":
                fork.init()
                if "inner" in sys.argv:
                    open({str(tmp_path / "inner-ran")!r}, "w").close()
            """
        )
    )
    done = _doctor("doctor", str(script))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "inner-ran").exists(), "the inner run went on past its init()"
