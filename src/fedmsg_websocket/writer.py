"""Writing the window off the event loop: one thread owns the Store and writes each bus batch in one
transaction, fed through a bounded queue.

The loop only appends to the queue (a lock held for a list append): the live stream never waits for the
disk. When the queue holds more than QUEUE_BYTES (the disk is too slow, or stuck), further batches are
dropped and counted, and coverage is cut there (window.py), so the time shows as a gap a peer can fill.
A failed write is logged at error priority and counted; a corrupt database is moved aside
(`window.sqlite3.corrupt`) and a new one created; a window that cannot be opened is retried every
REOPEN_INTERVAL seconds. None of it stops the live stream.

`settled` is the cursor up to which every message has been written or given up on; a resume waits for it
to reach the last cursor the loop handed out (catchup.py) so that nothing delivered before the resume
is missing from what it reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from fedmsg_websocket.frames import Outgoing
from fedmsg_websocket.window import Store

log = logging.getLogger(__name__)

#: Bytes of messages (body, frame and event: ~3x the body) waiting to be written before batches are
#: dropped: ~7000 typical messages, hours of Fedora's bus or seconds of a burst of thousands per second.
QUEUE_BYTES = 64 * 1024 * 1024
#: While the bus is quiet, the run's coverage is moved on at most this often (seconds).
TOUCH_INTERVAL = 5.0
#: A window that could not be opened (or re-created) is tried again after this many seconds.
REOPEN_INTERVAL = 10.0
#: At most one error line per this many seconds for repeated write failures or drops.
LOG_INTERVAL = 10.0

T = TypeVar("T")


class Writer:
    def __init__(self, path: str, max_age: float, max_bytes: int, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._loop = loop
        self._cond = threading.Condition()
        self._items: deque[tuple[str, object, int]] = deque()
        self._queued = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="window-writer", daemon=True)
        self._last_touch = 0.0
        self._last_open_attempt = 0.0
        self._last_log = -LOG_INTERVAL
        self._dropping = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Every cursor up to this one is written or given up on.
        self.settled = 0
        #: Failed write transactions, and messages dropped because the queue was full.
        self.write_errors = 0
        self.queue_drops = 0
        self.store: Store | None = None
        self._open()

    # -- the loop's side

    @property
    def newest(self) -> int:
        """The newest cursor stored when the window was opened (0: none): cursors continue after it."""
        return self.store.newest if self.store is not None else 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Sequence[Outgoing]) -> None:
        """Queue a batch for writing (an empty one: the bus is quiet); never blocks on the disk."""
        if not batch:
            now = time.monotonic()
            if now - self._last_touch >= TOUCH_INTERVAL:
                self._last_touch = now
                self._put("touch", time.time(), 0)
            return
        # What the queue holds of each message: its body, WebSocket frame and SSE event.
        size = sum(len(message.body) + message.size + len(message.event) for message in batch)
        cursor = batch[-1].cursor
        with self._cond:
            if self._queued + size > QUEUE_BYTES:
                self.queue_drops += len(batch)
                if self._items and self._items[-1][0] == "lost":
                    self._items[-1] = ("lost", cursor, 0)
                else:
                    self._items.append(("lost", cursor, 0))
                if not self._dropping:
                    self._dropping = True
                    log.error("window: write queue full (%d bytes): dropping messages", self._queued)
            else:
                self._dropping = False
                self._items.append(("batch", batch, size))
                self._queued += size
            self._cond.notify()

    def call(self, job: Callable[[Store], T]) -> concurrent.futures.Future[T]:
        """Run job(store) in the writer thread after what is queued (e.g. a back-fill); the future fails with
        sqlite3.OperationalError if there is no window."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put("call", (job, future), 0)
        return future

    async def settled_through(self, cursor: int, timeout: float) -> bool:
        """Wait until every message up to `cursor` is written or given up on; False on timeout."""
        if self.settled >= cursor:
            return True
        waiter = self._loop.create_future()
        entry = (cursor, waiter)
        self._waiters.append(entry)
        try:
            # Re-check after registering: the thread may have moved on in between.
            if self.settled >= cursor:
                return True
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)

    def stop(self, timeout: float) -> bool:
        """Write what is queued, close the window; False if that takes longer than `timeout`."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self.store is not None:
            self.store.close()
        return True

    def _put(self, kind: str, payload: object, size: int) -> None:
        with self._cond:
            self._items.append((kind, payload, size))
            self._cond.notify()

    def _wake(self) -> None:
        for cursor, waiter in self._waiters:
            if cursor <= self.settled and not waiter.done():
                waiter.set_result(None)

    # -- the thread's side

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items:
                    return
                kind, payload, size = self._items.popleft()
                self._queued -= size
            try:
                cursor = self._process(kind, payload)
            except Exception:
                # A bug here must not end the thread: the queue would fill and every later write drop.
                self.write_errors += 1
                log.exception("window: writing failed unexpectedly")
                cursor = payload[-1].cursor if kind == "batch" else 0  # type: ignore[index]
            if cursor > self.settled:
                self.settled = cursor
                with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
                    self._loop.call_soon_threadsafe(self._wake)

    def _process(self, kind: str, payload: object) -> int:
        """Handle one queued item; the cursor it settles (0: none)."""
        if kind == "call":
            job, future = payload  # type: ignore[misc]
            self._call(job, future)
            return 0
        if kind == "lost":
            if self.store is not None:
                self.store.lost()
            return payload  # type: ignore[return-value]
        store = self._store()
        batch: Sequence[Outgoing] = payload if kind == "batch" else ()  # type: ignore[assignment]
        if store is None:
            return batch[-1].cursor if batch else 0
        try:
            if batch:
                store.append(batch, time.time())
            else:
                store.touch(payload)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            self._failed(store, exc)
        return batch[-1].cursor if batch else 0

    def _call(self, job: Callable[[Store], object], future: concurrent.futures.Future[object]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        store = self._store()
        if store is None:
            future.set_exception(sqlite3.OperationalError(f"no window at {self.path}"))
            return
        try:
            future.set_result(job(store))
        except BaseException as exc:
            future.set_exception(exc)

    def _store(self) -> Store | None:
        if self.store is None and time.monotonic() - self._last_open_attempt >= REOPEN_INTERVAL:
            self._open()
        return self.store

    def _open(self) -> None:
        self._last_open_attempt = time.monotonic()
        try:
            self.store = Store(self.path, self._max_age, self._max_bytes)
        except sqlite3.DatabaseError as exc:
            self.store = None
            self.write_errors += 1
            if _corrupt(exc):
                log.error(
                    "window: %s is corrupt (%s): moving it aside and starting a new one", self.path, exc
                )
                self._move_aside()
                self._open()
            else:
                log.error("window: cannot open %s: %s; serving live only", self.path, exc)
            return
        # What it holds is written: a resume up to its newest cursor need not wait for anything.
        self.settled = max(self.settled, self.store.newest)
        log.info("window: %s holds %d messages (%d bytes)", self.path, self.store.rows, self.store.bytes)

    def _failed(self, store: Store, exc: sqlite3.Error) -> None:
        self.write_errors += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            log.error("window: write failed (%d so far): %s", self.write_errors, exc)
        store.lost()
        if _corrupt(exc):
            log.error("window: %s is corrupt: moving it aside and starting a new one", self.path)
            store.close()
            self.store = None
            self._move_aside()
            self._open()

    def _move_aside(self) -> None:
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)
        try:
            os.replace(self.path, self.path + ".corrupt")
        except OSError as exc:
            log.error("window: cannot move %s aside: %s", self.path, exc)


def _corrupt(exc: sqlite3.Error) -> bool:
    """The database file is damaged or not a database (as opposed to full, locked or read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text
