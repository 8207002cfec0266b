"""A child sends the time to its parent every second; the parent prints what it gets.

The gproc messaging example, in Python: `fork.send(pid, data)` and `fork.receive()`.
"""

import time

import goforkpy as fork


@fork.register
def clock(ticks):
    parent = fork.ppid()
    for _ in range(ticks):
        fork.send(parent, time.strftime("%H:%M:%S"))
        time.sleep(1)
    fork.send(parent, "done", group="control")


def main():
    child = fork.fork("clock", 3)
    for _ in range(3):
        message = fork.receive(timeout=10)
        print(f"from pid {message.pid}: {message.data.decode()}")
    print("control:", fork.receive("control", timeout=10).data.decode())
    child.wait()


if __name__ == "__main__":
    fork.init()
    main()
