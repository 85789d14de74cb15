"""The one seam between this daemon and the two websockets APIs it runs on.

Debian 12 ships websockets 10.4; current PyPI is past 14.0. Both have an asyncio server with the same
`serve(handler, host, port, ...)`, connection methods (`recv`, `close(code, reason)`, `transport`) and a
synchronous `broadcast()`, but 10.4 has only the implementation that 14.0 renamed `websockets.legacy` and
deprecated (importing `websockets.legacy` warns from 14.0 on, and it is due for removal), while the new one
(`websockets.asyncio`, 13.0+) differs in what `process_request` receives and returns. So: the new API
where it exists, the legacy one only where nothing else exists (no warning on either), and the difference
confined to the two small `process_request` adapters below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol

import websockets

try:
    from websockets.asyncio.server import broadcast, serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    NEW_API = True
except ImportError:  # websockets < 13: Debian 12's 10.4
    from websockets.legacy.protocol import broadcast  # type: ignore[assignment,no-redef]
    from websockets.legacy.server import serve  # type: ignore[assignment,no-redef]

    NEW_API = False

__all__ = [
    "NEW_API",
    "VERSION",
    "Answer",
    "Connection",
    "Router",
    "Server",
    "buffered_bytes",
    "send_to",
    "start_server",
]

VERSION: str = websockets.__version__


class Connection(Protocol):
    """What this daemon uses of a server-side connection; ServerConnection (new API) and
    WebSocketServerProtocol (legacy) both have it."""

    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def remote_address(self) -> object: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


class Server(Protocol):
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


class _Headers(Protocol):
    def get(self, key: str, default: str) -> str: ...


class _Request(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> _Headers: ...


@dataclasses.dataclass(frozen=True)
class Answer:
    """A plain HTTP response given instead of the WebSocket handshake."""

    status: http.HTTPStatus
    content_type: str
    body: bytes
    extra_headers: tuple[tuple[str, str], ...] = ()

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            ("Connection", "close"),
            *self.extra_headers,
        ]


#: (path without the query string, whether the request asks for a WebSocket upgrade) -> an answer, or
#: None to go on with the handshake.
Router = Callable[[str, bool], Answer | None]


def _wants_upgrade(headers: _Headers) -> bool:
    return "websocket" in headers.get("Upgrade", "").lower()


def _route(router: Router, target: str, headers: _Headers) -> Answer | None:
    return router(target.split("?", 1)[0], _wants_upgrade(headers))


def _new_api_hook(router: Router) -> Callable[[object, _Request], object]:
    def process_request(connection: object, request: _Request) -> object:
        answer = _route(router, request.path, request.headers)
        if answer is None:
            return None
        return Response(answer.status.value, answer.status.phrase, Headers(answer.headers()), answer.body)

    return process_request


def _legacy_hook(router: Router) -> Callable[[str, _Headers], Awaitable[object]]:
    # 10.4 warns unless process_request is a coroutine.
    async def process_request(path: str, headers: _Headers) -> object:
        answer = _route(router, path, headers)
        if answer is None:
            return None
        return answer.status, answer.headers(), answer.body

    return process_request


async def start_server(
    handler: Callable[[Connection], Awaitable[None]],
    host: str | None,
    port: int,
    router: Router,
    **options: object,
) -> Server:
    """Bind and start serving; the returned server has close() and wait_closed() in both APIs."""
    hook = _new_api_hook(router) if NEW_API else _legacy_hook(router)
    return await serve(handler, host, port, process_request=hook, **options)


def buffered_bytes(connection: Connection) -> int:
    """Bytes written to this client that the kernel has not accepted yet (asyncio's write buffer)."""
    transport = connection.transport
    return 0 if transport is None else transport.get_write_buffer_size()


def send_to(connections: Iterable[Connection], frame: str) -> None:
    """Queue one text frame on every open connection without waiting: the frame is encoded once."""
    broadcast(connections, frame)
