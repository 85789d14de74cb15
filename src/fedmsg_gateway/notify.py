"""systemd service notifications (sd_notify protocol) without libsystemd.

The protocol is one datagram of newline-separated VAR=value lines to the AF_UNIX socket named by
$NOTIFY_SOCKET; a leading '@' names a socket in the abstract namespace.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> None:
    """Send `state` (e.g. "READY=1") to systemd; do nothing when not started by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
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
