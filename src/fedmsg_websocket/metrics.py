"""fedmsg-websocket's Prometheus metrics, rendered from the counters the other modules keep.

Read from the exporter's thread while the event loop and the bus reader write: each counter is a plain
int replaced whole, which needs no lock under the GIL.
"""

from __future__ import annotations

import time

import zmq

from fedmsg_gateway.exposition import Sample, process_samples, render
from fedmsg_gateway.version import package_version
from fedmsg_websocket.backfill import Backfill, metric_samples
from fedmsg_websocket.bus import BusReader
from fedmsg_websocket.catchup import Catchup
from fedmsg_websocket.compat import VERSION as WEBSOCKETS_VERSION
from fedmsg_websocket.fanout import Fanout
from fedmsg_websocket.raw import Raw
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.server import Clients
from fedmsg_websocket.sse import Streams
from fedmsg_websocket.writer import Writer

_PREFIX = "fedmsg_websocket_"


class Metrics:
    def __init__(
        self,
        bus: BusReader,
        fanout: Fanout,
        clients: Clients,
        registry: Registry[object],
        *,
        writer: Writer | None,
        raw: Raw,
        catchup: Catchup,
        streams: Streams,
        backfill: Backfill | None = None,
    ) -> None:
        self._bus = bus
        self._backfill = backfill
        self._writer = writer
        self._raw = raw
        self._catchup = catchup
        self._streams = streams
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
        samples += self._window()
        samples += metric_samples(self._backfill)
        own = [
            Sample(_PREFIX + name, kind, text, value, self._build_labels if name == "build_info" else {})
            for name, kind, text, value in samples
        ]
        return render([*own, *process_samples()])

    def _window(self) -> list[tuple[str, str, str, float]]:
        raw, catchup, streams = self._raw, self._catchup, self._streams
        samples: list[tuple[str, str, str, float]] = [
            ("sse_clients", "gauge", "Open Server-Sent Events streams (/stream), live.", len(streams)),
            ("sse_connections_total", "counter", "Server-Sent Events streams opened.", streams.accepted),
            (
                "sse_refused_total",
                "counter",
                "/stream requests refused for bad parameters (400).",
                streams.refused,
            ),
            (
                "resumes_total",
                "counter",
                "Resumes started (SSE Last-Event-ID, WebSocket __resume__).",
                catchup.resumes,
            ),
            (
                "resuming",
                "gauge",
                "Clients replaying their backlog now (live messages kept for them).",
                len(catchup),
            ),
            ("resume_messages_total", "counter", "Stored messages replayed by resumes.", catchup.replayed),
            (
                "resume_truncated_total",
                "counter",
                "Resumes that asked for more than resume_max_messages back and got the newest only.",
                catchup.truncated,
            ),
            (
                "resume_failed_total",
                "counter",
                "Resumes that could not read the window (live only), or found it not yet written in time.",
                catchup.failed + catchup.unsettled,
            ),
            ("raw_requests_total", "counter", "/raw requests answered (200).", raw.served),
            ("raw_bad_requests_total", "counter", "/raw requests refused for bad parameters (400).", raw.bad),
            (
                "raw_unavailable_total",
                "counter",
                "/raw requests refused: no window, window unreadable, or too busy (503).",
                raw.unavailable,
            ),
        ]
        writer = self._writer
        if writer is None:
            return samples
        store = writer.store
        oldest = store.oldest if store is not None else 0
        age = max(0.0, time.time() - oldest / 1_000_000) if oldest else 0.0
        return [
            *samples,
            (
                "window_up",
                "gauge",
                "1 while the window's database is open for writing.",
                int(store is not None),
            ),
            ("window_messages", "gauge", "Messages in the window.", store.rows if store else 0),
            (
                "window_bytes",
                "gauge",
                "Payload bytes (topic + body) in the window.",
                store.bytes if store else 0,
            ),
            (
                "window_oldest_age_seconds",
                "gauge",
                "Age of the oldest message in the window (0: empty).",
                round(age, 3),
            ),
            (
                "window_write_errors_total",
                "counter",
                "Window writes (or opens) that failed.",
                writer.write_errors,
            ),
            (
                "window_write_queue_drops_total",
                "counter",
                "Messages not written to the window because its write queue was full.",
                writer.queue_drops,
            ),
        ]
