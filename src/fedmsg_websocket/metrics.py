"""fedmsg-websocket's Prometheus metrics, rendered from the counters the other modules keep.

Read from the exporter's thread while the event loop and the bus reader write: each counter is a plain
int replaced whole, which needs no lock under the GIL.
"""

from __future__ import annotations

import time

import zmq

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
        self._last_received = 0
        # Before the first message the age counts from start, like the gateway's.
        self._last_change = time.monotonic()
        labels = {"version": package_version(), "websockets": WEBSOCKETS_VERSION, "pyzmq": zmq.__version__}
        self._build_labels = ",".join(f'{key}="{value}"' for key, value in labels.items())

    def render(self) -> str:
        """The metrics in Prometheus text exposition format 0.0.4."""
        bus, fanout, clients = self._bus, self._fanout, self._clients
        if bus.received != self._last_received:
            self._last_received = bus.received
            self._last_change = time.monotonic()
        samples = [
            ("build_info", "gauge", "Always 1; the labels say which versions run.", 1),
            ("up", "gauge", "1 while the bus reader runs.", int(bus.is_alive())),
            ("clients", "gauge", "Open WebSocket connections.", len(self._registry)),
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
                "last_message_age_seconds",
                "gauge",
                "Seconds since a bus message last arrived (since start if none yet).",
                round(time.monotonic() - self._last_change, 3),
            ),
        ]
        lines = []
        for name, kind, text, value in samples:
            full = _PREFIX + name
            labels = f"{{{self._build_labels}}}" if name == "build_info" else ""
            lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}", f"{full}{labels} {value}"]
        return "\n".join(lines) + "\n"
