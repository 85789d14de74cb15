"""The catch-up window: the recent bus messages in an SQLite database (WAL mode) under `state_dir`.

File `STATE_DIR/window.sqlite3` (plus SQLite's `-wal` and `-shm`), `PRAGMA user_version = 1`:

    messages                     one row per bus message, oldest pruned first
      id        INTEGER PRIMARY KEY   the cursor: microseconds since the epoch when this daemon received
                                      the message, made strictly increasing (frames.Cursors); opaque to
                                      clients (SSE `id:`, WebSocket `"id"`), and it survives restarts
      received  REAL NOT NULL         epoch seconds when received (for a back-filled row: its timestamp)
      timestamp REAL                  the body's own `timestamp` when it is a number, else NULL
      msg_id    TEXT                  the body's `msg_id` when it is a string, else NULL
      topic     TEXT NOT NULL
      body      BLOB NOT NULL         the body's bytes exactly as published (UTF-8 JSON, never rewritten)
    messages_timestamp           index on messages(timestamp): /raw's start..end
    coverage                     the time ranges the window holds everything of
      id        INTEGER PRIMARY KEY
      start     REAL NOT NULL         epoch seconds (this host's clock)
      end       REAL NOT NULL
      source    TEXT NOT NULL         "live": one daemon run, or the stretch of it since the last lost
                                      write; "peer NAME": a range back-filled from a peer
    meta                         key/value: `bytes` (the payload bytes held, topic + body)

A run's coverage row starts when the store opens and its `end` moves to the last message of every write
(and on, every few seconds, while the bus is quiet). A write that fails or is dropped ends the row; the
next good write starts a new one. So the complement of `coverage` within the window (`gaps()`) is what
this host did not see: down, restarting, or losing writes.

Bounds: rows older than `max_age` seconds (by cursor, i.e. receive time) and the oldest rows past
`max_bytes` of payload are deleted a bounded number at a time after each write (incremental: no write
waits for a big delete). The file is larger than the payload by SQLite's pages and the index (measured in
docs/performance.md); deleted pages are reused, so it stops growing once the bound is reached.

One writer (writer.py's thread) holds a Store; readers (/raw, resumes) open their own read-only
connections with `reader()`: WAL lets them read while it writes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

FILENAME = "window.sqlite3"
SCHEMA_VERSION = 1
#: Rows deleted at most per write when pruning, so that a write never waits for a big delete.
PRUNE_STEP = 2000
PAGE_SIZE = 16384
#: How long a connection waits for another's lock (the writer for a reader's checkpoint, a back-fill).
BUSY_TIMEOUT_MS = 5000

_INSERT = "INSERT INTO messages (id, received, timestamp, msg_id, topic, body) VALUES (?, ?, ?, ?, ?, ?)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    timestamp REAL,
    msg_id TEXT,
    topic TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_timestamp ON messages(timestamp);
CREATE TABLE IF NOT EXISTS coverage (
    id INTEGER PRIMARY KEY,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


class Record(Protocol):
    """What the store keeps of a message (frames.Outgoing has these fields)."""

    @property
    def cursor(self) -> int: ...
    @property
    def received(self) -> float: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def msg_id(self) -> str | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def body(self) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class Row:
    """A stored message as readers get it."""

    cursor: int
    topic: str
    body: bytes


def path_in(state_dir: str) -> str:
    return os.path.join(state_dir, FILENAME)


def _connect(path: str, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        # mode=ro: a reader never creates the file, and cannot write by mistake.
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def reader(path: str) -> sqlite3.Connection:
    """A read-only connection (sqlite3.Error if there is no window)."""
    return _connect(path, readonly=True)


class Store:
    """The writer's side: open (creating or upgrading), append batches, prune, back-fill."""

    def __init__(self, path: str, max_age: float, max_bytes: int, now: float | None = None) -> None:
        self.path = path
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.conn = _connect(path, readonly=False)
        try:
            self._create()
            #: Rows and payload bytes held, the oldest and newest cursor (0: empty).
            self.rows: int = self.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
            self.bytes = int(self._meta("bytes", 0))
            first, last = self.conn.execute("SELECT min(id), max(id) FROM messages").fetchone()
            self.oldest: int = first or 0
            self.newest: int = last or 0
        except sqlite3.Error:
            self.conn.close()
            raise
        self._run: int | None = None
        self._start_run(time.time() if now is None else now)

    def close(self) -> None:
        self.conn.close()

    def _create(self) -> None:
        conn = self.conn
        # Only a new, empty file takes it (before WAL mode): 16 KiB pages hold five 3 KB bodies, where 4 KiB
        # pages hold one and waste a quarter (bench/window.py: 3305 against 4133 bytes on disk per 3 KB
        # message, and 1.7x the write rate).
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        # NORMAL in WAL mode: a commit is durable once the WAL is synced at checkpoint; a power cut loses
        # at most the last commits, never the database's integrity. One fsync per batch would be the cost
        # of FULL.
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"window schema version {version}, expected {SCHEMA_VERSION}")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _meta(self, key: str, default: object) -> object:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _start_run(self, now: float) -> None:
        cur = self.conn.execute(
            'INSERT INTO coverage (start, "end", source) VALUES (?, ?, ?)', (now, now, "live")
        )
        self._run = cur.lastrowid

    def lost(self) -> None:
        """Writes were lost (dropped or failed): what follows is a new stretch of coverage."""
        self._run = None

    def append(self, batch: Sequence[Record], now: float) -> None:
        """Insert a batch, move the run's coverage to `now`, prune: one transaction."""
        conn = self.conn
        added = sum(len(m.topic) + len(m.body) for m in batch)
        conn.execute("BEGIN")
        try:
            if self._run is None:
                # After a loss, coverage restarts with this batch's first message.
                self._start_run(batch[0].received if batch else now)
            conn.executemany(
                _INSERT,
                [(m.cursor, m.received, m.timestamp, m.msg_id, m.topic, m.body) for m in batch],
            )
            # Covered up to the last message written (not up to now: what came since may yet be lost).
            covered = batch[-1].received if batch else now
            conn.execute('UPDATE coverage SET "end" = ? WHERE id = ?', (covered, self._run))
            deleted_rows, deleted_bytes = self._prune(now, self.bytes + added)
            total = self.bytes + added - deleted_bytes
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bytes', ?)", (total,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.bytes = total
        self.rows += len(batch) - deleted_rows
        if batch:
            self.newest = max(self.newest, batch[-1].cursor)
        self._refresh_oldest()

    def _refresh_oldest(self) -> None:
        row = self.conn.execute("SELECT id FROM messages ORDER BY id LIMIT 1").fetchone()
        self.oldest = row[0] if row else 0
        if not row:
            self.newest = 0

    def _prune(self, now: float, total: int) -> tuple[int, int]:
        """Delete at most PRUNE_STEP of the oldest rows that are too old or past the byte bound."""
        cutoff = int((now - self.max_age) * 1_000_000)
        rows = self.conn.execute(
            "SELECT id, length(topic) + length(body) FROM messages ORDER BY id LIMIT ?", (PRUNE_STEP,)
        ).fetchall()
        deleted_rows = deleted_bytes = 0
        last = None
        for cursor, size in rows:
            if cursor >= cutoff and total - deleted_bytes <= self.max_bytes:
                break
            deleted_rows += 1
            deleted_bytes += size
            last = cursor
        if last is not None:
            self.conn.execute("DELETE FROM messages WHERE id <= ?", (last,))
            # Coverage of what is no longer held says nothing any more.
            self.conn.execute('DELETE FROM coverage WHERE "end" < ?', (last / 1_000_000,))
        return deleted_rows, deleted_bytes

    def touch(self, now: float) -> None:
        """The bus was quiet but this daemon was listening until `now` (when the loop queued this, after
        every message before it): the run's coverage reaches it."""
        if self._run is None:
            self._start_run(now)
        else:
            self.conn.execute('UPDATE coverage SET "end" = ? WHERE id = ?', (now, self._run))

    def backfill(self, messages: Iterable[tuple[str, bytes]], start: float, end: float, source: str) -> int:
        """Insert messages fetched from a peer for the time range start..end (epoch seconds) and record the
        range as covered by `source` ("peer NAME"); returns how many were new.

        Each message is (topic, body as published); bodies must be JSON with a numeric `timestamp`.
        Duplicates (by `msg_id`, or by identical body and timestamp for a body without one) are skipped.
        Cursors are the bodies' timestamps in microseconds, kept inside start..end and unique; use it for
        a gap (`gaps()`), which lies before this run's own cursors.
        """
        from fedmsg_websocket.frames import body_fields, parse_body  # noqa: PLC0415 (no import cycle)

        conn = self.conn
        low, high = int(start * 1_000_000), int(end * 1_000_000)
        if high < low:
            raise ValueError(f"empty range {start}..{end}")
        added = added_bytes = 0
        conn.execute("BEGIN")
        try:
            known = {
                row[0]
                for row in conn.execute(
                    "SELECT msg_id FROM messages WHERE timestamp BETWEEN ? AND ? AND msg_id IS NOT NULL",
                    (start - 3600, end + 3600),
                )
            }
            for topic, body in messages:
                _, parsed = parse_body(body)
                stamp, msg_id = body_fields(parsed)
                if stamp is None:
                    raise ValueError("a back-filled body has no numeric timestamp")
                if msg_id is not None:
                    if msg_id in known:
                        continue
                    known.add(msg_id)
                elif conn.execute(
                    "SELECT 1 FROM messages WHERE timestamp = ? AND body = ?", (stamp, body)
                ).fetchone():
                    continue
                cursor = min(max(int(stamp * 1_000_000), low), high)
                while conn.execute("SELECT 1 FROM messages WHERE id = ?", (cursor,)).fetchone():
                    cursor += 1
                conn.execute(
                    _INSERT,
                    (cursor, stamp, stamp, msg_id, topic, body),
                )
                added += 1
                added_bytes += len(topic) + len(body)
            conn.execute('INSERT INTO coverage (start, "end", source) VALUES (?, ?, ?)', (start, end, source))
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('bytes', ?)", (self.bytes + added_bytes,)
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.bytes += added_bytes
        self.rows += added
        self._refresh_oldest()
        return added


def gaps(conn: sqlite3.Connection, start: float, end: float) -> list[tuple[float, float]]:
    """The stretches of start..end (epoch seconds) that no coverage row holds, oldest first."""
    found: list[tuple[float, float]] = []
    position = start
    rows = conn.execute(
        'SELECT start, "end" FROM coverage WHERE "end" >= ? AND start <= ? ORDER BY start', (start, end)
    )
    for first, last in rows:
        if first > position:
            found.append((position, min(first, end)))
        position = max(position, last)
        if position >= end:
            break
    if position < end:
        found.append((position, end))
    return found


def newest_cursor(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(id) FROM messages").fetchone()
    return row[0] or 0


@dataclasses.dataclass(frozen=True)
class RawQuery:
    """/raw's filter and page (raw.py validates the parameters)."""

    start: float = -math.inf
    end: float = math.inf
    topics: tuple[str, ...] = ()
    descending: bool = True
    rows_per_page: int = 25
    page: int = 1


def raw_page(conn: sqlite3.Connection, query: RawQuery) -> tuple[int, list[bytes]]:
    """(how many messages match, the bodies on the requested page), ordered by (timestamp, cursor)."""
    where = "timestamp >= ? AND timestamp <= ?"
    params: list[object] = [max(query.start, -1e300), min(query.end, 1e300)]
    if query.topics:
        where += f" AND topic IN ({', '.join('?' * len(query.topics))})"
        params += query.topics
    total = conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0]  # noqa: S608
    direction = "DESC" if query.descending else "ASC"
    offset = (query.page - 1) * query.rows_per_page
    bodies = [
        row[0]
        for row in conn.execute(
            f"SELECT body FROM messages WHERE {where} "  # noqa: S608 (only placeholders and ASC/DESC)
            f"ORDER BY timestamp {direction}, id {direction} LIMIT ? OFFSET ?",
            [*params, query.rows_per_page, offset],
        )
    ]
    return total, bodies


def after(conn: sqlite3.Connection, cursor: int, upto: int, limit: int) -> list[Row]:
    """Up to `limit` messages with cursor in (cursor, upto], oldest first."""
    return [
        Row(*row)
        for row in conn.execute(
            "SELECT id, topic, body FROM messages WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (cursor, upto, limit),
        )
    ]


def replay_floor(conn: sqlite3.Connection, cursor: int, upto: int, most: int) -> int:
    """The cursor to resume after so that at most `most` stored messages up to `upto` are replayed:
    `cursor` itself, or later when more than `most` messages follow it."""
    row = conn.execute(
        "SELECT id FROM messages WHERE id <= ? ORDER BY id DESC LIMIT 1 OFFSET ?", (upto, most)
    ).fetchone()
    return cursor if row is None else max(cursor, row[0])
