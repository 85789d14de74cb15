"""The one seam between this daemon and the two websockets APIs it runs on.

Debian 12 ships websockets 10.4; current PyPI is past 14.0. Both have an asyncio server with the same
`serve(handler, host, port, ...)`, connection methods (`recv`, `close(code, reason)`, `transport`) and a
synchronous `broadcast()`, but 10.4 has only the implementation that 14.0 renamed `websockets.legacy` and
deprecated (importing `websockets.legacy` warns from 14.0 on, and it is due for removal), while the new one
(`websockets.asyncio`, 13.0+) differs in its hooks and connection factory. So: the new API
where it exists, the legacy one only where nothing else exists (no warning on either), and the difference
confined to which connection class start_server() subclasses (front.py serves plain HTTP itself).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

import websockets

try:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    NEW_API = True
except ImportError:  # websockets < 13: Debian 12's 10.4
    from websockets.legacy.protocol import broadcast  # type: ignore[assignment,no-redef]
    from websockets.legacy.server import (  # type: ignore[assignment,no-redef]
        WebSocketServerProtocol as ServerConnection,
    )
    from websockets.legacy.server import serve  # type: ignore[assignment,no-redef]

    NEW_API = False

__all__ = [
    "NEW_API",
    "VERSION",
    "Answer",
    "Connection",
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
    async def send(self, message: str) -> None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


class Server(Protocol):
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Answer:
    """A whole plain-HTTP response (front.py writes it)."""

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


async def start_server(
    handler: Callable[[Connection], Awaitable[None]],
    host: str | None,
    port: int,
    divert: Callable[[type[Any]], type[Any]],
    **options: object,
) -> Server:
    """Bind and start serving; the returned server has close() and wait_closed() in both APIs.

    `divert(base)` returns the subclass of the API's connection class to use (front.diverting): both
    APIs take a factory for it, and both classes are asyncio Protocols.
    """
    options["create_connection" if NEW_API else "create_protocol"] = divert(ServerConnection)
    return await serve(handler, host, port, **options)


def buffered_bytes(connection: Connection) -> int:
    """Bytes written to this client that the kernel has not accepted yet (asyncio's write buffer)."""
    transport = connection.transport
    return 0 if transport is None else transport.get_write_buffer_size()


def send_to(connections: Iterable[Connection], frame: str) -> None:
    """Queue one text frame on every open connection without waiting: the frame is encoded once."""
    broadcast(connections, frame)
