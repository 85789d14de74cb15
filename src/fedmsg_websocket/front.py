"""One port for WebSocket and plain HTTP: each connection's request head decides who serves it.

websockets can answer plain HTTP only with a whole response from its `process_request` hook, inside its
opening-handshake timeout, and its two APIs (10.4's legacy server, 13+'s asyncio server) differ there. A
Server-Sent Events stream is a response that lasts for hours. So every connection is first read by the
front (a mixin on the websockets connection class, which is an asyncio Protocol in both APIs): a
WebSocket upgrade on `/` is handed, bytes and all, to websockets as if nothing had happened; anything
else never reaches websockets and is served here (the page, /healthz, /raw, /stream). Same code with
both websockets versions, one listening socket, and no extra copy of WebSocket traffic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fedmsg_websocket.compat import Answer

log = logging.getLogger(__name__)

#: A request head larger than this is refused (431); the moksha page's are ~500 bytes.
MAX_HEAD = 8192
#: Seconds a client may take to send its request head (websockets' own open timeout after that).
HEAD_TIMEOUT = 10.0
_TOO_LARGE = http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    #: Header names lower-cased; a repeated header keeps its last value.
    headers: dict[str, str]

    @property
    def upgrade(self) -> bool:
        return "websocket" in self.headers.get("upgrade", "").lower()


def parse_head(head: bytes) -> Request | None:
    """The request from its head (without the blank line), or None if it is not HTTP/1.x."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        headers[name.lower()] = value.strip()
    path, _, query = parts[1].partition("?")
    return Request(parts[0], path, query, headers)


class Exchange(asyncio.Protocol):
    """The plain-HTTP side of a connection once its head is read: write a response, or stream one."""

    def __init__(self, transport: asyncio.Transport, request: Request) -> None:
        self.transport = transport
        self.request = request
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drained: asyncio.Future[None] | None = None

    @property
    def remote_address(self) -> object:
        return self.transport.get_extra_info("peername")

    # asyncio.Protocol: the client sends nothing more that matters; writes wait while the kernel is full.
    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None:
            if not self._drained.done():
                self._drained.set_result(None)
            self._drained = None

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark (or the client is gone)."""
        if self._drained is not None:
            await self._drained

    def start(self, status: http.HTTPStatus, headers: list[tuple[str, str]]) -> None:
        lines = [f"HTTP/1.1 {status.value} {status.phrase}", *(f"{n}: {v}" for n, v in headers)]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def respond(self, answer: Answer) -> None:
        self.start(answer.status, answer.headers())
        if self.request.method != "HEAD":
            self.transport.write(answer.body)
        self.transport.close()


#: Serves one plain-HTTP request; it writes its response through the Exchange.
Handler = Callable[[Exchange], Awaitable[None]]


def _text(status: http.HTTPStatus, text: str) -> Answer:
    return Answer(status, "text/plain; charset=utf-8", f"{text}\n".encode(), (("Cache-Control", "no-store"),))


def diverting(base: type[Any], handler: Handler, tasks: set[asyncio.Task[None]]) -> type[Any]:
    """A subclass of websockets' connection class `base` that serves plain HTTP with `handler` (its tasks
    kept in `tasks`) and leaves WebSocket upgrades on `/` to websockets."""

    class Diverting(base):  # type: ignore[misc,valid-type]
        _front_head: bytearray | None = None
        _front_transport: asyncio.Transport
        _front_timer: asyncio.TimerHandle

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # websockets does not see the connection (no handshake task, no timeout) until it is its own.
            self._front_transport = transport  # type: ignore[assignment]
            self._front_head = bytearray()
            self._front_timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, transport.abort)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            head = self._front_head
            if head is None:
                super().data_received(data)
                return
            head += data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                if len(head) > MAX_HEAD:
                    self._plain(
                        None, _text(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
                    )
                return
            self._front_timer.cancel()
            request = parse_head(bytes(head[:end])) if end <= MAX_HEAD else None
            if request is not None and request.upgrade and request.path == "/":
                self._front_head = None
                super().connection_made(self._front_transport)
                super().data_received(bytes(head))
            elif request is None:
                self._plain(None, _text(http.HTTPStatus.BAD_REQUEST, "bad request"))
            elif request.method not in ("GET", "HEAD"):
                self._plain(request, _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "only GET"))
            else:
                self._plain(request, None)

        def _plain(self, request: Request | None, answer: Answer | None) -> None:
            self._front_head = None
            self._front_timer.cancel()
            transport = self._front_transport
            exchange = Exchange(transport, request or Request("GET", "/", "", {}))
            transport.set_protocol(exchange)
            if answer is not None:
                exchange.respond(answer)
                return
            task = asyncio.get_running_loop().create_task(_serve(handler, exchange))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def eof_received(self) -> bool | None:
            if self._front_head is None:
                return super().eof_received()  # type: ignore[no-any-return]
            return None  # close: no request head will come

        def connection_lost(self, exc: Exception | None) -> None:
            if self._front_head is None:
                super().connection_lost(exc)
            else:
                self._front_timer.cancel()

        def pause_writing(self) -> None:
            if self._front_head is None:
                super().pause_writing()

        def resume_writing(self) -> None:
            if self._front_head is None:
                super().resume_writing()

    return Diverting


async def _serve(handler: Handler, exchange: Exchange) -> None:
    try:
        await handler(exchange)
    except Exception:
        # A bug here must cost one request, never the daemon; the client gets a closed connection.
        log.exception("serving %s %s", exchange.request.method, exchange.request.path)
        exchange.transport.abort()
