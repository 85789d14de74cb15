"""Bus messages to clients: each message goes to every matching client, and clients that fall behind go.

Clients come in channels, each a registry with its own way of sending: WebSocket connections (the frame,
encoded once by broadcast()), Server-Sent Events streams (the event's bytes written to each transport),
and clients in the middle of a resume (catchup.py: the message is kept for them until their backlog is
sent). The per-client send queue is what a channel says is waiting for the client (asyncio's write buffer
of its connection, plus a resume's kept messages): every message is queued without waiting, and after
each batch every client that received something is checked; one holding more than max_queue_bytes unsent
is dropped from its registry (so nothing more is queued for it) and closed with 1013 (try again later).
No client ever waits for another, no task per client is needed, and the cost over plain broadcast() is one
buffer-size read per client per batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from fedmsg_websocket.compat import Connection, buffered_bytes, send_to
from fedmsg_websocket.frames import Outgoing
from fedmsg_websocket.registry import Registry

log = logging.getLogger(__name__)

TOO_SLOW = 1013


class Client(Hashable, Protocol):
    """What fan-out needs of any client: WebSocket connections, SSE streams and resumes have it."""

    @property
    def remote_address(self) -> object: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


C = TypeVar("C", bound=Client)


@dataclasses.dataclass(frozen=True)
class Channel(Generic[C]):
    registry: Registry[C]
    #: Queue one message on every one of these clients, without waiting.
    send: Callable[[Collection[C], Outgoing], None]
    #: Bytes queued for a client and not yet taken by its kernel socket.
    queued: Callable[[C], int]


def websocket_channel(registry: Registry[Connection]) -> Channel[Any]:
    return Channel(registry, lambda clients, message: send_to(clients, message.frame), buffered_bytes)


class Fanout:
    def __init__(self, channels: Sequence[Channel[Any]], max_queue_bytes: int, last_cursor: int = 0) -> None:
        self._channels = channels
        self._max_queue_bytes = max_queue_bytes
        self._reason = f"too slow: over {max_queue_bytes} bytes queued"
        self._closing: set[asyncio.Task[None]] = set()
        #: Frames and bytes handed to clients (counted per client), and clients closed as too slow.
        self.sent = 0
        self.sent_bytes = 0
        self.slow_closes = 0
        #: When the bus reader last handed over a batch (messages or its heartbeat), monotonic seconds.
        self.last_batch = time.monotonic()
        #: The cursor of the last message delivered: every later one is delivered after this moment.
        self.last_cursor = last_cursor

    def deliver(self, batch: list[Outgoing]) -> None:
        self.last_batch = time.monotonic()
        for channel in self._channels:
            self._deliver(channel, batch)
        if batch:
            self.last_cursor = batch[-1].cursor

    def _deliver(self, channel: Channel[Any], batch: list[Outgoing]) -> None:
        registry = channel.registry
        if not len(registry):
            return
        touched: dict[int, Collection[Client]] = {}
        for message in batch:
            clients = registry.matching(message.topic)
            if clients:
                channel.send(clients, message)
                self.sent += len(clients)
                self.sent_bytes += len(clients) * message.size
                # Most messages match the same few registry sets: check each set once per batch.
                touched[id(clients)] = clients
        limit = self._max_queue_bytes
        slow = [c for clients in touched.values() for c in clients if channel.queued(c) > limit]
        for client in slow:
            self._close_slow(registry, client)

    def _close_slow(self, registry: Registry[Any], client: Client) -> None:
        if client not in registry:
            return  # already dropped (it matched through two sets of this batch)
        registry.remove(client)
        self.slow_closes += 1
        log.warning("closing %s: %s", client.remote_address, self._reason)
        task = asyncio.ensure_future(client.close(TOO_SLOW, self._reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
