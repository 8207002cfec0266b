"""The floor of a pool's tiny task: one pickled frame to a worker, one back, and nothing else.

``cores`` workers are forked once; the caller sends every task as a pickled frame down
a pipe to a worker (in turn), each worker runs it and sends a pickled frame back, and
the caller reads every answer: what any pool of processes pays a task on this machine
(no futures, no threads, no health checks), printed by run.py beside the Executors.
"""

import os
import pickle
import selectors
import time


def _tiny(x):
    return x + 1


def _work(requests, answers):
    with open(requests, "rb", buffering=1 << 16) as inbox, open(answers, "wb") as outbox:
        while head := inbox.read(4):
            fn, arg = pickle.loads(inbox.read(int.from_bytes(head, "little")))
            body = pickle.dumps(fn(arg))
            outbox.write(len(body).to_bytes(4, "little") + body)
            outbox.flush()
    os._exit(0)


def _take_frames(buffer):
    """How many complete frames ``buffer`` starts with; they are unpickled and removed."""
    count, at = 0, 0
    while len(buffer) - at >= 4:
        size = int.from_bytes(buffer[at : at + 4], "little")
        if len(buffer) - at - 4 < size:
            break
        pickle.loads(buffer[at + 4 : at + 4 + size])
        count, at = count + 1, at + 4 + size
    del buffer[:at]
    return count


def per_task(workers, tasks):
    """Seconds a task of ``tasks`` tiny ones takes through ``workers`` bare workers."""
    pipes, pids = [], []
    for _ in range(workers):
        (req_r, req_w), (ans_r, ans_w) = os.pipe(), os.pipe()
        pids.append(os.fork())
        if pids[-1] == 0:
            for fd in (req_w, ans_r, *(end for pair in pipes for end in pair)):
                os.close(fd)  # the caller's ends: a worker holding another's sees no EOF
            _work(req_r, ans_w)
        os.close(req_r)
        os.close(ans_w)
        os.set_blocking(req_w, False)
        pipes.append((req_w, ans_r))
    outgoing = [bytearray() for _ in pipes]
    for i in range(tasks):
        body = pickle.dumps((_tiny, i))
        outgoing[i % workers] += len(body).to_bytes(4, "little") + body
    began = time.perf_counter()
    answered = _exchange(pipes, outgoing)
    took = time.perf_counter() - began
    for pid in pids:  # these only: the caller may have children of its own (goforkpy's)
        os.waitpid(pid, 0)
    if answered != tasks:
        raise RuntimeError(f"{answered} answers to {tasks} tasks")
    return took / tasks


def _exchange(pipes, outgoing):
    selector = selectors.DefaultSelector()
    left = set()  # the answer pipes not yet at EOF
    for (req_w, ans_r), data in zip(pipes, outgoing, strict=True):
        selector.register(req_w, selectors.EVENT_WRITE, data)
        selector.register(ans_r, selectors.EVENT_READ, bytearray())
        left.add(ans_r)
    answered = 0
    while left:
        for key, _ in selector.select():
            if key.events & selectors.EVENT_WRITE:
                sent = os.write(key.fd, key.data)
                del key.data[:sent]
                if not key.data:
                    selector.unregister(key.fd)
                    os.close(key.fd)  # the worker sees EOF once it has read the rest
                continue
            chunk = os.read(key.fd, 1 << 16)
            if not chunk:
                selector.unregister(key.fd)
                os.close(key.fd)
                left.remove(key.fd)
                continue
            key.data.extend(chunk)
            answered += _take_frames(key.data)
    return answered
