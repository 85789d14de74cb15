"""fedmsg-websocket's Prometheus metrics, rendered from the counters the other modules keep.

Read from the exporter's thread while the event loop and the bus reader write: each counter is a plain
int replaced whole, which needs no lock under the GIL.
"""

from __future__ import annotations

import time
from dataclasses import KW_ONLY, dataclass, field

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

#: Each metric's HELP text, by name without the prefix; Metrics._values says which are rendered, in what
#: order. The type follows Prometheus' naming rule: a counter's name ends in _total, a gauge's does not.
_HELP = {
    "build_info": "Always 1; the labels say which versions run.",
    "up": "1 while the bus reader runs.",
    "clients": "Open WebSocket connections.",
    "connections_total": "WebSocket connections accepted.",
    "messages_received_total": "Bus messages received.",
    "messages_skipped_total": "Bus messages not sent to anyone: not [topic, JSON body].",
    "messages_sent_total": "Frames sent to clients, per client.",
    "bytes_sent_total": "Frame bytes sent to clients, per client, before compression.",
    "slow_client_closes_total": "Clients closed (1013) because their send queue passed max_queue_bytes.",
    "oversized_client_closes_total": "Clients closed (1009) for a frame over max_frame_bytes.",
    "client_frames_ignored_total": (
        "Client frames that were not a subscription (or one too many): dropped, never forwarded."
    ),
    "last_message_timestamp_seconds": (
        "When a bus message last arrived, seconds since the epoch; the start time if none yet."
    ),
    "last_message_age_seconds": "Seconds since a bus message last arrived (since start if none yet).",
    "sse_clients": "Open Server-Sent Events streams (/stream), live.",
    "sse_connections_total": "Server-Sent Events streams opened.",
    "sse_refused_total": "/stream requests refused for bad parameters (400).",
    "resumes_total": "Resumes started (SSE Last-Event-ID, WebSocket __resume__).",
    "resuming": "Clients replaying their backlog now (live messages kept for them).",
    "resume_messages_total": "Stored messages replayed by resumes.",
    "resume_truncated_total": (
        "Resumes that asked for more than resume_max_messages back and got the newest only."
    ),
    "resume_failed_total": (
        "Resumes that could not read the window (live only), or found it not yet written in time."
    ),
    "raw_requests_total": "/raw requests answered (200).",
    "raw_bad_requests_total": "/raw requests refused for bad parameters (400).",
    "raw_unavailable_total": "/raw requests refused: no window, window unreadable, or too busy (503).",
    "window_up": "1 while the window's database is open for writing.",
    "window_messages": "Messages in the window.",
    "window_bytes": "Payload bytes (topic + body) in the window.",
    "window_oldest_age_seconds": "Age of the oldest message in the window (0: empty).",
    "window_write_errors_total": "Window writes (or opens) that failed.",
    "window_write_queue_drops_total": "Messages not written to the window because its write queue was full.",
}


def _kind(name: str) -> str:
    return "counter" if name.endswith("_total") else "gauge"


def _build_labels() -> dict[str, str]:
    return {"version": package_version(), "websockets": WEBSOCKETS_VERSION, "pyzmq": zmq.__version__}


# eq=False: a part of the daemon, equal (and hashed) only as itself.
@dataclass(eq=False)
class Metrics:
    """The daemon's metrics, read from the counters of its parts at each scrape."""

    bus: BusReader
    fanout: Fanout
    server: Clients
    registry: Registry[object]
    _: KW_ONLY
    writer: Writer | None
    raw: Raw
    catchup: Catchup
    streams: Streams
    backfill: Backfill | None = None
    build_labels: dict[str, str] = field(default_factory=_build_labels, init=False)

    @property
    def clients(self) -> int:
        return len(self.registry)

    @property
    def last_message_age(self) -> float:
        """Seconds since a bus message last arrived (since start if none yet)."""
        return time.monotonic() - self.bus.last_message_at[0]

    def render(self) -> str:
        """The metrics in Prometheus text exposition format 0.0.4, process_* included."""
        own = [
            Sample(
                _PREFIX + name,
                _kind(name),
                _HELP[name],
                value,
                self.build_labels if name == "build_info" else {},
            )
            for name, value in self._values().items()
        ]
        backfill = metric_samples(self.backfill)
        own += [Sample(_PREFIX + name, kind, text, value) for name, kind, text, value in backfill]
        return render([*own, *process_samples()])

    def _values(self) -> dict[str, float]:
        """Each metric's value by name, in exposition order; the window's only with a window."""
        values: dict[str, float] = {
            "build_info": 1,
            "up": int(self.bus.is_alive()),
            "clients": self.clients,
            "connections_total": self.server.accepted,
            "messages_received_total": self.bus.received,
            "messages_skipped_total": self.bus.skipped,
            "messages_sent_total": self.fanout.sent,
            "bytes_sent_total": self.fanout.sent_bytes,
            "slow_client_closes_total": self.fanout.slow_closes,
            "oversized_client_closes_total": self.server.oversized,
            "client_frames_ignored_total": self.server.ignored,
            "last_message_timestamp_seconds": round(self.bus.last_message_at[1], 3),
            "last_message_age_seconds": round(self.last_message_age, 3),
            "sse_clients": len(self.streams),
            "sse_connections_total": self.streams.accepted,
            "sse_refused_total": self.streams.refused,
            "resumes_total": self.catchup.resumes,
            "resuming": len(self.catchup),
            "resume_messages_total": self.catchup.replayed,
            "resume_truncated_total": self.catchup.truncated,
            "resume_failed_total": self.catchup.failed + self.catchup.unsettled,
            "raw_requests_total": self.raw.served,
            "raw_bad_requests_total": self.raw.bad,
            "raw_unavailable_total": self.raw.unavailable,
        }
        writer = self.writer
        if writer is None:
            return values
        store = writer.store
        oldest = store.oldest if store is not None else 0
        age = max(0.0, time.time() - oldest / 1_000_000) if oldest else 0.0
        return values | {
            "window_up": int(store is not None),
            "window_messages": store.rows if store else 0,
            "window_bytes": store.bytes if store else 0,
            "window_oldest_age_seconds": round(age, 3),
            "window_write_errors_total": writer.write_errors,
            "window_write_queue_drops_total": writer.queue_drops,
        }
