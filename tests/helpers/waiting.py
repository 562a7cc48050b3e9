"""Waiting for a condition another thread makes true, within a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `condition` held within `timeout_s` (polled every millisecond)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
