"""fedmsg-websocket's Prometheus metrics, rendered from the counters the other modules keep.

Read from the exporter's thread while the event loop and the bus reader write: each counter is a plain
int replaced whole, which needs no lock under the GIL.
"""

from __future__ import annotations

import time

import zmq

from fedmsg_gateway.exposition import Sample, process_samples, render
from fedmsg_gateway.version import package_version
from fedmsg_websocket.bus import BusReader
from fedmsg_websocket.compat import VERSION as WEBSOCKETS_VERSION
from fedmsg_websocket.fanout import Fanout
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.server import Clients

_PREFIX = "fedmsg_websocket_"


class Metrics:
    def __init__(self, bus: BusReader, fanout: Fanout, clients: Clients, registry: Registry[object]) -> None:
        self._bus = bus
        self._fanout = fanout
        self._clients = clients
        self._registry = registry
        self._build_labels = {
            "version": package_version(),
            "websockets": WEBSOCKETS_VERSION,
            "pyzmq": zmq.__version__,
        }

    @property
    def clients(self) -> int:
        return len(self._registry)

    @property
    def last_message_age(self) -> float:
        """Seconds since a bus message last arrived (since start if none yet)."""
        return time.monotonic() - self._bus.last_message_at[0]

    def render(self) -> str:
        """The metrics in Prometheus text exposition format 0.0.4, process_* included."""
        bus, fanout, clients = self._bus, self._fanout, self._clients
        samples = [
            ("build_info", "gauge", "Always 1; the labels say which versions run.", 1),
            ("up", "gauge", "1 while the bus reader runs.", int(bus.is_alive())),
            ("clients", "gauge", "Open WebSocket connections.", self.clients),
            ("connections_total", "counter", "WebSocket connections accepted.", clients.accepted),
            ("messages_received_total", "counter", "Bus messages received.", bus.received),
            (
                "messages_skipped_total",
                "counter",
                "Bus messages not sent to anyone: not [topic, JSON body].",
                bus.skipped,
            ),
            ("messages_sent_total", "counter", "Frames sent to clients, per client.", fanout.sent),
            (
                "bytes_sent_total",
                "counter",
                "Frame bytes sent to clients, per client, before compression.",
                fanout.sent_bytes,
            ),
            (
                "slow_client_closes_total",
                "counter",
                "Clients closed (1013) because their send queue passed max_queue_bytes.",
                fanout.slow_closes,
            ),
            (
                "oversized_client_closes_total",
                "counter",
                "Clients closed (1009) for a frame over max_frame_bytes.",
                clients.oversized,
            ),
            (
                "client_frames_ignored_total",
                "counter",
                "Client frames that were not a subscription (or one too many): dropped, never forwarded.",
                clients.ignored,
            ),
            (
                "last_message_timestamp_seconds",
                "gauge",
                "When a bus message last arrived, seconds since the epoch; the start time if none yet.",
                round(bus.last_message_at[1], 3),
            ),
            (
                "last_message_age_seconds",
                "gauge",
                "Seconds since a bus message last arrived (since start if none yet).",
                round(self.last_message_age, 3),
            ),
        ]
        own = [
            Sample(_PREFIX + name, kind, text, value, self._build_labels if name == "build_info" else {})
            for name, kind, text, value in samples
        ]
        return render([*own, *process_samples()])
