"""Consistent background saves of a table that never stops changing (Redis-style).

The main loop keeps updating a large in-memory table. Every so often it calls
``fork.snapshot(save, ...)``: a fork of this very process whose child sees the
table exactly as it was at that instant (copy-on-write: nothing is copied up
front, nothing is pickled) and writes it to disk, while the loop goes on
changing it. Each file written is consistent: every row in it carries the
same version number.

    python examples/snapshot.py [DIRECTORY]
"""

import json
import os
import sys
import tempfile
import time

import goforkpy as fork

ROWS = 200_000


def save(table, version, path):
    """In the snapshot child: write the table as it was, atomically (temp file + rename)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump({"version": version, "rows": table}, f)
    os.replace(temporary, path)
    return len(table)


def check(path):
    """Every row of a saved table must come from the same version."""
    with open(path) as f:
        saved = json.load(f)
    versions = {row[1] for row in saved["rows"]}
    return saved["version"], versions == {saved["version"]}


def main(directory):
    fork.init()
    table = [[key, 0] for key in range(ROWS)]
    saves = []
    version = 0
    started = time.perf_counter()
    while version < 30:
        version += 1
        for row in table:  # one whole version of updates
            row[1] = version
        if version % 5 == 0:
            path = os.path.join(directory, f"table-{version}.json")
            began = time.perf_counter()
            saves.append((fork.snapshot(save, table, version, path), path))
            blocked = (time.perf_counter() - began) * 1e3
            print(f"version {version}: snapshot taken, the loop was blocked {blocked:.1f} ms")
    for child, path in saves:
        rows = child.result()
        saved_version, consistent = check(path)
        verdict = "consistent" if consistent else "TORN"
        print(f"{os.path.basename(path)}: {rows} rows of version {saved_version}, {verdict}")
    print(f"30 versions and 6 background saves in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as scratch:
            main(scratch)
