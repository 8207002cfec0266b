"""Many processes at once with fork.Manager: forked children and an adopted process."""

import subprocess

import goforkpy as fork


@fork.register
def work(seconds, outcome):
    import time

    time.sleep(seconds)
    if outcome == "raise":
        raise RuntimeError("job failed")
    return seconds


def main():
    with fork.Manager() as manager:
        for seconds, outcome in [(0.3, "ok"), (0.1, "ok"), (0.2, "raise")]:
            manager.fork("work", seconds, outcome)
        print(f"started: {manager}")
        for child in manager.as_completed(timeout=10):  # in the order they finish
            try:
                print(f"  pid {child.pid} returned {child.result()}")
            except RuntimeError as exc:
                print(f"  pid {child.pid} raised {exc!r}")

        outside = subprocess.Popen(["sleep", "300"])  # a process the Manager did not start
        adopted = manager.add(outside.pid)
        print(f"adopted {adopted}")
        manager.terminate_all(grace=1.0)  # whole trees, all at once
        print("exit statuses:", manager.wait_all())
    outside.wait()


if __name__ == "__main__":
    fork.init()
    main()
