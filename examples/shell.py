"""Shell helpers whose timeouts end the whole command tree, grandchildren included."""

import goforkpy as fork


def main():
    print("shell_exec:", repr(fork.shell_exec("echo hello; echo from stderr >&2")))
    print("stdin:", repr(fork.shell_exec("tr a-z A-Z", stdin="shout this")))
    try:
        fork.shell_exec("echo about to fail; exit 3")
    except fork.ShellError as exc:
        print(f"ShellError: status {exc.returncode}, output {exc.output!r}")

    status = fork.shell_run("for i in 1 2 3; do echo line $i; done")
    print("shell_run status:", status)

    # subprocess.run(..., timeout=1) would leave both sleeps running; this leaves none.
    try:
        fork.shell("sleep 300 & sleep 300; wait", timeout=1, grace=0.5)
    except fork.TimeoutExpired as exc:
        print(f"timed out after {exc.timeout} s; the shell and both sleeps are gone")


if __name__ == "__main__":
    main()
