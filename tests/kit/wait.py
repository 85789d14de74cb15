"""Waiting for a condition, bounded, with what was awaited in the failure."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = 60, interval: float = 0.1
) -> float:
    """Poll `condition` until it is true; seconds it took. Fails the test after `timeout` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start
