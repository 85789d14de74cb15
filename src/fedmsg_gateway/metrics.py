"""Gateway metrics: poll the proxy's STATISTICS about once a second, render Prometheus text.

Polling keeps the relay at C speed: the proxy counts every message itself, we only read its counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq

from fedmsg_gateway.exposition import Sample, process_samples, render
from fedmsg_gateway.relay import STATISTICS_UNIT, Counters, Relay, query_counters
from fedmsg_gateway.version import package_version
from fedmsg_gateway.worker import Worker

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
_PREFIX = "fedmsg_gateway_"
_REPLY_TIMEOUT_MS = 500
_UNIT_HELP = {
    "messages": "messages (a multipart fedmsg message counts once)",
    "frames": "ZeroMQ frames (libzmq >= 4.3.5 counts each frame; a fedmsg message is 2 frames)",
}


class Metrics(Worker):
    """Latest proxy counters plus the time the received counter last moved.

    The poller thread replaces whole immutable values; readers need no lock under the GIL.
    """

    def __init__(self, relay: Relay, subscribers: Callable[[], int]) -> None:
        self._relay = relay
        self._subscribers = subscribers
        self._counters = Counters(0, 0, 0, 0)
        self._answered = False
        #: time.monotonic() of the proxy loop's latest STATISTICS answer; None before the first.
        self.answered_at: float | None = None
        # Before the first message, the age counts from start: a gateway that never received anything
        # is as stale as one that stopped receiving. Both clocks: the age must not jump with the wall
        # clock, the timestamp is what Prometheus compares with time().
        self._last_change = time.monotonic()
        self._last_change_wall = time.time()
        super().__init__("metrics-poller")

    def _run(self) -> None:
        sock = self._relay.control_client()
        try:
            while True:
                counters = query_counters(sock, _REPLY_TIMEOUT_MS)
                if counters is None:
                    # A REQ socket that missed its reply cannot send again: start over with a new one.
                    sock.close(linger=0)
                    sock = self._relay.control_client()
                    self._answered = False
                else:
                    if counters.received != self._counters.received:
                        self._last_change = time.monotonic()
                        self._last_change_wall = time.time()
                    self._counters = counters
                    self._answered = True
                    self.answered_at = time.monotonic()
                if self._stopping.wait(POLL_INTERVAL):
                    return
        except zmq.ZMQError:
            log.exception("metrics poller stopped")
        finally:
            sock.close(linger=0)

    @property
    def up(self) -> bool:
        """The relay runs and its proxy loop answered the last poll."""
        return self._answered and self._relay.is_alive()

    @property
    def subscribers(self) -> int:
        return self._subscribers()

    @property
    def received_any(self) -> bool:
        """Whether any bus message arrived since the start."""
        return self._counters.received > 0

    @property
    def last_message_age(self) -> float:
        """Seconds since the received counter last moved (since start if it never did)."""
        return time.monotonic() - self._last_change

    def render(self) -> str:
        """The metrics in Prometheus text exposition format 0.0.4, process_* included."""
        unit = STATISTICS_UNIT
        unit_help = _UNIT_HELP[unit]
        counters = self._counters
        p = _PREFIX
        return render(
            [
                Sample(
                    f"{p}build_info",
                    "gauge",
                    "Always 1; the label is the running build's version (--version, dpkg -s fedmsg-gateway).",
                    1,
                    {"version": package_version()},
                ),
                Sample(f"{p}up", "gauge", "1 while the relay is running and answering.", int(self.up)),
                Sample(
                    f"{p}{unit}_received_total",
                    "counter",
                    f"Bus {unit_help} received from all endpoints.",
                    counters.received,
                ),
                Sample(
                    f"{p}bytes_received_total",
                    "counter",
                    "Payload bytes received from the bus.",
                    counters.received_bytes,
                ),
                Sample(
                    f"{p}{unit}_sent_total",
                    "counter",
                    f"Bus {unit_help} handed to the public socket, counted once however many subscribers"
                    " receive them.",
                    counters.sent,
                ),
                Sample(
                    f"{p}bytes_sent_total",
                    "counter",
                    "Payload bytes handed to the public socket, counted once, not per subscriber.",
                    counters.sent_bytes,
                ),
                Sample(
                    f"{p}subscribers", "gauge", "Open connections to the public socket(s).", self.subscribers
                ),
                Sample(
                    f"{p}last_message_timestamp_seconds",
                    "gauge",
                    "When the received counter last changed (polled every second), seconds since the"
                    " epoch; the start time if nothing arrived yet.",
                    round(self._last_change_wall, 3),
                ),
                Sample(
                    f"{p}last_message_age_seconds",
                    "gauge",
                    "Seconds since the received counter last changed (since start if nothing arrived yet).",
                    round(self.last_message_age, 3),
                ),
                *process_samples(),
            ]
        )
