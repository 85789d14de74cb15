"""The bus side: a ZeroMQ SUB socket read in a thread, handing batches of ready frames to the event loop.

A thread (not zmq.asyncio) keeps the event loop free for the clients while libzmq waits, and lets the
reader batch: it takes whatever is queued (up to BATCH messages) and hands it over in one call. At most
IN_FLIGHT batches wait in the loop; past that the thread stops reading and libzmq's receive HWM, then the
publisher's send HWM, hold (and at last drop) the backlog: the daemon's memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import zmq

from fedmsg_gateway.sockets import tune
from fedmsg_websocket.config import Config
from fedmsg_websocket.frames import Cursors, Outgoing, outgoing

log = logging.getLogger(__name__)

BATCH = 256
IN_FLIGHT = 4
#: The thread hands over at least this often, an empty batch when the bus is quiet (the health heartbeat).
HEARTBEAT = 1.0
_POLL_MS = int(HEARTBEAT * 1000)


class SetupError(Exception):
    """An endpoint could not be connected; str() is the one-line reason."""


class BusReader:
    """SUB socket connected to every endpoint, subscribed to everything, read by its own thread."""

    def __init__(
        self, context: zmq.Context, config: Config, loop: asyncio.AbstractEventLoop, first_cursor: int = 0
    ) -> None:
        self._loop = loop
        # Cursors continue after the newest one in the window (owned by the reader thread).
        self._cursors = Cursors(first_cursor)
        self._sock = context.socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, config.receive_hwm)
        tune(self._sock, config)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        for url in config.endpoints:
            try:
                # tcp host names are resolved (and retried) by libzmq: a host down or not in DNS is no error.
                self._sock.connect(url)
            except zmq.ZMQError as exc:
                self._sock.close()
                raise SetupError(f"cannot connect {url}: {exc.strerror}") from exc
            log.info("connecting to %s", url)
        self._stopping = threading.Event()
        self._slots = threading.Semaphore(IN_FLIGHT)
        self._thread = threading.Thread(target=self._run, name="bus-reader", daemon=True)
        self._deliver: Callable[[list[Outgoing]], None] = lambda batch: None
        #: Bus messages read, and those skipped because they were not [topic, JSON body]. One writer thread.
        self.received = 0
        self.skipped = 0
        #: (time.monotonic(), time.time()) when the latest batch with a message was read; the start
        #: before the first one. One tuple, replaced whole: readers need no lock.
        self.last_message_at = (time.monotonic(), time.time())

    def start(self, deliver: Callable[[list[Outgoing]], None]) -> None:
        """Call deliver(batch) in the loop for every batch, an empty one at least every HEARTBEAT seconds."""
        self._deliver = deliver
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> bool:
        """Stop the thread (if it was started); True once it has stopped and the socket is closed."""
        self._stopping.set()
        if self._thread.ident is not None:  # started (a failed bind stops it before it ever ran)
            self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._sock.close()
        return True

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._hand_over(self._read_batch())
        except zmq.ZMQError:
            log.exception("bus reader stopped")

    def _read_batch(self) -> list[Outgoing]:
        batch: list[Outgoing] = []
        if not self._sock.poll(_POLL_MS):
            return batch
        read = skipped = 0
        while len(batch) < BATCH:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            read += 1
            ready = outgoing(frames, self._cursors)
            if ready is None:
                skipped += 1
            else:
                batch.append(ready)
        # The time first, then the counts: a scrape that sees the new count sees this time with it.
        self.last_message_at = (time.monotonic(), time.time())
        self.received += read
        self.skipped += skipped
        return batch

    def _hand_over(self, batch: list[Outgoing]) -> None:
        # Wait for a free slot, but keep noticing stop requests.
        while not self._slots.acquire(timeout=HEARTBEAT):
            if self._stopping.is_set():
                return
        try:
            self._loop.call_soon_threadsafe(self._run_batch, batch)
        except RuntimeError:  # the loop is closed: we are shutting down
            self._slots.release()

    def _run_batch(self, batch: list[Outgoing]) -> None:
        try:
            self._deliver(batch)
        finally:
            self._slots.release()
