"""What /healthz reports: the relay thread runs and libzmq's proxy loop answered its control socket lately.

The answer comes from a Python thread, not from libzmq's I/O thread, so it stays fast while that thread
is saturated fanning out (the ZMTP greeting haproxy used to wait for then took over a second); a frozen or
dead process answers nothing, and a proxy loop that stopped turning answers 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fedmsg_gateway.metrics import POLL_INTERVAL

#: The metrics poller asks every POLL_INTERVAL and waits half of it: three missed answers mean a stuck loop.
MAX_SILENCE = 3 * POLL_INTERVAL


def problem(relay_alive: bool, answered_at: float | None, now: float) -> str | None:
    """None when healthy, else one line saying why not."""
    if not relay_alive:
        return "relay stopped"
    if answered_at is None:
        return "the proxy loop has not answered yet"
    silence = now - answered_at
    if silence > MAX_SILENCE:
        return f"the proxy loop has not answered for {silence:.1f} s"
    return None


def checker(
    relay_alive: Callable[[], bool], answered_at: Callable[[], float | None]
) -> Callable[[], str | None]:
    return lambda: problem(relay_alive(), answered_at(), time.monotonic())
