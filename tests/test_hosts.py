"""Real host programs: gunicorn ``--preload`` and Celery, which fork after using goforkpy,
and uvicorn, whose event loop awaits isolated calls.

Both import the application (which uses goforkpy, and warms a zygote) in their
master process, then fork their workers from it. Each worker must serve
isolated calls with helpers of its own, and nothing may be left once the
master is told to stop. These are slow (real servers start), so they carry
the ``host`` marker and run in one CI pass.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO

import psutil
import pytest
from helpers import DEADLOCK_NET, wait_gone

pytestmark = pytest.mark.host
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def _guardians() -> set[int]:
    """The goforkpy guardians running now (a guardian lives in a session of its own)."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(part.startswith("# goforkpy guardian") for part in cmdline):
            found.add(process.pid)
    return found


def _env(directory: Path, start: str) -> dict[str, str]:
    path = os.pathsep.join([str(directory), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "GOFORKPY_START": start}


def _read_until(stream: IO[str], wanted: str, count: int = 1) -> list[str]:
    """Lines of ``stream`` up to the ``count``-th that contains ``wanted``."""
    lines: list[str] = []
    while sum(wanted in line for line in lines) < count:
        line = stream.readline()
        assert line, "the server ended early:\n" + "".join(lines)
        lines.append(line)
    return lines


def _drain(stream: IO[str]) -> threading.Thread:
    """Read the rest of a server's log on a thread, so the server never blocks on it."""
    reader = threading.Thread(target=stream.read, daemon=True)
    reader.start()
    return reader


def _stop_and_check(
    master: subprocess.Popen[str], guardians_before: set[int], reader: threading.Thread | None
) -> None:
    """SIGTERM the master; then none of its family or its helpers may be left."""
    if master.poll() is None:
        family = [p.pid for p in psutil.Process(master.pid).children(recursive=True)]
        family += [p for p in _guardians() - guardians_before]
        master.send_signal(signal.SIGTERM)
        master.wait(DEADLOCK_NET)
        assert wait_gone(family, DEADLOCK_NET) == [], "left running after the master stopped"
    if reader is not None:
        reader.join(DEADLOCK_NET)
    assert master.stderr is not None
    master.stderr.close()


GUNICORN_APP = """
import os
import time
from pathlib import Path

import goforkpy as fork


def square(x, hold=""):
    while hold and not Path(hold).exists():
        time.sleep(0.01)  # released by the test once the other request is answered
    return x * x


isolated_square = fork.isolated(square)
if not fork.is_child():  # the master, under --preload: use goforkpy before the fork
    fork.warm_up()
    assert isolated_square(3) == 9


def app(environ, start_response):
    x, _, hold = environ["QUERY_STRING"].partition("&")
    body = f"{os.getpid()} {isolated_square(int(x), hold)}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def _get(port: int, query: str) -> tuple[int, int]:
    """(the worker's pid, the isolated result) for one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLOCK_NET)
    try:
        connection.request("GET", f"/?{query}")
        pid, value = connection.getresponse().read().split()
    finally:
        connection.close()
    return int(pid), int(value)


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_gunicorn_preload_workers_serve_isolated_requests(tmp_path: Path, start: str) -> None:
    (tmp_path / "webapp.py").write_text(textwrap.dedent(GUNICORN_APP))
    guardians_before = _guardians()
    argv = [str(BIN / "gunicorn"), "--preload", "-w", "2", "-b", "127.0.0.1:0", "webapp:app"]
    master = subprocess.Popen(
        argv, cwd=tmp_path, env=_env(tmp_path, start), stderr=subprocess.PIPE, text=True
    )
    reader = None
    try:
        assert master.stderr is not None
        log = _read_until(master.stderr, "Booting worker", count=2)
        port = int(next(line for line in log if "Listening at" in line).split(":")[-1].split()[0])
        reader = _drain(master.stderr)
        # One worker is held inside an isolated call, so the other must answer the next.
        hold = tmp_path / "release"
        held: list[tuple[int, int]] = []
        holder = threading.Thread(target=lambda: held.append(_get(port, f"4&{hold}")))
        holder.start()
        other = _get(port, "5")
        hold.touch()
        holder.join(DEADLOCK_NET)
        assert [value for _, value in held] == [16] and other[1] == 25
        assert held[0][0] != other[0], "two workers each served an isolated request"
        assert {_get(port, str(x))[1] for x in range(6)} == {x * x for x in range(6)}
    finally:
        _stop_and_check(master, guardians_before, reader)
    assert master.returncode == 0


UVICORN_APP = """
import os

import goforkpy as fork

fork.init()


@fork.register
def square(x):
    return x * x


@fork.register
def segfault(_):
    import ctypes

    ctypes.string_at(0)


async def app(scope, receive, send):
    name = scope["path"].strip("/")
    try:
        body, status = f"{os.getpid()} {await fork.run_async(name, 7)}", 200
    except fork.ChildCrashed as crash:
        body, status = f"{os.getpid()} {crash.signal}", 500
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})
"""


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_uvicorn_awaits_isolated_calls_and_survives_a_crash(tmp_path: Path, start: str) -> None:
    """An async handler awaits a child; a segfault in one is that request's 500, and the
    same server process answers the next; nothing is left once it stops."""
    import socket

    (tmp_path / "asgi_app.py").write_text(textwrap.dedent(UVICORN_APP))
    guardians_before = _guardians()
    listener = socket.create_server(("127.0.0.1", 0))  # handed over: no port to race for
    port = listener.getsockname()[1]
    argv = [str(BIN / "uvicorn"), "--fd", str(listener.fileno()), "--lifespan", "off"]
    server = subprocess.Popen(
        [*argv, "asgi_app:app"],
        cwd=tmp_path,
        env=_env(tmp_path, start),
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=[listener.fileno()],
    )
    listener.close()
    reader = None
    try:
        assert server.stderr is not None
        _read_until(server.stderr, "Uvicorn running on")
        reader = _drain(server.stderr)

        def get(path: str) -> tuple[int, str]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLOCK_NET)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, response.read().decode()
            finally:
                connection.close()

        status, body = get("/square")
        assert status == 200 and body.split()[1] == "49"
        crashed = get("/segfault")
        assert crashed == (500, f"{body.split()[0]} SIGSEGV")
        assert get("/square") == (200, body), "the same server process answered"
    finally:
        _stop_and_check(server, guardians_before, reader)
    assert server.returncode == -signal.SIGTERM  # as without goforkpy: uvicorn re-raises it


CELERY_TASKS = """
import os

from celery import Celery
from celery.signals import worker_init

import goforkpy as fork

HERE = os.path.dirname(os.path.abspath(__file__))
ISOLATE = os.environ["ISOLATE"]  # a fresh child per call, or reused workers
app = Celery("tasks", broker="filesystem://", backend="file://" + os.path.join(HERE, "results"))
app.conf.broker_transport_options = {
    "data_folder_in": os.path.join(HERE, "queue"),
    "data_folder_out": os.path.join(HERE, "queue"),
}
app.conf.worker_hijack_root_logger = False


def square(x):
    return x * x


def segfault():
    import ctypes

    ctypes.string_at(0)


@app.task
def isolated_square(x):
    return os.getpid(), fork.isolated(square, isolate=ISOLATE)(x)


@app.task
def isolated_crash():
    fork.isolated(segfault, isolate=ISOLATE)()  # fails with ChildCrashed; the pool stays


@worker_init.connect
def use_goforkpy_before_the_pool_forks(**_):
    fork.warm_up()
    assert fork.isolated(square, isolate=ISOLATE)(2) == 4
"""

CELERY_CLIENT = """
import sys
import goforkpy as fork
from tasks import isolated_crash, isolated_square

if sys.argv[1] == "crash":
    result = isolated_crash.delay()
    result.get(timeout=60, propagate=False)
    # Celery's JSON results keep an exception's type and message (not its fields)
    print(type(result.result).__name__, "SIGSEGV" in str(result.result))
else:
    results = [isolated_square.delay(x) for x in range(8)]
    print(*[value for _, value in (r.get(timeout=60) for r in results)])
"""


def _pool_processes(worker: subprocess.Popen[str]) -> set[int]:
    """The worker's pool processes: its children that are not goforkpy's own."""
    return {
        child.pid
        for child in psutil.Process(worker.pid).children()
        if not any("goforkpy" in part for part in child.cmdline())
    }


@pytest.mark.parametrize("isolate", ["task", "worker"])
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_celery_prefork_tasks_call_isolated(tmp_path: Path, start: str, isolate: str) -> None:
    """The app's directory is on sys.path only while Celery imports it (its cwd), as
    with the ``celery`` console script: isolated calls, each in a child of its own or
    in reused workers, find the module all the same."""
    for folder in ("queue", "results"):
        (tmp_path / folder).mkdir()
    (tmp_path / "tasks.py").write_text(textwrap.dedent(CELERY_TASKS))
    (tmp_path / "client.py").write_text(textwrap.dedent(CELERY_CLIENT))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GOFORKPY_START": start, "ISOLATE": isolate}
    guardians_before = _guardians()
    argv = [str(BIN / "celery"), "-A", "tasks", "worker", "--pool=prefork", "-c", "2"]
    worker = subprocess.Popen(
        [*argv, "--loglevel=INFO", "--without-mingle", "--without-gossip"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )

    def client(what: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "client.py", what],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLOCK_NET,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    reader = None
    try:
        assert worker.stderr is not None
        _read_until(worker.stderr, " ready.")
        reader = _drain(worker.stderr)
        assert client("squares") == [str(x * x) for x in range(8)]
        pool = _pool_processes(worker)
        crashed = "WorkerCrashed" if isolate == "worker" else "ChildCrashed"  # a subclass
        assert client("crash") == [crashed, "True"]
        assert client("squares") == [str(x * x) for x in range(8)]
        assert _pool_processes(worker) == pool, "the pool processes stayed the same"
    finally:
        _stop_and_check(worker, guardians_before, reader)
