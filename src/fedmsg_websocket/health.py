"""What /healthz reports: the bus reader thread is alive and its hand-offs reach the event loop."""

from __future__ import annotations

from fedmsg_websocket.bus import HEARTBEAT

#: The reader hands over a batch (or an empty heartbeat) at least every HEARTBEAT seconds; a few missed
#: ones mean it is stuck, or the event loop is too busy to take them.
MAX_SILENCE = 5 * HEARTBEAT


def problem(reader_alive: bool, silence: float) -> str | None:
    """None when healthy, else one line saying why not; `silence`: seconds since the last hand-off."""
    if not reader_alive:
        return "bus reader stopped"
    if silence > MAX_SILENCE:
        return f"no hand-off from the bus reader for {silence:.1f} s"
    return None
