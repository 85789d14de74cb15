"""Reading the window from the event loop: in worker threads, each call with its own read-only connection,
at most READERS at once for /raw and resumes together (after a restart every client may resume at once;
each waits its turn, and its live messages are kept meanwhile)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from fedmsg_websocket.window import reader

T = TypeVar("T")
#: Concurrent reads: the machine's cores are shared with the fan-out.
READERS = 2


class Reads:
    def __init__(self, path: str) -> None:
        #: The window's file, "" when the daemon keeps none.
        self.path = path
        self._slots = asyncio.Semaphore(READERS)

    def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        conn = reader(self.path)
        try:
            return job(conn)
        finally:
            conn.close()

    async def run(self, job: Callable[[sqlite3.Connection], T], wait: float | None = None) -> T:
        """job(connection) in a worker thread; TimeoutError if no turn came within `wait` seconds,
        sqlite3.Error if the window cannot be read."""
        if wait is None:
            await self._slots.acquire()
        else:
            await asyncio.wait_for(self._slots.acquire(), wait)
        try:
            return await asyncio.to_thread(self._read, job)
        finally:
            self._slots.release()
