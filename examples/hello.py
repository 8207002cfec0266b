"""The go-fork README example, in Python."""

import os

import goforkpy as fork


@fork.register
def child(n):
    print(f"child({n}) pid: {os.getpid()}")


if __name__ == "__main__":
    fork.init()
    print(f"main() pid: {os.getpid()}")
    fork.fork("child", 1).wait()
