"""Bus messages to clients: each frame goes to every matching client, and clients that fall behind go.

The per-client send queue is asyncio's write buffer of that client's connection: broadcast() appends the
(once-encoded) frame to it without waiting, and after each batch every client that received something is
checked; one holding more than max_queue_bytes unsent is dropped from the registry (so nothing more is
queued for it) and closed with 1013 (try again later). No client ever waits for another, no task per
client is needed, and the cost over plain broadcast() is one buffer-size read per client per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from fedmsg_websocket.compat import Connection, buffered_bytes, send_to
from fedmsg_websocket.frames import Outgoing
from fedmsg_websocket.registry import Registry

log = logging.getLogger(__name__)

TOO_SLOW = 1013


class Fanout:
    def __init__(self, registry: Registry[Connection], max_queue_bytes: int) -> None:
        self._registry = registry
        self._max_queue_bytes = max_queue_bytes
        self._reason = f"too slow: over {max_queue_bytes} bytes queued"
        self._closing: set[asyncio.Task[None]] = set()
        #: Frames and bytes handed to clients (counted per client), and clients closed as too slow.
        self.sent = 0
        self.sent_bytes = 0
        self.slow_closes = 0
        #: When the bus reader last handed over a batch (messages or its heartbeat), monotonic seconds.
        self.last_batch = time.monotonic()

    def deliver(self, batch: list[Outgoing]) -> None:
        self.last_batch = time.monotonic()
        touched: dict[int, Collection[Connection]] = {}
        for message in batch:
            clients = self._registry.matching(message.topic)
            if clients:
                send_to(clients, message.frame)
                self.sent += len(clients)
                self.sent_bytes += len(clients) * message.size
                # Most messages match the same few registry sets: check each set once per batch.
                touched[id(clients)] = clients
        limit = self._max_queue_bytes
        slow = [c for clients in touched.values() for c in clients if buffered_bytes(c) > limit]
        for client in slow:
            self._close_slow(client)

    def _close_slow(self, client: Connection) -> None:
        if client not in self._registry:
            return  # already dropped (it matched through two sets of this batch)
        self._registry.remove(client)
        self.slow_closes += 1
        log.warning("closing %s: %s", client.remote_address, self._reason)
        task = asyncio.ensure_future(client.close(TOO_SLOW, self._reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
