"""The WebSocket side: one handler per client reading its subscriptions, and the server's start and stop."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from fedmsg_websocket.catchup import Catchup
from fedmsg_websocket.compat import Connection, Server, start_server
from fedmsg_websocket.config import Config, listen_address
from fedmsg_websocket.frames import Outgoing, resume_point, subscription, websocket_frame
from fedmsg_websocket.front import Handler, diverting
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.window import Row

log = logging.getLogger(__name__)

MESSAGE_TOO_BIG = 1009
#: Seconds a closing handshake may take before the connection is dropped: on stop (exit within 2 s)
#: and for clients closed as too slow, which may never read the close frame.
CLOSE_TIMEOUT = 1.0


class WebsocketSender:
    """A resumed WebSocket client's backlog: frames like the live ones, sent with flow control."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def send_row(self, row: Row) -> None:
        await self._connection.send(websocket_frame(row.topic, row.body.decode(), row.cursor))

    async def send_live(self, message: Outgoing) -> None:
        await self._connection.send(message.frame)


# eq=False: its bound handle() is the server's handler, equal (and hashed) only as itself.
@dataclass(eq=False)
class Clients:
    """Reads what clients send: subscriptions go to the registry, one resume frame starts a resume
    (catchup.py), everything else is counted and dropped."""

    registry: Registry[Connection]
    max_subscriptions: int
    catchup: Catchup
    #: Connections accepted, client frames ignored, clients closed for an oversized frame.
    accepted: int = field(default=0, init=False)
    ignored: int = field(default=0, init=False)
    oversized: int = field(default=0, init=False)

    async def handle(self, connection: Connection) -> None:
        self.registry.add(connection)
        self.accepted += 1
        # Each prefix with the cursor it was subscribed at (catchup.missed), and whether it resumed.
        prefixes: dict[str, int] = {}
        resumed = False
        try:
            async for message in connection:
                prefix = subscription(message)
                if prefix is not None and len(prefixes) < self.max_subscriptions:
                    prefixes.setdefault(prefix, self.catchup.position)
                    self.registry.subscribe(connection, prefix)
                    continue
                cursor = None if resumed or prefix is not None else resume_point(message)
                # (A client closed as too slow has left the registry: it is not made live again.)
                if cursor is None or connection not in self.registry:
                    self.ignored += 1
                    continue
                # The client's frames wait meanwhile: later subscriptions are live from the end of it.
                resumed = True
                sender = WebsocketSender(connection)
                await self.catchup.resume(connection, self.registry, prefixes, cursor, sender)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
                self.oversized += 1
        finally:
            self.registry.remove(connection)


async def serve(config: Config, clients: Clients, router: Handler, plain: set[asyncio.Task[None]]) -> Server:
    """Bind the HTTP/WebSocket address (OSError if it cannot) and serve until the server is closed; plain
    HTTP requests are served by `router`, each a task in `plain` while it runs."""
    host, port = listen_address(config.bind)
    return await start_server(
        clients.handle,
        host,
        port,
        functools.partial(diverting, handler=router, tasks=plain),
        compression="deflate" if config.compression == "deflate" else None,
        max_size=config.max_frame_bytes,
        ping_interval=config.ping_interval or None,
        ping_timeout=config.ping_timeout,
        close_timeout=CLOSE_TIMEOUT,
        # Moksha pages and non-browser clients send no Origin, or any: the stream is public.
        origins=None,
        backlog=config.listen_backlog,
    )
