"""Isolated web requests through real servers: `python benchmarks/web.py [REQUESTS]`.

gunicorn (two sync workers, ``--preload``, each worker warming its zygote in
``post_fork``) and uvicorn (one process) serve ``webapp.py``. For each route
(plain, a child per request, a reused isolated worker) it prints the latency
of requests sent one at a time, then the throughput and latency with 50
clients at once, each on a keep-alive connection of its own.
"""

import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROUTES = ("/plain", "/isolated", "/reused")
CLIENTS = 50


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(kind, port):
    """Start the server; return it once it answers."""
    bin_dir = os.path.dirname(sys.executable)
    if kind == "gunicorn":
        argv = [
            os.path.join(bin_dir, "gunicorn"),
            "-c",
            "python:webapp",
            "--preload",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "webapp:wsgi",
        ]
    else:
        argv = [
            os.path.join(bin_dir, "uvicorn"),
            "webapp:asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    server = subprocess.Popen(argv, cwd=HERE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _get(http.client.HTTPConnection("127.0.0.1", port, timeout=60), "/plain")
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"{kind} did not answer on port {port}")


def _get(connection, path):
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")


def _timed_requests(port, path, count):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(count):
        began = time.perf_counter()
        _get(connection, path)
        times.append(time.perf_counter() - began)
    connection.close()
    return times


def _percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _ms(seconds):
    """The median and the 99th percentile, in milliseconds."""
    return f"{statistics.median(seconds) * 1e3:6.2f} / {_percentile(seconds, 0.99) * 1e3:6.2f}"


def _at_once(port, path, each):
    """CLIENTS clients, each sending ``each`` requests: (requests/s, all latencies)."""
    latencies, lock = [], threading.Lock()
    start = threading.Barrier(CLIENTS + 1)

    def client():
        start.wait()
        times = _timed_requests(port, path, each)
        with lock:
            latencies.extend(times)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - began), latencies


def bench_web(requests=200):
    for kind in ("gunicorn", "uvicorn"):
        port = _free_port()
        server = _serve(kind, port)
        try:
            print(f"\n{kind}: ms per request (median, 99th percentile)")
            for path in ROUTES:
                _timed_requests(port, path, 20)  # each worker's zygote and pool at work
                alone = _timed_requests(port, path, requests)
                rate, crowd = _at_once(port, path, max(2, requests // CLIENTS))
                print(
                    f"  {path:<10} one at a time {_ms(alone)}    {CLIENTS} at once"
                    f" {rate:7.0f} requests/s, {_ms(crowd)}"
                )
        finally:
            server.terminate()
            server.wait(60)


if __name__ == "__main__":
    bench_web(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
