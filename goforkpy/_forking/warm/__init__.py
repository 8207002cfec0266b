"""Warm starts: children forked from a zygote instead of a fresh interpreter.

A zygote is a goforkpy child that ran what a cold child runs before its
function (the main script down to ``fork.init()``, or goforkpy's entry point)
and then waits. Asked for a child, it forks; the fork takes the same markers
and payload as a cold child and dispatches as one. The zygote reaps its
children and tells the parent how each ended.

- ``messages``: the frames both sides exchange, with descriptors attached.
- ``zygote``: the parent's side: start a zygote, ask it for children, learn
  of their exits, replace it when it dies.
- ``serve``: the zygote's side: the loop that waits, forks and reports.
- ``exits``: how the zygote learns that a child ended (pidfds on Linux,
  SIGCHLD elsewhere).
"""
