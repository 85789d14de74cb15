"""`GET /stream?topic=PREFIX`: the bus as Server-Sent Events, resumable with `Last-Event-ID`.

Each event is `id: CURSOR` and `data: {"topic": T, "body": B}` (B embedded as published; a line break in
it, which JSON allows only as whitespace, continues on a new `data:` line). `topic` is repeatable, a
trailing `*` is optional, none means everything. Without `Last-Event-ID` the stream is live, registered
before the response headers are written; with it (EventSource sends it by itself when it reconnects) the
stream first gets every matching message after that cursor from the window (catchup.py), then live ones.
A comment line every keepalive seconds keeps proxies from timing out a quiet stream. Slow streams are
closed by the fan-out like slow WebSocket clients (max_queue_bytes).
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Collection
from urllib.parse import parse_qsl

from fedmsg_websocket.catchup import NEVER, Catchup
from fedmsg_websocket.compat import Answer, buffered_bytes
from fedmsg_websocket.fanout import Channel
from fedmsg_websocket.frames import Outgoing, parse_cursor, sse_event
from fedmsg_websocket.front import Exchange
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.window import Row

_HEADERS = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Accel-Buffering", "no"),
    ("Connection", "close"),
]
KEEPALIVE = b": keepalive\n\n"


class EventStream:
    """One SSE client, as the fan-out sees it."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.transport = exchange.transport

    @property
    def remote_address(self) -> object:
        return self.exchange.remote_address

    async def close(self, code: int = 1000, reason: str = "") -> None:
        # Too slow: its buffer is full, so a polite close could wait for ever.
        self.transport.abort()

    async def send_row(self, row: Row) -> None:
        self.transport.write(sse_event(row.topic, row.body.decode(), row.cursor))
        await self._drain()

    async def send_live(self, message: Outgoing) -> None:
        self.transport.write(message.event)
        await self._drain()

    async def _drain(self) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the stream's client went away")
        await self.exchange.drain()


def _write(streams: Collection[EventStream], message: Outgoing) -> None:
    for stream in streams:
        if not stream.transport.is_closing():
            stream.transport.write(message.event)


def sse_channel(registry: Registry[EventStream]) -> Channel[EventStream]:
    return Channel(registry, _write, buffered_bytes)  # type: ignore[arg-type]


def _refuse(exchange: Exchange, reason: str) -> None:
    exchange.respond(
        Answer(
            http.HTTPStatus.BAD_REQUEST,
            "text/plain; charset=utf-8",
            f"{reason}\n".encode(),
            (("Cache-Control", "no-store"),),
        )
    )


class Streams:
    def __init__(
        self, registry: Registry[EventStream], catchup: Catchup, max_subscriptions: int, keepalive: float
    ) -> None:
        self._registry = registry
        self._catchup = catchup
        self._max_subscriptions = max_subscriptions
        self._keepalive = keepalive or None
        #: Streams opened, and requests refused (400).
        self.accepted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._registry)

    def _prefixes(self, query: str) -> list[str]:
        """The topic prefixes asked for ("" for none); ValueError with the reason for a bad query."""
        most = self._max_subscriptions
        try:
            pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=most)
        except ValueError:
            raise ValueError(f"topic: at most {most}") from None
        for name, _ in pairs:
            if name != "topic":
                raise ValueError(f"{name[:40]}: unknown parameter (known: topic)")
        return [value.rstrip("*") for _, value in pairs] or [""]

    async def serve(self, exchange: Exchange) -> None:
        request = exchange.request
        header = request.headers.get("last-event-id")
        cursor = None if header is None else parse_cursor(header)
        try:
            prefixes = self._prefixes(request.query)
            if header is not None and cursor is None:
                raise ValueError("Last-Event-ID: not a cursor from this stream")
        except ValueError as exc:
            self.refused += 1
            _refuse(exchange, str(exc))
            return
        stream = EventStream(exchange)
        self.accepted += 1
        try:
            if cursor is None:
                self._registry.add(stream)
                for prefix in prefixes:
                    self._registry.subscribe(stream, prefix)
                exchange.start(http.HTTPStatus.OK, _HEADERS)
            else:
                exchange.start(http.HTTPStatus.OK, _HEADERS)
                subscribed = dict.fromkeys(prefixes, NEVER)
                await self._catchup.resume(stream, self._registry, subscribed, cursor, stream)
            while not exchange.lost.done():
                await asyncio.wait([exchange.lost], timeout=self._keepalive)
                if not exchange.lost.done():
                    exchange.transport.write(KEEPALIVE)
        except ConnectionError:
            pass
        finally:
            self._registry.remove(stream)
            exchange.transport.close()
