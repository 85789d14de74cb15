"""Resuming a client from a cursor: its backlog from the window, then live, with no gap and no duplicate.

The cut-over, for a client (WebSocket or SSE) and its topic prefixes, all in the event loop:

1. In one step with no await (so between two bus batches): the client leaves its live registry and joins
   the resuming registry with the same prefixes; `upto` = the cursor of the last message delivered. Every
   message with a cursor <= upto was delivered before this step; every later one will be delivered after
   it, and the resuming channel keeps it for the client (fanout.py) instead of sending it.
2. Wait until the window's writer has settled `upto` (writer.py): every message up to it is written (or
   was lost to a failed write and counted there).
3. Send the stored messages with cursor in (after, upto] that match, oldest first, read in pages: none of
   them is kept (they are <= upto), and at most `max_messages` of the newest are replayed.
4. Send what was kept meanwhile, until nothing is left; then, with no await after the last check, put the
   client back in its live registry: the next batch reaches it directly. Kept messages are > upto and
   in bus order, live ones follow them.

A WebSocket client may have been subscribed, and so received live messages, before it asks to resume: each
of its prefixes carries the cursor of the last message delivered when it subscribed. A message reached the
client live iff one of its matching prefixes was subscribed before it (that cursor < the message's), so the
backlog holds exactly the matching messages whose every matching prefix came later.

Cursors are receive times on this host: a cursor from another gateway (through haproxy) resumes from about
the same moment, within the hosts' clock and delivery skew (milliseconds).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fedmsg_websocket.compat import buffered_bytes
from fedmsg_websocket.fanout import Channel, Client, Fanout
from fedmsg_websocket.frames import Outgoing
from fedmsg_websocket.reads import Reads
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.window import Row, after, replay_floor
from fedmsg_websocket.writer import Writer

log = logging.getLogger(__name__)

#: Rows read from the window per query while replaying.
PAGE = 500
#: Seconds a resume waits for the writer to settle what was delivered before it (it has never been
#: behind more than a few batches in the benchmarks); past that it replays what is there and logs it.
SETTLE_TIMEOUT = 5.0
#: A prefix's "subscribed at" for a client that received nothing live (SSE): later than any cursor.
NEVER = 1 << 62


class Sender(Protocol):
    """How a resumed client gets a stored message, and a kept live one; both wait for its socket."""

    async def send_row(self, row: Row) -> None: ...
    async def send_live(self, message: Outgoing) -> None: ...


class Resume:
    """A client between its resume request and live delivery, with the live messages kept for it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.kept: list[Outgoing] = []
        self.kept_bytes = 0
        #: Closed as too slow while resuming (its kept messages passed max_queue_bytes).
        self.dropped = False

    @property
    def remote_address(self) -> object:
        return self.client.remote_address

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.dropped = True
        await self.client.close(code, reason)


def _keep(resumes: Collection[Resume], message: Outgoing) -> None:
    for resume in resumes:
        resume.kept.append(message)
        resume.kept_bytes += message.size


def resuming_channel(registry: Registry[Resume]) -> Channel[Resume]:
    return Channel(registry, _keep, lambda resume: resume.kept_bytes + buffered_bytes(resume.client))  # type: ignore[arg-type]


def missed(topic: str, cursor: int, prefixes: Mapping[str, int]) -> bool:
    """Whether a client with these prefixes (each with the cursor it was subscribed at) did not get this
    message live but wants it: some prefix matches, and every matching one was subscribed after it."""
    subscribed = [at for prefix, at in prefixes.items() if topic.startswith(prefix)]
    return bool(subscribed) and min(subscribed) >= cursor


# eq=False: a part of the daemon, equal (and hashed) only as itself, not by its counters.
@dataclass(eq=False)
class Catchup:
    fanout: Fanout
    writer: Writer | None
    reads: Reads
    resuming: Registry[Resume]
    max_messages: int
    #: Resumes started, stored messages replayed, resumes cut to max_messages, resumes that did not
    #: find everything written in time, resumes that could not read the window.
    resumes: int = field(default=0, init=False)
    replayed: int = field(default=0, init=False)
    truncated: int = field(default=0, init=False)
    unsettled: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)

    def __len__(self) -> int:
        """Resumes in progress."""
        return len(self.resuming)

    @property
    def position(self) -> int:
        """The cursor of the last message delivered (what a prefix subscribed now is subscribed at)."""
        return self.fanout.last_cursor

    async def resume(
        self, client: Client, live: Registry[Any], prefixes: Mapping[str, int], cursor: int, sender: Sender
    ) -> bool:
        """Replay what `client` missed after `cursor`, then make it live again; False if it was closed as
        too slow meanwhile. Exceptions from the sender (the client went away) propagate."""
        resume = Resume(client)
        # Step 1: no await from here to the first one below.
        self.resuming.add(resume)
        for prefix in prefixes:
            self.resuming.subscribe(resume, prefix)
        live.remove(client)
        upto = self.fanout.last_cursor
        self.resumes += 1
        try:
            if self.writer is not None:
                if not await self.writer.settled_through(upto, SETTLE_TIMEOUT):
                    self.unsettled += 1
                    log.warning("resume: the window is not written up to %d yet; replaying what is", upto)
                await self._replay(resume, prefixes, cursor, upto, sender)
            while resume.kept and not resume.dropped:
                kept = resume.kept
                resume.kept, resume.kept_bytes = [], 0
                for message in kept:
                    await sender.send_live(message)
            if resume.dropped:
                return False
            # Nothing kept is left, and no await since the check: live from the next batch on.
            live.add(client)
            for prefix in prefixes:
                live.subscribe(client, prefix)
            return True
        finally:
            self.resuming.remove(resume)

    async def _replay(
        self, resume: Resume, prefixes: Mapping[str, int], cursor: int, upto: int, sender: Sender
    ) -> None:
        try:
            position = await self.reads.run(lambda conn: replay_floor(conn, cursor, upto, self.max_messages))
            if position > cursor:
                self.truncated += 1
            while not resume.dropped:
                rows = await self.reads.run(functools.partial(after, cursor=position, upto=upto, limit=PAGE))
                for row in rows:
                    if missed(row.topic, row.cursor, prefixes):
                        await sender.send_row(row)
                        self.replayed += 1
                if len(rows) < PAGE:
                    return
                position = rows[-1].cursor
        except sqlite3.Error as exc:
            self.failed += 1
            log.error("resume: cannot read the window: %s; going on live", exc)
