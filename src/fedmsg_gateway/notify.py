"""systemd service notifications (sd_notify protocol) without libsystemd.

The protocol is one datagram of newline-separated VAR=value lines to the AF_UNIX socket named by
$NOTIFY_SOCKET; a leading '@' names a socket in the abstract namespace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable


def notify(state: str) -> None:
    """Send `state` (e.g. "READY=1") to systemd; do nothing when not started by systemd.

    A socket that is gone or full loses the notification, as sd_notify(3) does: telling systemd is
    never a reason for the daemon to stop relaying.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(state.encode(), address)


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half the timeout systemd set), or None when not watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    # WATCHDOG_PID, when set, says which process the watchdog is meant for (it may be our parent's).
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 2_000_000
    except ValueError:
        return None
    return seconds if seconds > 0 else None


#: How often the main loops wake up when systemd's watchdog does not ask for more: how soon a dead
#: worker thread is noticed.
CHECK_INTERVAL = 1.0
#: How often STATUS= (what `systemctl status` shows) is refreshed.
STATUS_INTERVAL = 5.0


class Heartbeat:
    """What a daemon's main loop tells systemd while it runs: WATCHDOG=1 and STATUS=.

    The loop waits `tick` seconds at a time (at most half the watchdog timeout, at most a second) and
    calls beat() after each wait: a watched daemon pings on every beat, STATUS= goes out every
    STATUS_INTERVAL.
    """

    def __init__(self, status: Callable[[], str]) -> None:
        self._watched = watchdog_interval() is not None
        self._status = status
        self.tick = min(watchdog_interval() or CHECK_INTERVAL, CHECK_INTERVAL)
        self._next_status = time.monotonic()

    def beat(self) -> None:
        now = time.monotonic()
        lines = ["WATCHDOG=1"] if self._watched else []
        if now >= self._next_status:
            lines.append(f"STATUS={self._status()}")
            self._next_status = now + STATUS_INTERVAL
        if lines:
            notify("\n".join(lines))


class Watch:
    """What a daemon's main loop decides each time it wakes: it waits up to `tick` seconds for a stop
    signal, then calls woke() with the signal it got (or None).

    A stop signal ends the daemon with 0 (STOPPING=1 first), a dead worker thread with 1; otherwise
    the heartbeat beats and woke() returns None: wait again.
    """

    def __init__(
        self, log: logging.Logger, worker: str, is_alive: Callable[[], bool], heartbeat: Heartbeat
    ) -> None:
        self._log, self._worker, self._is_alive, self._heartbeat = log, worker, is_alive, heartbeat
        self.tick = heartbeat.tick

    def woke(self, stop: signal.Signals | None) -> int | None:
        if stop is not None:
            notify("STOPPING=1")
            self._log.info("stopping on %s", stop.name)
            return 0
        if not self._is_alive():
            self._log.error("%s thread died; exiting", self._worker)
            return 1
        self._heartbeat.beat()
        return None


def bus_status(peers: str, age: float, received: bool) -> str:
    """A STATUS= line: who is connected, how long since the bus last delivered."""
    if received:
        return f"{peers}, last bus message {age:.0f} s ago"
    return f"{peers}, no bus message since the start {age:.0f} s ago"
