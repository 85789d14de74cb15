"""The WebSocket side: one handler per client reading its subscriptions, and the server's start and stop."""

from __future__ import annotations

import logging

from websockets.exceptions import ConnectionClosed

from fedmsg_websocket.compat import Connection, Router, Server, start_server
from fedmsg_websocket.config import Config, listen_address
from fedmsg_websocket.frames import subscription
from fedmsg_websocket.registry import Registry

log = logging.getLogger(__name__)

MESSAGE_TOO_BIG = 1009
#: Seconds a closing handshake may take before the connection is dropped: on stop (exit within 2 s)
#: and for clients closed as too slow, which may never read the close frame.
CLOSE_TIMEOUT = 1.0


class Clients:
    """Reads what clients send: subscriptions go to the registry, everything else is counted and dropped."""

    def __init__(self, registry: Registry[Connection], max_subscriptions: int) -> None:
        self._registry = registry
        self._max_subscriptions = max_subscriptions
        #: Connections accepted, client frames ignored, clients closed for an oversized frame.
        self.accepted = 0
        self.ignored = 0
        self.oversized = 0

    async def handle(self, connection: Connection) -> None:
        self._registry.add(connection)
        self.accepted += 1
        try:
            async for message in connection:
                prefix = subscription(message)
                if prefix is None or self._registry.subscriptions(connection) >= self._max_subscriptions:
                    self.ignored += 1
                else:
                    self._registry.subscribe(connection, prefix)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
                self.oversized += 1
        finally:
            self._registry.remove(connection)


async def serve(config: Config, clients: Clients, router: Router) -> Server:
    """Bind the HTTP/WebSocket address (OSError if it cannot) and serve until the server is closed."""
    host, port = listen_address(config.bind)
    return await start_server(
        clients.handle,
        host,
        port,
        router,
        compression="deflate" if config.compression == "deflate" else None,
        max_size=config.max_frame_bytes,
        ping_interval=config.ping_interval or None,
        ping_timeout=config.ping_timeout,
        close_timeout=CLOSE_TIMEOUT,
        # Moksha pages and non-browser clients send no Origin, or any: the stream is public.
        origins=None,
        backlog=config.listen_backlog,
    )
