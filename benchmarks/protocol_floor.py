"""The floor of a warm call's protocol: goforkpy's zygote protocol, and nothing else.

A zygote (a fork of this process, with goforkpy imported) keeps a spare child forked
ahead; the caller writes a payload file and asks the zygote, which hands the request to
its spare and answers with its pid; the child reads the payload, runs the function,
writes the result file and exits; the zygote sees the exit through a pidfd and tells
the caller, which releases it; the zygote reaps it and says so; the caller reads the
result. The exit is held unreaped until the caller has recorded it, as goforkpy holds
it (so a signal the caller sends can never reach a reused pid). No options, no
checks, no set-up of the child: what any implementation of these guarantees pays on
this machine, measured beside goforkpy's own warm call (anatomy.py).

Linux only (pidfds); run by anatomy.py.
"""

import marshal
import os
import pickle
import selectors
import socket
import statistics
import threading
import time


def _send(sock, message):
    body = marshal.dumps(message)
    sock.sendall(len(body).to_bytes(4, "little") + body)


def _receive(sock):
    head = sock.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    return marshal.loads(sock.recv(int.from_bytes(head, "little"), socket.MSG_WAITALL))


def _be_the_child(requests):
    path = _receive(requests)
    if path is None:
        os._exit(0)
    with open(path, "rb") as payload:
        fn, args = pickle.loads(payload.read())
    with open(path + ".out", "wb") as result:
        result.write(pickle.dumps(fn(*args)))
    os._exit(0)


def _serve(requests, notices):
    """The zygote: a spare forked as soon as the last is handed out."""
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ, "request")
    selector.register(notices, selectors.EVENT_READ, "release")
    spare = None
    while True:
        if spare is None:
            ours, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:
                for end in (ours, requests, notices, selector):
                    end.close()  # or it would wait for ever on a socket it holds itself
                _be_the_child(theirs)
            theirs.close()
            spare = (pid, ours)
            selector.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
        for key, _ in selector.select():
            if key.data == "request":
                path = _receive(requests)
                if path is None:
                    os._exit(0)
                (pid, ours), spare = spare, None
                _send(ours, path)
                ours.close()
                _send(requests, pid)
            elif key.data == "release":
                pid = _receive(notices)
                if pid is None:
                    os._exit(0)
                used = os.wait4(pid, 0)[2]
                _send(notices, ("reaped", pid, used.ru_maxrss))
            else:
                selector.unregister(key.fd)
                os.close(key.fd)
                info = os.waitid(os.P_PID, key.data, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                _send(notices, ("exited", key.data, info.si_status))


class _Caller:
    def __init__(self):
        self.requests, their_requests = socket.socketpair()
        self.notices, their_notices = socket.socketpair()
        self.zygote = os.fork()
        if self.zygote == 0:
            self.requests.close()
            self.notices.close()
            _serve(their_requests, their_notices)
        their_requests.close()
        their_notices.close()
        self.reaped = set()  # pids reaped and not yet collected by call()
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read_notices, daemon=True)
        self.reader.start()

    def _read_notices(self):
        while (notice := _receive(self.notices)) is not None:
            kind, pid, _ = notice
            if kind == "exited":
                _send(self.notices, pid)  # recorded: it may be reaped now
            else:  # this may come before call() has read the pid from the zygote
                with self.changed:
                    self.reaped.add(pid)
                    self.changed.notify_all()

    def call(self, fn, *args):
        path = f"/dev/shm/goforkpy-protocol-floor-{os.getpid()}"
        with open(path, "wb") as payload:
            payload.write(pickle.dumps((fn, args)))
        _send(self.requests, path)
        pid = _receive(self.requests)
        with self.changed:
            self.changed.wait_for(lambda: pid in self.reaped)
            self.reaped.remove(pid)
        with open(path + ".out", "rb") as result:
            value = pickle.loads(result.read())
        os.unlink(path)
        os.unlink(path + ".out")
        return value

    def close(self):
        for sock in (self.requests, self.notices):
            sock.shutdown(socket.SHUT_RDWR)  # the zygote, and our reader, see EOF
        self.reader.join()
        for sock in (self.requests, self.notices):
            sock.close()
        os.waitpid(self.zygote, 0)


def _nothing():
    return None


def protocol_floor(rounds):
    """Median seconds of a call of a function that does nothing, through the protocol alone."""
    caller = _Caller()
    try:
        for _ in range(5):
            caller.call(_nothing)
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            caller.call(_nothing)
            times.append(time.perf_counter() - began)
    finally:
        caller.close()
    return statistics.median(times)
