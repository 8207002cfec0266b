"""A module whose import takes a while in a child, as a web app's imports do under load."""

from __future__ import annotations

import time

import goforkpy as fork

if fork.is_child():
    time.sleep(1.5)  # the start-up under test, not a synchronisation


@fork.register
def quick(x: int) -> int:
    return x + 1
